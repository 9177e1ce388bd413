#include "kernel/task_fd.h"

#include <fcntl.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>

namespace crl {

Result<ScopedFd> TakeFd(pid_t pid, int fd) {
  ScopedFd pidfd(syscall(__NR_pidfd_open, pid, 0));
  if (!pidfd.valid()) return ErrnoError("pidfd_open(%d)", pid);
  ScopedFd out(syscall(__NR_pidfd_getfd, pidfd.get(), fd, 0));
  if (!out.valid()) return ErrnoError("pidfd_getfd(pid=%d, fd=%d)", pid, fd);
  return out;
}

Result<ScopedFd> TakeMadeFd(RemoteSyscalls& rs, pid_t pid, int64_t remote, const char* what) {
  Result<ScopedFd> taken = TakeFd(pid, static_cast<int>(remote));
  (void)rs.Syscall(SYS_close, remote);
  if (!taken.ok())
    return MakeError("taking the %s of PID %d: %s", what, pid, taken.error().message.c_str());
  return taken;
}

Result<FdGiver> FdGiver::Open(RemoteSyscalls& rs, int above) {
  RemoteFd pidfd(rs, TRY(rs.Checked("pidfd_open(criu-lite)", __NR_pidfd_open, getpid(), 0)));
  if (pidfd.get() >= above) return FdGiver(rs, std::move(pidfd));
  RemoteFd parked(rs, TRY(rs.Checked("fcntl(F_DUPFD_CLOEXEC)", SYS_fcntl, pidfd.get(),
                                     F_DUPFD_CLOEXEC, above)));
  return FdGiver(rs, std::move(parked));
}

Result<RemoteFd> FdGiver::Give(int local, const std::string& what) {
  int64_t fd = TRY(rs_->Checked(Format("pidfd_getfd(%s)", what.c_str()).c_str(), __NR_pidfd_getfd,
                                pidfd_.get(), local, 0));
  return RemoteFd(*rs_, static_cast<int>(fd));
}

}  // namespace crl
