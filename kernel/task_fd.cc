#include "kernel/task_fd.h"

#include <fcntl.h>
#include <sched.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstddef>
#include <cstring>
#include <thread>

#include "kernel/kernel_probe.h"
#include "kernel/proc_task.h"

namespace crl {
namespace {

TaskWindows::Opener* g_windows = nullptr;

// A unix datagram socket of criu-lite's in TID's network namespace (abstract
// names are per namespace): made in a thread that enters it, if it is not
// criu-lite's own.
Result<ScopedFd> SocketNear(pid_t tid) {
  struct stat mine, theirs;
  std::string ns = ProcTask(tid).Path("ns/net");
  if (stat("/proc/self/ns/net", &mine) < 0 || stat(ns.c_str(), &theirs) < 0)
    return ErrnoError("stat(%s)", ns.c_str());
  auto make = [] { return ScopedFd(socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0)); };
  if (mine.st_ino == theirs.st_ino && mine.st_dev == theirs.st_dev) {
    ScopedFd s = make();
    if (!s.valid()) return ErrnoError("socket(AF_UNIX)");
    return s;
  }
  ScopedFd nsfd(open(ns.c_str(), O_RDONLY | O_CLOEXEC));
  if (!nsfd.valid()) return ErrnoError("open(%s)", ns.c_str());
  ScopedFd s;
  int err = 0;
  std::thread([&] {
    // A thread's network namespace is its own: entering it leaves the
    // others in criu-lite's.
    if (setns(nsfd.get(), CLONE_NEWNET) < 0) {
      err = errno;
      return;
    }
    s = make();
    if (!s.valid()) err = errno;
  }).join();
  if (err) return ErrnoError(err, "a socket in the network namespace of %d", tid);
  return s;
}

// A fresh abstract name: "\0criu-lite-PID-N".
sockaddr_un FreshName(socklen_t* len) {
  static std::atomic<unsigned> serial{0};
  sockaddr_un a{};
  a.sun_family = AF_UNIX;
  int n = snprintf(a.sun_path + 1, sizeof a.sun_path - 1, "criu-lite-%d-%u", getpid(), serial++);
  *len = offsetof(sockaddr_un, sun_path) + 1 + n;
  return a;
}

// One message of one byte, with room for one fd (holding FD if >= 0) and a
// destination (TO, if any), laid out for the task at AT.
struct RemoteMessage {
  static constexpr size_t kHdr = 0, kIov = 64, kByte = 80, kCmsg = 96, kName = 128;
  static_assert(kName + sizeof(sockaddr_un) <= kScmScratchBytes);
  uint8_t bytes[kScmScratchBytes] = {};

  RemoteMessage(RemotePtr at, int fd, const sockaddr_un* to, socklen_t to_len) {
    msghdr m{};
    iovec iov{reinterpret_cast<void*>(at.addr() + kByte), 1};
    m.msg_iov = reinterpret_cast<iovec*>(at.addr() + kIov);
    m.msg_iovlen = 1;
    m.msg_control = reinterpret_cast<void*>(at.addr() + kCmsg);
    m.msg_controllen = CMSG_SPACE(sizeof(int));
    if (to) {
      m.msg_name = reinterpret_cast<void*>(at.addr() + kName);
      m.msg_namelen = to_len;
      memcpy(bytes + kName, to, to_len);
    }
    memcpy(bytes + kHdr, &m, sizeof m);
    memcpy(bytes + kIov, &iov, sizeof iov);
    cmsghdr c{};
    c.cmsg_len = CMSG_LEN(sizeof(int));
    c.cmsg_level = SOL_SOCKET;
    c.cmsg_type = SCM_RIGHTS;
    memcpy(bytes + kCmsg, &c, sizeof c);
    memcpy(bytes + kCmsg + sizeof c, &fd, sizeof fd);
  }
};

// The task behind RS sends its fd FD to a socket of criu-lite's.
Result<ScopedFd> TakeThroughTask(RemoteSyscalls& rs, RemotePtr at, int fd) {
  ScopedFd mine = TRY(SocketNear(rs.tid()));
  socklen_t len;
  sockaddr_un name = FreshName(&len);
  if (bind(mine.get(), reinterpret_cast<sockaddr*>(&name), len) < 0)
    return ErrnoError("bind(abstract unix socket)");
  RemoteFd theirs(
      rs, TRY(rs.Checked("socket(AF_UNIX)", SYS_socket, AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0)));
  RemoteMessage msg(at, fd, &name, len);
  TRY(WriteRemote(rs.tid(), at, msg.bytes, sizeof msg.bytes));
  TRY(rs.Checked(Format("sendmsg(SCM_RIGHTS fd %d)", fd).c_str(), SYS_sendmsg, theirs.get(), at,
                 0));
  char byte;
  iovec iov{&byte, 1};
  alignas(cmsghdr) char control[CMSG_SPACE(sizeof(int))];
  msghdr m{};
  m.msg_iov = &iov;
  m.msg_iovlen = 1;
  m.msg_control = control;
  m.msg_controllen = sizeof control;
  if (recvmsg(mine.get(), &m, MSG_CMSG_CLOEXEC | MSG_DONTWAIT) < 0)
    return ErrnoError("recvmsg(fd %d of task %d)", fd, rs.tid());
  cmsghdr* c = CMSG_FIRSTHDR(&m);
  if (!c || c->cmsg_type != SCM_RIGHTS) return MakeError("task %d sent no fd", rs.tid());
  int got;
  memcpy(&got, CMSG_DATA(c), sizeof got);
  return ScopedFd(got);
}

// The task behind RS receives LOCAL from a socket of criu-lite's.
Result<RemoteFd> GiveThroughTask(RemoteSyscalls& rs, RemotePtr at, int local) {
  socklen_t len;
  sockaddr_un name = FreshName(&len);
  RemoteFd theirs(
      rs, TRY(rs.Checked("socket(AF_UNIX)", SYS_socket, AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0)));
  RemoteMessage msg(at, -1, nullptr, 0);
  memcpy(msg.bytes + RemoteMessage::kName, &name, len);
  TRY(WriteRemote(rs.tid(), at, msg.bytes, sizeof msg.bytes));
  TRY(rs.Checked("bind(abstract unix socket)", SYS_bind, theirs.get(), at + RemoteMessage::kName,
                 len));
  ScopedFd mine = TRY(SocketNear(rs.tid()));
  char byte = 0;
  iovec iov{&byte, 1};
  alignas(cmsghdr) char control[CMSG_SPACE(sizeof(int))] = {};
  msghdr m{};
  m.msg_name = &name;
  m.msg_namelen = len;
  m.msg_iov = &iov;
  m.msg_iovlen = 1;
  m.msg_control = control;
  m.msg_controllen = sizeof control;
  cmsghdr* c = CMSG_FIRSTHDR(&m);
  c->cmsg_len = CMSG_LEN(sizeof(int));
  c->cmsg_level = SOL_SOCKET;
  c->cmsg_type = SCM_RIGHTS;
  memcpy(CMSG_DATA(c), &local, sizeof local);
  if (sendmsg(mine.get(), &m, 0) < 0) return ErrnoError("sendmsg(SCM_RIGHTS to %d)", rs.tid());
  TRY(rs.Checked("recvmsg(SCM_RIGHTS)", SYS_recvmsg, theirs.get(), at,
                 MSG_CMSG_CLOEXEC | MSG_DONTWAIT));
  cmsghdr got_hdr;
  int got;
  RemotePtr cmsg = at + RemoteMessage::kCmsg;
  TRY(ReadRemote(rs.tid(), cmsg, &got_hdr, sizeof got_hdr));
  if (got_hdr.cmsg_level != SOL_SOCKET || got_hdr.cmsg_type != SCM_RIGHTS)
    return MakeError("task %d received no fd", rs.tid());
  TRY(ReadRemote(rs.tid(), cmsg + sizeof got_hdr, &got, sizeof got));
  return RemoteFd(rs, got);
}

}  // namespace

TaskWindows::TaskWindows(Opener open) { g_windows = new Opener(std::move(open)); }
TaskWindows::~TaskWindows() {
  delete g_windows;
  g_windows = nullptr;
}

Result<ScopedFd> TakeFd(pid_t pid, int fd) {
  if (!Kernel().pidfd_getfd) {
    if (!g_windows)
      return MakeError("taking fd %d of PID %d: no pidfd_getfd, and no window in the task", fd,
                       pid);
    std::unique_ptr<RemoteSyscalls> rs = TRY((*g_windows)(pid));
    RemotePtr at = TRY(rs->Scratch());
    return TakeThroughTask(*rs, at, fd).Context(Format("taking fd %d of PID %d", fd, pid));
  }
  ScopedFd pidfd(syscall(__NR_pidfd_open, pid, 0));
  if (!pidfd.valid()) return ErrnoError("pidfd_open(%d)", pid);
  ScopedFd out(syscall(__NR_pidfd_getfd, pidfd.get(), fd, 0));
  if (!out.valid()) return ErrnoError("pidfd_getfd(pid=%d, fd=%d)", pid, fd);
  return out;
}

Result<ScopedFd> TakeMadeFd(RemoteSyscalls& rs, RemotePtr scratch, pid_t pid, int64_t remote,
                            const char* what) {
  RemoteFd made(rs, static_cast<int>(remote));  // closed in the task, whatever happens
  Result<ScopedFd> taken =
      Kernel().pidfd_getfd ? TakeFd(pid, made.get()) : TakeThroughTask(rs, scratch, made.get());
  if (!taken.ok())
    return MakeError("taking the %s of PID %d: %s", what, pid, taken.error().message.c_str());
  return taken;
}

namespace {
int g_pidfd_in_tasks = -1;
}  // namespace

Result<CriuLitePidfdInTasks> CriuLitePidfdInTasks::Open(int above) {
  ScopedFd self(syscall(__NR_pidfd_open, getpid(), 0));
  if (!self.valid()) return ErrnoError("pidfd_open(criu-lite)");
  ScopedFd at(fcntl(self.get(), F_DUPFD_CLOEXEC, above));
  if (!at.valid()) return ErrnoError("fcntl(F_DUPFD_CLOEXEC, %d) for criu-lite's pidfd", above);
  g_pidfd_in_tasks = at.get();
  int number = at.get();
  return CriuLitePidfdInTasks(std::move(at), number);
}

CriuLitePidfdInTasks::~CriuLitePidfdInTasks() {
  if (number_ >= 0) g_pidfd_in_tasks = -1;
}

int CriuLitePidfdInTasks::InTasks() { return g_pidfd_in_tasks; }

Result<FdGiver> FdGiver::Open(RemoteSyscalls& rs, RemotePtr scratch, int above) {
  if (!Kernel().pidfd_getfd) return FdGiver(rs, scratch, RemoteFd(), -1);
  // The one every task holds, where it is out of the way: used as it is.
  if (int held = g_pidfd_in_tasks; held >= above) return FdGiver(rs, scratch, RemoteFd(), held);
  int held = g_pidfd_in_tasks;
  RemoteFd pidfd(rs, held >= 0
                         ? TRY(rs.Checked("fcntl(criu-lite's pidfd, F_DUPFD_CLOEXEC)", SYS_fcntl,
                                          held, F_DUPFD_CLOEXEC, above))
                         : TRY(rs.Checked("pidfd_open(criu-lite)", __NR_pidfd_open, getpid(), 0)));
  if (pidfd.get() < above)
    pidfd = RemoteFd(rs, TRY(rs.Checked("fcntl(F_DUPFD_CLOEXEC)", SYS_fcntl, pidfd.get(),
                                        F_DUPFD_CLOEXEC, above)));
  int number = pidfd.get();
  return FdGiver(rs, scratch, std::move(pidfd), number);
}

Result<RemoteFd> FdGiver::Give(int local, const std::string& what) {
  if (pidfd_ < 0) return GiveThroughTask(*rs_, scratch_, local).Context("giving " + what);
  int64_t fd = TRY(rs_->Checked(Format("pidfd_getfd(%s)", what.c_str()).c_str(), __NR_pidfd_getfd,
                                pidfd_, local, 0));
  return RemoteFd(*rs_, static_cast<int>(fd));
}

void FdGiver::AddGive(RemoteBatch& batch, int local, const std::string& what) {
  batch.Add(Format("pidfd_getfd(%s)", what.c_str()), __NR_pidfd_getfd, pidfd_, local, 0);
}

}  // namespace crl
