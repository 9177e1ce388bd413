// A process tree held in ptrace stops for the duration of a dump. Every
// thread of every process is seized and interrupted, walking
// /proc/PID/task/TID/children until the tree stops changing. Whatever
// happens, the destructor lets every task go: resumed exactly where it was
// (registers and signal mask as they were; a task that was stopped stays
// stopped) or, when asked, killed. A failed dump never leaves the tree stopped.
//
// With a cgroup to freeze (--freeze-cgroup), the tasks in it are attached
// while it is frozen, so that none forks or starts a thread unseen: a fork
// bomb that a walk of /proc could only chase is stopped at once.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "base/result.h"
#include "kernel/ptrace_task.h"
#include "kernel/remote_syscalls.h"

namespace crl {

struct SeizedThread {
  pid_t tid = -1;
  // Registers as the thread has them, stopped inside the kernel's signal
  // code: left so (outside remote-syscall windows), the thread resumes
  // correctly whoever lets it go, even the kernel when criu-lite dies.
  Registers live{};
  // Registers as they should be restored: an interrupted syscall re-runs.
  Registers regs{};
  int64_t restart_code = 0;  // -ERESTART* of the syscall it was in, if one
  uint64_t sigmask = 0;
  bool sigmask_saved = false;
  // PTRACE_O_SUSPEND_SECCOMP took (criu-lite has CAP_SYS_ADMIN and no
  // seccomp of its own): the thread's filters do not see criu-lite's remote
  // syscalls, and strict mode does not kill it for them.
  bool seccomp_suspended = false;
};

struct SeizedProcess {
  pid_t pid = -1;
  pid_t ppid = -1;
  bool stopped = false;               // in a group-stop (SIGSTOP & co) when seized
  int stop_signal = 0;                // which signal stopped it: SIGSTOP, SIGTSTP, SIGTTIN...
  std::vector<SeizedThread> threads;  // threads[0] is the leader
};

struct ZombieTask {
  pid_t pid = -1, ppid = -1, pgid = 0, sid = 0;
  int exit_status = 0;  // as waitpid would report it
};

class SeizedTree {
 public:
  // FREEZE_CGROUP, if not empty: the directory of a cgroup (cgroup2, or
  // the v1 freezer's) holding the tree's tasks, frozen while they are
  // attached. A task in it that is not of the tree is refused.
  static Result<SeizedTree> Seize(pid_t root, const std::string& freeze_cgroup = "");
  SeizedTree(SeizedTree&& o) noexcept;
  SeizedTree& operator=(SeizedTree&&) = delete;
  ~SeizedTree();

  pid_t root() const { return root_; }
  // Parents before children.
  const std::vector<SeizedProcess>& processes() const { return procs_; }
  const std::vector<ZombieTask>& zombies() const { return zombies_; }
  // A remote-syscall window in the leader of process PID of the tree (run
  // from its vDSO's syscall instruction).
  Result<std::unique_ptr<RemoteSyscalls>> Window(pid_t pid) const;

  // At release, kill the tree instead of resuming it (dump without --leave-running).
  void KillOnRelease() { kill_ = true; }
  // Sends SIGKILL to every process now (Release then waits for them): from
  // here on none of the tree's code runs again, even before it is reaped.
  void SignalKill();
  Status Release();

 private:
  SeizedTree() = default;
  Status SeizeProcess(pid_t pid, pid_t ppid);
  Status SeizeThread(SeizedProcess& p, pid_t tid);
  Result<bool> SeizeNewcomers();
  Status ReleaseProcess(SeizedProcess& p);
  Status AttachFrozen(const std::string& cgroup);
  void DetachUnclaimed();

  pid_t root_ = -1;
  std::vector<SeizedProcess> procs_;
  std::vector<ZombieTask> zombies_;
  // Threads attached while their cgroup was frozen (with whether seccomp is
  // suspended), until the walk of the tree claims them.
  std::map<pid_t, bool> attached_;
  bool kill_ = false;
  bool released_ = false;
};

}  // namespace crl
