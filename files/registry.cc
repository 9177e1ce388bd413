// The kinds of fd criu-lite carries, one line each, in the order dump asks
// them whether an fd is theirs: fds that are no file first (by their /proc
// link), then terminals, memfds and message queues before the plain files
// they also look like. An fd no kind claims is refused, named (dump/fd_dump.cc).
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>

#include "files/fd_kind.h"

namespace crl {

const FdKind& PipeKind();           // files/pipe.cc
const FdKind& InetSocketKind();     // files/inet_socket.cc
const FdKind& NetlinkSocketKind();  // files/netlink_socket.cc
const FdKind& UnixSocketKind();     // files/unix_socket.cc
const FdKind& EventfdKind();        // files/eventfd.cc
const FdKind& TimerfdKind();        // files/timerfd.cc
const FdKind& SignalfdKind();       // files/signalfd.cc
const FdKind& EpollKind();          // files/epoll.cc
const FdKind& PidfdKind();          // files/pidfd.cc
const FdKind& InotifyKind();        // files/fsnotify.cc
const FdKind& FanotifyKind();       // files/fsnotify.cc
const FdKind& GhostKind();          // files/ghost.cc
const FdKind& PtyKind();            // files/pty.cc
const FdKind& ExternalKind();       // files/external.cc: --external, claims nothing itself
const FdKind& InheritedKind();      // files/inherited.cc: terminals, --shell-job
const FdKind& MemfdKind();          // files/memfd.cc
const FdKind& MqueueKind();         // files/mqueue.cc
const FdKind& RegularKind();        // files/path_files.cc
const FdKind& DirectoryKind();      // files/path_files.cc
const FdKind& ChardevKind();        // files/path_files.cc
const FdKind& FifoKind();           // files/pipe.cc

const std::vector<const FdKind*>& FdKinds() {
  static const std::vector<const FdKind*> kinds = {
      &PipeKind(),     &InetSocketKind(), &NetlinkSocketKind(), &UnixSocketKind(), &EventfdKind(),
      &TimerfdKind(),  &SignalfdKind(),   &EpollKind(),         &PidfdKind(),      &InotifyKind(),
      &FanotifyKind(), &PtyKind(),        &InheritedKind(),     &MemfdKind(),      &MqueueKind(),
      &GhostKind(),    &RegularKind(),    &DirectoryKind(),     &ChardevKind(),    &FifoKind(),
      &ExternalKind(),
  };
  return kinds;
}

Result<const FdKind*> KindOf(const img::Fd& f) {
  for (const FdKind* k : FdKinds())
    if (k->arm() == f.kind_case()) return k;
  return MakeError("fd %d has no kind criu-lite knows (arm %d)", f.fd(), f.kind_case());
}

Status FdKind::Resolve(const std::vector<FdRef>&, TreeFds&) const { return Ok{}; }
Status FdKind::Check(const img::Fd&, bool) const { return Ok{}; }
Status FdKind::Settle(const img::Fd&, const img::Fds&, RemoteSyscalls&, RemoteScratch&,
                      const std::function<int(pid_t, int)>&) const {
  return Ok{};
}

Status TreeFds::External(FdRef ref, const char* what) const {
  img::Fd& f = *ref.fd;
  bool stdio = f.fd() <= 2;
  if (stdio && shell_job_) {
    f.mutable_inherited();  // CRIU's --shell-job
    return Ok{};
  }
  return MakeError("PID %d fd %d is %s (%s)%s", ref.pid, f.fd(), what, f.path().c_str(),
                   stdio ? "; dump with --shell-job to let the restored task use restore's own "
                           "stdin/stdout/stderr"
                         : ": not supported yet");
}

OpenFiles::OpenFiles(const img::Shared& shared) : shared_(shared) {
  for (const img::QueuedData& q : shared.queues()) queues_[q.ino()] = &q;
}

const img::QueuedData* OpenFiles::Queued(uint64_t ino) const {
  auto it = queues_.find(ino);
  return it == queues_.end() ? nullptr : it->second;
}

int OpenFiles::Memfd(uint64_t ino) const {
  auto it = memfds_.find(ino);
  return it == memfds_.end() ? -1 : it->second;
}

void OpenFiles::AddMemfd(uint64_t ino, ScopedFd fd) { memfds_[ino] = Hold(std::move(fd)); }

int OpenFiles::Hold(ScopedFd fd) {
  held_.push_back(std::move(fd));
  return held_.back().get();
}

Status OpenFiles::FinishRepairs() {
  // Out of repair mode the socket probes its peer's window at once: the
  // connection goes on where it stopped.
  for (int fd : repairing_) {
    int off = TCP_REPAIR_OFF;
    if (setsockopt(fd, SOL_TCP, TCP_REPAIR, &off, sizeof off) < 0)
      return ErrnoError("taking a TCP connection out of repair mode");
  }
  repairing_.clear();
  return Ok{};
}

}  // namespace crl
