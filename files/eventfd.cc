// eventfd: its counter and semaphore mode.
#include <fcntl.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <cstring>

#include "files/fd_kind.h"
#include "kernel/task_fd.h"

namespace crl {
namespace {

Result<uint64_t> HexField(const std::string& text, const char* key) {
  size_t p = text.find(key);
  if (p == std::string::npos) return MakeError("no %s", key);
  return strtoull(text.c_str() + p + strlen(key), nullptr, 16);
}

// Kernels before 6.6 do not show an eventfd's semaphore mode in fdinfo; a
// read shows it. With the tree frozen, criu-lite adds 2 to the counter and
// reads once: a semaphore gives 1 (and the extra 1 is read back), a plain
// counter gives all of it (and what was there is written back). The counter
// ends as it was; a poller in the tree wakes, finds nothing new and sleeps.
Result<bool> ProbeSemaphore(pid_t pid, int fd) {
  ScopedFd e = TRY(TakeFd(pid, fd));
  uint64_t two = 2, got = 0;
  if (write(e.get(), &two, 8) != 8) return ErrnoError("write(eventfd of PID %d fd %d)", pid, fd);
  if (read(e.get(), &got, 8) != 8) return ErrnoError("read(eventfd of PID %d fd %d)", pid, fd);
  if (got == 1) {
    if (read(e.get(), &got, 8) != 8) return ErrnoError("read(eventfd of PID %d fd %d)", pid, fd);
    return true;
  }
  uint64_t was = got - 2;
  if (was && write(e.get(), &was, 8) != 8)
    return ErrnoError("write(eventfd of PID %d fd %d)", pid, fd);
  return false;
}

class Eventfd : public FdKind {
 public:
  img::Fd::KindCase arm() const override { return img::Fd::kEventfd; }
  const char* name() const override { return "eventfd"; }

  bool Claims(const FdSeen& s) const override { return s.anon == "anon_inode:eventfd"; }

  Status Collect(const FdSeen& s, img::Fd* out) const override {
    img::EventfdFd* e = out->mutable_eventfd();
    e->set_count(TRY(HexField(s.fdinfo, "eventfd-count:")));
    auto sem = HexField(s.fdinfo, "eventfd-semaphore:");
    e->set_semaphore(sem.ok() ? *sem != 0 : TRY(ProbeSemaphore(s.pid, s.fd)));
    return Ok{};
  }

  Result<ScopedFd> Open(const img::Fd& f, OpenFiles&) const override {
    const img::EventfdFd& e = f.eventfd();
    ScopedFd fd(eventfd(static_cast<unsigned>(e.count()),
                        EFD_CLOEXEC | ((f.flags() & O_NONBLOCK) ? EFD_NONBLOCK : 0) |
                            (e.semaphore() ? EFD_SEMAPHORE : 0)));
    if (!fd.valid()) return ErrnoError("eventfd(%lu)", e.count());
    return fd;
  }
};

}  // namespace

const FdKind& EventfdKind() {
  static const Eventfd k;
  return k;
}

}  // namespace crl
