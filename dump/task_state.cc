#include "dump/task_state.h"

#include <linux/filter.h>
#include <linux/membarrier.h>
#include <linux/prctl.h>
#include <linux/seccomp.h>
#include <net/if.h>
#include <sched.h>
#include <sys/mman.h>
#include <sys/ptrace.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/time.h>
#include <unistd.h>

#include <csignal>
#include <cstring>
#include <optional>

#include "base/log.h"
#include "dump/mount_dump.h"
#include "images/file_id.h"
#include "images/registers_image.h"
#include "kernel/cgroups.h"
#include "kernel/namespaces.h"
#include "kernel/net_ns.h"
#include "kernel/proc_parsers.h"
#include "kernel/proc_task.h"
#include "kernel/remote_syscalls.h"
#include "kernel/same_cpu.h"
#include "kernel/uapi.h"

namespace crl {
namespace {

std::string Readlink(const std::string& path) {
  char buf[4096];
  ssize_t n = readlink(path.c_str(), buf, sizeof buf - 1);
  return n < 0 ? std::string() : std::string(buf, n);
}

// State only the task can tell: asked with remote syscalls, answers passed
// through a scratch page mapped in the task for the occasion.
Status CollectByRemoteSyscalls(const SeizedProcess& task, const std::vector<VmaInfo>& vmas,
                               SameCpu& same_cpu, uint64_t sig_set, img::TaskCore* core,
                               uint64_t* brk) {
  const SeizedThread& leader = task.threads[0];
  pid_t pid = task.pid;
  RemotePtr site = TRY(SyscallSite(pid, vmas));
  // Pinned until its window has closed (the pin ends after it).
  SameCpu::Pin leader_pin = same_cpu.Task(leader.tid);
  RemoteSyscalls rs(leader.tid, site, leader.live, RemoteSyscalls::Mode::kWindow);
  RemotePtr scratch = TRY(rs.Scratch());
  for (int sig = 1; sig <= 64; sig++) {
    if (sig == SIGKILL || sig == SIGSTOP) continue;
    // Each remote syscall costs several context switches: ask only about
    // signals /proc says are caught or ignored; the rest are SIG_DFL.
    if (!(sig_set & (1ull << (sig - 1)))) continue;
    TRY(rs.Checked(Format("rt_sigaction(%d)", sig).c_str(), SYS_rt_sigaction, sig, 0, scratch, 8));
    kernel_sigaction ka = TRY(ReadRemote(pid, scratch.As<kernel_sigaction>()));
    img::SigAction* sa = core->add_sigactions();
    sa->set_signo(sig);
    sa->set_handler(ka.handler);
    sa->set_flags(ka.flags);
    sa->set_restorer(ka.restorer);
    sa->set_mask(ka.mask);
  }
  std::string timers = TRY(ProcTask(pid).Read("timers"));
  for (const ProcTimer& pt : TRY(ParseProcTimers(timers).Context(Format("PID %d", pid)))) {
    TRY(rs.Checked(Format("timer_gettime(%d)", pt.id).c_str(), SYS_timer_gettime, pt.id, scratch));
    itimerspec its = TRY(ReadRemote(pid, scratch.As<itimerspec>()));
    img::PosixTimer* t = core->add_posix_timers();
    t->set_id(pt.id);
    t->set_clock(pt.clock);
    t->set_notify(pt.notify);
    t->set_signo(pt.signo);
    t->set_sival(pt.sival);
    if (pt.notify & SIGEV_THREAD_ID) t->set_notify_tid(pt.notify_pid);
    t->set_interval_ns(its.it_interval.tv_sec * 1000000000ll + its.it_interval.tv_nsec);
    t->set_value_ns(its.it_value.tv_sec * 1000000000ll + its.it_value.tv_nsec);
    t->set_overrun(TRY(rs.Checked("timer_getoverrun", SYS_timer_getoverrun, pt.id)));
  }
  for (int which : {ITIMER_REAL, ITIMER_VIRTUAL, ITIMER_PROF}) {
    TRY(rs.Checked("getitimer", SYS_getitimer, which, scratch));
    itimerval it = TRY(ReadRemote(pid, scratch.As<itimerval>()));
    if (!it.it_value.tv_sec && !it.it_value.tv_usec && !it.it_interval.tv_sec &&
        !it.it_interval.tv_usec)
      continue;
    img::Itimer* t = core->add_itimers();
    t->set_which(which);
    t->set_interval_sec(it.it_interval.tv_sec);
    t->set_interval_usec(it.it_interval.tv_usec);
    t->set_value_sec(it.it_value.tv_sec);
    t->set_value_usec(it.it_value.tv_usec);
  }
  int64_t r = TRY(rs.Syscall(SYS_prctl, PR_GET_CHILD_SUBREAPER, scratch));
  if (r == 0) {
    int sub = TRY(ReadRemote(pid, scratch.As<int>()));
    core->set_child_subreaper(sub != 0);
  }
  core->set_thp_disable(
      TRY(rs.Checked("prctl(PR_GET_THP_DISABLE)", SYS_prctl, PR_GET_THP_DISABLE, 0, 0, 0, 0)) != 0);
  int64_t dumpable = TRY(rs.Checked("prctl(PR_GET_DUMPABLE)", SYS_prctl, PR_GET_DUMPABLE));
  if (dumpable != 0 && dumpable != 1)
    return MakeError("PID %d has dumpable mode %ld, which no process can set for itself", pid,
                     dumpable);
  core->set_dumpable(dumpable);
  // Kernels before 6.3 cannot list the registrations; there, each private
  // expedited barrier fails (EPERM) unless the process registered for it.
  r = TRY(rs.Syscall(SYS_membarrier, MEMBARRIER_CMD_GET_REGISTRATIONS, 0, 0));
  if (r == -EINVAL) {
    r = 0;
    for (int cmd : {MEMBARRIER_CMD_PRIVATE_EXPEDITED, MEMBARRIER_CMD_PRIVATE_EXPEDITED_SYNC_CORE,
                    MEMBARRIER_CMD_PRIVATE_EXPEDITED_RSEQ})
      if (TRY(rs.Syscall(SYS_membarrier, cmd, 0, 0)) == 0) r |= cmd << 1;  // its REGISTER_
  }
  if (r > 0) core->set_membarrier(r);
  // The current break is in no /proc file; brk(0) returns it.
  *brk = TRY(rs.Syscall(SYS_brk, 0));
  r = TRY(rs.Syscall(SYS_prctl, PR_GET_MDWE, 0, 0, 0, 0));
  if (r > 0)
    return MakeError("PID %d denies writable-executable memory (PR_SET_MDWE): not carried yet",
                     pid);
  // Per thread: its alternate signal stack and TID address.
  for (size_t i = 0; i < task.threads.size(); i++) {
    const SeizedThread& t = task.threads[i];
    img::ThreadCore* th = core->mutable_threads(i);
    // The leader's window is open already: one window per thread at a time.
    std::optional<SameCpu::Pin> pin;
    if (i > 0) pin.emplace(same_cpu.Task(t.tid));
    std::optional<RemoteSyscalls> other;
    RemoteSyscalls& trs =
        i == 0 ? rs : other.emplace(t.tid, site, t.live, RemoteSyscalls::Mode::kWindow);
    RemotePtr own = TRY(trs.Scratch());
    TRY(trs.Checked("sigaltstack", SYS_sigaltstack, 0, own));
    stack_t ss = TRY(ReadRemote(pid, own.As<stack_t>()));
    th->set_altstack_sp(reinterpret_cast<uint64_t>(ss.ss_sp));
    th->set_altstack_size(ss.ss_size);
    th->set_altstack_flags(ss.ss_flags);
    th->mutable_creds()->set_securebits(
        TRY(trs.Checked("prctl(PR_GET_SECUREBITS)", SYS_prctl, PR_GET_SECUREBITS)));
    // /proc/TID (a thread's own directory) says it without a remote syscall,
    // unless criu-lite lacks CAP_SYS_NICE over the task.
    Result<std::string> slack = ProcTask(t.tid).Read("timerslack_ns");
    th->mutable_sched()->set_timer_slack_ns(
        slack.ok() ? strtoull(slack->c_str(), nullptr, 10)
                   : TRY(trs.Checked("prctl(PR_GET_TIMERSLACK)", SYS_prctl, PR_GET_TIMERSLACK)));
    TRY(trs.Checked("prctl(PR_GET_PDEATHSIG)", SYS_prctl, PR_GET_PDEATHSIG, own));
    int pdeath = TRY(ReadRemote(pid, own.As<int>()));
    th->set_pdeath_signal(pdeath);
    r = TRY(trs.Syscall(SYS_prctl, PR_GET_TID_ADDRESS, own));
    if (r == 0) {
      uint64_t tid_addr = TRY(ReadRemote(pid, own.As<uint64_t>()));
      th->set_tid_address(tid_addr);
    }
  }
  return Ok{};
}

// A thread's credentials, from its own status (they are per thread).
Status CollectCreds(pid_t pid, pid_t tid, img::Creds* c) {
  ProcStatus st = TRY(ProcTask(pid, tid).Status());
  for (int i = 0; i < 4; i++) {
    c->add_uids(st.uid[i]);
    c->add_gids(st.gid[i]);
  }
  for (uint32_t g : st.groups) c->add_groups(g);
  c->set_cap_inh(st.cap_inh);
  c->set_cap_prm(st.cap_prm);
  c->set_cap_eff(st.cap_eff);
  c->set_cap_bnd(st.cap_bnd);
  c->set_cap_amb(st.cap_amb);
  c->set_no_new_privs(st.no_new_privs);
  return Ok{};
}

// How a thread is scheduled: asked of the kernel from outside.
Status CollectSched(pid_t pid, pid_t tid, img::Sched* s) {
  int policy = sched_getscheduler(tid);
  if (policy < 0) return ErrnoError("sched_getscheduler(%d)", tid);
  if ((policy & ~SCHED_RESET_ON_FORK) == SCHED_DEADLINE)
    return MakeError("thread %d of PID %d is scheduled SCHED_DEADLINE: not carried yet", tid, pid);
  sched_param sp{};
  if (sched_getparam(tid, &sp) < 0) return ErrnoError("sched_getparam(%d)", tid);
  errno = 0;
  int nice = getpriority(PRIO_PROCESS, tid);
  if (nice == -1 && errno) return ErrnoError("getpriority(%d)", tid);
  cpu_set_t cpus;
  if (sched_getaffinity(tid, sizeof cpus, &cpus) < 0)
    return ErrnoError("sched_getaffinity(%d)", tid);
  long ioprio = syscall(SYS_ioprio_get, 1 /* IOPRIO_WHO_PROCESS */, tid);
  if (ioprio < 0) return ErrnoError("ioprio_get(%d)", tid);
  s->set_policy(policy);
  s->set_rt_priority(sp.sched_priority);
  s->set_nice(nice);
  s->set_affinity(&cpus, sizeof cpus);
  s->set_ioprio(ioprio);
  return Ok{};
}

// A task in a PID namespace its parent in the tree (the root: criu-lite)
// is not in is carried when restore can make that namespace again by
// creating the task in it: the task is the namespace's init, one level
// deeper. A task that made a namespace for its children without entering
// it (unshare(CLONE_NEWPID)) is refused: its children would be put in one
// it is not the init of.
Status CheckPidNamespace(pid_t pid, pid_t parent, const std::string& comm) {
  std::string ns = Readlink(ProcTask(pid).Path("ns/pid"));
  // A namespace made for children none of which was forked yet has no link.
  std::string for_children = Readlink(ProcTask(pid).Path("ns/pid_for_children"));
  bool kernel_has_link = !Readlink("/proc/self/ns/pid_for_children").empty();
  if (!ns.empty() && for_children != ns && (kernel_has_link || !for_children.empty()))
    return MakeError(
        "PID %d (%s) made a PID namespace for its children (%s) that it is not in "
        "(unshare(CLONE_NEWPID)): not carried",
        pid, comm.c_str(), for_children.empty() ? "no child yet" : for_children.c_str());
  std::string ref = Readlink(parent > 0 ? ProcTask(parent).Path("ns/pid") : "/proc/self/ns/pid");
  if (ns.empty() || ref.empty() || ns == ref) return Ok{};
  ProcStatus mine = TRY(ProcTask(pid).Status());
  size_t above = TRY(parent > 0 ? PidNamespaceLevels(parent) : OwnPidNamespaceLevels());
  if (mine.nspid.size() != above + 1 || mine.nspid.back() != 1)
    return MakeError(
        "PID %d (%s) is in another PID namespace (%s; %s is in %s) and is not its init: dump "
        "the namespace's init with its tree, or run criu-lite inside the namespace (nsenter)",
        pid, comm.c_str(), ns.c_str(), parent > 0 ? "its parent" : "criu-lite", ref.c_str());
  return Ok{};
}

// A task's namespace that differs from its parent's in the tree (for the
// root: criu-lite's) is one restore must make again. pid, uts, cgroup, ipc,
// time, net and mnt are carried (net and mnt for the root only, below):
// any other is refused, and so is a task that went
// back into criu-lite's own namespace from its parent's new one (restore
// makes namespaces, it does not leave them), or made a time namespace for
// its children without entering it (as for PID namespaces).
Status CheckNamespaces(pid_t pid, pid_t parent, const std::string& comm) {
  TRY(CheckPidNamespace(pid, parent, comm));
  std::string time = Readlink(ProcTask(pid).Path("ns/time"));
  std::string time_for_children = Readlink(ProcTask(pid).Path("ns/time_for_children"));
  if (time != time_for_children)
    return MakeError(
        "PID %d (%s) made a time namespace for its children (%s) that it is not in "
        "(unshare(CLONE_NEWTIME)): not carried",
        pid, comm.c_str(), time_for_children.c_str());
  for (const char* ns : {"mnt", "net", "uts", "ipc", "cgroup", "time", "user"}) {
    std::string theirs = Readlink(ProcTask(pid).Path(std::string("ns/") + ns));
    std::string ours = Readlink(Format("/proc/self/ns/%s", ns));
    std::string ref = parent > 0 ? Readlink(ProcTask(parent).Path(std::string("ns/") + ns)) : ours;
    if (theirs.empty() || ref.empty() || theirs == ref) continue;  // inherited, or no such kind
    std::string kind = ns;
    bool carried = kind == "uts" || kind == "cgroup" || kind == "ipc" || kind == "time" ||
                   kind == "net" || kind == "mnt";
    if (carried && theirs != ours) continue;  // made again at restore
    if (carried)
      return MakeError(
          "PID %d (%s) is back in criu-lite's %s namespace, which its parent %d left: not "
          "carried",
          pid, comm.c_str(), ns, parent);
    return MakeError(
        "PID %d (%s) is in another %s namespace (%s; %s is in %s): the %s namespace is not "
        "carried yet; run criu-lite inside it (nsenter) to dump the task as part of it",
        pid, comm.c_str(), ns, theirs.c_str(), parent > 0 ? "its parent" : "criu-lite", ref.c_str(),
        ns);
  }
  return Ok{};
}

// A thread's seccomp filters, oldest first. A filter that hands syscalls to
// a user-space supervisor (SECCOMP_RET_USER_NOTIF) is refused: its listener
// is not carried.
Status CollectSeccomp(pid_t pid, pid_t tid, img::ThreadCore* th) {
  ProcStatus st = TRY(ProcTask(pid, tid).Status());
  th->set_seccomp_mode(st.seccomp);
  if (st.seccomp != SECCOMP_MODE_FILTER) return Ok{};
  std::vector<img::SeccompFilter> newest_first;
  for (long i = 0;; i++) {
    long n = ptrace(PTRACE_SECCOMP_GET_FILTER, tid, reinterpret_cast<void*>(i), nullptr);
    if (n < 0 && errno == ENOENT) break;
    if (n < 0) return ErrnoError("ptrace(PTRACE_SECCOMP_GET_FILTER, pid=%d, %ld)", tid, i);
    std::vector<sock_filter> prog(n);
    if (ptrace(PTRACE_SECCOMP_GET_FILTER, tid, reinterpret_cast<void*>(i), prog.data()) != n)
      return ErrnoError("ptrace(PTRACE_SECCOMP_GET_FILTER, pid=%d, %ld)", tid, i);
    for (const sock_filter& insn : prog)
      if (insn.code == (BPF_RET | BPF_K) &&
          (insn.k & SECCOMP_RET_ACTION_FULL) == SECCOMP_RET_USER_NOTIF)
        return MakeError(
            "thread %d of PID %d has a seccomp filter that hands syscalls to a supervisor "
            "(SECCOMP_RET_USER_NOTIF): not carried yet",
            tid, pid);
    __ptrace_seccomp_metadata md{static_cast<uint64_t>(i), 0};
    if (ptrace(PTRACE_SECCOMP_GET_METADATA, tid, sizeof md, &md) < 0)
      return ErrnoError("ptrace(PTRACE_SECCOMP_GET_METADATA, pid=%d, %ld)", tid, i);
    img::SeccompFilter f;
    f.set_program(prog.data(), prog.size() * sizeof(sock_filter));
    f.set_flags(md.flags);
    newest_first.push_back(std::move(f));
  }
  for (auto it = newest_first.rbegin(); it != newest_first.rend(); ++it)
    *th->add_seccomp_filters() = std::move(*it);
  return Ok{};
}

Status CollectThread(pid_t pid, const SeizedThread& t, img::ThreadCore* th) {
  pid_t tid = t.tid;
  th->set_tid(tid);
  std::string comm = TRY(ProcTask(pid, tid).Read("comm"));
  if (!comm.empty() && comm.back() == '\n') comm.pop_back();
  th->set_comm(comm);
  TRY(CollectSeccomp(pid, tid, th));
  TRY(CollectCreds(pid, tid, th->mutable_creds()));
  TRY(CollectSched(pid, tid, th->mutable_sched()));
  *th->mutable_regs() = RegsToImage(t.regs);
  th->set_restart_code(t.restart_code);
  std::vector<uint8_t> xs = TRY(GetXstate(tid));
  th->set_xstate(xs.data(), xs.size());
  th->set_blocked(t.sigmask);
  for (const siginfo_t& si : TRY(PeekSiginfo(tid, false)))
    th->add_pending(std::string(reinterpret_cast<const char*>(&si), sizeof si));
  uint64_t head = 0;
  size_t len = 0;
  if (syscall(SYS_get_robust_list, tid, &head, &len) < 0)
    return ErrnoError("get_robust_list(pid=%d)", tid);
  th->set_robust_list(head);
  th->set_robust_list_len(len);
  __ptrace_rseq_configuration rseq{};
  if (ptrace(static_cast<__ptrace_request>(PTRACE_GET_RSEQ_CONFIGURATION), tid, sizeof rseq,
             &rseq) == sizeof rseq &&
      rseq.rseq_abi_pointer) {
    th->set_rseq_addr(rseq.rseq_abi_pointer);
    th->set_rseq_len(rseq.rseq_abi_size);
    th->set_rseq_sig(rseq.signature);
  }
  return Ok{};
}

}  // namespace

Result<RemotePtr> SyscallSite(pid_t pid, const std::vector<VmaInfo>& vmas) {
  for (const auto& v : vmas)
    if (v.path == "[vdso]") return FindSyscallInsn(pid, v.start, v.end);
  return MakeError("PID %d has no [vdso] to run remote syscalls from", pid);
}

Status CheckTaskCarried(const SeizedProcess& task, pid_t parent, bool root) {
  pid_t pid = task.pid;
  std::string comm = Readlink(ProcTask(pid).Path("exe"));
  comm = comm.substr(comm.rfind('/') + 1);
  TRY(CheckNamespaces(pid, root ? 0 : parent, comm));
  // Strict mode would kill the task at criu-lite's first remote syscall; a
  // filter could kill it or make criu-lite's calls fail.
  for (const SeizedThread& t : task.threads) {
    ProcStatus st = TRY(ProcTask(pid, t.tid).Status());
    if (st.seccomp != 0 && !t.seccomp_suspended)
      return MakeError(
          "thread %d of PID %d (%s) runs under seccomp (%s, %d filters), and criu-lite cannot "
          "suspend it while it works (PTRACE_O_SUSPEND_SECCOMP needs CAP_SYS_ADMIN, and "
          "criu-lite under no seccomp of its own)",
          t.tid, pid, comm.c_str(), st.seccomp == 1 ? "strict mode" : "filter mode",
          st.seccomp_filters);
  }
  if (parent <= 0) return Ok{};
  static const struct {
    int type;
    const char* what;
  } kShared[] = {{1 /* KCMP_VM */, "memory (CLONE_VM, as after vfork)"},
                 {2 /* KCMP_FILES */, "fd table (CLONE_FILES)"},
                 {3 /* KCMP_FS */, "root, cwd and umask (CLONE_FS)"},
                 {4 /* KCMP_SIGHAND */, "signal handlers (CLONE_SIGHAND)"}};
  for (const auto& k : kShared) {
    long r = syscall(SYS_kcmp, pid, parent, k.type, 0, 0);
    if (r < 0) return ErrnoError("kcmp(%d, %d, %d)", pid, parent, k.type);
    if (r == 0)
      return MakeError("PID %d (%s) shares its %s with its parent %d: not carried yet", pid,
                       comm.c_str(), k.what, parent);
  }
  return Ok{};
}

Status CollectPidNamespaces(pid_t pid, const std::vector<pid_t>& tids, img::TreeEntry* e) {
  ProcStatus st = TRY(ProcTask(pid).Status());
  size_t top = TRY(OwnPidNamespaceLevels());  // criu-lite's level, counted from the outermost
  if (st.nspid.size() < top)
    return MakeError("PID %d: /proc/PID/status has no NSpid below criu-lite's level", pid);
  if (st.nspid.size() == top) return Ok{};
  for (size_t i = top; i < st.nspid.size(); i++) e->add_ns_pids(st.nspid[i]);
  e->set_ns_pgid(st.nspgid.empty() ? 0 : st.nspgid.back());
  e->set_ns_sid(st.nssid.empty() ? 0 : st.nssid.back());
  for (pid_t tid : tids) {
    ProcStatus t = tid == pid ? st : TRY(ProcTask(pid, tid).Status());
    if (t.nspid.size() != st.nspid.size())
      return MakeError("thread %d of PID %d is in other PID namespaces than its process", tid, pid);
    for (size_t i = top; i < t.nspid.size(); i++) e->add_ns_tids(t.nspid[i]);
  }
  return Ok{};
}

// An IPC namespace (inode IPC) PID made: its sysctls, System V objects and
// POSIX message queues.
static Status CollectIpcNamespace(pid_t pid, uint64_t ipc, uint64_t shm_limit,
                                  img::TaskCore* core) {
  IpcNamespace ns = TRY(ReadIpcNamespace(pid, shm_limit));
  if (!ns.objects.empty())
    return MakeError(
        "PID %d is in an ipc namespace that holds %zu object(s) not carried yet (%s%s)", pid,
        ns.objects.size(), ns.objects[0].c_str(), ns.objects.size() > 1 ? ", ..." : "");
  img::IpcNamespace* i = core->mutable_ipc();
  for (const auto& [name, value] : ns.sysctls) (*i->mutable_sysctls())[name] = value;
  i->set_ns_id(ipc);
  for (const SysvObject& o : ns.sysv) {
    img::SysvObject* out = i->add_objects();
    out->set_kind(static_cast<img::SysvObject::Kind>(o.kind));
    out->set_id(o.id);
    out->set_key(o.key);
    out->set_mode(o.mode);
    out->set_uid(o.uid);
    out->set_gid(o.gid);
    out->set_msg_qbytes(o.msg_qbytes);
    for (const auto& [type, text] : o.messages) {
      img::SysvMessage* m = out->add_messages();
      m->set_type(type);
      m->set_text(text);
    }
    for (uint16_t v : o.sem_values) out->add_sem_values(v);
    if (o.kind == SysvObject::kSem)
      LOG_WARN(
          "PID %d's ipc namespace holds semaphore set %d: a task's SEM_UNDO adjustments to "
          "it cannot be seen from outside, and are not carried",
          pid, o.id);
    out->set_shm_size(o.shm_size);
    out->set_shm_data(o.shm_data);
    out->set_shm_destroyed(o.shm_destroyed);
    out->set_shm_locked(o.shm_locked);
  }
  for (const PosixQueue& q : ns.posix) {
    img::PosixQueue* out = i->add_posix_queues();
    out->set_name(q.name);
    out->set_mode(q.mode);
    out->set_uid(q.uid);
    out->set_gid(q.gid);
    out->set_max_messages(q.max_messages);
    out->set_message_size(q.message_size);
    for (const auto& [prio, bytes] : q.messages) {
      img::PosixMessage* m = out->add_messages();
      m->set_priority(prio);
      m->set_data(bytes);
    }
  }
  return Ok{};
}

Status CollectNamespaces(pid_t pid, pid_t parent, const DumpOptions& opts, img::TaskCore* core) {
  // The namespace of TYPE the task is in, if its parent's is another.
  auto made_here = [&](const char* type) -> uint64_t {
    uint64_t id = NamespaceId(pid, type);
    return id == NamespaceId(parent > 0 ? parent : getpid(), type) ? 0 : id;
  };
  if (uint64_t uts = made_here("uts")) {
    UtsNames names = TRY(ReadUtsNames(pid));
    img::UtsNamespace* u = core->mutable_uts();
    u->set_hostname(names.hostname);
    u->set_domainname(names.domainname);
    u->set_ns_id(uts);
  }
  if (uint64_t cg = made_here("cgroup")) {
    std::string inside = TRY(ReadCgroupsInNamespace(pid));
    auto roots = CgroupNamespaceRoots(TRY(ProcTask(pid).Read("cgroup")), inside);
    if (!roots.ok())
      return MakeError("PID %d is %s: not carried", pid, roots.error().message.c_str());
    img::CgroupNamespace* c = core->mutable_cgroup_ns();
    for (const std::string& r : *roots) c->add_roots(r);
    c->set_ns_id(cg);
  }
  if (uint64_t net = made_here("net")) {
    NetContents ns;
    auto ext = opts.ext_net_ns.find(net);
    if (parent > 0) {
      // Below the root (unshare -n): a namespace of the tree's own, made
      // again by restore. A link to another namespace would need its other
      // end made there.
      ns = TRY(ReadNetContents(pid));
      for (const NetLink& l : ns.links)
        if (l.kind != "loopback")
          return MakeError(
              "PID %d made a network namespace below the tree's root holding the link %s (%s): "
              "not carried yet (below the root, only loopback)",
              pid, l.name.c_str(), l.kind.c_str());
    } else if (ext != opts.ext_net_ns.end()) {
      // The caller's, joined again at restore: what it holds is the caller's.
      core->mutable_net()->set_external(ext->second);
      core->mutable_net()->set_empty(true);
    } else if (opts.empty_net) {
      core->mutable_net()->set_empty(true);
      core->mutable_net()->set_lo_up(true);
    } else {
      ns = TRY(ReadNetContents(pid));
    }
    if (!ns.not_carried.empty())
      return MakeError("PID %d is in a network namespace holding %s: not carried yet", pid,
                       ns.not_carried[0].c_str());
    img::NetNamespace* n = core->mutable_net();
    n->set_ns_id(net);
    for (const NetLink& l : ns.links) {
      if (l.kind == "loopback") n->set_lo_up(l.flags & IFF_UP);
      img::NetLink* m = n->add_links();
      m->set_name(l.name);
      m->set_kind(l.kind);
      m->set_flags(l.flags);
      m->set_mtu(l.mtu);
      m->set_mac(l.mac);
      m->set_peer(l.peer);
      m->set_peer_outside(l.peer_outside);
    }
    for (const NetAddress& a : ns.addresses) {
      img::NetAddress* m = n->add_addresses();
      m->set_link(a.link);
      m->set_family(a.family);
      m->set_local(a.local);
      m->set_prefix(a.prefix);
      m->set_label(a.label);
      m->set_broadcast(a.broadcast);
      m->set_scope(a.scope);
      m->set_flags(a.flags);
    }
    for (const auto& [path, value] : ns.sysctls) (*n->mutable_sysctls())[path] = value;
    for (const NetRoute& r : ns.routes) {
      img::NetRoute* m = n->add_routes();
      m->set_family(r.family);
      m->set_table(r.table);
      m->set_protocol(r.protocol);
      m->set_scope(r.scope);
      m->set_type(r.type);
      m->set_priority(r.priority);
      m->set_dst(r.dst);
      m->set_dst_len(r.dst_len);
      m->set_gateway(r.gateway);
      m->set_link(r.link);
      m->set_prefsrc(r.prefsrc);
    }
    for (const NetNeighbour& e : ns.neighbours) {
      img::NetNeighbour* m = n->add_neighbours();
      m->set_link(e.link);
      m->set_family(e.family);
      m->set_dst(e.dst);
      m->set_lladdr(e.lladdr);
    }
  }
  if (uint64_t time = made_here("time")) {
    TimeOffsets off = TRY(ReadTimeOffsets(pid));
    img::TimeNamespace* t = core->mutable_time_ns();
    t->set_monotonic_ns(off.monotonic_ns);
    t->set_boottime_ns(off.boottime_ns);
    t->set_ns_id(time);
  }
  if (uint64_t ipc = made_here("ipc")) TRY(CollectIpcNamespace(pid, ipc, opts.ghost_limit, core));
  if (uint64_t mnt = made_here("mnt"))
    TRY(CollectMountNamespace(pid, parent, mnt, opts.ext_mounts, opts.ext_mount_map,
                              core->mutable_mnt()));
  return Ok{};
}

Status CollectTaskCore(const SeizedProcess& task, const std::vector<VmaInfo>& vmas,
                       SameCpu& same_cpu, img::TaskCore* core, uint64_t* brk) {
  pid_t pid = task.pid;
  ProcStat st = TRY(ProcTask(pid).Stat());
  ProcStatus status = TRY(ProcTask(pid).Status());
  core->set_pid(pid);
  core->set_ppid(st.ppid);
  core->set_pgid(st.pgrp);
  core->set_sid(st.session);
  core->set_comm(st.comm);
  core->set_umask(status.umask);
  for (int i = 0; i < 4; i++) {
    core->add_uids(status.uid[i]);
    core->add_gids(status.gid[i]);
  }
  core->set_cwd(Readlink(ProcTask(pid).Path("cwd")));
  core->set_root(Readlink(ProcTask(pid).Path("root")));
  std::string pers = TRY(ProcTask(pid).Read("personality"));
  core->set_personality(static_cast<uint32_t>(strtoul(pers.c_str(), nullptr, 16)));
  // Limits from /proc: prlimit() on another user's process needs
  // CAP_SYS_RESOURCE, which root does not always have.
  std::string limits_text = TRY(ProcTask(pid).Read("limits"));
  for (const ProcLimit& l :
       TRY(ParseProcLimits(limits_text).Context(ProcTask(pid).Path("limits")))) {
    img::Rlimit* r = core->add_rlimits();
    r->set_resource(l.resource);
    r->set_cur(l.cur);
    r->set_max(l.max);
  }
  core->set_oom_score_adj(atoi(TRY(ProcTask(pid).Read("oom_score_adj")).c_str()));
  core->set_loginuid(
      static_cast<uint32_t>(strtoul(TRY(ProcTask(pid).Read("loginuid")).c_str(), nullptr, 10)));
  std::string cgroups = TRY(ProcTask(pid).Read("cgroup"));
  for (size_t p = 0, nl; p < cgroups.size(); p = nl + 1) {
    nl = cgroups.find('\n', p);
    if (nl == std::string::npos) nl = cgroups.size();
    if (nl > p) core->add_cgroups(cgroups.substr(p, nl - p));
  }
  for (const siginfo_t& si : TRY(PeekSiginfo(pid, true)))
    core->add_shared_pending(std::string(reinterpret_cast<const char*>(&si), sizeof si));
  for (const SeizedThread& t : task.threads) TRY(CollectThread(pid, t, core->add_threads()));
  TRY(CollectByRemoteSyscalls(task, vmas, same_cpu, status.sig_caught | status.sig_ignored, core,
                              brk));
  return Ok{};
}

Status CollectMmFields(const SeizedProcess& task, uint64_t brk, img::MmState* mm) {
  pid_t pid = task.pid;
  ProcStat st = TRY(ProcTask(pid).Stat());
  mm->set_start_code(st.start_code);
  mm->set_end_code(st.end_code);
  mm->set_start_data(st.start_data);
  mm->set_end_data(st.end_data);
  mm->set_start_brk(st.start_brk);
  mm->set_start_stack(st.start_stack);
  mm->set_arg_start(st.arg_start);
  mm->set_arg_end(st.arg_end);
  mm->set_env_start(st.env_start);
  mm->set_env_end(st.env_end);
  mm->set_brk(brk);
  std::string auxv = TRY(ProcTask(pid).Read("auxv"));
  for (uint64_t v : ParseAuxv(auxv)) mm->add_auxv(v);
  mm->set_exe_path(Readlink(ProcTask(pid).Path("exe")));
  return FillFileId(ProcTask(pid).Path("exe"), mm->mutable_exe_file());
}

}  // namespace crl
