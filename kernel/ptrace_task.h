// One task under ptrace: the calls criu-lite makes on a stopped tracee.
#pragma once

#include <sys/types.h>
#include <sys/user.h>
#include <sys/wait.h>

#include <csignal>
#include <cstdint>
#include <string>
#include <type_traits>
#include <vector>

#include "base/result.h"
#include "kernel/registers.h"
#include "kernel/remote_ptr.h"

namespace crl {

// What waitpid said about a tracee, decoded.
class WaitStatus {
 public:
  explicit WaitStatus(int status) : status_(status) {}
  int raw() const { return status_; }
  bool exited() const { return WIFEXITED(status_); }
  bool signaled() const { return WIFSIGNALED(status_); }
  bool stopped() const { return WIFSTOPPED(status_); }
  int exit_code() const { return WEXITSTATUS(status_); }
  int term_sig() const { return WTERMSIG(status_); }
  int stop_sig() const { return WSTOPSIG(status_); }
  int ptrace_event() const { return stopped() ? (status_ >> 16) & 0xff : 0; }
  bool is_syscall_stop() const { return stopped() && stop_sig() == (SIGTRAP | 0x80); }
  std::string ToString() const;

 private:
  int status_;
};

// Thin wrappers that report the call, the pid and errno on failure.
Status PtraceSeize(pid_t tid, long options);
Status PtraceInterrupt(pid_t tid);
Status PtraceSetOptions(pid_t tid, long options);
// The state letter of /proc/TID/stat ("?" if it is gone).
std::string TaskStateLetter(pid_t tid);
// Waits at most kTaskWaitSeconds (then an error naming the thread's state).
constexpr int kTaskWaitSeconds = 120;
Result<WaitStatus> WaitForTask(pid_t tid, int flags = __WALL);
Result<Registers> GetRegs(pid_t tid);
Status SetRegs(pid_t tid, const Registers& regs);
Result<std::vector<uint8_t>> GetXstate(pid_t tid);
Status SetXstate(pid_t tid, const std::vector<uint8_t>& xstate);
Result<uint64_t> GetSigmask(pid_t tid);
Status SetSigmask(pid_t tid, uint64_t mask);
// Resume to the next syscall stop (or other stop), delivering SIG.
Status PtraceSyscall(pid_t tid, int sig = 0);
Status PtraceDetach(pid_t tid, int sig = 0);
// Lets go of thread TID back inside the syscall it was stopped in. REWOUND
// are its registers with the syscall rewound to run again, RESTART the
// -ERESTART* code it was interrupted with. The thread leaves through the
// kernel's signal code, which restarts the syscall, or returns EINTR to the
// handler of a signal that came meanwhile: rewound registers released as
// they are would run that handler first, then re-enter the syscall (a
// `while (!flag) pause();` would wait for ever).
Status DetachInsideSyscall(pid_t tid, const Registers& rewound, int64_t restart);

// Queued signals of a stopped task, as PTRACE_PEEKSIGINFO returns them.
Result<std::vector<siginfo_t>> PeekSiginfo(pid_t tid, bool shared);

// Memory of another process.
Status ReadRemote(pid_t pid, RemotePtr addr, void* buf, size_t len);
Status WriteRemote(pid_t pid, RemotePtr addr, const void* buf, size_t len);
// The T at ADDR in PID's memory.
template <typename T>
requires std::is_trivially_copyable_v<T> Result<T> ReadRemote(pid_t pid, remote_ptr<T> addr) {
  T v;
  TRY(ReadRemote(pid, RemotePtr(addr), &v, sizeof v));
  return v;
}

// Turns registers of a task stopped inside an interrupted syscall into the
// registers that re-run that syscall when the task resumes, as the kernel's
// signal code would (rewind rip over `syscall`, rax = the syscall or
// restart_syscall), and sets orig_rax = -1 so that the kernel does not
// rewind them a second time. Leaves other registers alone.
Registers RegistersForRestart(const Registers& regs);
// The -ERESTARTSYS, -ERESTARTNOINTR or -ERESTARTNOHAND a task stopped
// inside an interrupted syscall has in rax (those the kernel's signal code
// turns into a restart or an EINTR, DetachInsideSyscall's RESTART), or 0.
int64_t RestartCode(const Registers& regs);

}  // namespace crl
