// Taking a task's fds into criu-lite: the one place that does it
// (pidfd_getfd, Linux 5.6; `criu-lite check` says when it is missing).
#pragma once

#include <sys/types.h>

#include <cstdint>

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

}  // namespace crl
