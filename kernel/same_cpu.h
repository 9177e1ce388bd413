// Running criu-lite's ptrace exchanges with a task on one CPU.
//
// Each remote syscall is a ptrace resume and stop: criu-lite wakes the task,
// the task wakes criu-lite. Where the two sleep on different CPUs, each
// wake-up is one of an idle CPU, which on a virtual machine the hypervisor
// must run again: measured here, a guarded remote syscall took about three
// times as long as with both on one CPU, taking turns.
//
// SameCpu pins criu-lite's thread to a CPU, and each task criu-lite asks
// things of to the same CPU for as long as a Pin lives (a CPU the task may
// run on; its own set comes back at the Pin's end). A task must never stay
// pinned: a child process of criu-lite's, the guard, puts back the sets of
// the tasks pinned at that moment should criu-lite die (SIGKILL too). The
// guard reads them from memory it shares with criu-lite: a pin costs no
// wake-up of the guard.
#pragma once

#include <sched.h>
#include <sys/types.h>

#include <cstddef>
#include <optional>

namespace crl {

// The set of CPU alone.
cpu_set_t OneCpu(int cpu);

class SameCpu {
 public:
  // Pins criu-lite's calling thread to the CPU it is on. Without a guard
  // (fork failed) it pins nothing: slower, never wrong.
  SameCpu();
  // criu-lite's own set back; the guard told that nothing is pinned.
  ~SameCpu();
  SameCpu(const SameCpu&) = delete;
  SameCpu& operator=(const SameCpu&) = delete;

  class Pin {
   public:
    Pin() = default;
    Pin(Pin&& o) noexcept;
    Pin& operator=(Pin&&) = delete;
    ~Pin();

   private:
    friend class SameCpu;
    SameCpu* owner_ = nullptr;
    int slot_ = -1;
  };
  // TID on criu-lite's CPU (or, where it may not run there, criu-lite on one
  // of TID's) until the Pin ends. Nothing where it cannot be: a task whose
  // cpuset forbids the move, more tasks pinned at once than the guard
  // holds.
  Pin Task(pid_t tid);

  // How many slots the guard holds: tasks pinned at once.
  static constexpr size_t kSlots = 64;
  struct Slot;  // one pinned task, in the memory shared with the guard

 private:
  void Unpin(int slot);
  Slot* slots_ = nullptr;  // shared with the guard
  pid_t guard_ = -1;
  int guard_fd_ = -1;  // EOF here tells the guard to put back what is pinned
  std::optional<cpu_set_t> own_;
  int cpu_ = -1;
};

}  // namespace crl
