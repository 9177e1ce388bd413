// Image archives (`dump --archive`, `restore --archive`, `show --archive`):
// real trees dumped into one file of each kind and restored from it, an
// archive that was there surviving a dump killed before its end, and what
// is cut short, foreign or misnamed refused with nothing run or changed.
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <string>
#include <vector>

#include "harness.h"

namespace crl::test {
namespace {

std::vector<std::string> Listing(const std::string& dir) {
  std::vector<std::string> out;
  std::error_code ec;
  for (const auto& e : std::filesystem::directory_iterator(dir, ec))
    out.push_back(e.path().filename());
  std::sort(out.begin(), out.end());
  return out;
}

// criu-lite's temporary directories (restore --archive unpacks into one)
// go to DIR while this lives.
class TmpDirFor {
 public:
  explicit TmpDirFor(const std::string& dir) : dir_(dir) {
    const char* old = getenv("TMPDIR");
    if (old) old_ = old;
    mkdir(dir.c_str(), 0700);
    setenv("TMPDIR", dir.c_str(), 1);
  }
  ~TmpDirFor() {
    if (old_.empty())
      unsetenv("TMPDIR");
    else
      setenv("TMPDIR", old_.c_str(), 1);
  }

 private:
  std::string dir_, old_;
};

struct Kind {
  const char* ending;
  const char* scenario;
};
void PrintTo(const Kind& k, std::ostream* os) { *os << k.ending << " " << k.scenario; }

class ArchiveKinds : public ::testing::TestWithParam<Kind> {};

// The tree is dumped into one file and nothing else (no image directory,
// nothing left beside the archive), restored from it, and checks itself;
// the unpacked copy is gone once the tree runs.
TEST_P(ArchiveKinds, ATreeDumpedIntoOneFileComesBackFromIt) {
  TestDir dir;
  TmpDirFor tmp(dir / "tmp");
  ASSERT_EQ(mkdir((dir / "archives").c_str(), 0700), 0);
  std::string archive = dir / "archives" + "/dump" + GetParam().ending;
  pid_t pid = StartWorkload(dir, GetParam().scenario);
  CmdResult d = RunCriuLite(
      {"dump", "-t", std::to_string(pid), "--archive", archive, "-o", dir / "dump.log", "-v"},
      {pid});
  ASSERT_TRUE(d.ok()) << d.err;
  EXPECT_FALSE(Alive(pid));
  EXPECT_EQ(Listing(dir / "archives"),
            std::vector<std::string>{"dump" + std::string(GetParam().ending)});
  EXPECT_TRUE(Listing(dir / "tmp").empty()) << "the dump wrote files before the archive";
  CmdResult r =
      RunCriuLite({"restore", "--archive", archive, "-d", "-o", dir / "restore.log", "-v"});
  ASSERT_TRUE(r.ok()) << r.err;
  EXPECT_NE(ReadFile(dir / "restore.log").find("unpacked " + archive), std::string::npos);
  EXPECT_TRUE(Listing(dir / "tmp").empty()) << "the unpacked images were left behind";
  EXPECT_EQ(CheckWorkload(pid, dir), "PASS");
}

INSTANTIATE_TEST_SUITE_P(Archive, ArchiveKinds,
                         ::testing::Values(Kind{".tar", "memory"}, Kind{".tar.zst", "tree"},
                                           Kind{".tar.gz", "threads"}),
                         [](const auto& info) {
                           std::string s = info.param.ending + 1;
                           for (char& c : s)
                             if (c == '.') c = '_';
                           return s;
                         });

// `show --archive`: every record in the archive, or the ones named, as
// JSON; a name the archive lacks is an error naming it.
TEST(Archive, ShowReadsTheRecordsInside) {
  TestDir dir;
  TmpDirFor tmp(dir / "tmp");
  std::string archive = dir / "dump.tar.zst";
  pid_t pid = StartWorkload(dir, "memory");
  CmdResult d = RunCriuLite({"dump", "-t", std::to_string(pid), "--archive", archive, "-R"});
  ASSERT_TRUE(d.ok()) << d.err;
  CmdResult all = RunCriuLite({"show", "--archive", archive});
  ASSERT_TRUE(all.ok()) << all.err;
  for (const char* kind : {"\"kind\": \"inventory\"", "\"kind\": \"core\"", "\"kind\": \"mm\"",
                           "\"kind\": \"pagemap\""})
    EXPECT_NE(all.out.find(kind), std::string::npos) << kind << " missing from " << all.out;
  std::string core = "core-" + std::to_string(pid) + ".img";
  CmdResult one = RunCriuLite({"show", "--archive", archive, core});
  ASSERT_TRUE(one.ok()) << one.err;
  EXPECT_NE(one.out.find("\"kind\": \"core\""), std::string::npos);
  EXPECT_EQ(one.out.find("\"kind\": \"inventory\""), std::string::npos);
  CmdResult none = RunCriuLite({"show", "--archive", archive, "core-1.img"});
  EXPECT_FALSE(none.ok());
  EXPECT_NE(none.err.find("has no core-1.img"), std::string::npos) << none.err;
  EXPECT_TRUE(Listing(dir / "tmp").empty());
  KillAndReap(pid);
}

// A dump killed (SIGKILL, the images copied, the archive not finished)
// leaves the archive that was at the name as it was, and the tree running
// untraced; the next dump to that name removes the abandoned partial file,
// and the tree comes back from the archive.
TEST(Archive, ADumpKilledBeforeItsEndLeavesTheArchiveThatWasThere) {
  TestDir dir;
  std::string archive = dir / "dump.tar";
  pid_t pid = StartWorkload(dir, "memory");
  std::vector<std::string> dump = {"dump", "-t", std::to_string(pid), "--archive", archive, "-R"};
  CmdResult first = RunCriuLite(dump);
  ASSERT_TRUE(first.ok()) << first.err;
  std::string before = ReadFile(archive);
  ASSERT_FALSE(before.empty());
  CmdResult killed = RunCriuLiteInterrupted(dump, -1, 0, {"CRIU_LITE_FAULT=dump-pages-copied"});
  ASSERT_EQ(killed.exit_code, 128 + SIGKILL) << "the fault point was not reached: " << killed.err;
  EXPECT_TRUE(ReadFile(archive) == before) << "the killed dump changed the archive";
  EXPECT_EQ(TracerPid(pid), 0);
  EXPECT_NE(TaskState(pid), 't');
  std::vector<std::string> left = Listing(dir.path());
  EXPECT_EQ(std::count_if(left.begin(), left.end(),
                          [](const std::string& n) {
                            return n.rfind(".dump.tar.criu-lite-partial.", 0) == 0;
                          }),
            1)
      << "a SIGKILLed dump cannot remove its partial archive";
  CmdResult again = RunCriuLite(dump);
  ASSERT_TRUE(again.ok()) << again.err;
  left = Listing(dir.path());
  EXPECT_EQ(std::count_if(left.begin(), left.end(),
                          [](const std::string& n) {
                            return n.find("criu-lite-partial") != std::string::npos;
                          }),
            0)
      << "the abandoned partial archive was not removed";
  KillAndReap(pid);
  CmdResult r = RunCriuLite({"restore", "--archive", archive, "-d"});
  ASSERT_TRUE(r.ok()) << r.err;
  EXPECT_EQ(CheckWorkload(pid, dir), "PASS");
}

// A page server with --archive receives a dump sent to it as one archive
// (streamed in as it comes, renamed when the sender commits), which
// restore --archive takes.
TEST(Archive, APageServerReceivesTheDumpAsAnArchive) {
  TestDir dir;
  int port = 27000 + getpid() % 1000;
  mkdir((dir / "server").c_str(), 0700);
  pid_t server = fork();
  if (server == 0) {
    execl(CRIU_LITE_BIN, CRIU_LITE_BIN, "page-server", "--port", std::to_string(port).c_str(), "-D",
          (dir / "server").c_str(), "--archive", ".tar.zst", "--status-file",
          (dir / "ready").c_str(), "-o", (dir / "server.log").c_str(), nullptr);
    _exit(127);
  }
  ASSERT_TRUE(WaitForFile(dir / "ready", 5000));
  pid_t pid = StartWorkload(dir, "tree");
  CmdResult d = RunCriuLite({"dump", "-t", std::to_string(pid), "-D", dir / "img", "--page-server",
                             "--address", "127.0.0.1", "--port", std::to_string(port)},
                            {pid});
  int st = 0;
  waitpid(server, &st, 0);
  ASSERT_TRUE(d.ok()) << d.err;
  EXPECT_TRUE(WIFEXITED(st) && WEXITSTATUS(st) == 0) << ReadFile(dir / "server.log");
  EXPECT_EQ(Listing(dir / "server"), std::vector<std::string>{"img.tar.zst"});
  CmdResult r = RunCriuLite({"restore", "--archive", dir / "server/img.tar.zst", "-d"});
  ASSERT_TRUE(r.ok()) << r.err;
  EXPECT_EQ(CheckWorkload(pid, dir), "PASS");
}

// An archive cut short, one of something else, a file that is none, and a
// name that is no archive: each refused in one line naming the file and
// what is wrong, nothing restored, the tree at dump untouched.
TEST(Archive, CutShortForeignOrMisnamedIsRefusedAndNothingRuns) {
  TestDir dir;
  TmpDirFor tmp(dir / "tmp");
  std::string archive = dir / "dump.tar.zst";
  pid_t pid = StartWorkload(dir, "memory", {"--big-mib", "64"});
  CmdResult zip = RunCriuLite({"dump", "-t", std::to_string(pid), "--archive", dir / "dump.zip"});
  EXPECT_FALSE(zip.ok());
  EXPECT_NE(zip.err.find("dump.zip: not an archive name (.tar, .tar.zst, .tar.gz or .tgz)"),
            std::string::npos)
      << zip.err;
  EXPECT_TRUE(Alive(pid));
  EXPECT_EQ(TracerPid(pid), 0);
  CmdResult both =
      RunCriuLite({"dump", "-t", std::to_string(pid), "--archive", archive, "-D", dir / "img"});
  EXPECT_FALSE(both.ok());
  EXPECT_NE(both.err.find("excludes"), std::string::npos) << both.err;
  CmdResult d = RunCriuLite({"dump", "-t", std::to_string(pid), "--archive", archive}, {pid});
  ASSERT_TRUE(d.ok()) << d.err;
  ASSERT_FALSE(Alive(pid));

  std::string cut = dir / "cut.tar.zst";
  std::filesystem::copy_file(archive, cut);
  ASSERT_EQ(truncate(cut.c_str(), std::filesystem::file_size(archive) / 2), 0);
  CmdResult r = RunCriuLite({"restore", "--archive", cut, "-d"});
  EXPECT_FALSE(r.ok());
  EXPECT_NE(r.err.find(cut + ": truncated or damaged"), std::string::npos) << r.err;
  EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << r.err;
  EXPECT_FALSE(Alive(pid)) << "a restore from a cut archive ran the tree";

  std::string foreign = dir / "foreign.tar";
  ASSERT_EQ(system(("tar -C " + dir.path() + " -cf " + foreign + " tmp").c_str()), 0);
  r = RunCriuLite({"restore", "--archive", foreign, "-d"});
  EXPECT_FALSE(r.ok());
  EXPECT_NE(r.err.find("is not a criu-lite image archive: it holds 'tmp/'"), std::string::npos)
      << r.err;

  r = RunCriuLite({"restore", "--archive", dir / "out", "-d"});
  EXPECT_FALSE(r.ok());
  EXPECT_NE(r.err.find("not a tar archive"), std::string::npos) << r.err;

  r = RunCriuLite({"restore", "--archive", archive, "-d", "--pages", "lazy"});
  EXPECT_FALSE(r.ok());
  EXPECT_NE(r.err.find("--pages=lazy with --archive"), std::string::npos) << r.err;
  EXPECT_FALSE(Alive(pid));
  EXPECT_TRUE(Listing(dir / "tmp").empty()) << "a failed restore left its unpacked images";

  // The archive itself is whole: the tree comes back from it.
  r = RunCriuLite({"restore", "--archive", archive, "-d"});
  ASSERT_TRUE(r.ok()) << r.err;
  EXPECT_EQ(CheckWorkload(pid, dir), "PASS");
}

}  // namespace
}  // namespace crl::test
