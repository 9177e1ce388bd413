// Taking a task's fds into criu-lite, and giving criu-lite's to a task: the
// one place that does either. With pidfd_getfd (Linux 5.6) criu-lite or the
// task takes the fd directly; without it (or with
// --disable-kernel-feature pidfd-getfd) the task passes it over a unix
// datagram socket with SCM_RIGHTS, in a remote-syscall window, the socket
// of criu-lite's made in the task's network namespace. Restore hands page
// files, memfds and every file a task had as fds this way, never as paths
// of criu-lite's: a task in other namespaces could not open those.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <utility>

#include "base/result.h"
#include "base/scoped_fd.h"
#include "kernel/remote_syscalls.h"

namespace crl {

// Scratch memory in the task the SCM_RIGHTS path needs for one message.
constexpr size_t kScmScratchBytes = 256;

// A copy of task PID's fd FD in criu-lite: the same open file description.
// Without pidfd_getfd, through a window the current TaskWindows opens.
Result<ScopedFd> TakeFd(pid_t pid, int fd);

// Takes REMOTE, an fd the task behind RS just made in a remote syscall
// (WHAT, for messages), and closes it in the task, whatever happens: the
// task is left with the fds it had. SCRATCH: kScmScratchBytes in the task.
Result<ScopedFd> TakeMadeFd(RemoteSyscalls& rs, RemotePtr scratch, pid_t pid, int64_t remote,
                            const char* what);

// Where TakeFd opens a remote-syscall window in a task (the dump sets it
// while it holds the tree seized): for its lifetime.
class TaskWindows {
 public:
  using Opener = std::function<Result<std::unique_ptr<RemoteSyscalls>>(pid_t pid)>;
  explicit TaskWindows(Opener open);
  ~TaskWindows();
  TaskWindows(const TaskWindows&) = delete;
  TaskWindows& operator=(const TaskWindows&) = delete;
};

// Restore: every task being restored holds a pidfd of criu-lite at fd FD,
// inherited when the root was made (opened before it is), and
// FdGiver takes criu-lite's fds through it: a task in a PID namespace of its
// own could not find criu-lite to pidfd_open it. For its lifetime.
class CriuLitePidfdInTasks {
 public:
  // Opens the pidfd in criu-lite at the lowest free number from ABOVE (out
  // of the way of every fd of the tree).
  static Result<CriuLitePidfdInTasks> Open(int above);
  CriuLitePidfdInTasks(CriuLitePidfdInTasks&& o) noexcept
      : fd_(std::move(o.fd_)), number_(std::exchange(o.number_, -1)) {}
  CriuLitePidfdInTasks& operator=(CriuLitePidfdInTasks&&) = delete;
  ~CriuLitePidfdInTasks();
  // Its number, in criu-lite until the root is made, then in every task.
  int fd() const { return number_; }
  // Closes criu-lite's own copy, once the root has its.
  void CloseOwn() { fd_.reset(); }
  // The number the tasks hold it at, or -1 (none, or no restore running).
  static int InTasks();

 private:
  CriuLitePidfdInTasks(ScopedFd fd, int number) : fd_(std::move(fd)), number_(number) {}
  ScopedFd fd_;
  int number_;
};

// Gives a task criu-lite's fds. With pidfd_getfd the task holds a pidfd of
// criu-lite (at or above ABOVE, out of the way of the fds it will have) and
// takes each fd from it; without, each comes over SCM_RIGHTS.
class FdGiver {
 public:
  // SCRATCH: kScmScratchBytes in the task, for as long as the giver lives.
  static Result<FdGiver> Open(RemoteSyscalls& rs, RemotePtr scratch, int above = 0);
  // LOCAL, criu-lite's fd, as a new close-on-exec fd in the task (WHAT
  // names it in messages).
  Result<RemoteFd> Give(int local, const std::string& what);
  // With pidfd_getfd, Give can be a syscall of a RemoteBatch (AddGive),
  // whose result is the fd; without, fds come one by one.
  bool batches() const { return pidfd_ >= 0; }
  void AddGive(RemoteBatch& batch, int local, const std::string& what);

 private:
  FdGiver(RemoteSyscalls& rs, RemotePtr scratch, RemoteFd own_pidfd, int pidfd)
      : rs_(&rs), scratch_(scratch), own_pidfd_(std::move(own_pidfd)), pidfd_(pidfd) {}
  RemoteSyscalls* rs_;
  RemotePtr scratch_;
  RemoteFd own_pidfd_;  // one opened for this giver, closed with it
  int pidfd_;           // -1: SCM_RIGHTS
};

}  // namespace crl
