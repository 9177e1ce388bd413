// A task held in a ptrace stop for the duration of a dump. Whatever happens,
// the destructor lets it go: resumed exactly where it was (registers and
// signal mask as they were) or, when asked, killed. A failed dump never
// leaves the target stopped.
#pragma once

#include <sys/types.h>

#include <cstdint>

#include "kernel/ptrace_task.h"
#include "kernel/result.h"

namespace crl {

class SeizedTask {
 public:
  // Seizes and stops PID, blocks all its signals (so that nothing runs in it
  // while criu-lite works), and rewinds an interrupted syscall so that it
  // re-runs on resume.
  static Result<SeizedTask> Seize(pid_t pid);
  SeizedTask(SeizedTask&& o) noexcept;
  SeizedTask& operator=(SeizedTask&&) = delete;
  ~SeizedTask();

  pid_t pid() const { return pid_; }
  // Registers as they should be restored: an interrupted syscall re-runs.
  const Registers& regs() const { return regs_; }
  uint64_t original_sigmask() const { return sigmask_; }

  // At release, kill the task instead of resuming it (dump without --leave-running).
  void KillOnRelease() { kill_ = true; }
  // Lets the task go now; reports what went wrong, if anything.
  Status Release();

 private:
  SeizedTask(pid_t pid) : pid_(pid) {}
  pid_t pid_ = -1;
  Registers regs_{};
  uint64_t sigmask_ = 0;
  bool sigmask_saved_ = false;
  bool kill_ = false;
};

}  // namespace crl
