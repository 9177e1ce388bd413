// signalfd: the set of signals it reads, from fdinfo ("sigmask"). The
// signals waiting for it are the task's pending signals, which restore puts
// back with the rest of the task's signal state: reading it after a
// restore gives what it would have given before.
#include <sys/signalfd.h>

#include <cinttypes>
#include <csignal>
#include <cstdio>
#include <cstring>

#include "files/fd_kind.h"

namespace crl {
namespace {

class Signalfd : public FdKind {
 public:
  img::Fd::KindCase arm() const override { return img::Fd::kSignalfd; }
  const char* name() const override { return "signalfd"; }

  bool Claims(const FdSeen& s) const override { return s.anon == "anon_inode:signalfd"; }

  Status Collect(const FdSeen& s, img::Fd* out) const override {
    size_t at = s.fdinfo.find("sigmask:");
    uint64_t mask;
    if (at == std::string::npos ||
        sscanf(s.fdinfo.c_str() + at + strlen("sigmask:"), "%" SCNx64, &mask) != 1)
      return MakeError("PID %d fd %d: a signalfd's fdinfo without its mask: %s", s.pid, s.fd,
                       s.fdinfo.c_str());
    out->mutable_signalfd()->set_mask(mask);
    return Ok{};
  }

  Result<ScopedFd> Open(const img::Fd& f, OpenFiles&) const override {
    sigset_t set;
    sigemptyset(&set);
    for (int sig = 1; sig <= 64; sig++)
      if (f.signalfd().mask() & (1ull << (sig - 1))) sigaddset(&set, sig);
    ScopedFd fd(signalfd(-1, &set, SFD_CLOEXEC));
    if (!fd.valid()) return ErrnoError("signalfd(mask 0x%" PRIx64 ")", f.signalfd().mask());
    return fd;
  }
};

}  // namespace

const FdKind& SignalfdKind() {
  static const Signalfd k;
  return k;
}

}  // namespace crl
