#include "restore/task_restore.h"

#include <fcntl.h>
#include <linux/filter.h>
#include <linux/prctl.h>
#include <linux/seccomp.h>
#include <sched.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/time.h>
#include <unistd.h>

#include <algorithm>
#include <csignal>
#include <cstring>
#include <map>
#include <vector>

#include "base/log.h"
#include "kernel/namespaces.h"
#include "kernel/proc_parsers.h"
#include "kernel/proc_task.h"
#include "kernel/task_fd.h"
#include "kernel/uapi.h"
#include "restore/creds_restore.h"

namespace crl {
namespace {

// struct prctl_mm_map from linux/prctl.h, mirrored to check its size.
struct PrctlMmMap {
  uint64_t start_code, end_code, start_data, end_data, start_brk, brk, start_stack;
  uint64_t arg_start, arg_end, env_start, env_end;
  uint64_t auxv;
  uint32_t auxv_size;
  uint32_t exe_fd;
};
static_assert(sizeof(PrctlMmMap) == 104);

// Images from before credentials and these settings were recorded.
bool HasSettings(const img::TaskCore& core) {
  return core.threads_size() && core.threads(0).creds().uids_size() == 4;
}

std::string OwnLine(const std::string& path) {
  auto text = ReadFileToString(path);
  return text.ok() ? text->substr(0, text->find('\n')) : "";
}

timespec Timespec(int64_t ns) { return {ns / 1000000000, ns % 1000000000}; }

// POSIX timers come back with their IDs, which the process holds as
// timer_t values. Kernels with PR_TIMER_CREATE_RESTORE_IDS (6.14) take the
// ID to use from timer_create()'s last argument; older ones hand IDs out in
// increasing order in a new process, so those in between are created and
// deleted again.
Status RestorePosixTimers(Puppet& p, const img::TaskCore& core) {
  if (core.posix_timers().empty()) return Ok{};
  constexpr int kRestoreIds = 77, kOff = 0, kOn = 1;  // PR_TIMER_CREATE_RESTORE_IDS
  RemoteSyscalls& rs = p.rs();
  RemoteScratch& scratch = p.scratch();
  bool by_id = TRY(rs.Syscall(SYS_prctl, kRestoreIds, kOn, 0, 0, 0)) == 0;
  std::vector<const img::PosixTimer*> timers;
  for (const img::PosixTimer& t : core.posix_timers()) timers.push_back(&t);
  std::sort(timers.begin(), timers.end(), [](auto* a, auto* b) { return a->id() < b->id(); });
  Status st = [&]() -> Status {
    for (const img::PosixTimer* t : timers) {
      sigevent sev{};
      sev.sigev_notify = t->notify();
      sev.sigev_signo = t->signo();
      sev.sigev_value.sival_ptr = reinterpret_cast<void*>(t->sival());
      // A thread of the process, named as it is in its own PID namespace.
      sev._sigev_un._tid = t->notify_tid();
      for (int i = 0; i < core.threads_size(); i++)
        if (core.threads(i).tid() == t->notify_tid()) sev._sigev_un._tid = p.thread_self_tid(i);
      for (int attempt = 0;; attempt++) {
        RemoteScratch::Frame frame(scratch);
        auto rsev = TRY(scratch.Push(sev));
        int32_t id = t->id();
        auto rid = TRY(scratch.Push(id));
        TRY(rs.Checked(Format("timer_create(id %d)", t->id()).c_str(), SYS_timer_create, t->clock(),
                       rsev, rid));
        id = TRY(ReadRemote(p.pid(), rid));
        if (id == t->id()) break;
        TRY(rs.Checked("timer_delete", SYS_timer_delete, id));
        if (id > t->id() || attempt > 100000)
          return MakeError("timer_create gave ID %d where the process had timer %d", id, t->id());
      }
      if (!t->value_ns()) continue;
      itimerspec its{Timespec(t->interval_ns()), Timespec(t->value_ns())};
      RemoteScratch::Frame frame(scratch);
      auto rits = TRY(scratch.Push(its));
      TRY(rs.Checked(Format("timer_settime(%d)", t->id()).c_str(), SYS_timer_settime, t->id(), 0,
                     rits, 0));
    }
    return Ok{};
  }();
  if (by_id)
    TRY(rs.Checked("prctl(PR_TIMER_CREATE_RESTORE_IDS, off)", SYS_prctl, kRestoreIds, kOff, 0, 0,
                   0));
  return st;
}

}  // namespace

Status RestoreProcessSettings(Puppet& p, const img::TaskCore& core) {
  pid_t pid = p.pid();
  RemoteSyscalls& rs = p.rs();
  if (!HasSettings(core)) return Ok{};
  // Lowering it below criu-lite's own needs CAP_SYS_RESOURCE: the error says so.
  Status oom =
      WriteKernelFile(ProcTask(pid).Path("oom_score_adj"), std::to_string(core.oom_score_adj()));
  if (!oom.ok())
    return MakeError("%s (lowering oom_score_adj needs CAP_SYS_RESOURCE)",
                     oom.error().message.c_str());
  // Only a task itself may set its loginuid: it writes its own /proc file.
  std::string loginuid = std::to_string(core.loginuid());
  if (loginuid != OwnLine("/proc/self/loginuid")) {
    RemoteScratch& scratch = p.scratch();
    RemoteScratch::Frame frame(scratch);
    RemoteFd fd = TRY(OpenRemote(rs, scratch, "/proc/self/loginuid", O_WRONLY));
    auto text = TRY(scratch.PushString(loginuid));
    TRY(rs.Checked(Format("write(loginuid %s)", loginuid.c_str()).c_str(), SYS_write, fd.get(),
                   text, loginuid.size()));
  }
  if (core.thp_disable())
    TRY(rs.Checked("prctl(PR_SET_THP_DISABLE)", SYS_prctl, PR_SET_THP_DISABLE, 1, 0, 0, 0));
  for (uint32_t cmd = 1; cmd; cmd <<= 1)
    if (core.membarrier() & cmd)
      TRY(rs.Checked(Format("membarrier(0x%x)", cmd).c_str(), SYS_membarrier, cmd, 0, 0));
  return Ok{};
}

Status RestoreSched(Puppet& p, size_t i, const img::Sched& s) {
  if (s.affinity().empty()) return Ok{};  // images from before scheduling was recorded
  pid_t tid = p.thread_tid(i);
  // Where a real-time policy forces the slack to 0, the kernel ignores this.
  if (s.timer_slack_ns())
    TRY(p.thread_rs(i).Checked("prctl(PR_SET_TIMERSLACK)", SYS_prctl, PR_SET_TIMERSLACK,
                               s.timer_slack_ns(), 0, 0, 0));
  if (syscall(SYS_ioprio_set, 1 /* IOPRIO_WHO_PROCESS */, tid, s.ioprio()) < 0)
    return ErrnoError("ioprio_set(%d, 0x%x)", tid, s.ioprio());
  cpu_set_t cpus;
  CPU_ZERO(&cpus);
  memcpy(&cpus, s.affinity().data(), std::min(sizeof cpus, s.affinity().size()));
  if (sched_setaffinity(tid, sizeof cpus, &cpus) < 0)
    return ErrnoError("sched_setaffinity(%d) to CPUs this machine may not have", tid);
  if (setpriority(PRIO_PROCESS, tid, s.nice()) < 0)
    return ErrnoError("setpriority(%d, %d)", tid, s.nice());
  sched_param sp{};
  sp.sched_priority = s.rt_priority();
  if (sched_setscheduler(tid, s.policy(), &sp) < 0)
    return ErrnoError("sched_setscheduler(%d, policy 0x%x, priority %u)", tid, s.policy(),
                      s.rt_priority());
  return Ok{};
}

Status RestoreSeccomp(Puppet& p, const img::TaskCore& core) {
  bool any = false, same = core.threads_size() > 1;
  for (const img::ThreadCore& th : core.threads()) {
    any |= th.seccomp_mode() != 0;
    const img::ThreadCore& first = core.threads(0);
    same = same && th.seccomp_mode() == SECCOMP_MODE_FILTER &&
           th.seccomp_filters_size() == first.seccomp_filters_size();
    for (int f = 0; same && f < th.seccomp_filters_size(); f++)
      same = th.seccomp_filters(f).program() == first.seccomp_filters(f).program() &&
             th.seccomp_filters(f).flags() == first.seccomp_filters(f).flags();
  }
  if (!any) return Ok{};
  TRY(p.SuspendSeccomp());
  for (int i = 0; i < core.threads_size(); i++) {
    const img::ThreadCore& th = core.threads(i);
    RemoteSyscalls& rs = p.thread_rs(i);
    if (th.seccomp_mode() == SECCOMP_MODE_STRICT)
      TRY(rs.Checked("prctl(PR_SET_SECCOMP, strict)", SYS_prctl, PR_SET_SECCOMP,
                     SECCOMP_MODE_STRICT, 0, 0, 0));
    if (same && i > 0) continue;  // the leader's TSYNC gave them the same filters
    for (const img::SeccompFilter& f : th.seccomp_filters()) {
      const std::string& prog = f.program();
      if (prog.empty() || prog.size() % sizeof(sock_filter) ||
          prog.size() / sizeof(sock_filter) > BPF_MAXINSNS)
        return MakeError("thread %d: a seccomp filter of %zu bytes is not a BPF program", th.tid(),
                         prog.size());
      RemoteScratch::Frame frame(p.scratch());
      RemotePtr rprog = TRY(p.scratch().Push(prog.data(), prog.size()));
      sock_fprog fprog{static_cast<unsigned short>(prog.size() / sizeof(sock_filter)),
                       reinterpret_cast<sock_filter*>(rprog.addr())};
      auto rfprog = TRY(p.scratch().Push(fprog));
      uint64_t flags = f.flags() | (same ? SECCOMP_FILTER_FLAG_TSYNC : 0);
      int64_t r = TRY(rs.Checked("seccomp(SET_MODE_FILTER)", SYS_seccomp, SECCOMP_SET_MODE_FILTER,
                                 flags, rfprog));
      if (r > 0)
        return MakeError("seccomp(TSYNC) in PID %d: thread %ld could not take the filter", p.pid(),
                         r);
    }
  }
  return Ok{};
}

Status RestoreCredsLast(Puppet& p, const img::TaskCore& core) {
  for (int i = 0; i < core.threads_size(); i++) {
    RemoteScratch::Frame frame(p.scratch());
    RemoteBatch batch = p.Batch(i);
    TRY(RestoreCreds(batch, p.scratch(), core.threads(i).creds()));
    TRY(batch.Run());
  }
  // A change of credentials resets both of these.
  if (!HasSettings(core)) return Ok{};
  RemoteBatch batch = p.Batch();
  batch.Add("prctl(PR_SET_DUMPABLE)", SYS_prctl, PR_SET_DUMPABLE, core.dumpable());
  batch.Add("prctl(PR_SET_PDEATHSIG)", SYS_prctl, PR_SET_PDEATHSIG,
            core.threads(0).pdeath_signal());
  TRY(batch.Run());
  for (int i = 1; i < core.threads_size(); i++)
    TRY(p.thread_rs(i).Checked("prctl(PR_SET_PDEATHSIG)", SYS_prctl, PR_SET_PDEATHSIG,
                               core.threads(i).pdeath_signal()));
  return Ok{};
}

namespace {

// A time namespace with the offsets it had, which the puppet enters (while
// it is single-threaded, and before its vDSO data is moved: entering
// remaps it). The offsets can be set only before any task is in it: made
// for the puppet's children, set, then entered.
Status MakeTimeNamespace(Puppet& p, const img::TimeNamespace& t) {
  RemoteSyscalls& rs = p.rs();
  TRY(rs.Checked("unshare(CLONE_NEWTIME)", SYS_unshare, CLONE_NEWTIME));
  TRY(WriteTimeOffsets(p.pid(), {t.monotonic_ns(), t.boottime_ns()})
          .Context("setting the time namespace's offsets"));
  std::string path = ProcTask(p.pid()).Path("ns/time_for_children");
  ScopedFd ns(open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (!ns.valid()) return ErrnoError("open(%s)", path.c_str());
  return EnterNamespace(p, ns.get(), CLONE_NEWTIME, "its time namespace");
}

}  // namespace

Status EnterNamespace(Puppet& p, int ns, int flag, const char* what) {
  RemoteScratch::Frame frame(p.scratch());
  RemotePtr scm = TRY(p.scratch().Reserve(kScmScratchBytes));
  FdGiver giver = TRY(FdGiver::Open(p.rs(), scm));
  RemoteFd theirs = TRY(giver.Give(ns, what));
  TRY(p.rs().Checked(Format("setns(%s)", what).c_str(), SYS_setns, theirs.get(), flag));
  return Ok{};
}

Status RestoreNamespaces(Puppet& p, const img::TaskCore& core, const CgroupRestore& cgroups,
                         int net_ns) {
  RemoteSyscalls& rs = p.rs();
  if (core.has_time_ns()) TRY(MakeTimeNamespace(p, core.time_ns()));
  if (core.has_net()) {
    if (net_ns < 0) return MakeError("no network namespace was made for the task");
    TRY(EnterNamespace(p, net_ns, CLONE_NEWNET, "its network namespace"));
  }
  if (core.has_cgroup_ns()) {
    // The namespace's root is the cgroup the task is in as it unshares.
    for (const std::string& root : core.cgroup_ns().roots()) TRY(cgroups.MoveTo(p.pid(), root));
    TRY(rs.Checked("unshare(CLONE_NEWCGROUP)", SYS_unshare, CLONE_NEWCGROUP));
    TRY(cgroups.Move(p.pid(), core));
  }
  if (core.has_ipc()) {
    TRY(rs.Checked("unshare(CLONE_NEWIPC)", SYS_unshare, CLONE_NEWIPC));
    std::map<std::string, std::string> sysctls(core.ipc().sysctls().begin(),
                                               core.ipc().sysctls().end());
    TRY(WriteIpcSysctls(p.pid(), sysctls).Context("restoring the ipc namespace's sysctls"));
    std::vector<SysvObject> objects;
    for (const img::SysvObject& in : core.ipc().objects()) {
      SysvObject o;
      o.kind = static_cast<SysvObject::Kind>(in.kind());
      o.id = in.id();
      o.key = in.key();
      o.mode = in.mode();
      o.uid = in.uid();
      o.gid = in.gid();
      o.msg_qbytes = in.msg_qbytes();
      for (const img::SysvMessage& m : in.messages()) o.messages.push_back({m.type(), m.text()});
      for (uint32_t v : in.sem_values()) o.sem_values.push_back(static_cast<uint16_t>(v));
      o.shm_size = in.shm_size();
      o.shm_data = in.shm_data();
      o.shm_locked = in.shm_locked();
      objects.push_back(std::move(o));
    }
    TRY(WriteSysvObjects(p.pid(), objects).Context("restoring the ipc namespace's objects"));
    std::vector<PosixQueue> queues;
    for (const img::PosixQueue& in : core.ipc().posix_queues()) {
      PosixQueue q;
      q.name = in.name();
      q.mode = in.mode();
      q.uid = in.uid();
      q.gid = in.gid();
      q.max_messages = in.max_messages();
      q.message_size = in.message_size();
      for (const img::PosixMessage& m : in.messages())
        q.messages.push_back({m.priority(), m.data()});
      queues.push_back(std::move(q));
    }
    TRY(WritePosixQueues(p.pid(), queues)
            .Context("restoring the ipc namespace's POSIX message queues"));
  }
  if (!core.has_uts()) return Ok{};
  RemoteScratch& scratch = p.scratch();
  RemoteScratch::Frame frame(scratch);
  TRY(rs.Checked("unshare(CLONE_NEWUTS)", SYS_unshare, CLONE_NEWUTS));
  const img::UtsNamespace& u = core.uts();
  RemotePtr host = TRY(scratch.PushString(u.hostname()));
  TRY(rs.Checked(Format("sethostname(%s)", u.hostname().c_str()).c_str(), SYS_sethostname, host,
                 u.hostname().size()));
  RemotePtr domain = TRY(scratch.PushString(u.domainname()));
  TRY(rs.Checked(Format("setdomainname(%s)", u.domainname().c_str()).c_str(), SYS_setdomainname,
                 domain, u.domainname().size()));
  return Ok{};
}

Status RestoreProcessState(Puppet& p, const img::TaskCore& core) {
  RemoteScratch& scratch = p.scratch();
  RemoteScratch::Frame frame(scratch);
  RemoteBatch batch = p.Batch();
  batch.Add("umask", SYS_umask, core.umask());
  batch.Add(Format("chdir(%s)", core.cwd().c_str()), SYS_chdir,
            TRY(scratch.PushString(core.cwd())));
  if (!core.root().empty() && core.root() != "/")
    batch.Add(Format("chroot(%s)", core.root().c_str()), SYS_chroot,
              TRY(scratch.PushString(core.root())));
  batch.Add("personality", SYS_personality, core.personality());
  char comm[16] = {};
  strncpy(comm, core.comm().c_str(), sizeof comm - 1);
  batch.Add("prctl(PR_SET_NAME)", SYS_prctl, PR_SET_NAME, TRY(scratch.Push(comm)));
  // The puppet asked to die with criu-lite; the restored task must not.
  batch.Add("prctl(PR_SET_PDEATHSIG, 0)", SYS_prctl, PR_SET_PDEATHSIG, 0);
  if (core.child_subreaper())
    batch.Add("prctl(PR_SET_CHILD_SUBREAPER)", SYS_prctl, PR_SET_CHILD_SUBREAPER, 1);
  return batch.Run();
}

Status RestoreThreadState(Puppet& p, size_t i, const img::ThreadCore& th) {
  RemoteSyscalls& rs = p.thread_rs(i);
  RemoteScratch& scratch = p.scratch();
  RemoteScratch::Frame frame(scratch);
  RemoteBatch batch = p.Batch(i);
  if (th.tid_address()) batch.Add("set_tid_address", SYS_set_tid_address, th.tid_address());
  if (th.robust_list())
    batch.Add("set_robust_list", SYS_set_robust_list, th.robust_list(), th.robust_list_len());
  if (th.rseq_addr())
    batch.Add("rseq(register)", SYS_rseq, th.rseq_addr(), th.rseq_len(), 0, th.rseq_sig());
  if (!th.comm().empty()) {
    char comm[16] = {};
    strncpy(comm, th.comm().c_str(), sizeof comm - 1);
    batch.Add("prctl(PR_SET_NAME)", SYS_prctl, PR_SET_NAME, TRY(scratch.Push(comm)));
  }
  stack_t ss{};
  ss.ss_sp = reinterpret_cast<void*>(th.altstack_sp());
  ss.ss_size = th.altstack_size();
  ss.ss_flags = th.altstack_flags() & ~SS_ONSTACK;
  batch.Add("sigaltstack", SYS_sigaltstack, TRY(scratch.Push(ss)), 0);
  TRY(batch.Run());
  for (const std::string& raw : th.pending()) {
    if (raw.size() != sizeof(siginfo_t)) return MakeError("pending siginfo has a bad size");
    siginfo_t si;
    memcpy(&si, raw.data(), sizeof si);
    RemoteScratch::Frame frame(scratch);
    auto rsi = TRY(scratch.Push(si));
    p.ForbidBatches();
    TRY(rs.Checked(Format("rt_tgsigqueueinfo(%d)", si.si_signo).c_str(), SYS_rt_tgsigqueueinfo,
                   p.self_pid(), p.thread_self_tid(i), si.si_signo, rsi));
  }
  std::vector<uint8_t> xstate(th.xstate().begin(), th.xstate().end());
  TRY(SetXstate(p.thread_tid(i), xstate));
  return Ok{};
}

Status RestoreMmFields(Puppet& p, const img::MmState& mm) {
  RemoteSyscalls& rs = p.rs();
  RemoteScratch& scratch = p.scratch();
  RemoteScratch::Frame frame(scratch);
  RemoteFd exe;
  if (!mm.exe_path().empty()) exe = TRY(OpenRemote(rs, scratch, mm.exe_path(), O_RDONLY));
  std::vector<uint64_t> auxv(mm.auxv().begin(), mm.auxv().end());
  auto rauxv = TRY(scratch.PushArray(auxv.data(), auxv.size()));
  PrctlMmMap m{mm.start_code(),
               mm.end_code(),
               mm.start_data(),
               mm.end_data(),
               mm.start_brk(),
               mm.brk(),
               mm.start_stack(),
               mm.arg_start(),
               mm.arg_end(),
               mm.env_start(),
               mm.env_end(),
               rauxv.addr(),
               static_cast<uint32_t>(auxv.size() * 8),
               static_cast<uint32_t>(exe.get())};
  auto rmap = TRY(scratch.Push(m));
  TRY(rs.Checked("prctl(PR_SET_MM, PR_SET_MM_MAP)", SYS_prctl, PR_SET_MM, PR_SET_MM_MAP, rmap,
                 sizeof m, 0));
  return Ok{};
}

Status RestoreSignals(Puppet& p, const img::TaskCore& core) {
  RemoteSyscalls& rs = p.rs();
  RemoteScratch& scratch = p.scratch();
  // Every disposition is set: the puppet still has criu-lite's.
  std::vector<kernel_sigaction> acts(65);
  for (const img::SigAction& sa : core.sigactions())
    if (sa.signo() >= 1 && sa.signo() <= 64)
      acts[sa.signo()] = {sa.handler(), sa.flags(), sa.restorer(), sa.mask()};
  {
    RemoteScratch::Frame frame(scratch);
    auto ra = TRY(scratch.PushArray(acts.data(), acts.size()));
    RemoteBatch batch = p.Batch();
    for (int sig = 1; sig <= 64; sig++)
      if (sig != SIGKILL && sig != SIGSTOP)
        batch.Add(Format("rt_sigaction(%d)", sig), SYS_rt_sigaction, sig, ra + sig, 0, 8);
    TRY(batch.Run());
  }
  // Process-wide pending signals, queued while every signal is blocked; each
  // thread's own come with its state, its mask with its registers.
  pid_t pid = p.self_pid();
  auto queue = [&](const std::string& raw) -> Status {
    if (raw.size() != sizeof(siginfo_t)) return MakeError("pending siginfo has a bad size");
    siginfo_t si;
    memcpy(&si, raw.data(), sizeof si);
    RemoteScratch::Frame frame(scratch);
    auto rsi = TRY(scratch.Push(si));
    p.ForbidBatches();
    TRY(rs.Checked(Format("rt_sigqueueinfo(%d)", si.si_signo).c_str(), SYS_rt_sigqueueinfo, pid,
                   si.si_signo, rsi));
    return Ok{};
  };
  for (const std::string& raw : core.shared_pending()) TRY(queue(raw));
  return Ok{};
}

Status RestoreTimersAndLimits(Puppet& p, const img::TaskCore& core) {
  for (const img::Rlimit& r : core.rlimits()) {
    rlimit64 rl{r.cur(), r.max()};
    if (prlimit64(p.pid(), static_cast<__rlimit_resource>(r.resource()), &rl, nullptr) < 0)
      return ErrnoError("prlimit(pid=%d, resource=%u)", p.pid(), r.resource());
  }
  RemoteSyscalls& rs = p.rs();
  TRY(RestorePosixTimers(p, core));
  for (const img::Itimer& t : core.itimers()) {
    itimerval it{{t.interval_sec(), t.interval_usec()}, {t.value_sec(), t.value_usec()}};
    // An interval ITIMER_REAL whose SIGALRM is still pending reads 0: the
    // kernel rearms it when the signal is dequeued. A 0 value would disarm
    // it here, so arm it one interval ahead, as the rearm would.
    if (!it.it_value.tv_sec && !it.it_value.tv_usec) it.it_value = it.it_interval;
    RemoteScratch::Frame frame(p.scratch());
    auto rit = TRY(p.scratch().Push(it));
    TRY(rs.Checked("setitimer", SYS_setitimer, t.which(), rit, 0));
  }
  return Ok{};
}

}  // namespace crl
