// Taking a task's fds into criu-lite, and giving criu-lite's to a task: the
// one place that does either (pidfd_getfd, Linux 5.6; `criu-lite check`
// says when it is missing). Restore hands page files, memfds and every
// file a task had as fds this way, never as paths of criu-lite's: a task in
// other namespaces could not open those.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <string>

#include "base/result.h"
#include "base/scoped_fd.h"
#include "kernel/remote_syscalls.h"

namespace crl {

// A copy of task PID's fd FD in criu-lite: the same open file description.
Result<ScopedFd> TakeFd(pid_t pid, int fd);

// Takes REMOTE, an fd the task behind RS just made in a remote syscall
// (WHAT, for messages), and closes it in the task, whatever happens: the
// task is left with the fds it had.
Result<ScopedFd> TakeMadeFd(RemoteSyscalls& rs, pid_t pid, int64_t remote, const char* what);

// Gives a task criu-lite's fds: the task holds a pidfd of criu-lite (at or
// above ABOVE, out of the way of the fds it will have) and takes each fd
// from it with pidfd_getfd.
class FdGiver {
 public:
  static Result<FdGiver> Open(RemoteSyscalls& rs, int above = 0);
  // LOCAL, criu-lite's fd, as a new close-on-exec fd in the task (WHAT
  // names it in messages).
  Result<RemoteFd> Give(int local, const std::string& what);

 private:
  FdGiver(RemoteSyscalls& rs, RemoteFd pidfd) : rs_(&rs), pidfd_(std::move(pidfd)) {}
  RemoteSyscalls* rs_;
  RemoteFd pidfd_;
};

}  // namespace crl
