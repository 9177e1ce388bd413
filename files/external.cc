// Fds the dump was told are external (--external tty[RDEV:DEV] or
// file[MNT_ID:INODE], CRIU's keys): a container's console or log file that
// its runtime owns. Nothing of them is recorded but the key; restore takes
// the fd the caller hands in with --inherit-fd fd[N]:KEY
// (restore/file_table.cc), and refuses to start without one.
#include "files/fd_kind.h"

namespace crl {
namespace {

class External : public FdKind {
 public:
  img::Fd::KindCase arm() const override { return img::Fd::kExternal; }
  const char* name() const override { return "external file"; }

  // Named by --external at dump (dump/fd_dump.cc), never by what it is.
  bool Claims(const FdSeen&) const override { return false; }
  Status Collect(const FdSeen&, img::Fd*) const override { return Ok{}; }

  Status Check(const img::Fd& f, bool) const override {
    return MakeError("it was dumped as external %s: restore with --inherit-fd fd[N]:%s",
                     f.external().key().c_str(), f.external().key().c_str());
  }

  Result<ScopedFd> Open(const img::Fd& f, OpenFiles&) const override {
    return MakeError("fd %d: external %s was not handed in with --inherit-fd", f.fd(),
                     f.external().key().c_str());
  }
};

}  // namespace

const FdKind& ExternalKind() {
  static const External k;
  return k;
}

}  // namespace crl
