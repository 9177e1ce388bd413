// Checkpoint and restore real processes that check themselves afterwards.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <csignal>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "tests/e2e/harness.h"
#include "tests/e2e/state_diff.h"

namespace crl::test {
namespace {

struct Variant {
  std::string name;
  std::vector<std::string> dump_args, restore_args;
};
void PrintTo(const Variant& v, std::ostream* os) { *os << v.name; }

// Dump (killing the workload), restore detached, and have it check itself.
void DumpRestoreCheck(const std::string& scenario, const std::vector<std::string>& wl_args = {},
                      const Variant& v = {}, long blocked_in = -1) {
  TestDir dir;
  pid_t pid = StartWorkload(dir, scenario, wl_args);
  if (blocked_in >= 0) {
    ASSERT_TRUE(WaitInSyscall(pid, blocked_in)) << "workload never blocked";
  }
  std::vector<std::string> dump = {"dump",      "-t", std::to_string(pid), "-D",
                                   dir / "img", "-o", dir / "dump.log",    "-v"};
  dump.insert(dump.end(), v.dump_args.begin(), v.dump_args.end());
  CmdResult d = RunCriuLite(dump, {pid});
  ASSERT_TRUE(d.ok()) << d.err;
  EXPECT_FALSE(Alive(pid)) << "dump without --leave-running must kill the process";
  std::vector<std::string> restore = {"restore",           "-D", dir / "img", "-d", "-o",
                                      dir / "restore.log", "-v"};
  restore.insert(restore.end(), v.restore_args.begin(), v.restore_args.end());
  CmdResult r = RunCriuLite(restore);
  ASSERT_TRUE(r.ok()) << r.err;
  EXPECT_EQ(CheckWorkload(pid, dir), "PASS");
}

TEST(CheckpointRestore, MemoryPatterns) { DumpRestoreCheck("memory"); }
TEST(CheckpointRestore, OneGibRegionAndSparse64GibReservation) {
  DumpRestoreCheck("memory", {"--big-mib", "1024", "--sparse"});
}
// Why this kernel cannot make memory of ours huge with MADV_COLLAPSE, or "".
std::string WhyNoCollapse() {
  constexpr size_t kHuge = 2 << 20;
  void* raw = mmap(nullptr, 2 * kHuge, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (raw == MAP_FAILED) return "mmap failed";
  auto* p = reinterpret_cast<char*>((reinterpret_cast<uintptr_t>(raw) + kHuge - 1) & ~(kHuge - 1));
  p[0] = 1;
  std::string why;
  if (madvise(p, kHuge, 25 /* MADV_COLLAPSE */) != 0)
    why = std::string("MADV_COLLAPSE: ") + strerror(errno) + " (Linux 6.1, THP)";
  munmap(raw, 2 * kHuge);
  return why;
}

// Memory in transparent huge pages that the mapping's advice would not give
// (collapsed, as khugepaged or THP "always" leaves it) is in huge pages again
// after the restore: the workload compares AnonHugePages of its region.
TEST(CheckpointRestore, TransparentHugePagesComeBackHuge) {
  if (std::string why = WhyNoCollapse(); !why.empty()) GTEST_SKIP() << why;
  DumpRestoreCheck("thp", {"--big-mib", "64"});
}

// --no-huge-pages leaves that memory in small pages, its bytes intact; the
// workload's check sees it, so the test above looks at what it says. Where
// THP is "always" (Debian's default), the page faults that place the pages
// make huge pages anyway; not with --pages=vm-mmap (the suite run with
// CRL_TEST_PAGES=vm-mmap), where no fault places a page: criu-lite fills its
// copy with huge pages off and the task takes it as it is.
TEST(CheckpointRestore, WithNoHugePagesTheSameMemoryComesBackInSmallPages) {
  if (std::string why = WhyNoCollapse(); !why.empty()) GTEST_SKIP() << why;
  const char* pages = getenv("CRL_TEST_PAGES");
  bool faults_make_huge =
      ReadFile("/sys/kernel/mm/transparent_hugepage/enabled").find("[always]") !=
          std::string::npos &&
      !(pages && std::string(pages) == "vm-mmap");
  TestDir dir;
  pid_t pid = StartWorkload(dir, "thp", {"--big-mib", "16"});
  ASSERT_GT(std::stol(ReadFile(dir / "huge-before")), 0);
  CmdResult d = RunCriuLite({"dump", "-t", std::to_string(pid), "-D", dir / "img"}, {pid});
  ASSERT_TRUE(d.ok()) << d.err;
  CmdResult r = RunCriuLite({"restore", "-D", dir / "img", "-d", "--no-huge-pages"});
  ASSERT_TRUE(r.ok()) << r.err;
  std::string result = CheckWorkload(pid, dir);
  if (faults_make_huge) {
    EXPECT_EQ(result, "PASS");
    return;
  }
  EXPECT_NE(result.find("0 KiB of the region in huge pages"), std::string::npos) << result;
  EXPECT_EQ(result.find("differs"), std::string::npos) << result;
}

TEST(CheckpointRestore, FpuAndAvxRegisters) { DumpRestoreCheck("fpu"); }
TEST(CheckpointRestore, FilesAtOffsetsAndAppend) { DumpRestoreCheck("files"); }
TEST(CheckpointRestore, SignalsHandlersMasksPending) { DumpRestoreCheck("signals"); }
TEST(CheckpointRestore, Sigaltstack) { DumpRestoreCheck("altstack"); }
TEST(CheckpointRestore, ItimerKeepsFiring) { DumpRestoreCheck("itimer"); }
// Another user's process that kept some capabilities, scheduled and limited
// in every way a task can be: all of it comes back (the workload checks it,
// the state-diff check compares what /proc shows of every thread).
TEST(CheckpointRestore, IdentityCredentialsSchedulingAndPrctlState) {
  DumpRestoreCheck("identity");
}
TEST(CheckpointRestore, PosixTimersKeepTheirIdsAndFire) { DumpRestoreCheck("ptimers"); }
TEST(CheckpointRestore, SeccompFiltersSharedAndPerThread) { DumpRestoreCheck("seccomp"); }

// Mount points of the cgroup2 hierarchy and of v1's "cpu", if mounted.
std::pair<std::string, std::string> CgroupMounts() {
  std::string v2, cpu;
  std::istringstream in(ReadFile("/proc/self/mountinfo"));
  for (std::string line; std::getline(in, line);) {
    std::istringstream f(line);
    std::string id, parent, dev, root, mnt;
    f >> id >> parent >> dev >> root >> mnt;
    size_t dash = line.find(" - ");
    if (dash == std::string::npos || root != "/") continue;
    std::string rest = line.substr(dash + 3);
    if (rest.rfind("cgroup2 ", 0) == 0) v2 = mnt;
    bool has_cpu = rest.find(",cpu,") != std::string::npos ||
                   (rest.size() >= 4 && rest.substr(rest.size() - 4) == ",cpu");
    if (rest.rfind("cgroup ", 0) == 0 && has_cpu) cpu = mnt;
  }
  return {v2, cpu};
}

// A process in cgroups of its own (cgroup2 and v1 "cpu"), with a loginuid:
// it comes back in them, with that loginuid. The audit session id comes
// with a loginuid from the kernel, new each time: the one difference named.
TEST(CheckpointRestore, CgroupsAndLoginuid) {
  auto [v2, cpu] = CgroupMounts();
  if (v2.empty()) GTEST_SKIP() << "SKIPPED: no cgroup2 hierarchy mounted here";
  TestDir dir;
  std::string name = "crl-e2e-" + std::to_string(getpid());
  std::vector<std::string> groups = {v2 + "/" + name};
  if (!cpu.empty()) groups.push_back(cpu + "/" + name);
  struct Cleanup {  // cgroups go, whatever fails
    std::vector<std::string>& dirs;
    pid_t pid = -1;
    ~Cleanup() {
      if (pid > 0 && Alive(pid)) KillAndReap(pid);
      for (const auto& g : dirs) rmdir(g.c_str());
    }
  } cleanup{groups};
  pid_t pid = StartWorkload(dir, "signals", {"--loginuid", "4321"});
  cleanup.pid = pid;
  for (const auto& g : groups) {
    ASSERT_TRUE(mkdir(g.c_str(), 0755) == 0 || errno == EEXIST) << g;
    std::ofstream(g + "/cgroup.procs") << pid;
  }
  std::string cg = ReadFile("/proc/" + std::to_string(pid) + "/cgroup");
  ASSERT_NE(cg.find("0::/" + name), std::string::npos) << cg;
  ASSERT_EQ(ReadFile("/proc/" + std::to_string(pid) + "/loginuid"), "4321");
  {
    ExpectStateDiff new_audit_session({"proc.sessionid"});
    CmdResult d = RunCriuLite({"dump", "-t", std::to_string(pid), "-D", dir / "img"}, {pid});
    ASSERT_TRUE(d.ok()) << d.err;
    for (const auto& g : groups) rmdir(g.c_str());  // restore makes them again
    CmdResult r = RunCriuLite({"restore", "-D", dir / "img", "-d"});
    ASSERT_TRUE(r.ok()) << r.err;
  }
  EXPECT_EQ(ReadFile("/proc/" + std::to_string(pid) + "/cgroup"), cg);
  EXPECT_EQ(ReadFile("/proc/" + std::to_string(pid) + "/loginuid"), "4321");
  EXPECT_EQ(CheckWorkload(pid, dir), "PASS");
}

// Strict mode kills a task for any syscall but read, write, exit and
// sigreturn: criu-lite's own remote syscalls must not count (they are run
// with seccomp suspended), and strict mode must be back after restore. The
// workload, blocked in read(), leaves by exit(0) when signalled.
TEST(CheckpointRestore, SeccompStrictMode) {
  TestDir dir;
  pid_t pid = StartWorkload(dir, "seccomp", {"--what", "strict"});
  ASSERT_TRUE(WaitInSyscall(pid, SYS_read));
  CmdResult d = RunCriuLite({"dump", "-t", std::to_string(pid), "-D", dir / "img"}, {pid});
  ASSERT_TRUE(d.ok()) << d.err;
  CmdResult r = RunCriuLite({"restore", "-D", dir / "img", "-d"});
  ASSERT_TRUE(r.ok()) << r.err;
  EXPECT_NE(ReadFile("/proc/" + std::to_string(pid) + "/status").find("Seccomp:\t1"),
            std::string::npos);
  kill(pid, SIGUSR1);
  int status = 0;
  ASSERT_EQ(waitpid(pid, &status, 0), pid);
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << "status 0x" << std::hex << status;
}
TEST(CheckpointRestore, BlockedInFutexWait) { DumpRestoreCheck("futex", {}, {}, SYS_futex); }

// Page placement strategies x page encodings, and the kernels' fallbacks.
class Placement : public ::testing::TestWithParam<Variant> {};
TEST_P(Placement, MemoryComesBack) { DumpRestoreCheck("memory", {"--sparse"}, GetParam()); }
INSTANTIATE_TEST_SUITE_P(
    Strategies, Placement,
    ::testing::Values(
        Variant{"read_raw", {}, {"--pages=read"}}, Variant{"writev_raw", {}, {"--pages=writev"}},
        Variant{"read_zstd", {"--compress"}, {"--pages=read"}},
        Variant{"writev_zstd", {"--compress"}, {"--pages=writev"}},
        Variant{"lazy_raw", {}, {"--pages=lazy"}},
        Variant{"pagemap_file_fallback", {"--disable-kernel-feature", "pagemap-scan"}, {}},
        Variant{"maps_file_fallback", {"--disable-kernel-feature", "procmap-query"}, {}},
        Variant{"ns_last_pid_fallback", {}, {"--disable-kernel-feature", "clone3"}}),
    [](const auto& info) { return info.param.name; });

// A kernel before 5.6 has no pidfd_getfd: every fd dump takes from a task,
// and every fd restore gives one (its files, page files, memfds, the
// userfaultfd of a lazy restore), passes through the task over SCM_RIGHTS
// instead, in a remote-syscall window.
class WithoutPidfdGetfd : public ::testing::TestWithParam<const char*> {};
TEST_P(WithoutPidfdGetfd, FdsPassThroughTheTask) {
  const std::vector<std::string> off = {"--disable-kernel-feature", "pidfd-getfd"};
  std::vector<std::string> lazy = off;
  lazy.push_back("--pages=lazy");
  bool lazily = std::string(GetParam()) == "memory";
  DumpRestoreCheck(GetParam(), {}, Variant{"scm_rights", off, lazily ? lazy : off});
}
INSTANTIATE_TEST_SUITE_P(Scenarios, WithoutPidfdGetfd,
                         ::testing::Values("files", "sockets", "pipeline", "memfd", "timerfd",
                                           "tree", "memory"));

TEST(CheckpointRestore, AbsoluteSleepDoesNotWakeEarly) {
  TestDir dir;
  pid_t pid = StartWorkload(dir, "nanosleep", {"--secs", "2"});
  ASSERT_TRUE(WaitInSyscall(pid, SYS_clock_nanosleep));
  CmdResult d = RunCriuLite({"dump", "-t", std::to_string(pid), "-D", dir / "img"}, {pid});
  ASSERT_TRUE(d.ok()) << d.err;
  CmdResult r = RunCriuLite({"restore", "-D", dir / "img", "-d"});
  ASSERT_TRUE(r.ok()) << r.err;
  // It was asleep in clock_nanosleep; it must sleep out its time, then say so.
  ASSERT_TRUE(WaitForFile(dir / "woke", 10000)) << ReadFile(dir / "out");
  EXPECT_EQ(CheckWorkload(pid, dir), "PASS");
}

TEST(CheckpointRestore, BlockedReadOnStdinWithShellJob) {
  TestDir dir;
  int before[2], after[2];
  ASSERT_EQ(pipe(before), 0);
  ASSERT_EQ(pipe(after), 0);
  pid_t pid = StartWorkload(dir, "read", {}, before[0]);
  close(before[0]);
  ASSERT_TRUE(WaitInSyscall(pid, SYS_read));
  CmdResult d =
      RunCriuLite({"dump", "-t", std::to_string(pid), "-D", dir / "img", "--shell-job"}, {pid});
  ASSERT_TRUE(d.ok()) << d.err;
  close(before[1]);
  CmdResult r = RunCriuLite({"restore", "-D", dir / "img", "-d", "--shell-job"}, {}, after[0]);
  ASSERT_TRUE(r.ok()) << r.err;
  close(after[0]);
  ASSERT_EQ(write(after[1], "hello after restore\n", 20), 20);
  close(after[1]);
  // The workload reports by itself once the line arrives.
  int status = 0;
  ASSERT_EQ(waitpid(pid, &status, 0), pid);
  EXPECT_EQ(ReadFile(dir / "result"), "PASS\n");
}

TEST(CheckpointRestore, ShellJobImagesNeedShellJobRestore) {
  TestDir dir;
  int p[2];
  ASSERT_EQ(pipe(p), 0);
  pid_t pid = StartWorkload(dir, "read", {}, p[0]);
  CmdResult d = RunCriuLite({"dump", "-t", std::to_string(pid), "-D", dir / "img", "-j"}, {pid});
  ASSERT_TRUE(d.ok()) << d.err;
  CmdResult r = RunCriuLite({"restore", "-D", dir / "img", "-d"});
  EXPECT_FALSE(r.ok());
  EXPECT_NE(r.err.find("restore with --shell-job"), std::string::npos) << r.err;
  EXPECT_FALSE(Alive(pid));
  close(p[0]);
  close(p[1]);
}

// A terminal whose master is the caller's (as a runtime holds a container's
// console), dumped with --orphan-pts-master: carried, but the command line
// has no caller to hand the new master to, so restore refuses the images,
// saying where they restore (runc: Runc.ATerminalOnTheConsoleSocketComesBack),
// and leaves nothing behind.
TEST(CheckpointRestore, AnOrphanTerminalRestoresThroughTheRpcOnly) {
  TestDir dir;
  int master = posix_openpt(O_RDWR | O_NOCTTY);
  ASSERT_GE(master, 0);
  ASSERT_EQ(grantpt(master), 0);
  ASSERT_EQ(unlockpt(master), 0);
  int slave = open(ptsname(master), O_RDWR | O_NOCTTY);
  ASSERT_GE(slave, 0);
  pid_t pid = StartWorkload(dir, "read", {}, slave);
  close(slave);
  ASSERT_TRUE(WaitInSyscall(pid, SYS_read));
  CmdResult plain = RunCriuLite({"dump", "-t", std::to_string(pid), "-D", dir / "refused"});
  EXPECT_FALSE(plain.ok());
  EXPECT_NE(plain.err.find("is a terminal"), std::string::npos) << plain.err;
  EXPECT_TRUE(Alive(pid));
  CmdResult d = RunCriuLite(
      {"dump", "-t", std::to_string(pid), "-D", dir / "img", "--orphan-pts-master"}, {pid});
  ASSERT_TRUE(d.ok()) << d.err;
  CmdResult r = RunCriuLite({"restore", "-D", dir / "img", "-d"});
  EXPECT_FALSE(r.ok());
  EXPECT_NE(r.err.find("restore through the RPC"), std::string::npos) << r.err;
  EXPECT_FALSE(Alive(pid));
  close(master);
}

// CRaC's use of the command line (its criuengine): dump --shell-job -v4
// -o LOG (the log in the images directory, CRIU's work directory by
// default), restore -W DIR --shell-job --action-script S -v1 --exec-cmd --
// CMD: criu-lite becomes CMD once the tree runs, the restored root its
// child, and the script sees CRIU's actions.
TEST(CheckpointRestore, CracsCommandLine) {
  TestDir dir;
  pid_t pid = StartWorkload(dir, "memory");
  CmdResult d = RunCriuLite({"dump", "-t", std::to_string(pid), "-D", dir / "img", "--shell-job",
                             "-v4", "-o", "dump4.log"},
                            {pid});
  ASSERT_TRUE(d.ok()) << d.err;
  EXPECT_NE(ReadFile(dir / "img/dump4.log").find("Debug: "), std::string::npos)
      << "-v4 is CRIU's debug level";
  std::ofstream(dir / "action.sh")
      << "#!/bin/sh\necho \"$CRTOOLS_SCRIPT_ACTION\" >> " << (dir / "actions") << "\n";
  chmod((dir / "action.sh").c_str(), 0755);
  CmdResult r =
      RunCriuLite({"restore", "-W", dir.path(), "--shell-job", "--action-script", dir / "action.sh",
                   "-D", dir / "img", "-v1", "-o", "restore.log", "--exec-cmd", "--", "/bin/sh",
                   "-c", "cat /proc/$$/task/$$/children > " + (dir / "children")});
  ASSERT_TRUE(r.ok()) << r.err;
  EXPECT_EQ(r.err, "") << "-v1 is CRIU's errors-only level";
  EXPECT_EQ(access((dir / "restore.log").c_str(), F_OK), 0) << "-o is relative to -W";
  EXPECT_EQ(atoi(ReadFile(dir / "children").c_str()), pid)
      << "the restored root is not the command's child";
  std::string actions = ReadFile(dir / "actions");
  for (const char* a : {"pre-restore\n", "post-restore\n", "post-resume\n"})
    EXPECT_NE(actions.find(a), std::string::npos) << a << " not in " << actions;
  EXPECT_EQ(CheckWorkload(pid, dir), "PASS");
}

TEST(CheckpointRestore, LeaveRunningThenRestoreAfterKill) {
  TestDir dir;
  // (Not the memory workload: its check writes to a file it maps, and a
  // mapped file that changed after the dump is rightly refused.)
  pid_t pid = StartWorkload(dir, "signals");
  CmdResult d =
      RunCriuLite({"dump", "-t", std::to_string(pid), "-D", dir / "img", "--leave-running"});
  ASSERT_TRUE(d.ok()) << d.err;
  ASSERT_TRUE(Alive(pid));
  EXPECT_NE(TaskState(pid), 't') << "left stopped under ptrace";
  // The original carries on intact...
  EXPECT_EQ(CheckWorkload(pid, dir), "PASS");
  // ...and the images restore it once it is gone.
  CmdResult r = RunCriuLite({"restore", "-D", dir / "img", "-d"});
  ASSERT_TRUE(r.ok()) << r.err;
  EXPECT_EQ(CheckWorkload(pid, dir), "PASS");
}

TEST(CheckpointRestore, RestoreTwiceFromTheSameImages) {
  TestDir dir;
  pid_t pid = StartWorkload(dir, "files");
  ASSERT_TRUE(RunCriuLite({"dump", "-t", std::to_string(pid), "-D", dir / "img"}, {pid}).ok());
  for (int i = 0; i < 2; i++) {
    // The workload appends to its log; put the log back as it was at dump.
    std::system(("printf 'before\\n' > " + (dir / "append.log")).c_str());
    CmdResult r = RunCriuLite({"restore", "-D", dir / "img", "-d"});
    ASSERT_TRUE(r.ok()) << "restore " << i << ": " << r.err;
    EXPECT_EQ(CheckWorkload(pid, dir), "PASS") << "restore " << i;
  }
}

TEST(CheckpointRestore, RestoreWithoutDetachWaitsAndPassesExitStatus) {
  TestDir dir;
  pid_t pid = StartWorkload(dir, "memory");
  ASSERT_TRUE(RunCriuLite({"dump", "-t", std::to_string(pid), "-D", dir / "img"}, {pid}).ok());
  // criu-lite restore stays the parent; SIGUSR1 makes the workload check and
  // exit. It is sent once the workload runs: the pidfile is written just
  // before the release, and a signal reaching the PID earlier could find the
  // new task before it is seized, still criu-lite's clone, and kill it.
  pid_t killer = fork();
  if (killer == 0) {
    for (int i = 0; i < 3000; i++) {
      if (std::filesystem::exists(dir / "pidfile") && TracerPid(pid) == 0 && TaskState(pid) == 'S')
        break;
      usleep(10000);
    }
    kill(pid, SIGUSR1);
    _exit(0);
  }
  CmdResult r = RunCriuLite({"restore", "-D", dir / "img", "--pidfile", dir / "pidfile"}, {killer});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(ReadFile(dir / "pidfile"), std::to_string(pid));
  EXPECT_EQ(ReadFile(dir / "result"), "PASS\n");
}

// Dumped inside sigsuspend(), sent its check signal while it is being
// restored: the signal waits (blocked) until the restore ends, then
// interrupts the sigsuspend() as it would have (EINTR), instead of running
// before a re-entered sigsuspend() that would then wait for ever.
TEST(CheckpointRestore, ASignalDuringTheRestoreInterruptsTheSyscallItWasIn) {
  TestDir dir;
  pid_t pid = StartWorkload(dir, "memory", {"--big-mib", "512"});
  ASSERT_TRUE(WaitInSyscall(pid, SYS_rt_sigsuspend));
  ASSERT_TRUE(RunCriuLite({"dump", "-t", std::to_string(pid), "-D", dir / "img"}, {pid}).ok());
  pid_t killer = fork();
  if (killer == 0) {
    // As soon as the PID is back and under criu-lite's ptrace: mid-restore.
    for (int i = 0; i < 5000 && TracerPid(pid) <= 0; i++) usleep(1000);
    kill(pid, SIGUSR1);
    _exit(0);
  }
  // The workload checks itself and exits as soon as it is released: no
  // state is left to compare after the restore.
  ExpectStateDiff exits_at_once({""});
  CmdResult r = RunCriuLite({"restore", "-D", dir / "img", "-d"}, {killer});
  ASSERT_TRUE(r.ok()) << r.err;
  ASSERT_TRUE(WaitForFile(dir / "result", 20000)) << "the signal sent during the restore was lost";
  EXPECT_EQ(ReadFile(dir / "result"), "PASS\n");
  KillAndReap(pid);
}

// Dumped inside sigsuspend() and left running (or refused): a signal sent
// right after the dump interrupts it as it would have, instead of running
// its handler before a sigsuspend() re-entered from rewound registers, which
// would then wait for ever. Ten tries: the window is short.
TEST(CheckpointRestore, ASignalRightAfterALeaveRunningDumpInterruptsItsWait) {
  for (int i = 0; i < 10; i++) {
    TestDir dir;
    pid_t pid = StartWorkload(dir, "altstack");
    ASSERT_TRUE(WaitInSyscall(pid, SYS_rt_sigsuspend));
    CmdResult d = RunCriuLite({"dump", "-t", std::to_string(pid), "-D", dir / "img", "-R"});
    ASSERT_TRUE(d.ok()) << d.err;
    ASSERT_EQ(CheckWorkload(pid, dir, 5000), "PASS") << "try " << i;
  }
}

TEST(Commands, CheckPrintsTheTable) {
  CmdResult r = RunCriuLite({"check"});
  EXPECT_TRUE(r.ok()) << r.err;
  EXPECT_NE(r.out.find("PAGEMAP_SCAN"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("PR_SET_MM_MAP"), std::string::npos) << r.out;
}

TEST(Commands, ShowPrintsEveryImageAsJson) {
  TestDir dir;
  pid_t pid = StartWorkload(dir, "altstack");
  ASSERT_TRUE(RunCriuLite({"dump", "-t", std::to_string(pid), "-D", dir / "img", "-R"}).ok());
  std::string p = std::to_string(pid);
  for (const char* f : {"inventory.img", "stats-dump.img"})
    EXPECT_TRUE(RunCriuLite({"show", dir / ("img/" + std::string(f))}).ok()) << f;
  for (const char* kind : {"core", "mm", "pagemap", "fds"}) {
    std::string path = dir / ("img/" + std::string(kind) + "-" + p + ".img");
    CmdResult r = RunCriuLite({"show", path});
    EXPECT_TRUE(r.ok()) << path << ": " << r.err;
    EXPECT_NE(r.out.find("\"kind\": \"" + std::string(kind) + "\""), std::string::npos) << r.out;
  }
  KillAndReap(pid);
}

}  // namespace
}  // namespace crl::test
