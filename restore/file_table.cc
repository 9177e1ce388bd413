#include "restore/file_table.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>

#include "kernel/log.h"
#include "kernel/uapi.h"

namespace crl {
namespace {

constexpr int kDescriptionFlags = O_NONBLOCK | O_APPEND | O_ASYNC | O_DIRECT | O_NOATIME;

Status SetDescriptionFlags(int fd, uint32_t flags) {
  if (fcntl(fd, F_SETFL, flags & kDescriptionFlags) < 0) return ErrnoError("fcntl(F_SETFL)");
  return Ok{};
}

Status WriteAllNonblocking(int fd, const std::string& data, const char* what) {
  size_t off = 0;
  while (off < data.size()) {
    ssize_t n = write(fd, data.data() + off, data.size() - off);
    if (n < 0) return ErrnoError("refilling %s (%zu of %zu bytes)", what, off, data.size());
    off += n;
  }
  return Ok{};
}

}  // namespace

Result<std::string> FileTable::MemfdPath(uint64_t ino) const {
  auto it = memfds_.find(ino);
  if (it == memfds_.end()) return MakeError("memfd %lu is not in shared.img", ino);
  return Format("/proc/%d/fd/%d", getpid(), it->second);
}

int FileTable::LocalFd(uint32_t file_id) const {
  auto it = fds_.find(file_id);
  return it == fds_.end() ? -1 : it->second.get();
}

Status FileTable::Add(const img::Fd& f, const std::map<uint64_t, const img::QueuedData*>& queues) {
  int local = -1;
  switch (f.kind()) {
    case img::Fd::REGULAR:
    case img::Fd::DIRECTORY:
    case img::Fd::CHARDEV: {
      int flags = (f.flags() & ~(O_CREAT | O_TRUNC | O_EXCL)) | O_NOCTTY | O_CLOEXEC;
      local = open(f.path().c_str(), flags);
      if (local < 0) return ErrnoError("open(%s) for fd %d", f.path().c_str(), f.fd());
      if (f.kind() == img::Fd::REGULAR && lseek(local, f.pos(), SEEK_SET) < 0)
        return ErrnoError("lseek(%s, %lu)", f.path().c_str(), f.pos());
      break;
    }
    case img::Fd::MEMFD: {
      // A description of its own on criu-lite's memfd, as the task had.
      auto m = memfds_.find(f.ino());
      if (m == memfds_.end())
        return MakeError("fd %d: memfd %lu is not in shared.img", f.fd(), f.ino());
      std::string path = Format("/proc/self/fd/%d", m->second);
      local = open(path.c_str(), (f.flags() & ~(O_CREAT | O_TRUNC | O_EXCL)) | O_CLOEXEC);
      if (local < 0) return ErrnoError("reopening memfd %lu", f.ino());
      if (lseek(local, f.pos(), SEEK_SET) < 0) return ErrnoError("lseek(memfd, %lu)", f.pos());
      break;
    }
    case img::Fd::INHERITED:
      local = fcntl(f.fd(), F_DUPFD_CLOEXEC, 3);
      if (local < 0) return ErrnoError("restore's own fd %d (--shell-job)", f.fd());
      break;
    case img::Fd::EVENTFD:
      local = eventfd(static_cast<unsigned>(f.eventfd_count()),
                      EFD_CLOEXEC | ((f.flags() & O_NONBLOCK) ? EFD_NONBLOCK : 0) |
                          (f.eventfd_semaphore() ? EFD_SEMAPHORE : 0));
      if (local < 0) return ErrnoError("eventfd(%lu)", f.eventfd_count());
      break;
    case img::Fd::PIPE:
    case img::Fd::FIFO: {
      auto it = pipes_.find(f.ino());
      if (it == pipes_.end()) {
        int p[2];
        ScopedFd keeper;
        if (f.kind() == img::Fd::PIPE) {
          if (pipe2(p, O_CLOEXEC) < 0) return ErrnoError("pipe2");
        } else {
          // A FIFO opens without blocking once one end is open: keep an
          // O_RDWR end of our own for that, and to refill it.
          keeper.reset(open(f.path().c_str(), O_RDWR | O_NONBLOCK | O_CLOEXEC));
          if (!keeper.valid()) return ErrnoError("open(FIFO %s)", f.path().c_str());
          p[0] = open(f.path().c_str(), O_RDONLY | O_NONBLOCK | O_CLOEXEC);
          p[1] = open(f.path().c_str(), O_WRONLY | O_NONBLOCK | O_CLOEXEC);
          if (p[0] < 0 || p[1] < 0) return ErrnoError("open(FIFO %s)", f.path().c_str());
        }
        held_.emplace_back(p[0]);
        held_.emplace_back(p[1]);
        if (f.pipe_size() && fcntl(p[1], F_SETPIPE_SZ, f.pipe_size()) < 0)
          LOG_WARN("pipe %lu: F_SETPIPE_SZ(%u): %m", f.ino(), f.pipe_size());
        if (auto q = queues.find(f.ino()); q != queues.end()) {
          int old = fcntl(p[1], F_GETFL);
          fcntl(p[1], F_SETFL, old | O_NONBLOCK);
          for (const std::string& c : q->second->chunks())
            TRY(WriteAllNonblocking(p[1], c, "a pipe"));
          fcntl(p[1], F_SETFL, old);
        }
        if (keeper.valid()) held_.push_back(std::move(keeper));
        it = pipes_.emplace(f.ino(), std::make_pair(p[0], p[1])).first;
      }
      int end = (f.flags() & O_ACCMODE) == O_WRONLY ? it->second.second : it->second.first;
      local = fcntl(end, F_DUPFD_CLOEXEC, 3);
      if (local < 0) return ErrnoError("dup(pipe end)");
      break;
    }
    case img::Fd::UNIX_SOCKET: {
      auto it = sockets_.find(f.ino());
      if (it == sockets_.end()) {
        int sv[2];
        if (socketpair(AF_UNIX, f.sock_type() | SOCK_CLOEXEC, 0, sv) < 0)
          return ErrnoError("socketpair(type %d)", f.sock_type());
        held_.emplace_back(sv[0]);
        held_.emplace_back(sv[1]);
        sockets_[f.ino()] = sv[0];
        sockets_[f.peer_ino()] = sv[1];
        // What each end had waiting to be read, sent again by its peer.
        for (auto [ino, from] :
             {std::make_pair(f.ino(), sv[1]), std::make_pair(f.peer_ino(), sv[0])}) {
          auto q = queues.find(ino);
          if (q == queues.end()) continue;
          for (const std::string& c : q->second->chunks())
            if (send(from, c.data(), c.size(), MSG_DONTWAIT) != static_cast<ssize_t>(c.size()))
              return ErrnoError("refilling socket %lu (%zu bytes)", ino, c.size());
        }
        it = sockets_.find(f.ino());
      }
      local = fcntl(it->second, F_DUPFD_CLOEXEC, 3);
      if (local < 0) return ErrnoError("dup(socket)");
      break;
    }
    default:
      return MakeError("fd %d has an unknown kind %d", f.fd(), f.kind());
  }
  fds_[f.file_id()] = ScopedFd(local);
  if (f.kind() != img::Fd::INHERITED) TRY(SetDescriptionFlags(local, f.flags()));
  return Ok{};
}

Result<FileTable> FileTable::Create(const std::vector<const img::Fds*>& all,
                                    const img::Shared& shared) {
  FileTable t;
  std::map<uint64_t, const img::QueuedData*> queues;
  for (const img::QueuedData& q : shared.queues()) queues[q.ino()] = &q;
  for (const img::MemfdData& m : shared.memfds()) {
    // Sealable, so that Finish() can add the seals it had (F_SEAL_SEAL alone
    // for one made unsealable).
    int fd = memfd_create(m.name().c_str(), MFD_CLOEXEC | MFD_ALLOW_SEALING);
    if (fd < 0) return ErrnoError("memfd_create(%s)", m.name().c_str());
    t.held_.emplace_back(fd);
    if (m.mode() && fchmod(fd, m.mode()) < 0)
      return ErrnoError("fchmod(memfd %s, 0%o)", m.name().c_str(), m.mode());
    if (m.mode() && fchown(fd, m.uid(), m.gid()) < 0)
      return ErrnoError("fchown(memfd %s, %u, %u)", m.name().c_str(), m.uid(), m.gid());
    if (ftruncate(fd, m.size()) < 0) return ErrnoError("ftruncate(memfd %s)", m.name().c_str());
    if (!m.data().empty() &&
        pwrite(fd, m.data().data(), m.data().size(), 0) != static_cast<ssize_t>(m.data().size()))
      return ErrnoError("filling memfd %s", m.name().c_str());
    t.memfds_[m.ino()] = fd;
  }
  for (const img::Fds* fds : all)
    for (const img::Fd& f : fds->fds())
      if (!t.fds_.count(f.file_id())) TRY(t.Add(f, queues));
  return t;
}

Status FileTable::Finish(const std::vector<const img::Fds*>& all, const img::Shared& shared) const {
  for (const img::Fds* fds : all)
    for (const img::Fd& f : fds->fds()) {
      int local = LocalFd(f.file_id());
      if (local < 0 || f.kind() == img::Fd::INHERITED) continue;
      if (f.owner_pid()) {
        f_owner_ex owner{static_cast<__pid_type>(f.owner_type()), f.owner_pid()};
        if (fcntl(local, F_SETOWN_EX, &owner) < 0)
          return ErrnoError("fcntl(fd %d, F_SETOWN_EX, %d)", f.fd(), f.owner_pid());
      }
      if (f.owner_signal() && fcntl(local, F_SETSIG, f.owner_signal()) < 0)
        return ErrnoError("fcntl(fd %d, F_SETSIG, %d)", f.fd(), f.owner_signal());
    }
  for (const img::MemfdData& m : shared.memfds()) {
    auto it = memfds_.find(m.ino());
    if (it == memfds_.end() || !m.seals()) continue;
    if (fcntl(it->second, F_ADD_SEALS, m.seals()) < 0)
      return ErrnoError("fcntl(memfd %s, F_ADD_SEALS, 0x%x)", m.name().c_str(), m.seals());
  }
  return Ok{};
}

Status InstallFds(Puppet& p, const img::Fds& fds, const FileTable& table) {
  RemoteSyscalls& rs = p.rs();
  // Drop what it inherited (criu-lite's files, or its parent's).
  std::string dir = Format("/proc/%d/fd", p.pid());
  std::vector<int> open_now;
  if (DIR* d = opendir(dir.c_str())) {
    while (dirent* e = readdir(d))
      if (e->d_name[0] != '.') open_now.push_back(atoi(e->d_name));
    closedir(d);
  }
  for (int fd : open_now) TRY(rs.Checked(Format("close(%d)", fd).c_str(), SYS_close, fd));
  if (fds.fds_size() == 0) return Ok{};
  int max_fd = 0;
  for (const img::Fd& f : fds.fds()) max_fd = std::max(max_fd, f.fd());
  // A pidfd for criu-lite, parked above every fd the task will have.
  int64_t pidfd = TRY(rs.Checked("pidfd_open(criu-lite)", __NR_pidfd_open, getpid(), 0));
  int64_t parked =
      TRY(rs.Checked("fcntl(F_DUPFD_CLOEXEC)", SYS_fcntl, pidfd, F_DUPFD_CLOEXEC, max_fd + 1));
  TRY(rs.Checked("close", SYS_close, pidfd));
  for (const img::Fd& f : fds.fds()) {
    int local = table.LocalFd(f.file_id());
    if (local < 0) return MakeError("fd %d: no description %u", f.fd(), f.file_id());
    int64_t tmp = TRY(rs.Checked(Format("pidfd_getfd(fd %d: %s)", f.fd(), f.path().c_str()).c_str(),
                                 __NR_pidfd_getfd, parked, local, 0));
    if (tmp != f.fd()) {
      TRY(rs.Checked(Format("dup3(%ld, %d)", tmp, f.fd()).c_str(), SYS_dup3, tmp, f.fd(),
                     f.cloexec() ? O_CLOEXEC : 0));
      TRY(rs.Checked("close", SYS_close, tmp));
    } else {
      TRY(rs.Checked("fcntl(F_SETFD)", SYS_fcntl, f.fd(), F_SETFD, f.cloexec() ? FD_CLOEXEC : 0));
    }
  }
  TRY(rs.Checked("close(pidfd)", SYS_close, parked));
  return Ok{};
}

}  // namespace crl
