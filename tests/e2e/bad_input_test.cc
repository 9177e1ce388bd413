// Bad input: each case ends with a clear message and nothing left stopped.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <fstream>
#include <functional>

#include "images/criu_lite.pb.h"
#include "images/image_file.h"
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

// stdin a TCP connection (inet sockets are not carried yet), whose other end
// is the test's.
TEST(BadInput, UnsupportedFdFailsNamingItAndLeavesTargetRunning) {
  TestDir dir;
  int p[2];
  // A unix socket whose other end the test holds (inet sockets, TCP
  // connections included, are carried now).
  ASSERT_EQ(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, p), 0);
  pid_t pid = StartWorkload(dir, "read", {}, p[0]);
  CmdResult r = RunCriuLite({"dump", "-t", std::to_string(pid), "-D", dir / "img"}, {pid});
  ExpectFailure(r, "fd 0 is a unix socket connected outside the tree");
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

// The working directory is gone by restore time: the chdir fails inside the
// batch of syscalls the new task runs by itself; the error names that call
// and its path, and what restore made is killed.
TEST(BadInput, RestoreWhoseWorkingDirectoryIsGoneNamesTheCallAndLeavesNothing) {
  TestDir dir;
  std::string cwd = dir / "cwd";
  ASSERT_EQ(mkdir(cwd.c_str(), 0755), 0);
  char here[4096];
  ASSERT_NE(getcwd(here, sizeof here), nullptr);
  ASSERT_EQ(chdir(cwd.c_str()), 0);  // the workload inherits it
  pid_t pid = StartWorkload(dir, "forest", {"--procs", "3", "--threads", "2", "--big-mib", "1"});
  ASSERT_EQ(chdir(here), 0);
  std::vector<pid_t> pids = TreePids(pid);
  ASSERT_EQ(pids.size(), 3u);
  CmdResult d = RunCriuLite({"dump", "-t", std::to_string(pid), "-D", dir / "img"}, {pid});
  ASSERT_EQ(d.exit_code, 0) << d.err;
  ASSERT_EQ(rmdir(cwd.c_str()), 0);
  CmdResult r = RunCriuLite({"restore", "-D", dir / "img", "-d"});
  ExpectFailure(r, "chdir(" + cwd + ") in pid");
  EXPECT_NE(r.err.find("No such file or directory"), std::string::npos) << r.err;
  for (pid_t p : pids) EXPECT_FALSE(Alive(p)) << "PID " << p << " left behind";
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

// Records edited as an attacker (or a broken disk) would: each refused with
// a line naming what is wrong, before any task exists.
class EditedImages : public DumpedImages {
 protected:
  template <typename M>
  void Edit(const std::string& path, ImageKind kind, const std::function<void(M*)>& change) {
    M m;
    ASSERT_TRUE(ReadImage(path, kind, &m).ok()) << path;
    change(&m);
    ASSERT_TRUE(WriteImage(path, kind, m).ok()) << path;
  }
  void ExpectRefused(const std::string& phrase) {
    ExpectFailure(RunCriuLite({"restore", "-D", dir_ / "img", "-d"}), phrase);
    ExpectNothingRestored();
  }
  std::string Inventory() { return dir_ / "img/inventory.img"; }
};

TEST_F(EditedImages, AChildListedTwice) {
  Edit<img::Inventory>(Inventory(), ImageKind::kInventory, [](img::Inventory* inv) {
    img::TreeEntry copy = inv->tree(0);
    copy.set_ppid(copy.pid());
    *inv->add_tree() = copy;
  });
  ExpectRefused("twice");
}

TEST_F(EditedImages, AParentThatIsNotBeforeItsChild) {
  Edit<img::Inventory>(Inventory(), ImageKind::kInventory, [](img::Inventory* inv) {
    img::TreeEntry* e = inv->add_tree();
    e->set_pid(inv->root_pid() + 1);
    e->set_ppid(inv->root_pid() + 2);
    e->add_tids(inv->root_pid() + 1);
  });
  ExpectRefused("is not listed before it");
}

TEST_F(EditedImages, AnUnalignedPageRun) {
  Edit<img::Pagemap>(Image("pagemap"), ImageKind::kPagemap, [](img::Pagemap* pm) {
    pm->mutable_entries(0)->set_vaddr(pm->entries(0).vaddr() + 1);
  });
  ExpectRefused("cannot exist");
}

TEST_F(EditedImages, APageCountThatOverflows) {
  Edit<img::Pagemap>(Image("pagemap"), ImageKind::kPagemap,
                     [](img::Pagemap* pm) { pm->mutable_entries(0)->set_nr_pages(1ull << 52); });
  ExpectRefused("cannot exist");
}

TEST_F(EditedImages, AnEmptiedPagemap) {
  Edit<img::Pagemap>(Image("pagemap"), ImageKind::kPagemap,
                     [](img::Pagemap* pm) { pm->clear_entries(); });
  ExpectRefused("its runs hold 0");
}

TEST_F(EditedImages, PagesOutsideEveryMapping) {
  Edit<img::Pagemap>(Image("pagemap"), ImageKind::kPagemap,
                     [](img::Pagemap* pm) { pm->mutable_entries(0)->set_vaddr(0x10000); });
  ExpectRefused("in no mapping");
}

TEST_F(EditedImages, AHugeDescriptorNumber) {
  Edit<img::Fds>(Image("fds"), ImageKind::kFds,
                 [](img::Fds* fds) { fds->mutable_fds(0)->set_fd(2147483647); });
  ExpectRefused("descriptor number 2147483647");
}

TEST_F(EditedImages, AParentLinkLoop) {
  // A chained image whose parent is itself.
  Edit<img::Pagemap>(Image("pagemap"), ImageKind::kPagemap,
                     [](img::Pagemap* pm) { pm->mutable_entries(0)->set_in_parent(true); });
  Edit<img::Pagemap>(Image("pagemap"), ImageKind::kPagemap, [](img::Pagemap* pm) {
    pm->set_total_pages(pm->total_pages() - pm->entries(0).nr_pages());
  });
  ASSERT_EQ(symlink(".", (dir_ / "img/parent").c_str()), 0);
  ExpectRefused("loops");
}

TEST_F(EditedImages, ABitFlippedInThePages) {
  std::fstream f(Image("pages"), std::ios::in | std::ios::out | std::ios::binary);
  f.seekg(100);
  char c = static_cast<char>(f.get());
  f.seekp(100);
  f.put(static_cast<char>(c ^ 0x10));
  f.close();
  ExpectRefused("does not match its checksum");
}

TEST_F(EditedImages, AFifoOrADeviceInsteadOfAnImage) {
  // Neither may hang the restore nor be read for ever; `show` neither.
  std::string pages = Image("pages");
  ASSERT_EQ(unlink(pages.c_str()), 0);
  ASSERT_EQ(mkfifo(pages.c_str(), 0600), 0);
  ExpectRefused("not a regular file");
  ASSERT_EQ(unlink(Inventory().c_str()), 0);
  ASSERT_EQ(symlink("/dev/zero", Inventory().c_str()), 0);
  ExpectRefused("not a regular file");
  ExpectFailure(RunCriuLite({"show", Inventory()}), "not a regular file");
}

}  // namespace
}  // namespace crl::test
