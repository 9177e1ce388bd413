#include "criu-lite/seized_task.h"

#include <sys/ptrace.h>
#include <sys/wait.h>

#include <csignal>
#include <utility>

#include "kernel/log.h"

namespace crl {

Result<SeizedTask> SeizedTask::Seize(pid_t pid) {
  TRY(PtraceSeize(pid, PTRACE_O_TRACESYSGOOD));
  SeizedTask t(pid);  // from here on, the destructor detaches
  TRY(PtraceInterrupt(pid));
  for (;;) {
    WaitStatus ws = TRY(WaitForTask(pid));
    if (ws.exited() || ws.signaled()) {
      t.pid_ = -1;
      return MakeError("PID %d went away while being seized: %s", pid, ws.ToString().c_str());
    }
    if (ws.ptrace_event() == PTRACE_EVENT_STOP) {
      int sig = ws.stop_sig();
      if (sig == SIGTRAP) break;  // our interrupt
      // A group-stop (the task was stopped by SIGSTOP & co).
      return MakeError("PID %d is stopped (by signal %d); stopped tasks are not supported yet", pid,
                       sig);
    }
    // A signal arrived before our interrupt: let it be delivered as it would
    // have been; the interrupt stays pending and stops the task right after.
    if (ptrace(PTRACE_CONT, pid, 0, ws.stop_sig()) < 0)
      return ErrnoError("ptrace(PTRACE_CONT, pid=%d, sig=%d)", pid, ws.stop_sig());
  }
  t.sigmask_ = TRY(GetSigmask(pid));
  t.sigmask_saved_ = true;
  TRY(SetSigmask(pid, ~0ull));
  Registers raw = TRY(GetRegs(pid));
  t.regs_ = RegistersForRestart(raw);
  TRY(SetRegs(pid, t.regs_));
  return t;
}

SeizedTask::SeizedTask(SeizedTask&& o) noexcept
    : pid_(std::exchange(o.pid_, -1)),
      regs_(o.regs_),
      sigmask_(o.sigmask_),
      sigmask_saved_(o.sigmask_saved_),
      kill_(o.kill_) {}

Status SeizedTask::Release() {
  if (pid_ < 0) return Ok{};
  pid_t pid = std::exchange(pid_, -1);
  if (kill_) {
    kill(pid, SIGKILL);
    // A traced task reports its death to us; reap nothing (we are not its
    // parent), but wait so that it is gone before dump returns.
    int status;
    while (waitpid(pid, &status, __WALL) == pid && !WIFEXITED(status) && !WIFSIGNALED(status)) {
    }
    return Ok{};
  }
  Status st = SetRegs(pid, regs_);
  if (st.ok() && sigmask_saved_) st = SetSigmask(pid, sigmask_);
  Status d = PtraceDetach(pid);
  if (!st.ok()) return st;
  return d;
}

SeizedTask::~SeizedTask() {
  Status s = Release();
  if (!s.ok()) LOG_ERROR("letting PID go: %s", s.error().message.c_str());
}

}  // namespace crl
