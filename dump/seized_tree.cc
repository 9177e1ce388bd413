#include "dump/seized_tree.h"

#include <sys/ptrace.h>
#include <sys/wait.h>

#include <algorithm>
#include <chrono>
#include <csignal>
#include <optional>
#include <set>
#include <utility>

#include "base/interrupt.h"
#include "base/log.h"
#include "kernel/cgroups.h"
#include "kernel/proc_parsers.h"
#include "kernel/proc_task.h"
#include "kernel/uapi.h"
#include "kernel/vma_list.h"

namespace crl {
namespace {

std::vector<pid_t> ListThreads(pid_t pid) {
  // A task gone meanwhile has no threads.
  std::vector<pid_t> out = ProcTask(pid).Threads().value_or({});
  // The leader first.
  auto it = std::find(out.begin(), out.end(), pid);
  if (it != out.end()) std::rotate(out.begin(), it, it + 1);
  return out;
}

// PTRACE_SEIZE and PTRACE_INTERRUPT of thread TID of PID: whether seccomp is
// suspended for it, or nothing if it has exited meanwhile.
Result<std::optional<bool>> Attach(pid_t pid, pid_t tid) {
  bool suspended =
      ptrace(PTRACE_SEIZE, tid, 0, PTRACE_O_TRACESYSGOOD | PTRACE_O_SUSPEND_SECCOMP) == 0;
  if (!suspended && errno == EPERM && ptrace(PTRACE_SEIZE, tid, 0, PTRACE_O_TRACESYSGOOD) == 0) {
    // Seized, but criu-lite may not suspend seccomp: CheckTaskCarried
    // refuses a task that has it.
  } else if (!suspended) {
    if (errno == ESRCH) return std::optional<bool>();  // the thread exited meanwhile
    // EPERM also says it is exiting (a zombie cannot be traced): the same.
    int saved = errno;
    auto st = ProcTask(pid, tid).Stat();
    if (saved == EPERM && (!st.ok() || st->state == 'Z' || st->state == 'X'))
      return std::optional<bool>();
    errno = saved;
    return ErrnoError("ptrace(PTRACE_SEIZE, pid=%d)", tid);
  }
  TRY(PtraceInterrupt(tid));
  return std::optional<bool>(suspended);
}

// PID and every process below it, as /proc shows them now.
std::set<pid_t> Descendants(pid_t root) {
  std::set<pid_t> out = {root};
  std::vector<pid_t> todo = {root};
  while (!todo.empty()) {
    pid_t pid = todo.back();
    todo.pop_back();
    for (pid_t tid : ListThreads(pid))
      for (pid_t child : ProcTask(pid, tid).Children())
        if (out.insert(child).second) todo.push_back(child);
  }
  return out;
}

// Whether a thread sits in a group stop (SIGSTOP and its kin); its state
// says D while the v1 freezer holds it, its wait channel still says where.
bool JobStopped(pid_t pid, pid_t tid) {
  auto wchan = ProcTask(pid, tid).Read("wchan");
  return wchan.ok() && *wchan == "do_signal_stop";
}

}  // namespace

// The cgroup is frozen, its processes checked against the tree and every
// thread of theirs attached and interrupted, then thawed: each stops for
// criu-lite before it runs a single instruction of its own again.
Status SeizedTree::AttachFrozen(const std::string& cgroup) {
  FrozenCgroup frozen = TRY(FrozenCgroup::Freeze(cgroup, std::chrono::seconds(10)));
  Status st = [&]() -> Status {
    std::set<pid_t> tree = Descendants(root_);
    for (pid_t pid : TRY(CgroupProcesses(cgroup))) {
      if (!tree.count(pid)) {
        auto comm = ProcTask(pid).Read("comm");
        return MakeError(
            "PID %d (%s) is in cgroup %s but not in the tree of PID %d: a dump of the tree "
            "would leave it out (dump the process it descends from)",
            pid, comm.ok() ? comm->substr(0, comm->find('\n')).c_str() : "?", cgroup.c_str(),
            root_);
      }
      for (pid_t tid : ListThreads(pid)) {
        // A thread stopped by a signal cannot run, so cannot fork: it is
        // left to the walk after the thaw. Attached while frozen, it would
        // hang the attach: PTRACE_SEIZE wakes a stopped thread to trap, a
        // wake-up a thread frozen by the v1 freezer never gets, thaw or not.
        if (JobStopped(pid, tid)) continue;
        if (auto suspended = TRY(Attach(pid, tid))) attached_[tid] = *suspended;
      }
    }
    FaultPoint("dump-cgroup-frozen");
    return Ok{};
  }();
  Status thaw = frozen.Thaw().Context("thawing the frozen cgroup");
  TRY(st);
  return thaw;
}

// Threads attached under the freeze that the walk did not claim (it failed
// first): each is let go at the stop it makes.
void SeizedTree::DetachUnclaimed() {
  for (const auto& [tid, suspended] : std::exchange(attached_, {})) {
    Result<WaitStatus> ws = WaitForTask(tid);
    if (!ws.ok() || ws->exited() || ws->signaled()) continue;
    // The stop of criu-lite's interrupt, or a signal's (delivered as it goes).
    int sig = ws->ptrace_event() == PTRACE_EVENT_STOP ? 0 : ws->stop_sig();
    ptrace(PTRACE_DETACH, tid, 0, sig);
  }
}

Status SeizedTree::SeizeThread(SeizedProcess& p, pid_t tid) {
  std::optional<bool> suspended;
  if (auto it = attached_.find(tid); it != attached_.end()) {
    suspended = it->second;
    attached_.erase(it);
  } else {
    suspended = TRY(Attach(p.pid, tid));
  }
  if (!suspended) return Ok{};
  p.threads.push_back({tid});
  SeizedThread& t = p.threads.back();
  t.seccomp_suspended = *suspended;
  for (;;) {
    WaitStatus ws = TRY(WaitForTask(tid));
    if (ws.exited() || ws.signaled()) {
      // It ended on its own while being seized: not an error. A process all
      // of whose threads end is seen for what it became (SeizeProcess).
      LOG_INFO("task %d ended while being seized: %s", tid, ws.ToString().c_str());
      p.threads.pop_back();
      return Ok{};
    }
    if (ws.ptrace_event() == PTRACE_EVENT_STOP) {
      int sig = ws.stop_sig();
      if (sig != SIGTRAP) {  // a group-stop: SIGSTOP, SIGTSTP...
        p.stopped = true;
        p.stop_signal = sig;
      }
      break;
    }
    // A signal arrived before our interrupt: let it be delivered as it would
    // have been; the interrupt stays pending and stops the task right after.
    if (ptrace(PTRACE_CONT, tid, 0, ws.stop_sig()) < 0)
      return ErrnoError("ptrace(PTRACE_CONT, pid=%d, sig=%d)", tid, ws.stop_sig());
  }
  t.sigmask = TRY(GetSigmask(tid));
  t.sigmask_saved = true;
  // Left as they are: rewound here, a thread killed free with criu-lite
  // would re-enter its syscall instead of seeing the EINTR of a signal that
  // came meanwhile.
  t.live = TRY(GetRegs(tid));
  t.regs = RegistersForRestart(t.live);
  t.restart_code = RestartCode(t.live);
  return Ok{};
}

Status SeizedTree::SeizeProcess(pid_t pid, pid_t ppid) {
  ProcStat st = TRY(ProcTask(pid).Stat());
  if (st.state == 'Z') {
    zombies_.push_back({pid, ppid, st.pgrp, st.session, st.exit_code});
    return Ok{};
  }
  SeizedProcess sp;
  sp.pid = pid;
  sp.ppid = ppid;
  procs_.push_back(std::move(sp));
  for (pid_t tid : ListThreads(pid)) TRY(SeizeThread(procs_.back(), tid));
  if (procs_.back().threads.empty()) {
    // It exited meanwhile: a zombie now (its parent, seized, cannot reap
    // it), or gone if the kernel reaped it (its parent ignores SIGCHLD).
    procs_.pop_back();
    auto now = ProcTask(pid).Stat();
    if (now.ok() && now->state == 'Z')
      zombies_.push_back({pid, ppid, now->pgrp, now->session, now->exit_code});
    return Ok{};
  }
  // A task in a group-stop is left in it: ptrace resumes it for remote
  // syscalls all the same, and a criu-lite killed now leaves it stopped (the
  // kernel's detach puts a task of a stopped group back into its stop). A
  // SIGCONT here ended the stop for good if criu-lite died.
  if (procs_.back().threads[0].tid != pid)
    return MakeError("PID %d: its main thread has exited; not supported yet", pid);
  return Ok{};
}

// One pass over the tree: seizes threads and children that appeared since.
Result<bool> SeizedTree::SeizeNewcomers() {
  std::set<pid_t> known;
  for (const auto& p : procs_) known.insert(p.pid);
  for (const auto& z : zombies_) known.insert(z.pid);
  bool changed = false;
  for (size_t i = 0; i < procs_.size(); i++) {
    pid_t pid = procs_[i].pid;
    std::set<pid_t> have;
    for (const auto& t : procs_[i].threads) have.insert(t.tid);
    for (pid_t tid : ListThreads(pid)) {
      if (have.count(tid)) continue;
      TRY(SeizeThread(procs_[i], tid));
      changed = true;
    }
    std::vector<pid_t> tids;
    for (const auto& t : procs_[i].threads) tids.push_back(t.tid);
    for (pid_t tid : tids) {
      for (pid_t child : ProcTask(pid, tid).Children()) {
        if (known.count(child)) continue;
        known.insert(child);
        TRY(SeizeProcess(child, pid));
        changed = true;
      }
    }
  }
  return changed;
}

Result<SeizedTree> SeizedTree::Seize(pid_t root, const std::string& freeze_cgroup) {
  SeizedTree tree;  // from here on, the destructor lets go of what is seized
  tree.root_ = root;
  if (!freeze_cgroup.empty())
    TRY(tree.AttachFrozen(freeze_cgroup).Context("--freeze-cgroup " + freeze_cgroup));
  TRY(tree.SeizeProcess(root, 0));
  if (tree.procs_.empty()) return MakeError("PID %d is a zombie", root);
  // Tasks may fork or start threads until every one of them is stopped.
  for (int pass = 0;; pass++) {
    TRY(CheckStop());
    if (pass > 100) return MakeError("the tree of PID %d keeps changing; giving up", root);
    if (!TRY(tree.SeizeNewcomers())) break;
  }
  // Attached under the freeze but not met in the walk (none should be: the
  // walk covers every process checked to be of the tree): let go.
  tree.DetachUnclaimed();
  return tree;
}

Status SeizedTree::ReleaseProcess(SeizedProcess& p) {
  Status first = Ok{};
  // A task seized in a group-stop goes back to it as it is let go: its
  // group is still stopped.
  for (SeizedThread& t : p.threads) {
    // Each thread is where it was seized, inside the kernel's signal code
    // with its own registers and mask (RemoteSyscalls::Mode::kWindow): let
    // go, it goes on through that code, which restarts the syscall it was in
    // or, for a signal that came during the dump or comes now, returns its
    // EINTR to the handler, as it would have.
    Status d = PtraceDetach(t.tid);
    if (first.ok() && !d.ok()) first = d;
  }
  return first;
}

void SeizedTree::SignalKill() {
  kill_ = true;
  for (auto& p : procs_) kill(p.pid, SIGKILL);
}

Status SeizedTree::Release() {
  if (released_) return Ok{};
  released_ = true;
  DetachUnclaimed();
  if (kill_) {
    for (auto& p : procs_) kill(p.pid, SIGKILL);
    // A traced task reports its death to us; wait so that all are gone
    // before dump returns (their parents reap them). Whichever reports
    // first: the last thread of a PID namespace's init to exit waits in
    // the kernel until every other task of the namespace, its own traced
    // threads included, has been reaped by us; and a traced leader's death
    // is reported only once its other threads are reaped.
    std::set<pid_t> left;
    for (const auto& p : procs_)
      for (const SeizedThread& t : p.threads) left.insert(t.tid);
    auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(kTaskWaitSeconds);
    while (!left.empty() && std::chrono::steady_clock::now() < deadline) {
      bool reaped = false;
      for (pid_t tid : std::vector<pid_t>(left.begin(), left.end())) {
        int status;
        pid_t r = waitpid(tid, &status, __WALL | WNOHANG);
        if ((r == tid && (WIFEXITED(status) || WIFSIGNALED(status))) ||
            (r < 0 && errno == ECHILD)) {
          left.erase(tid);
          reaped = true;
        }
      }
      if (!reaped) usleep(1000);
    }
    for (pid_t tid : left)
      LOG_ERROR("killing the tree: thread %d did not die within %d s (state %s)", tid,
                kTaskWaitSeconds, TaskStateLetter(tid).c_str());
    return Ok{};
  }
  Status first = Ok{};
  for (auto& p : procs_) {
    Status s = ReleaseProcess(p);
    if (first.ok() && !s.ok()) first = s;
  }
  return first;
}

SeizedTree::SeizedTree(SeizedTree&& o) noexcept
    : root_(std::exchange(o.root_, -1)),
      procs_(std::move(o.procs_)),
      zombies_(std::move(o.zombies_)),
      attached_(std::move(o.attached_)),
      kill_(o.kill_),
      released_(std::exchange(o.released_, true)) {}

SeizedTree::~SeizedTree() {
  if (root_ < 0) return;  // moved from
  Status s = Release();
  if (!s.ok()) LOG_ERROR("letting the tree go: %s", s.error().message.c_str());
}

Result<std::unique_ptr<RemoteSyscalls>> SeizedTree::Window(pid_t pid) const {
  for (const SeizedProcess& p : procs_) {
    if (p.pid != pid || p.threads.empty()) continue;
    for (const VmaInfo& v : TRY(ListVmas(pid)))
      if (v.path == "[vdso]") {
        RemotePtr site = TRY(FindSyscallInsn(pid, v.start, v.end));
        const SeizedThread& leader = p.threads[0];
        return std::make_unique<RemoteSyscalls>(leader.tid, site, leader.live,
                                                RemoteSyscalls::Mode::kWindow);
      }
    return MakeError("PID %d has no [vdso] to run remote syscalls from", pid);
  }
  return MakeError("PID %d is not a seized process of the tree", pid);
}

}  // namespace crl
