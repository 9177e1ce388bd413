// timerfd: its clock, interval, time left, settime flags and pending
// expirations, from fdinfo. Restore arms it again with the time it had left
// (an absolute timer at its absolute time, so that TFD_TIMER_CANCEL_ON_SET
// still means what it did) and puts the pending expirations back
// (TFD_IOC_SET_TICKS).
#include <fcntl.h>
#include <sys/ioctl.h>
#include <sys/timerfd.h>

#include <cinttypes>
#include <cstdio>
#include <cstring>
#include <ctime>

#include "files/fd_kind.h"
#include "kernel/uapi.h"

namespace crl {
namespace {

constexpr int64_t kNs = 1000000000;

// The value after KEY in fdinfo, scanned with FMT.
template <typename... T>
bool Field(const std::string& info, const char* key, const char* fmt, T*... out) {
  size_t at = info.find(key);
  return at != std::string::npos &&
         sscanf(info.c_str() + at + strlen(key), fmt, out...) == static_cast<int>(sizeof...(T));
}

timespec Spec(int64_t ns) { return {static_cast<time_t>(ns / kNs), static_cast<long>(ns % kNs)}; }

class Timerfd : public FdKind {
 public:
  img::Fd::KindCase arm() const override { return img::Fd::kTimerfd; }
  const char* name() const override { return "timerfd"; }

  bool Claims(const FdSeen& s) const override { return s.anon == "anon_inode:timerfd"; }

  Status Collect(const FdSeen& s, img::Fd* out) const override {
    int clockid;
    uint64_t ticks;
    unsigned flags;
    int64_t vs, vns, is, ins;
    if (!Field(s.fdinfo, "clockid:", "%d", &clockid) ||
        !Field(s.fdinfo, "ticks:", "%" SCNu64, &ticks) ||
        !Field(s.fdinfo, "settime flags:", "%o", &flags) ||
        !Field(s.fdinfo, "it_value:", " (%" SCNd64 ", %" SCNd64 ")", &vs, &vns) ||
        !Field(s.fdinfo, "it_interval:", " (%" SCNd64 ", %" SCNd64 ")", &is, &ins))
      return MakeError("PID %d fd %d: a timerfd's fdinfo without its timer: %s", s.pid, s.fd,
                       s.fdinfo.c_str());
    img::TimerfdFd* t = out->mutable_timerfd();
    t->set_clockid(clockid);
    t->set_ticks(ticks);
    t->set_settime_flags(flags);
    t->set_value_ns(vs * kNs + vns);
    t->set_interval_ns(is * kNs + ins);
    return Ok{};
  }

  Result<ScopedFd> Open(const img::Fd& f, OpenFiles&) const override {
    const img::TimerfdFd& t = f.timerfd();
    ScopedFd fd(timerfd_create(t.clockid(), TFD_CLOEXEC));
    if (!fd.valid()) return ErrnoError("timerfd_create(clock %d)", t.clockid());
    int64_t value = t.value_ns();
    // Expired, waiting to be read (which would arm it again): next due one
    // interval from now.
    if (value == 0 && t.ticks() > 0) value = t.interval_ns();
    if (value > 0) {
      itimerspec its{Spec(t.interval_ns()), Spec(value)};
      int flags = 0;
      if (t.settime_flags() & TFD_TIMER_ABSTIME) {
        timespec now;
        if (clock_gettime(t.clockid(), &now) < 0)
          return ErrnoError("clock_gettime(%d)", t.clockid());
        its.it_value = Spec(now.tv_sec * kNs + now.tv_nsec + value);
        flags = t.settime_flags() & (TFD_TIMER_ABSTIME | TFD_TIMER_CANCEL_ON_SET);
      }
      if (timerfd_settime(fd.get(), flags, &its, nullptr) < 0)
        return ErrnoError("timerfd_settime(%ld ns, every %ld ns)", value, t.interval_ns());
    }
    // After settime, which clears them.
    uint64_t ticks = t.ticks();
    if (ticks && ioctl(fd.get(), TFD_IOC_SET_TICKS, &ticks) < 0)
      return ErrnoError("ioctl(timerfd, TFD_IOC_SET_TICKS, %lu)", ticks);
    return fd;
  }
};

}  // namespace

const FdKind& TimerfdKind() {
  static const Timerfd k;
  return k;
}

}  // namespace crl
