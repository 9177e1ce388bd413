// Shared helpers for end-to-end tests: start self-checking workloads, run
// criu-lite, and ask a restored workload whether it survived intact.
#pragma once

#include <sys/types.h>

#include <set>
#include <string>
#include <vector>

#include "kernel/kernel_probe.h"

namespace crl::test {

// A scratch directory, removed when the test passes. The workloads started
// in it (and their descendants) are killed when it goes, whatever failed.
class TestDir {
 public:
  TestDir();
  ~TestDir();
  const std::string& path() const { return path_; }
  std::string operator/(const std::string& name) const { return path_ + "/" + name; }
  void Own(pid_t workload) const { workloads_.push_back(workload); }

 private:
  std::string path_;
  mutable std::vector<pid_t> workloads_;
};

// Starts `workload SCENARIO --dir DIR ARGS...` with stdin from STDIN_FD
// (/dev/null if -1) and output to DIR/out, and waits until it is ready.
pid_t StartWorkload(const TestDir& dir, const std::string& scenario,
                    const std::vector<std::string>& args = {}, int stdin_fd = -1);

// A container's root file system in DIR/rootfs (busybox from Debian's
// busybox-static, the static workload as /bin/workload, the directories
// test-containers/container mounts on); its path.
std::string MakeContainerRoot(const TestDir& dir);

// Starts ARGV (a program nobody here wrote: ARGV[0] a full path) with stdin
// from STDIN_FD (/dev/null if -1), stdout to DIR/out and stderr to DIR/err,
// as the test's child; does not wait.
pid_t StartProgram(const TestDir& dir, const std::vector<std::string>& argv, int stdin_fd = -1);

// In a test that needs process_vm_mmap: SKIPPED, saying why, without it.
#define NEED_PROCESS_VM_MMAP()                                                                \
  if (!crl::HasProcessVmMmap())                                                               \
  GTEST_SKIP() << "this kernel has no process_vm_mmap (no /proc/sys/vm/process_vm_mmap_nr): " \
                  "the kernel of linux-patches/build-kernel.sh has it"

struct CmdResult;
// Whether `criu-lite check` says yes on the line that starts with
// CHECK_LINE_START (a need, or an interface on a continuation line).
bool KernelHas(const std::string& check_line_start);

struct CmdResult {
  int exit_code = -1;
  std::string out, err;  // stdout, stderr
  bool ok() const { return exit_code == 0; }
};

// Runs criu-lite with ARGS. With REAP non-empty (a dump that kills), every
// child of ours that dies meanwhile is reaped: a dumped workload is our
// child, and its PID stays taken until reaped.
CmdResult RunCriuLite(const std::vector<std::string>& args, std::vector<pid_t> reap = {},
                      int stdin_fd = -1);

// Runs criu-lite with ARGS (and ENV, "NAME=VALUE" each, added to its
// environment), sends it SIG after DELAY_US (unless it ended before), and
// waits for it; the exit code is 128 + the signal if it died of it. No state
// is recorded or compared. REAP as for RunCriuLite.
CmdResult RunCriuLiteInterrupted(const std::vector<std::string>& args, int delay_us, int sig,
                                 const std::vector<std::string>& env = {},
                                 std::vector<pid_t> reap = {});

// Threads a killed criu-lite had an unguarded remote-syscall window open in
// (no rt_sigreturn frame to fall back on), from the "window opens/closed"
// lines of its -vv log: the one place where its death may leave a task
// changed. With GUARDED, the threads it had a guarded window open in
// instead (each left about to return through its frame).
std::set<int> OpenWindows(const std::string& log, bool guarded = false);

// Sends SIGUSR1 and waits for the workload to report; returns "PASS" or the
// failure. Restored workloads are reparented to the test (a subreaper).
std::string CheckWorkload(pid_t pid, const TestDir& dir, int timeout_ms = 20000);

bool WaitForFile(const std::string& path, int timeout_ms);
// The state letter from /proc/PID/stat ('S', 'R', 't' for traced...), or 0.
char TaskState(pid_t pid);
bool Alive(pid_t pid);
// Who ptraces PID: 0 for nobody, -1 if PID does not exist.
pid_t TracerPid(pid_t pid);
// Waits until PID sleeps in syscall NR (per /proc/PID/syscall).
bool WaitInSyscall(pid_t pid, long nr, int timeout_ms = 5000);
void KillAndReap(pid_t pid);
// Waits up to TIMEOUT_MS for every thread of the tree to block in a syscall.
void SettleTree(pid_t root, int timeout_ms);
// Every process of the tree rooted at ROOT (zombies too), in PID order.
std::vector<pid_t> TreePids(pid_t root);
std::string ReadFile(const std::string& path);
// Whether / is an initial ramfs (the 6.1 VM's), where pivot_root cannot
// work: runc is then told --no-pivot, as its documentation says.
bool RootIsRamfs();

}  // namespace crl::test
