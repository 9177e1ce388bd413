// memfd: its contents, size, mode, owner and seals are saved once per
// memfd in shared.img (also for a memfd only mapped, dump/dump.cc);
// restore makes one memfd of criu-lite's and a description of its own on it
// for each description the tree had.
#include <fcntl.h>
#include <sys/mman.h>
#include <unistd.h>

#include "files/fd_kind.h"
#include "kernel/proc_task.h"
#include "kernel/uapi.h"

namespace crl {
namespace {

class Memfd : public FdKind {
 public:
  img::Fd::KindCase arm() const override { return img::Fd::kMemfd; }
  const char* name() const override { return "memfd"; }

  bool Claims(const FdSeen& s) const override {
    return !s.anon && S_ISREG(s.st.st_mode) && s.link.rfind("/memfd:", 0) == 0;
  }

  Status Collect(const FdSeen&, img::Fd* out) const override {
    out->mutable_memfd();
    return Ok{};
  }

  Status Resolve(const std::vector<FdRef>& mine, TreeFds& tree) const override {
    for (const FdRef& r : mine)
      TRY(SaveMemfd(ProcTask(r.pid).Path(Format("fd/%d", r.fd->fd())), r.fd->path(), r.fd->ino(),
                    tree.shared()));
    return Ok{};
  }

  Result<ScopedFd> Open(const img::Fd& f, OpenFiles& files) const override {
    int memfd = files.Memfd(f.ino());
    if (memfd < 0) return MakeError("fd %d: memfd %lu is not in shared.img", f.fd(), f.ino());
    std::string path = Format("/proc/self/fd/%d", memfd);
    ScopedFd fd(open(path.c_str(), (f.flags() & ~(O_CREAT | O_TRUNC | O_EXCL)) | O_CLOEXEC));
    if (!fd.valid()) return ErrnoError("reopening memfd %lu", f.ino());
    if (lseek(fd.get(), f.pos(), SEEK_SET) < 0) return ErrnoError("lseek(memfd, %lu)", f.pos());
    return fd;
  }
};

}  // namespace

const FdKind& MemfdKind() {
  static const Memfd k;
  return k;
}

Status SaveMemfd(const std::string& access_path, const std::string& link, uint64_t ino,
                 img::Shared* shared) {
  for (const img::MemfdData& m : shared->memfds())
    if (m.ino() == ino) return Ok{};
  ScopedFd fd(open(access_path.c_str(), O_RDONLY | O_CLOEXEC));
  if (!fd.valid()) return ErrnoError("open(%s)", access_path.c_str());
  struct stat st;
  if (fstat(fd.get(), &st) < 0) return ErrnoError("fstat(%s)", access_path.c_str());
  img::MemfdData* m = shared->add_memfds();
  m->set_ino(ino);
  std::string name = link.substr(7);  // after "/memfd:"
  if (name.size() > 10 && name.compare(name.size() - 10, 10, " (deleted)") == 0)
    name.resize(name.size() - 10);
  m->set_name(name);
  m->set_size(st.st_size);
  m->set_mode(st.st_mode & 07777);
  m->set_uid(st.st_uid);
  m->set_gid(st.st_gid);
  int seals = fcntl(fd.get(), F_GET_SEALS);
  if (seals < 0) return ErrnoError("fcntl(%s, F_GET_SEALS)", access_path.c_str());
  m->set_seals(seals);
  std::string data(st.st_size, '\0');
  size_t off = 0;
  while (off < data.size()) {
    ssize_t n = pread(fd.get(), data.data() + off, data.size() - off, off);
    if (n <= 0) return ErrnoError("reading memfd %s", access_path.c_str());
    off += n;
  }
  // Trailing zeros need no room in the image: the size restores them.
  size_t end = data.find_last_not_of('\0');
  data.resize(end == std::string::npos ? 0 : end + 1);
  m->set_data(std::move(data));
  return Ok{};
}

}  // namespace crl
