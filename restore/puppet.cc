#include "restore/puppet.h"

#include <fcntl.h>
#include <linux/sched.h>
#include <sched.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/ptrace.h>
#include <sys/rseq.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <csignal>
#include <cstring>
#include <vector>

#include "base/interrupt.h"
#include "base/log.h"
#include "base/scoped_fd.h"
#include "kernel/proc_parsers.h"
#include "kernel/uapi.h"

namespace crl {
namespace {

// The first thing the puppet does, before the puppeteer takes over: stop
// being criu-lite in the ways the kernel remembers, then stop.
// The fds a new puppet uses to say it is ready and to wait to be seized.
struct PuppetPipes {
  int wait_r, wait_w, ready_w;
};

[[noreturn]] void PuppetMain(const PuppetPipes& pp) {
  int wait_fd = pp.wait_r;
  close(pp.wait_w);
  // glibc registered criu-lite's thread with rseq; the area is in memory that
  // the puppeteer is about to unmap, and the kernel would write to it.
  // Unregistering needs the length glibc registered with: __rseq_size is the
  // feature size (20 on glibc 2.36), the registration used 32 bytes.
  if (__rseq_size > 0) {
    auto* area = reinterpret_cast<char*>(__builtin_thread_pointer()) + __rseq_offset;
    if (syscall(SYS_rseq, area, 32, RSEQ_FLAG_UNREGISTER, RSEQ_SIG) < 0)
      syscall(SYS_rseq, area, __rseq_size, RSEQ_FLAG_UNREGISTER, RSEQ_SIG);
  }
  // Tell criu-lite we are ready (closing our end of its "ready" pipe: it
  // reads EOF), then wait for it to seize us: it never writes to the other
  // pipe; its interrupt, or its death closing that pipe, ends the wait.
  close(pp.ready_w);
  char c;
  for (;;) {
    ssize_t n = read(wait_fd, &c, 1);
    if (n == 0) _exit(127);  // criu-lite is gone
    if (n < 0 && errno != EINTR) _exit(127);
  }
}

Result<pid_t> CloneWithPid(const NewPid& pids, bool sibling, const PuppetPipes& pp) {
  clone_args args{};
  // --restore-sibling: the task becomes criu-lite's sibling (its parent is
  // criu-lite's parent), as with CRIU.
  args.flags = (sibling ? CLONE_PARENT : 0) | (pids.new_ns ? CLONE_NEWPID : 0);
  args.exit_signal = sibling ? 0 : SIGCHLD;
  args.set_tid = reinterpret_cast<uint64_t>(pids.set_tid.data());
  args.set_tid_size = pids.set_tid.size();
  long r = syscall(__NR_clone3, &args, sizeof args);
  if (r < 0) {
    if (errno == EEXIST)
      return CodedError(ErrorCode::kPidInUse, "PID %d is already in use", pids.set_tid[0]);
    return ErrnoError("clone3(set_tid=%d%s)", pids.set_tid[0], pids.new_ns ? ", CLONE_NEWPID" : "");
  }
  if (r == 0) PuppetMain(pp);
  return static_cast<pid_t>(r);
}

// Before clone3 (5.5): make the kernel's next PID ours by writing the one
// before it to ns_last_pid. Another process that forks in between takes it
// (the flock only keeps out other restores). Such a racer is most often
// short-lived: while it holds the PID, wait for it (a while), then write
// and fork again. A PID in use before the first try is refused at once.
Result<pid_t> ForkWithNsLastPid(pid_t pid, const PuppetPipes& pp) {
  auto in_use = [pid] { return !(kill(pid, 0) < 0 && errno == ESRCH); };
  ScopedFd fd(open("/proc/sys/kernel/ns_last_pid", O_RDWR | O_CLOEXEC));
  if (!fd.valid()) return ErrnoError("open(/proc/sys/kernel/ns_last_pid)");
  if (flock(fd.get(), LOCK_EX) < 0) return ErrnoError("flock(ns_last_pid)");
  if (in_use()) return CodedError(ErrorCode::kPidInUse, "PID %d is already in use", pid);
  constexpr int kTries = 20;
  constexpr auto kWaitForRacer = std::chrono::seconds(2);
  pid_t got = -1;
  for (int attempt = 1; attempt <= kTries; attempt++) {
    std::string s = std::to_string(pid - 1);
    if (pwrite(fd.get(), s.data(), s.size(), 0) != static_cast<ssize_t>(s.size()))
      return ErrnoError("write(ns_last_pid, %d)", pid - 1);
    pid_t child = fork();
    if (child < 0) return ErrnoError("fork");
    if (child == 0) PuppetMain(pp);
    if (child == pid) return child;
    kill(child, SIGKILL);
    waitpid(child, nullptr, 0);
    got = child;
    LOG_DEBUG("PID %d was taken by another fork (got %d): try %d of %d", pid, child, attempt,
              kTries);
    auto until = std::chrono::steady_clock::now() + kWaitForRacer;
    while (in_use() && std::chrono::steady_clock::now() < until) usleep(5000);
    if (in_use()) break;
  }
  return CodedError(ErrorCode::kPidInUse,
                    "PID %d was taken by other processes' forks while restore made it (last got "
                    "%d)",
                    pid, got);
}

}  // namespace

Result<Blob> MapBlob(const std::vector<std::pair<uint64_t, uint64_t>>& avoid, uint64_t park_bytes) {
  Blob blob;
  blob.size = 4096 + Blob::kScratchSize + ((park_bytes + 4095) & ~4095ull) + 4096;
  std::vector<std::pair<uint64_t, uint64_t>> busy = avoid;
  std::string maps = TRY(ReadFileToString("/proc/self/maps"));
  for (const MapsEntry& e : TRY(ParseProcMaps(maps))) busy.push_back({e.start, e.end});
  std::sort(busy.begin(), busy.end());
  // Look for a gap from 4 GiB up, clear of everything by a page each side.
  uint64_t cand = 1ull << 32;
  for (const auto& [s, e] : busy) {
    if (e + 4096 <= cand) continue;
    if (s >= cand + blob.size + 4096) break;
    cand = std::max<uint64_t>(cand, (e + 4096 + 0xfffff) & ~0xfffffull);
  }
  void* p = mmap(reinterpret_cast<void*>(cand), blob.size, PROT_READ | PROT_WRITE | PROT_EXEC,
                 MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE, -1, 0);
  if (p == MAP_FAILED) return ErrnoError("mmap(restore blob at 0x%lx, %lu bytes)", cand, blob.size);
  blob.start = cand;
  static const uint8_t kCode[] = {0x0f, 0x05, 0xcc};  // syscall; int3
  memcpy(p, kCode, sizeof kCode);
  BatchLoopCode loop = BatchLoop();
  static_assert(sizeof kCode <= 64);
  if (loop.size > 4096 - 64) return MakeError("the batch loop does not fit in the blob");
  memcpy(static_cast<char*>(p) + (blob.batch_loop() - cand), loop.bytes, loop.size);
  return blob;
}

void UnmapBlob(const Blob& blob) {
  if (blob.start) munmap(reinterpret_cast<void*>(blob.start), blob.size);
}

// PTRACE_O_EXITKILL: should criu-lite die mid-restore, the half-built tree
// dies too. TRACEFORK/TRACECLONE: tasks a puppet creates are puppets too.
constexpr long kPuppetOptions =
    PTRACE_O_TRACESYSGOOD | PTRACE_O_EXITKILL | PTRACE_O_TRACEFORK | PTRACE_O_TRACECLONE;

Status Puppet::SuspendSeccomp() {
  for (const Thread& t : threads_)
    TRY(PtraceSetOptions(t.tid, kPuppetOptions | PTRACE_O_SUSPEND_SECCOMP)
            .Context("suspending seccomp while restoring (needs CAP_SYS_ADMIN)"));
  return Ok{};
}

Status Puppet::AdoptThread(pid_t tid, pid_t self_tid) {
  Registers regs = TRY(GetRegs(tid));
  threads_.push_back(
      {tid, self_tid,
       std::make_unique<RemoteSyscalls>(tid, RemotePtr(blob_.syscall_insn()), regs)});
  threads_.back().rs->DontRestoreRegisters();
  threads_.back().rs->UseLoop(RemotePtr(blob_.batch_loop()));
  return Ok{};
}

// A task auto-attached after a fork/clone starts with a SIGSTOP stop.
static Status WaitForNewTask(pid_t tid) {
  WaitStatus ws = TRY(WaitForTask(tid));
  if (!ws.stopped())
    return MakeError("the new task %d did not stop as expected: %s", tid, ws.ToString().c_str());
  return Ok{};
}

Result<std::unique_ptr<Puppet>> Puppet::Create(const NewPid& pids, const Blob& blob,
                                               bool use_clone3, bool sibling) {
  // Two pipes: the child closes its end of READY once it is ready, and
  // waits on WAIT, whose write end criu-lite keeps (and drops if it dies).
  int ready_pipe[2], wait_pipe[2];
  if (pipe2(ready_pipe, O_CLOEXEC) < 0 || pipe2(wait_pipe, O_CLOEXEC) < 0)
    return ErrnoError("pipe2");
  ScopedFd ready_r(ready_pipe[0]), ready_w(ready_pipe[1]);
  ScopedFd wait_r(wait_pipe[0]), wait_w(wait_pipe[1]);
  if (sibling && !use_clone3) return MakeError("--restore-sibling needs clone3");
  if (pids.new_ns && !use_clone3)
    return MakeError("making a PID namespace with its init's PIDs needs clone3 (Linux 5.5)");
  PuppetPipes pp{wait_r.get(), wait_w.get(), ready_w.get()};
  pid_t child =
      TRY(use_clone3 ? CloneWithPid(pids, sibling, pp) : ForkWithNsLastPid(pids.set_tid[0], pp));
  std::unique_ptr<Puppet> p(new Puppet(child, pids.set_tid[0], blob));
  ready_w.reset();
  // A stop signal (no SA_RESTART) interrupts the wait: it ends the restore,
  // said as such, not as a task that failed.
  char c;
  ssize_t n;
  while ((n = read(ready_r.get(), &c, 1)) < 0 && errno == EINTR) {
    if (Status stop = CheckStop(); !stop.ok()) {
      kill(child, SIGKILL);
      return stop.error();
    }
  }
  if (n != 0) {
    kill(child, SIGKILL);
    return MakeError("the new task %d did not get ready", child);
  }
  // Seized, not PTRACE_TRACEME: a sibling's parent is not criu-lite.
  Status seized = PtraceSeize(child, kPuppetOptions);
  if (!seized.ok()) {
    kill(child, SIGKILL);
    return seized.error();
  }
  TRY(PtraceInterrupt(child));
  // It has the dumped task's PID, and someone may signal it already (once
  // it shows as traced): a signal that comes before the interrupt's stop
  // is reported first (signal-delivery-stop). It is withheld, and sent
  // again once every signal is blocked: pending, it is delivered when the
  // restored task runs, as the signals that come later are.
  std::vector<int> withheld;
  for (;;) {
    WaitStatus ws = TRY(WaitForTask(child));
    if (ws.stopped() && ws.ptrace_event() == PTRACE_EVENT_STOP) break;
    if (!ws.stopped() || ws.ptrace_event() != 0 || withheld.size() > 64 ||
        ptrace(PTRACE_CONT, child, 0, 0) < 0)
      return MakeError("the new task %d did not stop as expected: %s", child,
                       ws.ToString().c_str());  // P, not released, kills it
    withheld.push_back(ws.stop_sig());
  }
  TRY(SetSigmask(child, ~0ull));
  for (int sig : withheld)
    if (syscall(SYS_tgkill, child, child, sig) < 0)
      return ErrnoError("sending signal %d withheld from the new task %d again", sig, child);
  __ptrace_rseq_configuration rseq{};
  if (ptrace(PTRACE_GET_RSEQ_CONFIGURATION, child, sizeof rseq, &rseq) == sizeof rseq &&
      rseq.rseq_abi_pointer != 0)
    return MakeError(
        "the new task %d is still registered with rseq at 0x%lx; cannot clear its "
        "address space safely",
        child, rseq.rseq_abi_pointer);
  TRY(p->AdoptThread(child, p->self_pid_));
  return p;
}

Result<std::unique_ptr<Puppet>> Puppet::Fork(const NewPid& pids) {
  RemoteScratch::Frame frame(scratch_);
  pid_t pid = pids.set_tid[0];
  auto rtids = TRY(scratch_.PushArray(pids.set_tid.data(), pids.set_tid.size()));
  clone_args args{};
  args.flags = pids.new_ns ? CLONE_NEWPID : 0;
  args.exit_signal = SIGCHLD;
  args.set_tid = rtids.addr();
  args.set_tid_size = pids.set_tid.size();
  auto rargs = TRY(scratch_.Push(args));
  int64_t r = TRY(rs().Syscall(__NR_clone3, rargs, sizeof args));
  if (r == -EEXIST) return CodedError(ErrorCode::kPidInUse, "PID %d is already in use", pid);
  if (r < 0)
    return ErrnoError(static_cast<int>(-r), "clone3(set_tid=%d%s) in pid %d", pid,
                      pids.new_ns ? ", CLONE_NEWPID" : "", pid_);
  pid_t host = rs().last_new_task();
  if (host <= 0) return MakeError("clone3 in pid %d made a task ptrace did not report", pid_);
  std::unique_ptr<Puppet> child(new Puppet(host, pid, blob_));
  TRY(WaitForNewTask(host));
  TRY(child->AdoptThread(host, pid));
  return child;
}

Status Puppet::CloneThread(const std::vector<pid_t>& tids) {
  RemoteScratch::Frame frame(scratch_);
  pid_t tid = tids[0];
  auto rtids = TRY(scratch_.PushArray(tids.data(), tids.size()));
  clone_args args{};
  args.flags = CLONE_VM | CLONE_FS | CLONE_FILES | CLONE_SIGHAND | CLONE_THREAD | CLONE_SYSVSEM;
  args.set_tid = rtids.addr();
  args.set_tid_size = tids.size();
  auto rargs = TRY(scratch_.Push(args));
  int64_t r = TRY(rs().Syscall(__NR_clone3, rargs, sizeof args));
  if (r < 0)
    return ErrnoError(static_cast<int>(-r), "clone3(thread, set_tid=%d) in pid %d", tid, pid_);
  pid_t host = rs().last_new_task();
  if (host <= 0) return MakeError("clone3 in pid %d made a thread ptrace did not report", pid_);
  TRY(WaitForNewTask(host));
  return AdoptThread(host, tid);
}

Status Puppet::Release(const std::vector<Registers>& regs, const std::vector<int64_t>& restart,
                       int stop_signal) {
  bool stop = stop_signal != 0;
  auto in_syscall = [&](size_t i) { return !stop && i < restart.size() && restart[i] != 0; };
  for (size_t i = 0; i < threads_.size(); i++)
    if (!in_syscall(i)) TRY(SetRegs(threads_[i].tid, regs[i]));
  // Queued now, the stop signal takes effect as the task resumes: it never runs.
  if (stop) kill(pid_, stop_signal);
  for (size_t i = 0; i < threads_.size(); i++) {
    if (in_syscall(i))
      TRY(DetachInsideSyscall(threads_[i].tid, regs[i], restart[i]));
    else
      TRY(PtraceDetach(threads_[i].tid));
  }
  released_ = true;
  return Ok{};
}

Puppet::~Puppet() {
  if (released_ || exited_) return;
  kill(pid_, SIGKILL);
  // Non-leader threads first: a traced leader is reported after the others.
  // Bounded: a task that does not die (an init whose namespace still has
  // tasks no one reaps) is said, not waited for for ever.
  for (auto it = threads_.rbegin(); it != threads_.rend(); ++it)
    if (Result<WaitStatus> ws = WaitForTask(it->tid); !ws.ok())
      LOG_WARN("killing the half-restored task %d: %s", pid_, ws.error().message.c_str());
  LOG_INFO("killed the half-restored task %d", pid_);
}

}  // namespace crl
