// Iterative pre-copy: pre-dump passes while the workload writes, a final
// dump of what changed, and a restore that must never show a stale page.
#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <csignal>

#include "tests/e2e/harness.h"
#include "tests/e2e/state_diff.h"

namespace crl::test {
namespace {

// Some way to track written pages: uffd-wp async, or soft-dirty.
bool KernelTracks() {
  CmdResult r = RunCriuLite({"check"});
  size_t p = r.out.find("written-page tracking");
  if (p == std::string::npos) return false;
  std::string line = r.out.substr(p, r.out.find('\n', p) - p);
  return line.find("none") == std::string::npos;
}

// N pre-dumps, then the final dump, then restore; the workload checks itself.
void Iterate(const std::vector<std::string>& wl_args, int passes,
             const std::vector<std::string>& extra = {}, const std::string& scenario = "dirtier") {
  TestDir dir;
  // The dirtier flips a page read-only and back now and then: frozen in
  // between, it is restored so, and its mappings differ from the record made
  // before the dump. Its memory checks itself.
  ExpectStateDiff flips(scenario == "dirtier" ? std::vector<std::string>{"maps."}
                                              : std::vector<std::string>{});
  pid_t pid = StartWorkload(dir, scenario, wl_args);
  std::string prev;
  for (int i = 1; i <= passes; i++) {
    std::vector<std::string> args = {"pre-dump", "-t", std::to_string(pid), "-D",
                                     dir / ("p" + std::to_string(i))};
    if (!prev.empty()) args.insert(args.end(), {"--prev-images-dir", "../" + prev});
    args.insert(args.end(), extra.begin(), extra.end());
    CmdResult r = RunCriuLite(args);
    ASSERT_TRUE(r.ok()) << "pass " << i << ": " << r.err;
    ASSERT_TRUE(Alive(pid)) << "pre-dump must leave the tree running";
    EXPECT_NE(TaskState(pid), 't') << "left stopped";
    prev = "p" + std::to_string(i);
    usleep(200000);
  }
  std::vector<std::string> dump = {"dump", "-t", std::to_string(pid), "-D", dir / "final",
                                   "-v",   "-o", dir / "dump.log"};
  if (!prev.empty()) dump.insert(dump.end(), {"--prev-images-dir", "../" + prev, "--track-mem"});
  dump.insert(dump.end(), extra.begin(), extra.end());
  CmdResult d = RunCriuLite(dump, {pid});
  ASSERT_TRUE(d.ok()) << d.err;
  CmdResult r =
      RunCriuLite({"restore", "-D", dir / "final", "-d", "-v", "-o", dir / "restore.log"});
  ASSERT_TRUE(r.ok()) << r.err;
  EXPECT_EQ(CheckWorkload(pid, dir), "PASS");
}

// Whichever tracking this kernel has (uffd-wp async here, soft-dirty on 6.1).
TEST(PreCopy, FivePassesNeverRestoreAStalePage) {
  if (!KernelTracks())
    GTEST_SKIP() << "SKIPPED: this kernel has neither uffd-wp async nor soft-dirty";
  Iterate({"--big-mib", "32", "--rate", "32"}, 5);
}

// Without pidfd_getfd the tracking's userfaultfd comes out of the task over
// SCM_RIGHTS; the holder cannot pass it back to the next pass, which then
// copies everything (and says so): slower, never stale.
TEST(PreCopy, WithoutPidfdGetfdEachPassCopiesWhatItMust) {
  if (!KernelTracks())
    GTEST_SKIP() << "SKIPPED: this kernel has neither uffd-wp async nor soft-dirty";
  Iterate({"--big-mib", "16", "--rate", "16"}, 2, {"--disable-kernel-feature", "pidfd-getfd"});
}

TEST(PreCopy, TreeOfThreeMultithreadedProcessesThreePasses) {
  if (!KernelTracks())
    GTEST_SKIP() << "SKIPPED: this kernel has neither uffd-wp async nor soft-dirty";
  Iterate({"--procs", "3", "--threads", "2", "--big-mib", "16", "--rate", "16"}, 3);
}

TEST(PreCopy, SoftDirtyTracking) {
  CmdResult r = RunCriuLite({"check"});
  if (r.out.find("soft-dirty         yes") == std::string::npos)
    GTEST_SKIP() << "SKIPPED: this kernel has no soft-dirty (CONFIG_MEM_SOFT_DIRTY); the uffd-wp "
                    "path is tested instead";
  Iterate({"--big-mib", "16", "--rate", "16"}, 3, {"--disable-kernel-feature", "uffd-wp"});
}

TEST(PreCopy, LostTrackingFallsBackToAFullDumpAndSaysSo) {
  if (!KernelHas("written-page tracking"))
    GTEST_SKIP() << "SKIPPED: no uffd-wp async on this kernel (the holder this test kills is "
                    "uffd-wp's)";
  TestDir dir;
  // The dirtier flips a page read-only and back now and then: frozen in
  // between, it is restored so, and its mappings differ from the record made
  // before the dump. Its memory checks itself.
  ExpectStateDiff flips({"maps."});
  pid_t pid = StartWorkload(dir, "dirtier", {"--big-mib", "8", "--rate", "8"});
  ASSERT_TRUE(RunCriuLite({"pre-dump", "-t", std::to_string(pid), "-D", dir / "p1"}).ok());
  // Kill the holder that keeps the tracking alive.
  std::string show = RunCriuLite({"show", dir / "p1/tracking.img"}).out;
  size_t at = show.find("\"holder_pid\": ");
  ASSERT_NE(at, std::string::npos) << show;
  pid_t holder = atoi(show.c_str() + at + 14);
  ASSERT_GT(holder, 0);
  kill(holder, SIGKILL);
  usleep(100000);
  CmdResult d = RunCriuLite({"dump", "-t", std::to_string(pid), "-D", dir / "final",
                             "--prev-images-dir", "../p1", "--track-mem"},
                            {pid});
  ASSERT_TRUE(d.ok()) << d.err;
  EXPECT_NE(d.err.find("tracking was lost"), std::string::npos) << d.err;
  CmdResult r = RunCriuLite({"restore", "-D", dir / "final", "-d"});
  ASSERT_TRUE(r.ok()) << r.err;
  EXPECT_EQ(CheckWorkload(pid, dir), "PASS");
}

// A second chain on the same tree (a pre-dump with no previous one, as
// runc's --pre-dump makes each time): the first chain's holder is ended,
// since a task's memory is registered with one userfaultfd at a time, and
// the new chain tracks every mapping (it used to find each busy and track
// none, copying everything again at the final dump). The first chain's
// next pass then copies in full and says so.
TEST(PreCopy, ANewChainOnTheSameTreeTakesOverTheTracking) {
  if (!KernelHas("written-page tracking"))
    GTEST_SKIP() << "SKIPPED: no uffd-wp async on this kernel (soft-dirty has no holder)";
  TestDir dir;
  ExpectStateDiff flips({"maps."});  // as in LostTracking...: the dirtier flips a page
  pid_t pid = StartWorkload(dir, "dirtier", {"--big-mib", "8", "--rate", "8"});
  std::string p = std::to_string(pid);
  ASSERT_TRUE(RunCriuLite({"pre-dump", "-t", p, "-D", dir / "a"}).ok());
  CmdResult b = RunCriuLite({"pre-dump", "-t", p, "-D", dir / "b", "-v", "-o", dir / "b.log"});
  ASSERT_TRUE(b.ok()) << b.err;
  std::string log = ReadFile(dir / "b.log");
  EXPECT_NE(log.find("ending the tracking of an earlier chain"), std::string::npos) << log;
  EXPECT_EQ(log.find("tracking writes in 0 mappings"), std::string::npos) << log;
  CmdResult old = RunCriuLite({"pre-dump", "-t", p, "-D", dir / "a2", "--prev-images-dir", "../a"});
  ASSERT_TRUE(old.ok()) << old.err;
  EXPECT_NE(old.err.find("was lost"), std::string::npos) << old.err;
  CmdResult d = RunCriuLite(
      {"dump", "-t", p, "-D", dir / "final", "--prev-images-dir", "../a2", "--track-mem"}, {pid});
  ASSERT_TRUE(d.ok()) << d.err;
  CmdResult r = RunCriuLite({"restore", "-D", dir / "final", "-d"});
  ASSERT_TRUE(r.ok()) << r.err;
  EXPECT_EQ(CheckWorkload(pid, dir), "PASS");
}

TEST(PreCopy, APreDumpAloneIsNotRestorable) {
  TestDir dir;
  pid_t pid = StartWorkload(dir, "dirtier", {"--big-mib", "4"});
  CmdResult p = RunCriuLite({"pre-dump", "-t", std::to_string(pid), "-D", dir / "p1"});
  if (!p.ok()) {
    EXPECT_NE(p.err.find("pre-dump is not possible"), std::string::npos) << p.err;
  } else {
    CmdResult r = RunCriuLite({"restore", "-D", dir / "p1"});
    EXPECT_NE(r.exit_code, 0);
    EXPECT_NE(r.err.find("is a pre-dump"), std::string::npos) << r.err;
  }
  KillAndReap(pid);
}

}  // namespace
}  // namespace crl::test

namespace crl::test {
namespace {

// Memory shared between a parent and its child (MAP_SHARED|MAP_ANONYMOUS) is
// one object again after a chain of images, as after a plain dump; and a
// tree's copy-on-write memory comes back with the right contents.
TEST(PreCopy, SharedAnonymousMemoryStaysOneObject) {
  if (!KernelTracks()) GTEST_SKIP() << "SKIPPED: no way to track written pages on this kernel";
  Iterate({}, 2, {}, "shmem");
}
// After pre-copy too, a child's pages still shared copy-on-write with its
// parent at the freeze are left out of the final dump and inherited again:
// the tree's PSS comes back as it was, and so do the contents.
TEST(PreCopy, CopyOnWriteStaysSharedAfterPreCopy) {
  if (!KernelTracks()) GTEST_SKIP() << "SKIPPED: no way to track written pages on this kernel";
  TestDir dir;
  pid_t pid = StartWorkload(dir, "cow", {"--big-mib", "64"});
  auto pss = [&]() {
    long kb = 0;
    for (pid_t p : TreePids(pid)) {
      std::string r = ReadFile("/proc/" + std::to_string(p) + "/smaps_rollup");
      size_t at = r.find("\nPss:");
      if (at != std::string::npos) kb += atol(r.c_str() + at + 5);
    }
    return kb;
  };
  long before = pss();
  ASSERT_TRUE(RunCriuLite({"pre-dump", "-t", std::to_string(pid), "-D", dir / "p1"}).ok());
  CmdResult d = RunCriuLite({"dump", "-t", std::to_string(pid), "-D", dir / "final",
                             "--prev-images-dir", "../p1", "--track-mem"},
                            {pid});
  ASSERT_TRUE(d.ok()) << d.err;
  CmdResult r = RunCriuLite({"restore", "-D", dir / "final", "-d"});
  ASSERT_TRUE(r.ok()) << r.err;
  long after = pss();
  fprintf(stderr, "tree PSS: %ld kB before, %ld kB after pre-copy and restore\n", before, after);
  EXPECT_LT(after, before * 11 / 10) << "copy-on-write pages were duplicated";
  EXPECT_EQ(CheckWorkload(pid, dir), "PASS");
}

}  // namespace
}  // namespace crl::test
