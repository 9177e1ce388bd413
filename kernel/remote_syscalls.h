// Running syscalls inside a stopped tracee (rr's AutoRemoteSyscalls).
//
// The constructor saves the tracee's registers; Syscall() points rip at a
// `syscall` instruction in the tracee, loads the arguments, resumes it to the
// syscall-exit stop and returns the kernel's raw result; the destructor puts
// the saved registers back. The tracee must be in a ptrace stop throughout
// and should have its signals blocked (PTRACE_SETSIGMASK) so that no handler
// runs in the middle.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <string>
#include <vector>

#include "kernel/ptrace_task.h"
#include "kernel/remote_ptr.h"
#include "kernel/result.h"

namespace crl {

class RemoteSyscalls {
 public:
  // How the task is left between remote syscalls and at the end.
  enum class Mode {
    // A task criu-lite made and keeps (restore's puppets): registers put
    // back, signal mask left to the caller.
    kPuppet,
    // A task that must be able to run on if criu-lite dies (the dump): it
    // was seized stopped inside the kernel's signal code with its own
    // registers and mask, the state a ptrace detach (even the kernel's, when
    // the tracer dies) resumes correctly. The first syscall blocks every
    // signal; the destructor puts the registers back, stops the task there
    // again and gives it back its mask, so that the window in which a
    // criu-lite killed would leave it changed is this object's life.
    kWindow,
  };
  RemoteSyscalls(pid_t tid, RemotePtr syscall_insn, const Registers& saved,
                 Mode mode = Mode::kPuppet);
  ~RemoteSyscalls();
  RemoteSyscalls(const RemoteSyscalls&) = delete;
  RemoteSyscalls& operator=(const RemoteSyscalls&) = delete;

  pid_t tid() const { return tid_; }

  // The raw kernel result (-errno on failure). The outer error is for the
  // tracee itself going away or ptrace failing.
  Result<int64_t> Syscall(long nr, uint64_t a1 = 0, uint64_t a2 = 0, uint64_t a3 = 0,
                          uint64_t a4 = 0, uint64_t a5 = 0, uint64_t a6 = 0);
  // Like Syscall, but a -errno result is an error naming WHAT and the pid.
  Result<int64_t> Checked(const char* what, long nr, uint64_t a1 = 0, uint64_t a2 = 0,
                          uint64_t a3 = 0, uint64_t a4 = 0, uint64_t a5 = 0, uint64_t a6 = 0);

  // Leaves the registers as they are at destruction (the restorer sets the
  // final ones itself).
  void DontRestoreRegisters() { restore_ = false; }

  // The message of the last fork/clone event seen during a syscall: the new
  // task's TID (PTRACE_O_TRACEFORK / TRACECLONE).
  pid_t last_new_task() const { return last_new_task_; }

  // Runs a syscall that ends the task (exit_group, or a kill of itself with
  // a fatal signal) and waits until it is gone; returns how it ended.
  Result<WaitStatus> SyscallThatExits(long nr, uint64_t a1 = 0, uint64_t a2 = 0);

 private:
  // The saved registers, at the syscall instruction, loaded for NR(args).
  Registers RegsFor(long nr, uint64_t a1 = 0, uint64_t a2 = 0, uint64_t a3 = 0, uint64_t a4 = 0,
                    uint64_t a5 = 0, uint64_t a6 = 0) const;
  Status OpenWindow();
  Status CloseWindow();
  pid_t tid_;
  RemotePtr syscall_insn_;
  Registers saved_;
  Mode mode_;
  bool window_open_ = false;
  uint64_t saved_mask_ = 0;
  bool restore_ = true;
  pid_t last_new_task_ = -1;
};

// Scratch memory in the tracee, used as a stack: Push() copies bytes in and
// returns their remote address; Pop() releases last-in first-out.
class RemoteScratch {
 public:
  RemoteScratch(pid_t pid, RemotePtr base, size_t size) : pid_(pid), base_(base), size_(size) {}
  Result<RemotePtr> Push(const void* data, size_t len);
  Result<RemotePtr> PushString(const std::string& s) { return Push(s.c_str(), s.size() + 1); }
  Result<RemotePtr> Reserve(size_t len);
  void Reset() { used_ = 0; }
  RemotePtr base() const { return base_; }
  size_t size() const { return size_; }

 private:
  pid_t pid_;
  RemotePtr base_;
  size_t size_;
  size_t used_ = 0;
};

// Address of a `syscall` instruction (0f 05) in [start, end) of PID's memory.
Result<RemotePtr> FindSyscallInsn(pid_t pid, uint64_t start, uint64_t end);

}  // namespace crl
