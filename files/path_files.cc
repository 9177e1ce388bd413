// Files reopened by their path: regular files (at their offset),
// directories, character devices other than terminals.
#include <fcntl.h>
#include <unistd.h>

#include "files/fd_kind.h"

namespace crl {
namespace {

bool Deleted(const std::string& link) {
  return link.size() > 10 && link.compare(link.size() - 10, 10, " (deleted)") == 0;
}

class PathKind : public FdKind {
 public:
  PathKind(img::Fd::KindCase arm, const char* name, mode_t type)
      : arm_(arm), name_(name), type_(type) {}
  img::Fd::KindCase arm() const override { return arm_; }
  const char* name() const override { return name_; }

  // A deleted file is claimed by no kind: refused, named.
  bool Claims(const FdSeen& s) const override {
    return !s.anon && (s.st.st_mode & S_IFMT) == type_ && !Deleted(s.link);
  }

  Status Collect(const FdSeen&, img::Fd* out) const override {
    switch (arm_) {
      case img::Fd::kRegular:
        out->mutable_regular();
        break;
      case img::Fd::kDirectory:
        out->mutable_directory();
        break;
      default:
        out->mutable_chardev();
        break;
    }
    return Ok{};
  }

  Status Check(const img::Fd& f, bool) const override {
    if (access(f.path().c_str(), F_OK) < 0) return ErrnoError("%s", f.path().c_str());
    return Ok{};
  }

  Result<ScopedFd> Open(const img::Fd& f, OpenFiles&) const override {
    int flags = (f.flags() & ~(O_CREAT | O_TRUNC | O_EXCL)) | O_NOCTTY | O_CLOEXEC;
    ScopedFd fd(open(f.path().c_str(), flags));
    if (!fd.valid()) return ErrnoError("open(%s) for fd %d", f.path().c_str(), f.fd());
    if (arm_ == img::Fd::kRegular && lseek(fd.get(), f.pos(), SEEK_SET) < 0)
      return ErrnoError("lseek(%s, %lu)", f.path().c_str(), f.pos());
    return fd;
  }

 private:
  img::Fd::KindCase arm_;
  const char* name_;
  mode_t type_;
};

}  // namespace

const FdKind& RegularKind() {
  static const PathKind k(img::Fd::kRegular, "regular file", S_IFREG);
  return k;
}
const FdKind& DirectoryKind() {
  static const PathKind k(img::Fd::kDirectory, "directory", S_IFDIR);
  return k;
}
const FdKind& ChardevKind() {
  static const PathKind k(img::Fd::kChardev, "character device", S_IFCHR);
  return k;
}

}  // namespace crl
