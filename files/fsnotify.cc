// inotify and fanotify, which both name the files they watch by handles.
//
// inotify: every watch (its number, mask and the file it watches), from
// fdinfo ("inotify wd:N ino:I sdev:D mask:M ... f_handle:H"). The kernel
// names the file by a handle, which dump opens (open_by_handle_at, on a
// mount of that filesystem) to learn its path. Restore adds the watches
// again, by path, in the order of their numbers; the kernel hands numbers
// out one after the other, so a number that had been freed is taken by a
// watch added and removed again, and the events those removals queue are
// read away before any task gets the fd.
//
// Not carried: events queued at dump (the next change to a watched file
// makes new ones); a watch on a file that was deleted, or that no path of
// this mount namespace reaches, is refused, named (nothing could watch the
// same file again). At restore a watched path that now holds another file
// is refused too.
//
// fanotify: the group's flags and event flags ("fanotify flags:F
// event-flags:E") and every mark: on a file (by handle, as inotify's), a
// mount ("mnt_id:N", by its mount point) or a filesystem ("sdev:D", by a
// mount of it), each with its mask, ignored mask and flags; made again by
// path. Queued events are not carried. A group of a permission class
// (FAN_CLASS_CONTENT, FAN_CLASS_PRE_CONTENT) is refused: the answers it owes
// to processes waiting on it cannot be seen, nor given after a restore.
#include <fcntl.h>
#include <sys/fanotify.h>
#include <sys/inotify.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cinttypes>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <sstream>

#include "files/fd_kind.h"
#include "kernel/proc_task.h"

namespace crl {
namespace {

// Freed numbers restore steps over, at most, before saying no.
constexpr uint32_t kMaxSkippedWds = 1 << 20;

// A mount of the filesystem whose kernel device number is SDEV, as PID sees
// its mounts (the whole filesystem, root "/", preferred), opened for
// open_by_handle_at (which takes no O_PATH fd).
Result<ScopedFd> MountOf(pid_t pid, uint32_t sdev) {
  unsigned major = sdev >> 20, minor = sdev & 0xfffff;
  std::ifstream in(ProcTask(pid).Path("mountinfo"));
  std::string best;
  for (std::string line; std::getline(in, line);) {
    std::istringstream f(line);
    std::string id, parent, dev, root, point;
    f >> id >> parent >> dev >> root >> point;
    unsigned ma, mi;
    if (sscanf(dev.c_str(), "%u:%u", &ma, &mi) != 2 || ma != major || mi != minor) continue;
    if (best.empty() || root == "/") best = point;
    if (root == "/") break;
  }
  if (best.empty()) return MakeError("no mount of device %u:%u", major, minor);
  ScopedFd fd(open(ProcTask(pid).Path("root" + best).c_str(), O_RDONLY | O_CLOEXEC));
  if (!fd.valid()) return ErrnoError("open(mount %s)", best.c_str());
  return fd;
}

// What /proc shows of criu-lite's fd FD: the path that reaches it.
Result<std::string> PathOf(int fd) {
  char path[4096];
  ssize_t n = readlink(Format("/proc/self/fd/%d", fd).c_str(), path, sizeof path - 1);
  if (n < 0) return ErrnoError("readlink");
  return std::string(path, n);
}

// The path of the file with handle HEX (of TYPE) on the filesystem SDEV.
Result<std::string> PathOfHandle(pid_t pid, uint32_t sdev, int type, const std::string& hex) {
  std::vector<unsigned char> buf(sizeof(file_handle) + hex.size() / 2);
  auto* h = reinterpret_cast<file_handle*>(buf.data());
  h->handle_bytes = hex.size() / 2;
  h->handle_type = type;
  for (size_t i = 0; i < h->handle_bytes; i++)
    h->f_handle[i] = static_cast<unsigned char>(std::stoi(hex.substr(2 * i, 2), nullptr, 16));
  ScopedFd mount = TRY(MountOf(pid, sdev));
  ScopedFd fd(open_by_handle_at(mount.get(), h, O_PATH | O_CLOEXEC));
  if (!fd.valid()) return ErrnoError("open_by_handle_at");
  return PathOf(fd.get());
}

// The path of the watched file INO (handle HEX of TYPE on SDEV), checked: a
// deleted file, or one its path no longer reaches, is an error saying so.
Result<std::string> WatchedPath(pid_t pid, uint32_t sdev, int type, const std::string& hex,
                                uint64_t ino) {
  Result<std::string> path = PathOfHandle(pid, sdev, type, hex);
  if (!path.ok()) return MakeError("which no path reaches (%s)", path.error().message.c_str());
  if (path->size() > 10 && path->compare(path->size() - 10, 10, " (deleted)") == 0)
    return MakeError("a deleted file (%s)", path->c_str());
  struct stat st;
  if (lstat(ProcTask(pid).Path("root" + *path).c_str(), &st) < 0 || st.st_ino != ino)
    return MakeError("which its path %s no longer reaches", path->c_str());
  return path;
}

class Inotify : public FdKind {
 public:
  img::Fd::KindCase arm() const override { return img::Fd::kInotify; }
  const char* name() const override { return "inotify"; }

  bool Claims(const FdSeen& s) const override { return s.anon == "anon_inode:inotify"; }

  Status Collect(const FdSeen& s, img::Fd* out) const override {
    img::InotifyFd* in = out->mutable_inotify();
    std::istringstream lines(s.fdinfo);
    for (std::string line; std::getline(lines, line);) {
      if (line.rfind("inotify ", 0) != 0) continue;
      uint32_t wd, sdev, mask, ignored, bytes;
      uint64_t ino;
      int type;
      char handle[300];
      if (sscanf(line.c_str(),
                 "inotify wd:%x ino:%" SCNx64
                 " sdev:%x mask:%x ignored_mask:%x fhandle-bytes:%x fhandle-type:%x f_handle:%299s",
                 &wd, &ino, &sdev, &mask, &ignored, &bytes, &type, handle) != 8)
        return MakeError("PID %d fd %d: an inotify fdinfo line that does not parse: %s", s.pid,
                         s.fd, line.c_str());
      auto named = [&](const std::string& why) {
        return MakeError("PID %d fd %d is an inotify watching (wd %u) inode %" PRIu64
                         " on device %u:%u, %s: not carried",
                         s.pid, s.fd, wd, ino, sdev >> 20, sdev & 0xfffff, why.c_str());
      };
      Result<std::string> path = WatchedPath(s.pid, sdev, type, handle, ino);
      if (!path.ok()) return named(path.error().message);
      img::InotifyWatch* w = in->add_watches();
      w->set_wd(wd);
      w->set_mask(mask);
      w->set_ino(ino);
      w->set_path(*path);
    }
    std::sort(
        in->mutable_watches()->begin(), in->mutable_watches()->end(),
        [](const img::InotifyWatch& a, const img::InotifyWatch& b) { return a.wd() < b.wd(); });
    return Ok{};
  }

  Status Check(const img::Fd& f, bool) const override {
    for (const img::InotifyWatch& w : f.inotify().watches()) {
      struct stat st;
      if (lstat(w.path().c_str(), &st) < 0)
        return ErrnoError("fd %d: inotify watch %u on %s", f.fd(), w.wd(), w.path().c_str());
      if (st.st_ino != w.ino())
        return MakeError(
            "fd %d: inotify watch %u on %s: the file there is another now (inode "
            "%lu, was %" PRIu64 ")",
            f.fd(), w.wd(), w.path().c_str(), st.st_ino, w.ino());
    }
    return Ok{};
  }

  Result<ScopedFd> Open(const img::Fd& f, OpenFiles&) const override {
    ScopedFd fd(inotify_init1(IN_CLOEXEC | IN_NONBLOCK));
    if (!fd.valid()) return ErrnoError("inotify_init1");
    uint32_t skipped = 0;
    for (const img::InotifyWatch& w : f.inotify().watches()) {
      for (;;) {
        int wd = inotify_add_watch(fd.get(), w.path().c_str(), w.mask() | IN_DONT_FOLLOW);
        if (wd < 0) return ErrnoError("inotify_add_watch(%s)", w.path().c_str());
        if (static_cast<uint32_t>(wd) == w.wd()) break;
        if (static_cast<uint32_t>(wd) > w.wd() || ++skipped > kMaxSkippedWds)
          return MakeError("inotify watch %u on %s: the kernel gave number %d", w.wd(),
                           w.path().c_str(), wd);
        inotify_rm_watch(fd.get(), wd);
      }
    }
    // The IN_IGNORED events of the removed watches (and anything the
    // watched files did meanwhile).
    char buf[4096];
    while (read(fd.get(), buf, sizeof buf) > 0) {
    }
    return fd;
  }
};

// The mount point of mount ID as PID sees its mounts.
Result<std::string> MountPoint(pid_t pid, unsigned id) {
  std::ifstream in(ProcTask(pid).Path("mountinfo"));
  for (std::string line; std::getline(in, line);) {
    std::istringstream f(line);
    unsigned mid;
    std::string parent, dev, root, point;
    if (f >> mid >> parent >> dev >> root >> point && mid == id) return point;
  }
  return MakeError("no mount %u", id);
}

constexpr unsigned kFanClassMask = FAN_CLASS_CONTENT | FAN_CLASS_PRE_CONTENT;
constexpr unsigned kFanMarkIgnore = 0x400;  // FAN_MARK_IGNORE (6.0+)

class Fanotify : public FdKind {
 public:
  img::Fd::KindCase arm() const override { return img::Fd::kFanotify; }
  const char* name() const override { return "fanotify"; }

  bool Claims(const FdSeen& s) const override { return s.anon == "anon_inode:fanotify"; }

  Status Collect(const FdSeen& s, img::Fd* out) const override {
    img::FanotifyFd* fan = out->mutable_fanotify();
    std::istringstream lines(s.fdinfo);
    for (std::string line; std::getline(lines, line);) {
      if (line.rfind("fanotify ", 0) != 0) continue;
      unsigned flags, event_flags, mflags, id, sdev;
      uint64_t mask, ignored, ino;
      int type;
      char handle[300];
      auto named = [&](const std::string& why) {
        return MakeError("PID %d fd %d is a fanotify group with a mark (%s) %s: not carried", s.pid,
                         s.fd, line.c_str(), why.c_str());
      };
      img::FanotifyMark m;
      if (sscanf(line.c_str(), "fanotify flags:%x event-flags:%x", &flags, &event_flags) == 2) {
        if (flags & kFanClassMask)
          return MakeError(
              "PID %d fd %d is a fanotify group of a permission class (flags 0x%x): the "
              "answers it owes to processes waiting on it cannot be carried",
              s.pid, s.fd, flags);
        fan->set_flags(flags);
        fan->set_event_flags(event_flags);
        continue;
      } else if (sscanf(line.c_str(),
                        "fanotify ino:%" SCNx64 " sdev:%x mflags:%x mask:%" SCNx64
                        " ignored_mask:%" SCNx64
                        " fhandle-bytes:%*x fhandle-type:%x f_handle:%299s",
                        &ino, &sdev, &mflags, &mask, &ignored, &type, handle) == 7) {
        Result<std::string> path = WatchedPath(s.pid, sdev, type, handle, ino);
        if (!path.ok()) return named("on a file " + path.error().message);
        m.set_type(img::FanotifyMark::INODE);
        m.set_path(*path);
        m.set_ino(ino);
      } else if (sscanf(line.c_str(),
                        "fanotify mnt_id:%x mflags:%x mask:%" SCNx64 " ignored_mask:%" SCNx64, &id,
                        &mflags, &mask, &ignored) == 4) {
        m.set_type(img::FanotifyMark::MOUNT);
        m.set_path(TRY(MountPoint(s.pid, id)));
      } else if (sscanf(line.c_str(),
                        "fanotify sdev:%x mflags:%x mask:%" SCNx64 " ignored_mask:%" SCNx64, &sdev,
                        &mflags, &mask, &ignored) == 4) {
        ScopedFd mount = TRY(MountOf(s.pid, sdev));
        m.set_type(img::FanotifyMark::FILESYSTEM);
        m.set_path(TRY(PathOf(mount.get())));
      } else {
        return MakeError("PID %d fd %d: a fanotify fdinfo line that does not parse: %s", s.pid,
                         s.fd, line.c_str());
      }
      if (mflags & kFanMarkIgnore) return named("with FAN_MARK_IGNORE");
      m.set_mflags(mflags);
      m.set_mask(mask);
      m.set_ignored_mask(ignored);
      *fan->add_marks() = std::move(m);
    }
    return Ok{};
  }

  Status Check(const img::Fd& f, bool) const override {
    for (const img::FanotifyMark& m : f.fanotify().marks()) {
      struct stat st;
      if (lstat(m.path().c_str(), &st) < 0)
        return ErrnoError("fd %d: fanotify mark on %s", f.fd(), m.path().c_str());
      if (m.type() == img::FanotifyMark::INODE && st.st_ino != m.ino())
        return MakeError("fd %d: fanotify mark on %s: the file there is another now", f.fd(),
                         m.path().c_str());
    }
    return Ok{};
  }

  Result<ScopedFd> Open(const img::Fd& f, OpenFiles&) const override {
    const img::FanotifyFd& fan = f.fanotify();
    // The group's flags as they were (fdinfo shows FAN_CLOEXEC and
    // FAN_NONBLOCK too); criu-lite's own fd is close-on-exec regardless.
    ScopedFd fd(fanotify_init(fan.flags(), fan.event_flags()));
    if (!fd.valid()) return ErrnoError("fanotify_init(0x%x, 0x%x)", fan.flags(), fan.event_flags());
    if (fcntl(fd.get(), F_SETFD, FD_CLOEXEC) < 0) return ErrnoError("fcntl(F_SETFD)");
    for (const img::FanotifyMark& m : fan.marks()) {
      unsigned where = m.type() == img::FanotifyMark::MOUNT        ? FAN_MARK_MOUNT
                       : m.type() == img::FanotifyMark::FILESYSTEM ? FAN_MARK_FILESYSTEM
                                                                   : FAN_MARK_DONT_FOLLOW;
      unsigned keep = m.mflags() & ~FAN_MARK_IGNORED_SURV_MODIFY;  // FAN_MARK_EVICTABLE
      if (m.mask() && fanotify_mark(fd.get(), FAN_MARK_ADD | where | keep, m.mask(), AT_FDCWD,
                                    m.path().c_str()) < 0)
        return ErrnoError("fanotify_mark(%s, mask 0x%lx)", m.path().c_str(), m.mask());
      if (m.ignored_mask() &&
          fanotify_mark(fd.get(), FAN_MARK_ADD | FAN_MARK_IGNORED_MASK | where | m.mflags(),
                        m.ignored_mask(), AT_FDCWD, m.path().c_str()) < 0)
        return ErrnoError("fanotify_mark(%s, ignored mask 0x%lx)", m.path().c_str(),
                          m.ignored_mask());
    }
    return fd;
  }
};

}  // namespace

const FdKind& FanotifyKind() {
  static const Fanotify k;
  return k;
}

const FdKind& InotifyKind() {
  static const Inotify k;
  return k;
}

}  // namespace crl
