// pidfd: a process (or, with PIDFD_THREAD, a thread) of the tree, by its
// PID, which restore keeps; or one that had exited and been reaped ("Pid:
// -1" in fdinfo). A pidfd names a task, so restore makes it once every task
// of the tree exists (AfterTree): pidfd_open of the same PID, or, for a
// reaped one, of a child criu-lite forks and reaps for the purpose (the
// pidfd then behaves as before: readable, no process to signal or wait
// for). A pidfd for a task outside the tree is refused, named: restore
// could not know that task is still the one it was.
#include <fcntl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <cstring>

#include "files/fd_kind.h"

namespace crl {
namespace {

constexpr unsigned kPidfdThread = O_EXCL;  // PIDFD_THREAD (6.9+)

class Pidfd : public FdKind {
 public:
  img::Fd::KindCase arm() const override { return img::Fd::kPidfd; }
  const char* name() const override { return "pidfd"; }
  bool AfterTree() const override { return true; }

  bool Claims(const FdSeen& s) const override { return s.anon == "anon_inode:pidfd"; }

  Status Collect(const FdSeen& s, img::Fd* out) const override {
    size_t at = s.fdinfo.find("\nPid:");
    int pid;
    if (at == std::string::npos || sscanf(s.fdinfo.c_str() + at + 5, "%d", &pid) != 1)
      return MakeError("PID %d fd %d: a pidfd's fdinfo without its PID: %s", s.pid, s.fd,
                       s.fdinfo.c_str());
    out->mutable_pidfd()->set_pid(pid);
    return Ok{};
  }

  Status Resolve(const std::vector<FdRef>& mine, TreeFds& tree) const override {
    for (const FdRef& r : mine) {
      pid_t target = r.fd->pidfd().pid();
      if (target > 0 && !tree.HasTask(target))
        return MakeError(
            "PID %d fd %d is a pidfd for PID %d, outside the tree: restore could not "
            "tell that PID still names the same process",
            r.pid, r.fd->fd(), target);
    }
    return Ok{};
  }

  Result<ScopedFd> Open(const img::Fd& f, OpenFiles& files) const override {
    unsigned flags = f.flags() & kPidfdThread;
    pid_t pid = files.LivePid(f.pidfd().pid());
    if (pid > 0) {
      ScopedFd fd(static_cast<int>(syscall(SYS_pidfd_open, pid, flags)));
      if (!fd.valid()) return ErrnoError("pidfd_open(%d)", pid);
      return fd;
    }
    // A reaped process: a child of criu-lite's that has exited and been
    // reaped before the pidfd is handed over.
    pid_t child = fork();
    if (child < 0) return ErrnoError("fork (for a pidfd of a reaped process)");
    if (child == 0) _exit(0);
    ScopedFd fd(static_cast<int>(syscall(SYS_pidfd_open, child, 0)));
    int saved = errno;
    waitpid(child, nullptr, 0);
    if (!fd.valid()) return MakeError("pidfd_open(a child just forked): %s", strerror(saved));
    return fd;
  }
};

}  // namespace

const FdKind& PidfdKind() {
  static const Pidfd k;
  return k;
}

}  // namespace crl
