#include "kernel/as_task.h"

#include <fcntl.h>
#include <linux/sched.h>
#include <sched.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>

#include "base/scoped_fd.h"
#include "kernel/uapi.h"

namespace crl {
namespace {

// The child: a copy of criu-lite that may hold locks other threads held, so
// raw system calls only (glibc's set*id would signal threads it does not
// have), and _exit.
[[noreturn]] void Child(const TaskCreds& c, const std::vector<gid_t>& groups,
                        const std::function<int(std::array<int, 2>&)>& op,
                        std::array<int, 2>* out) {
  if (syscall(SYS_setgroups, groups.size(), groups.data()) < 0 ||
      syscall(SYS_setresgid, -1, c.gid, -1) < 0 || syscall(SYS_setresuid, -1, c.uid, -1) < 0)
    syscall(SYS_exit_group, errno);
  syscall(SYS_exit_group, op(*out) < 0 ? errno : 0);
  __builtin_unreachable();
}

}  // namespace

StampingCall StampingCall::Listen(int fd, int backlog) {
  StampingCall c;
  c.kind = kListen;
  c.fd = fd;
  c.backlog = backlog;
  return c;
}

StampingCall StampingCall::Connect(int fd, const sockaddr_un& addr, socklen_t len) {
  StampingCall c;
  c.kind = kConnect;
  c.fd = fd;
  c.addr = addr;
  c.addr_len = len;
  return c;
}

StampingCall StampingCall::Socketpair(int type) {
  StampingCall c;
  c.kind = kSocketpair;
  c.type = type;
  return c;
}

const char* StampingCall::what() const {
  switch (kind) {
    case kListen:
      return "listen()";
    case kConnect:
      return "connect()";
    case kSocketpair:
      return "socketpair()";
  }
  return "?";
}

int StampingCall::Run(std::array<int, 2>& out) const {
  switch (kind) {
    case kListen:
      return listen(fd, backlog);
    case kConnect:
      return connect(fd, reinterpret_cast<const sockaddr*>(&addr), addr_len);
    case kSocketpair:
      return socketpair(AF_UNIX, type | SOCK_CLOEXEC, 0, out.data());
  }
  errno = EINVAL;
  return -1;
}

Result<std::array<int, 2>> AsTask(const TaskCreds& creds, const char* what,
                                  const std::function<int(std::array<int, 2>& out)>& op) {
  void* page = mmap(nullptr, 4096, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
  if (page == MAP_FAILED) return ErrnoError("mmap");
  auto* out = new (page) std::array<int, 2>{-1, -1};
  std::vector<gid_t> groups(creds.groups.begin(), creds.groups.end());
  clone_args args{};
  args.flags = CLONE_FILES;
  args.exit_signal = SIGCHLD;
  pid_t tids[1] = {creds.pid};
  if (creds.pid > 0) {
    args.set_tid = reinterpret_cast<uint64_t>(tids);
    args.set_tid_size = 1;
  }
  long child = syscall(__NR_clone3, &args, sizeof args);
  if (child == 0) Child(creds, groups, op, out);
  if (child < 0) {
    int e = errno;
    munmap(page, 4096);
    if (e == EEXIST)
      return CodedError(ErrorCode::kPidInUse, "%s as PID %d: PID %d is in use here", what,
                        creds.pid, creds.pid);
    return ErrnoError(e, "clone3 for %s", what);
  }
  int status = 0;
  while (waitpid(child, &status, 0) < 0 && errno == EINTR) {
  }
  std::array<int, 2> got = *out;
  munmap(page, 4096);
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
    return ErrnoError(WIFEXITED(status) ? WEXITSTATUS(status) : EINTR, "%s as PID %d (uid %u)",
                      what, creds.pid, creds.uid);
  return got;
}

Result<std::array<int, 2>> AsTaskInPidNamespace(
    int pid_ns, const TaskCreds& creds, const char* what,
    const std::function<int(std::array<int, 2>& out)>& op) {
  ScopedFd own(open("/proc/thread-self/ns/pid_for_children", O_RDONLY | O_CLOEXEC));
  if (!own.valid()) return ErrnoError("open(/proc/thread-self/ns/pid_for_children)");
  if (setns(pid_ns, CLONE_NEWPID) < 0) return ErrnoError("setns(the PID namespace for %s)", what);
  auto made = AsTask(creds, what, op);
  if (setns(own.get(), CLONE_NEWPID) < 0) {
    // Every later child of this thread would be born in the tree's
    // namespace: nothing may go on.
    return ErrnoError("setns(criu-lite's own PID namespace back)");
  }
  return made;
}

}  // namespace crl
