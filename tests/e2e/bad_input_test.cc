// Bad input: each case ends with a clear message and nothing left stopped.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <fstream>

#include "tests/e2e/harness.h"

namespace crl::test {
namespace {

void ExpectFailure(const CmdResult& r, const std::string& phrase) {
  EXPECT_NE(r.exit_code, 0);
  EXPECT_NE(r.err.find(phrase), std::string::npos) << "stderr was: " << r.err;
  // One line of reason, not a crash.
  EXPECT_EQ(r.err.find("internal error"), std::string::npos) << r.err;
}

TEST(BadInput, PidThatDoesNotExist) {
  TestDir dir;
  ExpectFailure(RunCriuLite({"dump", "-t", "999999", "-D", dir / "img"}),
                "no process with PID 999999");
}

TEST(BadInput, KernelThread) {
  TestDir dir;
  ExpectFailure(RunCriuLite({"dump", "-t", "2", "-D", dir / "img"}), "is a kernel thread");
}

TEST(BadInput, CriuLiteItself) {
  TestDir dir;
  // $$ of the shell is criu-lite's PID once the shell execs it.
  std::string cmd = "exec " + std::string(CRIU_LITE_BIN) + " dump -t $$ -D " + (dir / "img") +
                    " 2>" + (dir / "err");
  int rc = std::system(("sh -c '" + cmd + "'").c_str());
  EXPECT_NE(rc, 0);
  EXPECT_NE(ReadFile(dir / "err").find("is criu-lite itself"), std::string::npos)
      << ReadFile(dir / "err");
}

TEST(BadInput, UnsupportedFdFailsNamingItAndLeavesTargetRunning) {
  TestDir dir;
  int p[2];
  ASSERT_EQ(pipe(p), 0);
  pid_t pid = StartWorkload(dir, "read", {}, p[0]);
  CmdResult r = RunCriuLite({"dump", "-t", std::to_string(pid), "-D", dir / "img"}, {pid});
  ExpectFailure(r, "fd 0 is a pipe");
  EXPECT_NE(r.err.find("--shell-job"), std::string::npos) << r.err;
  ASSERT_TRUE(Alive(pid));
  EXPECT_NE(TaskState(pid), 't') << "target left stopped";
  // It still works: its read() was restarted and gets the line.
  ASSERT_EQ(write(p[1], "hello after restore\n", 20), 20);
  int status;
  ASSERT_EQ(waitpid(pid, &status, 0), pid);
  EXPECT_EQ(ReadFile(dir / "result"), "PASS\n");
  close(p[0]);
  close(p[1]);
  EXPECT_FALSE(std::ifstream(dir / "img/inventory.img").good()) << "a failed dump looks complete";
}

TEST(BadInput, MissingImageDirectory) {
  TestDir dir;
  ExpectFailure(RunCriuLite({"restore", "-D", dir / "nope"}), "does not exist");
}

TEST(BadInput, EmptyImageDirectory) {
  TestDir dir;
  mkdir((dir / "img").c_str(), 0700);
  ExpectFailure(RunCriuLite({"restore", "-D", dir / "img"}), "not a criu-lite image directory");
}

class DumpedImages : public ::testing::Test {
 protected:
  void SetUp() override {
    pid_ = StartWorkload(dir_, "memory");
    CmdResult d = RunCriuLite({"dump", "-t", std::to_string(pid_), "-D", dir_ / "img"}, {pid_});
    ASSERT_TRUE(d.ok()) << d.err;
  }
  // A failed restore must leave no process with the PID behind.
  void ExpectNothingRestored() { EXPECT_FALSE(Alive(pid_)); }
  std::string Image(const std::string& kind) {
    return dir_ / ("img/" + kind + "-" + std::to_string(pid_) + ".img");
  }
  TestDir dir_;
  pid_t pid_ = 0;
};

TEST_F(DumpedImages, TruncatedPageFile) {
  struct stat st;
  ASSERT_EQ(stat(Image("pages").c_str(), &st), 0);
  ASSERT_EQ(truncate(Image("pages").c_str(), st.st_size / 2), 0);
  ExpectFailure(RunCriuLite({"restore", "-D", dir_ / "img", "-d"}), "is truncated");
  ExpectNothingRestored();
}

TEST_F(DumpedImages, NewerFormatVersion) {
  std::fstream f(Image("core"), std::ios::in | std::ios::out | std::ios::binary);
  f.seekp(4);
  f.put('\x63');  // version 99
  f.close();
  ExpectFailure(RunCriuLite({"restore", "-D", dir_ / "img", "-d"}), "newer than this criu-lite");
  ExpectNothingRestored();
}

TEST_F(DumpedImages, CorruptRecord) {
  std::fstream f(Image("mm"), std::ios::in | std::ios::out | std::ios::binary);
  f.seekp(16);
  for (int i = 0; i < 64; i++) f.put('\xff');
  f.close();
  ExpectFailure(RunCriuLite({"restore", "-D", dir_ / "img", "-d"}), "corrupt");
  ExpectNothingRestored();
}

TEST_F(DumpedImages, PidInUse) {
  CmdResult first = RunCriuLite({"restore", "-D", dir_ / "img", "-d"});
  ASSERT_TRUE(first.ok()) << first.err;
  ExpectFailure(RunCriuLite({"restore", "-D", dir_ / "img", "-d"}), "is already in use");
  // The first restore is untouched by the failed second one.
  EXPECT_EQ(CheckWorkload(pid_, dir_), "PASS");
}

TEST_F(DumpedImages, ExecutableChangedSinceDump) {
  // Touching the mapped data file changes its mtime: the mapping is refused.
  std::system(("touch -d '2001-01-01' " + (dir_ / "mapped.dat")).c_str());
  ExpectFailure(RunCriuLite({"restore", "-D", dir_ / "img", "-d"}), "changed since the dump");
  ExpectNothingRestored();
}

}  // namespace
}  // namespace crl::test
