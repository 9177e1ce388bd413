// Deleted files still open ("ghosts", as CRIU calls them): a log rotated
// away, a temporary file unlinked once opened. The file's bytes are saved
// once per file in shared.img (holes left out, so a sparse file stays
// sparse), up to --ghost-limit bytes of data (1 MiB by default, as CRIU).
// Restore makes the file again under its old name (the name /proc shows
// for the fd, then " (deleted)"), or beside it when that name is taken now,
// recreating a removed directory for the moment; opens each description on
// it; then unlinks it and removes what it created.
//
// A file deleted under one name that still has others is refused: restore
// could not tell them apart from a copy.
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cinttypes>
#include <cstring>

#include "files/fd_kind.h"
#include "kernel/proc_task.h"

namespace crl {
namespace {

constexpr char kDeleted[] = " (deleted)";

bool Deleted(const std::string& link) {
  size_t n = strlen(kDeleted);
  return link.size() > n && link.compare(link.size() - n, n, kDeleted) == 0;
}

// FD's bytes, extent by extent (SEEK_DATA/SEEK_HOLE), into G; fails past
// LIMIT bytes of data.
Status SaveData(int fd, uint64_t limit, img::GhostFile* g) {
  uint64_t saved = 0;
  off_t at = 0;
  for (;;) {
    off_t data = lseek(fd, at, SEEK_DATA);
    if (data < 0 && errno == ENXIO) return Ok{};  // only a hole from here on
    if (data < 0) return ErrnoError("lseek(SEEK_DATA)");
    off_t hole = lseek(fd, data, SEEK_HOLE);
    if (hole < 0) return ErrnoError("lseek(SEEK_HOLE)");
    saved += hole - data;
    if (saved > limit)
      return MakeError("holds more than --ghost-limit (%" PRIu64 " bytes) of data", limit);
    img::GhostExtent* e = g->add_extents();
    e->set_offset(data);
    std::string* bytes = e->mutable_data();
    bytes->resize(hole - data);
    if (pread(fd, bytes->data(), bytes->size(), data) != static_cast<ssize_t>(bytes->size()))
      return ErrnoError("pread");
    at = hole;
  }
}

// Makes the directories of PATH that are missing; CREATED lists them, the
// deepest last.
Status MakeDirs(const std::string& path, std::vector<std::string>* created) {
  for (size_t slash = path.find('/', 1); slash != std::string::npos;
       slash = path.find('/', slash + 1)) {
    std::string dir = path.substr(0, slash);
    if (mkdir(dir.c_str(), 0700) == 0)
      created->push_back(dir);
    else if (errno != EEXIST)
      return ErrnoError("mkdir(%s)", dir.c_str());
  }
  return Ok{};
}

// The file G again, unlinked, open read-write.
Result<ScopedFd> Recreate(const std::string& name, const img::GhostFile& g) {
  ScopedFd fd = TRY(MakeUnlinked(name, [](const std::string& at) {
    return open(at.c_str(), O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
  }));
  for (const img::GhostExtent& e : g.extents())
    if (pwrite(fd.get(), e.data().data(), e.data().size(), e.offset()) !=
        static_cast<ssize_t>(e.data().size()))
      return ErrnoError("writing %s again", name.c_str());
  if (ftruncate(fd.get(), g.size()) < 0 || fchown(fd.get(), g.uid(), g.gid()) < 0 ||
      fchmod(fd.get(), g.mode() & 07777) < 0)
    return ErrnoError("setting the size, owner and mode of %s", name.c_str());
  return fd;
}

class Ghost : public FdKind {
 public:
  img::Fd::KindCase arm() const override { return img::Fd::kGhost; }
  const char* name() const override { return "deleted file"; }

  bool Claims(const FdSeen& s) const override {
    return !s.anon && S_ISREG(s.st.st_mode) && s.st.st_nlink == 0 && Deleted(s.link);
  }

  Status Collect(const FdSeen&, img::Fd* out) const override {
    out->mutable_ghost();
    return Ok{};
  }

  // The bytes of each deleted file, once.
  Status Resolve(const std::vector<FdRef>& mine, TreeFds& tree) const override {
    for (const FdRef& r : mine) {
      std::string at = ProcTask(r.pid).Path(Format("fd/%d", r.fd->fd()));
      Status s = SaveGhost(at, r.fd->file(), tree.ghost_limit(), tree.shared());
      if (!s.ok())
        return MakeError("PID %d fd %d is the deleted file %s, which %s", r.pid, r.fd->fd(),
                         r.fd->path().c_str(), s.error().message.c_str());
    }
    return Ok{};
  }

  Result<ScopedFd> Open(const img::Fd& f, OpenFiles& files) const override {
    int made = TRY(GhostFile(files, f.file(), f.path()));
    int flags = (f.flags() & ~(O_CREAT | O_TRUNC | O_EXCL)) | O_CLOEXEC;
    std::string again = Format("/proc/self/fd/%d", made);
    ScopedFd fd(open(again.c_str(), flags));
    if (!fd.valid()) return ErrnoError("opening the deleted file %s again", f.path().c_str());
    if (lseek(fd.get(), f.pos(), SEEK_SET) < 0) return ErrnoError("lseek(%lu)", f.pos());
    return fd;
  }
};

}  // namespace

Result<ScopedFd> MakeUnlinked(const std::string& name,
                              const std::function<int(const std::string& at)>& make) {
  std::vector<std::string> created;
  Status dirs = MakeDirs(name, &created);
  std::string at = name;
  ScopedFd fd;
  if (dirs.ok()) {
    fd.reset(make(at));
    for (int i = 0; !fd.valid() && errno == EEXIST && i < 100; i++) {
      at = Format("%s.crl-ghost.%d", name.c_str(), i);  // the name is taken now
      fd.reset(make(at));
    }
  }
  int saved = errno;
  if (fd.valid()) unlink(at.c_str());
  for (auto d = created.rbegin(); d != created.rend(); ++d) rmdir(d->c_str());
  TRY(dirs);
  if (!fd.valid()) return MakeError("making %s again: %s", name.c_str(), strerror(saved));
  return fd;
}

const FdKind& GhostKind() {
  static const Ghost k;
  return k;
}

Status SaveGhost(const std::string& access_path, const img::FileId& id, uint64_t limit,
                 img::Shared* shared) {
  for (const img::GhostFile& g : shared->ghosts())
    if (g.dev() == id.dev() && g.ino() == id.ino()) return Ok{};  // saved already
  ScopedFd fd(open(access_path.c_str(), O_RDONLY | O_CLOEXEC));
  if (!fd.valid()) return ErrnoError("open(%s)", access_path.c_str());
  struct stat st;
  if (fstat(fd.get(), &st) < 0) return ErrnoError("fstat(%s)", access_path.c_str());
  img::GhostFile g;
  g.set_dev(id.dev());
  g.set_ino(id.ino());
  g.set_mode(st.st_mode);
  g.set_uid(st.st_uid);
  g.set_gid(st.st_gid);
  g.set_size(st.st_size);
  TRY(SaveData(fd.get(), limit, &g));
  *shared->add_ghosts() = std::move(g);
  return Ok{};
}

Result<int> GhostFile(OpenFiles& files, const img::FileId& id, const std::string& link) {
  std::vector<int>& made = files.Object(&GhostKind(), id.ino());
  if (made.empty()) {
    const img::GhostFile* g = nullptr;
    for (const img::GhostFile& each : files.shared().ghosts())
      if (each.dev() == id.dev() && each.ino() == id.ino()) g = &each;
    if (!g) return MakeError("the deleted file %s is not in shared.img", link.c_str());
    std::string name = Deleted(link) ? link.substr(0, link.size() - strlen(kDeleted)) : link;
    made.push_back(files.Hold(TRY(Recreate(name, *g))));
  }
  return made[0];
}

}  // namespace crl
