// Fds that are restore's own: a terminal, or anything whose other end is
// outside the tree, held as stdin, stdout or stderr, dumped with
// --shell-job (CRIU's option): the restored task gets restore's own fd of
// that number. Without --shell-job such an fd is refused.
#include <fcntl.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>

#include "files/fd_kind.h"

namespace crl {
namespace {

class Inherited : public FdKind {
 public:
  img::Fd::KindCase arm() const override { return img::Fd::kInherited; }
  const char* name() const override { return "restore's own stdio"; }

  bool Claims(const FdSeen& s) const override {
    if (s.anon || !S_ISCHR(s.st.st_mode)) return false;
    unsigned maj = major(s.st.st_rdev);
    return maj == 4 || maj == 5 || (maj >= 136 && maj <= 143);  // tty, console/ptmx, pts
  }

  Status Collect(const FdSeen&, img::Fd* out) const override {
    out->mutable_inherited();
    return Ok{};
  }

  // Settled with the tree: stdio under --shell-job, or refused.
  Status Resolve(const std::vector<FdRef>& mine, TreeFds& tree) const override {
    for (const FdRef& ref : mine) TRY(tree.External(ref, "a terminal"));
    return Ok{};
  }

  Status Check(const img::Fd& f, bool shell_job) const override {
    if (!shell_job)
      return MakeError("dumped with --shell-job (%s); restore with --shell-job", f.path().c_str());
    return Ok{};
  }

  Result<ScopedFd> Open(const img::Fd& f, OpenFiles&) const override {
    ScopedFd fd(fcntl(f.fd(), F_DUPFD_CLOEXEC, 3));
    if (!fd.valid()) return ErrnoError("restore's own fd %d (--shell-job)", f.fd());
    return fd;
  }
};

}  // namespace

const FdKind& InheritedKind() {
  static const Inherited k;
  return k;
}

}  // namespace crl
