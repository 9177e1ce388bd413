// epoll: its registrations, from fdinfo ("tfd: N events: X data: D ..."),
// re-added at restore by the first task given the epoll, once that task has
// all its fds, because the kernel keys each registration by the target's
// file and the fd number it was added under.
//
// That number may since have been closed, or given to another file, while
// the kernel keeps the registration as long as the file lives (held by
// another fd, or another process). Dump finds
// which of the task's fds holds each target's file now (kcmp
// KCMP_EPOLL_TFD); restore lends that file the old number for the
// EPOLL_CTL_ADD and gives the number back to whatever holds it. A target
// whose file no fd of the task holds any more is lent, for the call, the
// description of the process of the tree that holds it (criu-lite's copy);
// one only a process outside the tree holds is refused, named.
//
// Readiness: level-triggered events come back by themselves. An
// edge-triggered target that is ready at restore reports one edge after
// restore (the kernel checks a new registration's readiness): an edge the
// program had not collected yet is delivered, one it had already collected
// is delivered again, a spurious wakeup such a program already has to
// read through. A fired EPOLLONESHOT is disarmed again by collecting that
// edge before any other target is added; one whose target is ready for
// nothing at restore stays armed for EPOLLERR and EPOLLHUP, which the kernel
// adds to every registration (restore says so).
#include <fcntl.h>
#include <linux/kcmp.h>
#include <sys/epoll.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cinttypes>
#include <cstdio>
#include <cstring>
#include <map>
#include <sstream>

#include "base/log.h"
#include "files/fd_kind.h"
#include "kernel/kernel_probe.h"
#include "kernel/proc_task.h"
#include "kernel/remote_syscalls.h"
#include "kernel/task_fd.h"

namespace crl {
namespace {

// The bits a registration keeps when a ONESHOT fires (EP_PRIVATE_BITS).
constexpr uint32_t kPrivateBits = EPOLLWAKEUP | EPOLLONESHOT | EPOLLET | EPOLLEXCLUSIVE;
// Every readiness a target can report: a fired ONESHOT is added with these
// so that, if its target is ready for any, one epoll_wait fires it again.
constexpr uint32_t kAnyReadiness = EPOLLIN | EPOLLOUT | EPOLLPRI | EPOLLRDNORM | EPOLLRDBAND |
                                   EPOLLWRNORM | EPOLLWRBAND | EPOLLMSG | EPOLLRDHUP;

bool Fired(const img::EpollTarget& t) { return (t.events() & ~kPrivateBits) == 0; }

// Whether fd FD of HOLDER holds the file of registration (TFD, TOFF) of
// EPFD, an epoll of PID.
Result<bool> HoldsTarget(pid_t holder, int fd, pid_t pid, int epfd, int tfd, int toff) {
  kcmp_epoll_slot slot{static_cast<uint32_t>(epfd), static_cast<uint32_t>(tfd),
                       static_cast<uint32_t>(toff)};
  long r = syscall(SYS_kcmp, holder, pid, KCMP_EPOLL_TFD, fd, &slot);
  if (r < 0 && errno == EBADF) return false;  // FD is not open
  if (r < 0)
    return ErrnoError("kcmp(PID %d fd %d, KCMP_EPOLL_TFD, PID %d epoll fd %d target %d)", holder,
                      fd, pid, epfd, tfd);
  return r == 0;
}

class Epoll : public FdKind {
 public:
  img::Fd::KindCase arm() const override { return img::Fd::kEpoll; }
  const char* name() const override { return "epoll"; }

  bool Claims(const FdSeen& s) const override { return s.anon == "anon_inode:eventpoll"; }

  Status Collect(const FdSeen& s, img::Fd* out) const override {
    img::EpollFd* e = out->mutable_epoll();
    std::map<int, int> seen_tfd;  // registrations so far under each number
    std::optional<std::vector<int>> task_fds;
    std::istringstream in(s.fdinfo);
    for (std::string line; std::getline(in, line);) {
      int tfd;
      uint32_t events;
      unsigned long long data;
      if (line.rfind("tfd:", 0) != 0) continue;
      if (sscanf(line.c_str(), "tfd: %d events: %x data: %llx", &tfd, &events, &data) != 3)
        return MakeError("PID %d fd %d: an epoll's fdinfo line that does not parse: %s", s.pid,
                         s.fd, line.c_str());
      if (!Kernel().kcmp_epoll_tfd)
        return MakeError(
            "PID %d fd %d is an epoll with targets, and this kernel has no kcmp "
            "KCMP_EPOLL_TFD (4.13+, CONFIG_KCMP) to tell which file each one is",
            s.pid, s.fd);
      int toff = seen_tfd[tfd]++;
      img::EpollTarget* t = e->add_targets();
      t->set_tfd(tfd);
      t->set_events(events);
      t->set_data(data);
      t->set_toff(toff);
      t->set_now_at(-1);  // another process's, found by Resolve
      if (TRY(HoldsTarget(s.pid, tfd, s.pid, s.fd, tfd, toff))) {
        t->set_now_at(tfd);
        continue;
      }
      if (!task_fds) task_fds = TRY(ProcTask(s.pid).Fds());
      for (int fd : *task_fds)
        if (fd != s.fd && TRY(HoldsTarget(s.pid, fd, s.pid, s.fd, tfd, toff))) {
          t->set_now_at(fd);
          break;
        }
    }
    return Ok{};
  }

  // A target no fd of the epoll's task holds: another process of the tree
  // does, or it is refused.
  Status Resolve(const std::vector<FdRef>& mine, TreeFds& tree) const override {
    for (const FdRef& r : mine)
      for (img::EpollTarget& t : *r.fd->mutable_epoll()->mutable_targets()) {
        if (t.now_at() >= 0) continue;
        for (const FdRef& c : tree.all())
          if (c.pid != r.pid &&
              TRY(HoldsTarget(c.pid, c.fd->fd(), r.pid, r.fd->fd(), t.tfd(), t.toff()))) {
            t.set_holder_pid(c.pid);
            t.set_holder_fd(c.fd->fd());
            break;
          }
        if (!t.holder_pid())
          return MakeError(
              "PID %d fd %d is an epoll watching fd %d (events 0x%x, data 0x%lx), which was "
              "closed while its file stays registered, and no fd of the tree holds that file "
              "(a process outside the tree does): not carried",
              r.pid, r.fd->fd(), t.tfd(), t.events(), t.data());
      }
    return Ok{};
  }

  Result<ScopedFd> Open(const img::Fd&, OpenFiles&) const override {
    ScopedFd fd(epoll_create1(EPOLL_CLOEXEC));
    if (!fd.valid()) return ErrnoError("epoll_create1");
    return fd;
  }

  Status Settle(const img::Fd& f, const img::Fds& task_fds, RemoteSyscalls& rs,
                RemoteScratch& scratch,
                const std::function<int(pid_t, int)>& local_fd_of) const override {
    Lender lend{task_fds, rs, scratch, local_fd_of};
    // Fired ONESHOTs first, alone in the epoll, so that the epoll_wait that
    // fires them again collects nothing else.
    int fired = 0;
    for (const img::EpollTarget& t : f.epoll().targets())
      if (Fired(t)) {
        TRY(Add(f.fd(), t, t.events() | kAnyReadiness, lend));
        fired++;
      }
    if (fired) {
      RemoteScratch::Frame frame(scratch);
      RemotePtr events = TRY(scratch.Reserve(fired * sizeof(epoll_event)));
      int64_t n = TRY(rs.Checked("epoll_wait", SYS_epoll_wait, f.fd(), events, fired, 0));
      if (n < fired)
        LOG_WARN(
            "fd %d: %ld of its %d fired EPOLLONESHOT registrations are ready for nothing now: "
            "they stay armed for EPOLLERR and EPOLLHUP until the program re-arms them",
            f.fd(), fired - n, fired);
    }
    for (const img::EpollTarget& t : f.epoll().targets())
      if (!Fired(t)) TRY(Add(f.fd(), t, t.events(), lend));
    return Ok{};
  }

 private:
  // What lending a number takes: the task's fds, syscalls in it, and
  // criu-lite's copies of other processes' descriptions.
  struct Lender {
    const img::Fds& task_fds;
    RemoteSyscalls& rs;
    RemoteScratch& scratch;
    const std::function<int(pid_t, int)>& local_fd_of;
  };

  // EPOLL_CTL_ADD of T under its number, lending that number to the file
  // that holds it now if that is another fd (of the task, or given to it
  // for the moment from another process's).
  static Status Add(int epfd, const img::EpollTarget& t, uint32_t events, Lender& l) {
    RemoteSyscalls& rs = l.rs;
    RemoteScratch::Frame frame(l.scratch);
    epoll_event ev{};
    ev.events = events;
    ev.data.u64 = t.data();
    RemotePtr at = TRY(l.scratch.Push(ev));
    std::string what = Format("epoll_ctl(%d, ADD, %d, events 0x%x)", epfd, t.tfd(), events);
    if (t.now_at() == t.tfd()) {
      TRY(rs.Checked(what.c_str(), SYS_epoll_ctl, epfd, EPOLL_CTL_ADD, t.tfd(), at));
      return Ok{};
    }
    int from = t.now_at();
    RemoteFd lent;  // another process's description, for the moment
    if (from < 0) {
      int local = l.local_fd_of(t.holder_pid(), t.holder_fd());
      if (local < 0)
        return MakeError("epoll target %d: PID %d fd %d is not in the tree's files", t.tfd(),
                         t.holder_pid(), t.holder_fd());
      RemotePtr scm = TRY(l.scratch.Reserve(kScmScratchBytes));
      FdGiver giver = TRY(FdGiver::Open(rs, scm));
      lent = TRY(giver.Give(local, Format("PID %d fd %d", t.holder_pid(), t.holder_fd())));
      from = lent.get();
    }
    const img::Fd* holder = nullptr;  // what has the number now
    for (const img::Fd& other : l.task_fds.fds())
      if (other.fd() == t.tfd()) holder = &other;
    int64_t aside = -1;
    if (holder) aside = TRY(rs.Checked("fcntl(F_DUPFD)", SYS_fcntl, t.tfd(), F_DUPFD, 0));
    // The description lent may have come at that very number (free).
    if (from == t.tfd())
      lent.Release();  // closed below by its number
    else
      TRY(rs.Checked("dup3", SYS_dup3, from, t.tfd(), 0));
    TRY(rs.Checked(what.c_str(), SYS_epoll_ctl, epfd, EPOLL_CTL_ADD, t.tfd(), at));
    if (holder) {
      TRY(rs.Checked("dup3", SYS_dup3, aside, t.tfd(), holder->cloexec() ? O_CLOEXEC : 0));
      TRY(rs.Checked("close", SYS_close, aside));
    } else {
      TRY(rs.Checked("close", SYS_close, t.tfd()));
    }
    return Ok{};
  }
};

}  // namespace

const FdKind& EpollKind() {
  static const Epoll k;
  return k;
}

}  // namespace crl
