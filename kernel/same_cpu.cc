#include "kernel/same_cpu.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstring>
#include <utility>

#include "base/background.h"
#include "base/log.h"

namespace crl {

// A pinned task and the set it had: the task's TID is stored last (and
// cleared only once the set is back), so that the guard never reads a slot
// half written.
struct SameCpu::Slot {
  std::atomic<pid_t> tid;
  cpu_set_t mask;
};

namespace {

// The guard: once FD is closed (criu-lite is done, or dead), puts back
// the set of each task still pinned in SLOTS.
[[noreturn]] void GuardPins(int fd, SameCpu::Slot* slots, size_t n) {
  GuardWait(fd);
  for (size_t i = 0; i < n; i++) {
    pid_t tid = slots[i].tid.load(std::memory_order_acquire);
    if (tid > 0) sched_setaffinity(tid, sizeof slots[i].mask, &slots[i].mask);
  }
  _exit(0);
}

}  // namespace

cpu_set_t OneCpu(int cpu) {
  cpu_set_t one;
  CPU_ZERO(&one);
  CPU_SET(cpu, &one);
  return one;
}

SameCpu::SameCpu() {
  cpu_set_t own;
  if (sched_getaffinity(0, sizeof own, &own) < 0) return;
  int cpu = sched_getcpu();
  if (cpu < 0) return;
  void* m = mmap(nullptr, sizeof(Slot) * kSlots, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS,
                 -1, 0);
  if (m == MAP_FAILED) return;
  slots_ = static_cast<Slot*>(m);  // zero: no task pinned
  int p[2];
  if (pipe2(p, O_CLOEXEC) < 0) {
    munmap(slots_, sizeof(Slot) * kSlots);
    slots_ = nullptr;
    return;
  }
  guard_ = fork();
  if (guard_ == 0) GuardPins(p[0], slots_, kSlots);
  close(p[0]);
  if (guard_ < 0) {
    LOG_DEBUG("no guard for pinned tasks (fork: %s): none is pinned", strerror(errno));
    close(p[1]);
    munmap(slots_, sizeof(Slot) * kSlots);
    slots_ = nullptr;
    return;
  }
  guard_fd_ = p[1];
  cpu_set_t one = OneCpu(cpu);
  if (sched_setaffinity(0, sizeof one, &one) == 0) own_ = own;
  cpu_ = cpu;
}

SameCpu::~SameCpu() {
  if (own_) sched_setaffinity(0, sizeof *own_, &*own_);
  if (guard_ < 0) return;
  close(guard_fd_);
  while (waitpid(guard_, nullptr, 0) < 0 && errno == EINTR) {
  }
  munmap(slots_, sizeof(Slot) * kSlots);
}

SameCpu::Pin SameCpu::Task(pid_t tid) {
  Pin pin;
  if (guard_ < 0) return pin;
  cpu_set_t mask;
  if (sched_getaffinity(tid, sizeof mask, &mask) < 0) return pin;
  // Never a CPU the task does not run on: criu-lite goes to one of its.
  if (!CPU_ISSET(cpu_, &mask)) {
    int cpu = 0;
    while (cpu < CPU_SETSIZE && !CPU_ISSET(cpu, &mask)) cpu++;
    cpu_set_t one = OneCpu(cpu);
    if (cpu == CPU_SETSIZE || sched_setaffinity(0, sizeof one, &one) < 0) return pin;
    cpu_ = cpu;
  }
  if (CPU_COUNT(&mask) == 1) return pin;  // there already
  for (size_t i = 0; i < kSlots; i++) {
    if (slots_[i].tid.load(std::memory_order_relaxed) != 0) continue;
    slots_[i].mask = mask;
    slots_[i].tid.store(tid, std::memory_order_release);
    cpu_set_t one = OneCpu(cpu_);
    if (sched_setaffinity(tid, sizeof one, &one) < 0) {
      slots_[i].tid.store(0, std::memory_order_release);
      return pin;
    }
    // The fault-injection test reads this line.
    LOG_DEBUG("thread %d pinned to CPU %d, with criu-lite", tid, cpu_);
    pin.owner_ = this;
    pin.slot_ = static_cast<int>(i);
    return pin;
  }
  return pin;
}

void SameCpu::Unpin(int slot) {
  Slot& s = slots_[slot];
  pid_t tid = s.tid.load(std::memory_order_relaxed);
  if (sched_setaffinity(tid, sizeof s.mask, &s.mask) < 0 && errno != ESRCH)
    LOG_WARN("thread %d: putting back its CPU set: %s", tid, strerror(errno));
  s.tid.store(0, std::memory_order_release);
}

SameCpu::Pin::Pin(Pin&& o) noexcept
    : owner_(std::exchange(o.owner_, nullptr)), slot_(std::exchange(o.slot_, -1)) {}

SameCpu::Pin::~Pin() {
  if (owner_) owner_->Unpin(slot_);
}

}  // namespace crl
