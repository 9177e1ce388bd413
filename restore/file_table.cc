#include "restore/file_table.h"

#include <fcntl.h>
#include <sched.h>
#include <sys/eventfd.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>

#include "base/log.h"
#include "kernel/proc_parsers.h"
#include "kernel/proc_task.h"
#include "kernel/task_fd.h"
#include "kernel/uapi.h"

namespace crl {
namespace {

constexpr int kDescriptionFlags = O_NONBLOCK | O_APPEND | O_ASYNC | O_DIRECT | O_NOATIME;

Status SetDescriptionFlags(int fd, uint32_t flags) {
  if (fcntl(fd, F_SETFL, flags & kDescriptionFlags) < 0) return ErrnoError("fcntl(F_SETFL)");
  return Ok{};
}

struct flock LockRange(const img::FileLock& l) {
  struct flock fl {};
  fl.l_type = l.write() ? F_WRLCK : F_RDLCK;
  fl.l_whence = SEEK_SET;
  fl.l_start = l.start();
  fl.l_len = l.len();
  return fl;
}

const char* LockName(const img::FileLock& l) {
  switch (l.kind()) {
    case img::FileLock::FLOCK:
      return "flock";
    case img::FileLock::OFD:
      return "OFD lock";
    default:
      return "POSIX lock";
  }
}

// What taking a lock back failed of, named.
Error LockError(int err, const img::Fd& f, const img::FileLock& l) {
  return MakeError("fd %d: taking back its %s %s (bytes %lu+%lu) on %s: %s%s", f.fd(),
                   l.write() ? "write" : "read", LockName(l), l.start(), l.len(), f.path().c_str(),
                   strerror(err),
                   err == EAGAIN || err == EACCES || err == EWOULDBLOCK
                       ? " (another process holds it now)"
                       : "");
}

// A flock or OFD lock, on criu-lite's copy of the description.
Status TakeLock(int fd, const img::Fd& f, const img::FileLock& l) {
  if (l.kind() == img::FileLock::FLOCK) {
    if (flock(fd, (l.write() ? LOCK_EX : LOCK_SH) | LOCK_NB) < 0) return LockError(errno, f, l);
    return Ok{};
  }
  struct flock fl = LockRange(l);
  if (fcntl(fd, F_OFD_SETLK, &fl) < 0) return LockError(errno, f, l);
  return Ok{};
}

}  // namespace

Status TakeTaskLocks(Puppet& p, pid_t image_pid, const img::Fds& fds) {
  for (const img::Fd& f : fds.fds())
    for (const img::FileLock& l : f.locks()) {
      bool flock_of_mine = l.kind() == img::FileLock::FLOCK && l.pid() == image_pid;
      if (l.kind() != img::FileLock::POSIX && !flock_of_mine) continue;
      RemoteScratch::Frame frame(p.scratch());
      int64_t r;
      if (flock_of_mine) {
        r = TRY(p.rs().Syscall(SYS_flock, f.fd(), (l.write() ? LOCK_EX : LOCK_SH) | LOCK_NB));
      } else {
        RemotePtr at = TRY(p.scratch().Push(LockRange(l)));
        r = TRY(p.rs().Syscall(SYS_fcntl, f.fd(), F_SETLK, at));
      }
      if (r < 0) return LockError(static_cast<int>(-r), f, l);
    }
  return Ok{};
}

Result<int> FileTable::Memfd(uint64_t ino) const {
  int fd = files_.Memfd(ino);
  if (fd < 0) return MakeError("memfd %lu is not in shared.img", ino);
  return fd;
}

int FileTable::LocalFd(uint32_t file_id) const {
  auto it = fds_.find(file_id);
  return it == fds_.end() ? -1 : it->second.get();
}

bool InheritKeyMatches(const std::string& key, const img::Fd& f) {
  if (f.has_external()) return key == f.external().key();
  return key == f.path() || "/" + key == f.path();
}

int FileTable::Inherited(const img::Fd& f) const {
  for (const auto& [key, fd] : inherit_)
    if (InheritKeyMatches(key, f)) return fd;
  return -1;
}

Status FileTable::Add(const img::Fd& f) {
  if (fds_.count(f.file_id())) return Ok{};
  if (int given = Inherited(f); given >= 0) {
    ScopedFd local(fcntl(given, F_DUPFD_CLOEXEC, 3));
    if (!local.valid()) return ErrnoError("--inherit-fd fd[%d]:%s", given, f.path().c_str());
    fds_[f.file_id()] = std::move(local);
    callers_.insert(f.file_id());
    return Ok{};
  }
  const FdKind* kind = TRY(KindOf(f));
  ScopedFd local = TRY(kind->Open(f, files_));
  // Restore's own stdio keeps its own flags.
  if (!f.has_inherited()) TRY(SetDescriptionFlags(local.get(), f.flags()));
  fds_[f.file_id()] = std::move(local);
  return Ok{};
}

Result<FileTable> FileTable::Create(const std::vector<const img::Fds*>& all,
                                    const img::Shared& shared,
                                    const std::map<std::string, int>& inherit,
                                    std::map<pid_t, OpenFiles::Stamper> stampers,
                                    const std::function<void(OpenFiles&)>& prepare,
                                    const std::map<const img::Fds*, TaskNamespaces>& namespaces,
                                    const std::map<uint64_t, int>& networks) {
  FileTable t(shared);
  if (prepare) prepare(t.files_);
  t.inherit_ = inherit;
  t.files_.SetStampers(std::move(stampers));
  for (const auto& [key, fd] : inherit) {
    bool used = false;
    for (const img::Fds* fds : all)
      for (const img::Fd& f : fds->fds()) used |= InheritKeyMatches(key, f);
    if (!used)
      LOG_WARN("--inherit-fd fd[%d]:%s: no fd of the tree had %s", fd, key.c_str(), key.c_str());
  }
  for (const img::MemfdData& m : shared.memfds()) {
    // Sealable, so that Finish() can add the seals it had (F_SEAL_SEAL alone
    // for one made unsealable).
    ScopedFd fd(memfd_create(m.name().c_str(), MFD_CLOEXEC | MFD_ALLOW_SEALING));
    if (!fd.valid()) return ErrnoError("memfd_create(%s)", m.name().c_str());
    if (m.mode() && fchmod(fd.get(), m.mode()) < 0)
      return ErrnoError("fchmod(memfd %s, 0%o)", m.name().c_str(), m.mode());
    if (m.mode() && fchown(fd.get(), m.uid(), m.gid()) < 0)
      return ErrnoError("fchown(memfd %s, %u, %u)", m.name().c_str(), m.uid(), m.gid());
    if (ftruncate(fd.get(), m.size()) < 0)
      return ErrnoError("ftruncate(memfd %s)", m.name().c_str());
    if (!m.data().empty() && pwrite(fd.get(), m.data().data(), m.data().size(), 0) !=
                                 static_cast<ssize_t>(m.data().size()))
      return ErrnoError("filling memfd %s", m.name().c_str());
    t.files_.AddMemfd(m.ino(), std::move(fd));
  }
  struct Opening {
    int rank;
    const img::Fd* f;
    TaskNamespaces namespaces;
  };
  std::vector<Opening> order;
  for (const img::Fds* fds : all) {
    auto ns = namespaces.find(fds);
    for (const img::Fd& f : fds->fds()) {
      const FdKind* kind = TRY(KindOf(f));
      if (kind->AfterTree()) continue;
      Opening o{kind->OpenOrder(f), &f, ns == namespaces.end() ? TaskNamespaces{} : ns->second};
      if (auto net = networks.find(f.net_ns()); f.net_ns() && net != networks.end()) {
        std::erase_if(o.namespaces, [](const auto& n) { return n.second == CLONE_NEWNET; });
        o.namespaces.push_back({net->second, CLONE_NEWNET});
      }
      order.push_back(std::move(o));
    }
  }
  std::stable_sort(order.begin(), order.end(),
                   [](const Opening& a, const Opening& b) { return a.rank < b.rank; });
  std::map<int, int> in;  // flag -> the namespace fd joined
  for (const Opening& o : order) {
    for (const auto& [fd, flag] : o.namespaces) {
      if (in.count(flag) && in[flag] == fd) continue;
      if (setns(fd, flag) < 0)
        return ErrnoError("setns(the %s namespace of fd %d's task)",
                          flag == CLONE_NEWNS ? "mount" : "network", o.f->fd());
      in[flag] = fd;
    }
    TRY(t.Add(*o.f));
  }
  // The stamper is the caller's for the time of Create (it runs on the
  // thread that opened the files): none is kept past it.
  t.files_.SetStampers({});
  return t;
}

Status FileTable::Finish(const std::vector<const img::Fds*>& all, const img::Shared& shared) const {
  for (const img::Fds* fds : all)
    for (const img::Fd& f : fds->fds()) {
      int local = LocalFd(f.file_id());
      if (local < 0 || f.has_inherited() || callers_.count(f.file_id())) continue;
      if (f.owner_pid()) {
        f_owner_ex owner{static_cast<__pid_type>(f.owner_type()), files_.LivePid(f.owner_pid())};
        if (fcntl(local, F_SETOWN_EX, &owner) < 0)
          return ErrnoError("fcntl(fd %d, F_SETOWN_EX, %d)", f.fd(), f.owner_pid());
      }
      if (f.owner_signal() && fcntl(local, F_SETSIG, f.owner_signal()) < 0)
        return ErrnoError("fcntl(fd %d, F_SETSIG, %d)", f.fd(), f.owner_signal());
    }
  // flock and OFD locks belong to the description: taken on criu-lite's
  // (a flock its taker, a task of the tree, took again already is kept as
  // it is: its owner shows in /proc).
  std::set<uint32_t> locked;
  for (const img::Fds* fds : all)
    for (const img::Fd& f : fds->fds())
      if (f.locks_size() && locked.insert(f.file_id()).second)
        for (const img::FileLock& l : f.locks())
          if (l.kind() != img::FileLock::POSIX) TRY(TakeLock(LocalFd(f.file_id()), f, l));
  for (const img::MemfdData& m : shared.memfds()) {
    int fd = files_.Memfd(m.ino());
    if (fd < 0 || !m.seals()) continue;
    if (fcntl(fd, F_ADD_SEALS, m.seals()) < 0)
      return ErrnoError("fcntl(memfd %s, F_ADD_SEALS, 0x%x)", m.name().c_str(), m.seals());
  }
  return Ok{};
}

namespace {

// Each of FDS whose kind is made after the tree (AFTER_TREE) or not, from
// TABLE, at its number.
Status GiveFds(Puppet& p, const img::Fds& fds, const FileTable& table, bool after_tree) {
  RemoteSyscalls& rs = p.rs();
  int max_fd = 0;
  for (const img::Fd& f : fds.fds()) max_fd = std::max(max_fd, f.fd());
  // Criu-lite's pidfd in the task goes above every fd the task will have.
  RemoteScratch::Frame frame(p.scratch());
  RemotePtr scm = TRY(p.scratch().Reserve(kScmScratchBytes));
  FdGiver giver = TRY(FdGiver::Open(rs, scm, max_fd + 1));
  std::vector<const img::Fd*> give;
  for (const img::Fd& f : fds.fds()) {
    if (TRY(KindOf(f))->AfterTree() != after_tree) continue;
    if (table.LocalFd(f.file_id()) < 0)
      return MakeError("fd %d: no description %u", f.fd(), f.file_id());
    give.push_back(&f);
  }
  auto what = [](const img::Fd& f) { return Format("fd %d: %s", f.fd(), f.path().c_str()); };
  // With pidfd_getfd: the fds taken in batches (of up to kChunk, for the
  // task's scratch memory), at numbers the kernel picks, then moved to their
  // own in one more. A number taken that is another fd's is moved out of its
  // way first.
  constexpr size_t kChunk = 1024;
  std::set<int> targets;
  for (const img::Fd* f : give) targets.insert(f->fd());
  if (giver.batches()) {
    for (size_t from = 0; from < give.size(); from += kChunk) {
      size_t n = std::min(kChunk, give.size() - from);
      RemoteBatch take = p.Batch();
      for (size_t i = from; i < from + n; i++)
        giver.AddGive(take, table.LocalFd(give[i]->file_id()), what(*give[i]));
      TRY(take.Run());
      RemoteBatch place = p.Batch();
      std::vector<int> temps;
      for (size_t i = 0; i < n; i++) {
        const img::Fd& f = *give[from + i];
        int got = static_cast<int>(take.result(i));
        if (got != f.fd() && targets.count(got))
          got = static_cast<int>(TRY(
              rs.Checked("fcntl(F_DUPFD_CLOEXEC)", SYS_fcntl, got, F_DUPFD_CLOEXEC, max_fd + 1)));
        int flags = f.cloexec() ? O_CLOEXEC : 0;
        if (got == f.fd()) {
          place.Add("fcntl(F_SETFD)", SYS_fcntl, f.fd(), F_SETFD, flags ? FD_CLOEXEC : 0);
          continue;
        }
        place.Add(Format("dup3(%d, %d)", got, f.fd()), SYS_dup3, got, f.fd(), flags);
        temps.push_back(got);
      }
      for (int fd : temps) place.Add(Format("close(%d)", fd), SYS_close, fd);
      TRY(place.Run());
    }
    return Ok{};
  }
  for (const img::Fd* f : give) {
    RemoteFd got = TRY(giver.Give(table.LocalFd(f->file_id()), what(*f)));
    if (got.get() != f->fd()) {
      TRY(rs.Checked(Format("dup3(%d, %d)", got.get(), f->fd()).c_str(), SYS_dup3, got.get(),
                     f->fd(), f->cloexec() ? O_CLOEXEC : 0));
    } else {
      TRY(rs.Checked("fcntl(F_SETFD)", SYS_fcntl, f->fd(), F_SETFD, f->cloexec() ? FD_CLOEXEC : 0));
      got.Release();  // it is the task's fd now
    }
  }
  return Ok{};
}

}  // namespace

Status InstallFds(Puppet& p, const img::Fds& fds, const FileTable& table) {
  // Drop what it inherited (criu-lite's files, or its parent's).
  // All but criu-lite's pidfd, which is above the task's fds.
  std::vector<int> open_now = TRY(ProcTask(p.pid()).Fds());
  RemoteBatch closes = p.Batch();
  for (int fd : open_now)
    if (fd != CriuLitePidfdInTasks::InTasks()) closes.Add(Format("close(%d)", fd), SYS_close, fd);
  TRY(closes.Run());
  return GiveFds(p, fds, table, false);
}

Status FinishFds(Puppet& p, const img::Fds& fds, FileTable& table,
                 const std::function<const img::Fds*(pid_t)>& fds_of) {
  auto local_fd_of = [&](pid_t pid, int fd) {
    if (const img::Fds* theirs = fds_of(pid))
      for (const img::Fd& f : theirs->fds())
        if (f.fd() == fd) return table.LocalFd(f.file_id());
    return -1;
  };
  bool late = false;
  for (const img::Fd& f : fds.fds())
    if (TRY(KindOf(f))->AfterTree()) {
      TRY(table.Add(f));
      late = true;
    }
  if (late) TRY(GiveFds(p, fds, table, true));
  for (const img::Fd& f : fds.fds())
    if (table.FirstGiven(f.file_id()))
      TRY(TRY(KindOf(f))
              ->Settle(f, fds, p.rs(), p.scratch(), local_fd_of)
              .Context(Format("fd %d", f.fd())));
  return Ok{};
}

}  // namespace crl
