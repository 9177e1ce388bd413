// --pages=lazy: the tree runs before its memory is in place; the lazy-pages
// daemon serves its faults and fills the rest in the background. The fill is
// slowed down (--lazy-fill-rate) so that the workloads really run on memory
// that is not there yet.
#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <csignal>
#include <fstream>
#include <regex>

#include "tests/e2e/harness.h"
#include "tests/e2e/state_diff.h"

namespace crl::test {
namespace {

// The daemon's last log line: "lazy pages: done in S s: N pages placed on
// demand, M in the background, Z zero pages on demand".
struct DaemonFigures {
  bool done = false, none = false;  // none: no daemon was needed
  long on_demand = 0, background = 0, zero = 0;
  bool warned = false;
};

DaemonFigures WaitForDaemon(const std::string& log, int timeout_ms = 20000) {
  DaemonFigures f;
  std::regex done(
      "lazy pages: done in [0-9.]+ s: ([0-9]+) pages placed on demand, ([0-9]+) in "
      "the background, ([0-9]+) zero");
  for (int waited = 0; waited < timeout_ms; waited += 50) {
    std::string text = ReadFile(log);
    std::smatch m;
    if (text.find("nothing to place lazily") != std::string::npos) {
      f.none = true;
      return f;
    }
    if (std::regex_search(text, m, done)) {
      f.done = true;
      f.on_demand = std::stol(m[1]);
      f.background = std::stol(m[2]);
      f.zero = std::stol(m[3]);
      f.warned = text.find("was present before") != std::string::npos;
      return f;
    }
    usleep(50000);
  }
  return f;
}

const std::vector<std::string> kLazy = {"--pages=lazy", "--lazy-fill-rate", "16"};

// Dump, restore lazily, check at once (while most pages are still missing),
// then see the daemon finish.
// TIMEOUT_MS bounds the check and the daemon's end each (a gibibyte
// placed page by page in an emulated VM takes its time).
DaemonFigures LazyRoundTrip(const std::string& scenario, const std::vector<std::string>& wl_args,
                            const std::vector<std::string>& restore_extra = kLazy,
                            int timeout_ms = 20000) {
  TestDir dir;
  pid_t pid = StartWorkload(dir, scenario, wl_args);
  CmdResult d = RunCriuLite(
      {"dump", "-t", std::to_string(pid), "-D", dir / "img", "-v", "-o", dir / "dump.log"}, {pid});
  EXPECT_TRUE(d.ok()) << d.err;
  if (!d.ok()) return {};
  std::vector<std::string> restore = {"restore", "-D", dir / "img",        "-d",
                                      "-v",      "-o", dir / "restore.log"};
  restore.insert(restore.end(), restore_extra.begin(), restore_extra.end());
  CmdResult r = RunCriuLite(restore);
  EXPECT_TRUE(r.ok()) << r.err;
  if (!r.ok()) return {};
  EXPECT_EQ(CheckWorkload(pid, dir, timeout_ms), "PASS");
  DaemonFigures f = WaitForDaemon(dir / "restore.log", timeout_ms);
  EXPECT_TRUE(f.done || f.none) << "the lazy-pages daemon did not finish:\n"
                                << ReadFile(dir / "restore.log");
  EXPECT_FALSE(f.warned) << ReadFile(dir / "restore.log");
  return f;
}

TEST(LazyRestore, ForkMremapDontneedMunmapAndReadIntoMissingMemory) {
  DaemonFigures f = LazyRoundTrip("lazy", {"--big-mib", "64"});
  // The check ran on missing memory: its pages came on demand, and the
  // dropped part was answered with zero pages.
  EXPECT_GT(f.on_demand, 0);
  EXPECT_GT(f.zero, 0);
}

TEST(LazyRestore, UnthrottledFillOfAGibibyte) {
  DaemonFigures f = LazyRoundTrip("hold", {"--big-mib", "1024"}, {"--pages=lazy"}, 120000);
  EXPECT_GE(f.on_demand + f.background, 262144);
}

TEST(LazyRestore, TreeOfMultithreadedProcessesEachWithItsOwnMemory) {
  DaemonFigures f = LazyRoundTrip("forest", {"--procs", "4", "--threads", "3", "--big-mib", "16"});
  EXPECT_TRUE(f.done);
  EXPECT_GT(f.on_demand, 0);
}

// Every scenario of the suite, restored lazily. In some, all private memory
// is shared with children by fork: that is placed before the fork, and no
// daemon is needed.
class LazyScenario : public ::testing::TestWithParam<std::string> {};
TEST_P(LazyScenario, ChecksItselfOnMissingMemory) {
  // The forker's short-lived children are not the same ones after the restore.
  ExpectStateDiff children_come_and_go(GetParam() == "forker" ? std::vector<std::string>{"children"}
                                                              : std::vector<std::string>{});
  LazyRoundTrip(GetParam(), {});
}
INSTANTIATE_TEST_SUITE_P(Scenarios, LazyScenario,
                         ::testing::Values("memory", "threads", "tree", "forker", "pipeline", "cow",
                                           "shmem", "sockets"));

TEST(LazyRestore, AfterPreCopyPasses) {
  TestDir dir;
  // The dirtier flips a page read-only and back now and then: frozen in
  // between, it is restored so, and its mappings differ from the record made
  // before the dump. Its memory checks itself.
  ExpectStateDiff flips({"maps."});
  pid_t pid = StartWorkload(dir, "dirtier", {"--big-mib", "32", "--rate", "8"});
  ASSERT_TRUE(RunCriuLite({"pre-dump", "-t", std::to_string(pid), "-D", dir / "p1"}).ok());
  usleep(200000);
  CmdResult d = RunCriuLite({"dump", "-t", std::to_string(pid), "-D", dir / "final",
                             "--prev-images-dir", "../p1", "--track-mem"},
                            {pid});
  ASSERT_TRUE(d.ok()) << d.err;
  CmdResult r = RunCriuLite({"restore", "-D", dir / "final", "-d", "-v", "-o", dir / "restore.log",
                             "--pages=lazy", "--lazy-fill-rate", "16"});
  ASSERT_TRUE(r.ok()) << r.err;
  EXPECT_EQ(CheckWorkload(pid, dir), "PASS");
  EXPECT_TRUE(WaitForDaemon(dir / "restore.log").done) << ReadFile(dir / "restore.log");
}

TEST(LazyRestore, ADumpWhileTheDaemonFillsIsRefusedAndLaterWorks) {
  TestDir dir;
  pid_t pid = StartWorkload(dir, "hold", {"--big-mib", "64"});
  ASSERT_TRUE(RunCriuLite({"dump", "-t", std::to_string(pid), "-D", dir / "img"}, {pid}).ok());
  CmdResult r = RunCriuLite({"restore", "-D", dir / "img", "-d", "-v", "-o", dir / "restore.log",
                             "--pages=lazy", "--lazy-fill-rate", "16"});
  ASSERT_TRUE(r.ok()) << r.err;
  CmdResult early = RunCriuLite({"dump", "-t", std::to_string(pid), "-D", dir / "again"});
  EXPECT_FALSE(early.ok());
  EXPECT_NE(early.err.find("registered with a userfaultfd for missing pages"), std::string::npos)
      << early.err;
  ASSERT_TRUE(Alive(pid));
  EXPECT_NE(TaskState(pid), 't') << "left stopped";
  ASSERT_TRUE(WaitForDaemon(dir / "restore.log").done);
  CmdResult later = RunCriuLite({"dump", "-t", std::to_string(pid), "-D", dir / "again"}, {pid});
  ASSERT_TRUE(later.ok()) << later.err;
  ASSERT_TRUE(RunCriuLite({"restore", "-D", dir / "again", "-d"}).ok());
  EXPECT_EQ(CheckWorkload(pid, dir), "PASS");
}

// Restores a 256 MiB tree lazily at 16 MiB/s (about 16 s to fill) and
// returns the PIDs of the daemon and its guard on the way.
struct SlowLazy {
  pid_t daemon = -1, guard = -1;
};
SlowLazy StartSlowLazy(const TestDir& dir, pid_t* pid) {
  SlowLazy out;
  *pid = StartWorkload(dir, "forest", {"--procs", "2", "--threads", "2", "--big-mib", "128"});
  EXPECT_TRUE(RunCriuLite({"dump", "-t", std::to_string(*pid), "-D", dir / "img"}, {*pid}).ok());
  CmdResult r = RunCriuLite({"restore", "-D", dir / "img", "-d", "-v", "-o", dir / "restore.log",
                             "--pages=lazy", "--lazy-fill-rate", "16"});
  EXPECT_TRUE(r.ok()) << r.err;
  std::smatch m;
  std::string log = ReadFile(dir / "restore.log");
  if (std::regex_search(log, m, std::regex("its guard is ([0-9]+)"))) out.guard = std::stoi(m[1]);
  std::string kids = ReadFile("/proc/" + std::to_string(out.guard) + "/task/" +
                              std::to_string(out.guard) + "/children");
  out.daemon = atoi(kids.c_str());
  return out;
}

// The daemon killed before every page is in place: the restored tree is
// killed too, with the reason in the log, instead of reading zeros.
TEST(LazyRestore, TheDaemonsDeathKillsTheTreeAndSaysWhy) {
  TestDir dir;
  pid_t pid;
  SlowLazy lazy = StartSlowLazy(dir, &pid);
  ASSERT_GT(lazy.daemon, 0) << ReadFile(dir / "restore.log");
  std::vector<pid_t> tree = TreePids(pid);
  ASSERT_EQ(tree.size(), 2u);
  kill(lazy.daemon, SIGKILL);
  bool gone = false;
  for (int i = 0; i < 400 && !gone; i++) {
    usleep(10000);
    while (waitpid(-1, nullptr, WNOHANG) > 0) {
    }
    gone = true;
    for (pid_t p : tree) gone &= !Alive(p);
  }
  EXPECT_TRUE(gone) << "the restored tree runs on without its memory";
  std::string log = ReadFile(dir / "restore.log");
  EXPECT_NE(log.find("was killed by signal 9 (Killed) before every page was in place"),
            std::string::npos)
      << log;
  EXPECT_NE(log.find("killed them: " + std::to_string(pid)), std::string::npos) << log;
}

// Ctrl-C, a hang-up or a terminal stop are not for the daemon; SIGTERM makes
// it place the rest at once. The tree checks itself either way.
TEST(LazyRestore, TheDaemonIgnoresTerminalSignalsAndFinishesOnSigterm) {
  TestDir dir;
  pid_t pid;
  SlowLazy lazy = StartSlowLazy(dir, &pid);
  ASSERT_GT(lazy.daemon, 0) << ReadFile(dir / "restore.log");
  for (int sig : {SIGINT, SIGHUP, SIGQUIT, SIGTSTP, SIGPIPE}) {
    kill(lazy.daemon, sig);
    kill(lazy.guard, sig);
  }
  usleep(100000);
  EXPECT_TRUE(Alive(lazy.daemon));
  EXPECT_TRUE(Alive(lazy.guard));
  auto t0 = std::chrono::steady_clock::now();
  kill(lazy.daemon, SIGTERM);
  DaemonFigures f = WaitForDaemon(dir / "restore.log", 10000);
  double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  EXPECT_TRUE(f.done) << ReadFile(dir / "restore.log");
  EXPECT_LT(secs, 8) << "SIGTERM did not lift the fill rate";
  EXPECT_NE(ReadFile(dir / "restore.log").find("placing the rest at once"), std::string::npos);
  EXPECT_EQ(CheckWorkload(pid, dir), "PASS");
}

// Lazily, pages are checked against their checksums while the tree runs (by
// the daemon's guard): a flipped bit gets the tree killed, saying why.
TEST(LazyRestore, ACorruptPageKillsTheTreeAndSaysWhy) {
  TestDir dir;
  pid_t pid = StartWorkload(dir, "hold", {"--big-mib", "64"});
  ASSERT_TRUE(RunCriuLite({"dump", "-t", std::to_string(pid), "-D", dir / "img"}, {pid}).ok());
  std::string pages = dir / ("img/pages-" + std::to_string(pid) + ".img");
  {
    std::fstream f(pages, std::ios::in | std::ios::out | std::ios::binary);
    f.seekp(40 << 20);
    f.put('\x5a');
  }
  // Killed as soon as the guard has read its pages: nothing to compare. The
  // guard may even be done before restore is (which then fails).
  ExpectStateDiff killed({""});
  RunCriuLite({"restore", "-D", dir / "img", "-d", "-v", "-o", dir / "restore.log", "--pages=lazy",
               "--lazy-fill-rate", "16"});
  bool gone = false;
  for (int i = 0; i < 500 && !gone; i++) {
    usleep(10000);
    while (waitpid(-1, nullptr, WNOHANG) > 0) {
    }
    gone = !Alive(pid);
  }
  EXPECT_TRUE(gone) << "the tree runs on corrupt memory";
  EXPECT_NE(ReadFile(dir / "restore.log").find("does not match its checksum"), std::string::npos)
      << ReadFile(dir / "restore.log");
}

TEST(LazyRestore, CompressedImagesAreRefusedBeforeAnythingRuns) {
  TestDir dir;
  pid_t pid = StartWorkload(dir, "memory");
  ASSERT_TRUE(
      RunCriuLite({"dump", "-t", std::to_string(pid), "-D", dir / "img", "--compress"}, {pid})
          .ok());
  CmdResult r = RunCriuLite({"restore", "-D", dir / "img", "-d", "--pages=lazy"});
  EXPECT_FALSE(r.ok());
  EXPECT_NE(r.err.find("--pages=lazy needs uncompressed pages"), std::string::npos) << r.err;
  EXPECT_FALSE(Alive(pid));
}

}  // namespace
}  // namespace crl::test
