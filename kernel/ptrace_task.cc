#include "kernel/ptrace_task.h"

#include <elf.h>
#include <sys/ptrace.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <sys/wait.h>

#include <cerrno>
#include <chrono>
#include <csignal>
#include <cstring>
#include <ctime>
#include <fstream>

#include "kernel/uapi.h"

namespace crl {

std::string TaskStateLetter(pid_t tid) {
  std::ifstream in("/proc/" + std::to_string(tid) + "/stat");
  std::string stat((std::istreambuf_iterator<char>(in)), {});
  size_t p = stat.rfind(')');
  return p != std::string::npos && p + 2 < stat.size() ? stat.substr(p + 2, 1) : "?";
}

std::string WaitStatus::ToString() const {
  if (exited()) return Format("exited with status %d", exit_code());
  if (signaled()) return Format("killed by signal %d (%s)", term_sig(), strsignal(term_sig()));
  if (stopped())
    return Format("stopped by signal %d (%s), event %d", stop_sig() & 0x7f,
                  strsignal(stop_sig() & 0x7f), ptrace_event());
  return Format("wait status 0x%x", status_);
}

Status PtraceSeize(pid_t tid, long options) {
  if (ptrace(PTRACE_SEIZE, tid, 0, options) < 0)
    return ErrnoError("ptrace(PTRACE_SEIZE, pid=%d)", tid);
  return Ok{};
}

Status PtraceInterrupt(pid_t tid) {
  if (ptrace(PTRACE_INTERRUPT, tid, 0, 0) < 0)
    return ErrnoError("ptrace(PTRACE_INTERRUPT, pid=%d)", tid);
  return Ok{};
}

Status PtraceSetOptions(pid_t tid, long options) {
  if (ptrace(PTRACE_SETOPTIONS, tid, 0, options) < 0)
    return ErrnoError("ptrace(PTRACE_SETOPTIONS, pid=%d)", tid);
  return Ok{};
}

namespace {

// A timer that interrupts this thread's waitpid() with SIGALRM (whose
// handler, CatchStopSignals', does nothing and does not restart calls).
timer_t WaitTimer() {
  static timer_t timer = [] {
    timer_t t{};
    sigevent ev{};
    ev.sigev_notify = SIGEV_THREAD_ID;
    ev.sigev_signo = SIGALRM;
    ev._sigev_un._tid = static_cast<pid_t>(syscall(SYS_gettid));  // sigev_notify_thread_id
    if (timer_create(CLOCK_MONOTONIC, &ev, &t) < 0) return timer_t{};
    return t;
  }();
  return timer;
}

void ArmWaitTimer(int seconds) {
  itimerspec when{};
  when.it_value.tv_sec = seconds;
  // Again every second after: a signal lost to a race is sent again.
  when.it_interval.tv_sec = seconds ? 1 : 0;
  timer_settime(WaitTimer(), 0, &when, nullptr);
}

}  // namespace

Result<WaitStatus> WaitForTask(pid_t tid, int flags) {
  // Bounded: a task stuck in the kernel (uninterruptible sleep on a dead
  // file server, a remote syscall that blocks) must not hold criu-lite, and
  // the tree it holds, for ever.
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(kTaskWaitSeconds);
  int status;
  pid_t r;
  ArmWaitTimer(kTaskWaitSeconds);
  while ((r = waitpid(tid, &status, flags)) < 0 && errno == EINTR &&
         std::chrono::steady_clock::now() < deadline) {
  }
  int saved = errno;
  ArmWaitTimer(0);
  if (r == tid) return WaitStatus(status);
  if (r < 0 && saved == EINTR)
    return MakeError("thread %d did not stop within %d s: it is stuck in the kernel (state %s)",
                     tid, kTaskWaitSeconds, TaskStateLetter(tid).c_str());
  errno = saved;
  return ErrnoError("waitpid(pid=%d)", tid);
}

Result<Registers> GetRegs(pid_t tid) {
  Registers regs;
  if (ptrace(PTRACE_GETREGS, tid, 0, &regs) < 0)
    return ErrnoError("ptrace(PTRACE_GETREGS, pid=%d)", tid);
  return regs;
}

Status SetRegs(pid_t tid, const Registers& regs) {
  if (ptrace(PTRACE_SETREGS, tid, 0, &regs) < 0)
    return ErrnoError("ptrace(PTRACE_SETREGS, pid=%d)", tid);
  return Ok{};
}

Result<std::vector<uint8_t>> GetXstate(pid_t tid) {
  // The kernel shortens iov_len to the real xstate size of this CPU.
  std::vector<uint8_t> buf(64 * 1024);
  iovec iov{buf.data(), buf.size()};
  if (ptrace(PTRACE_GETREGSET, tid, NT_X86_XSTATE, &iov) < 0)
    return ErrnoError("ptrace(PTRACE_GETREGSET, NT_X86_XSTATE, pid=%d)", tid);
  buf.resize(iov.iov_len);
  return buf;
}

Status SetXstate(pid_t tid, const std::vector<uint8_t>& xstate) {
  std::vector<uint8_t> copy = xstate;
  iovec iov{copy.data(), copy.size()};
  if (ptrace(PTRACE_SETREGSET, tid, NT_X86_XSTATE, &iov) < 0)
    return ErrnoError("ptrace(PTRACE_SETREGSET, NT_X86_XSTATE, pid=%d, %zu bytes)", tid,
                      copy.size());
  return Ok{};
}

Result<uint64_t> GetSigmask(pid_t tid) {
  uint64_t mask;
  if (ptrace(PTRACE_GETSIGMASK, tid, sizeof mask, &mask) < 0)
    return ErrnoError("ptrace(PTRACE_GETSIGMASK, pid=%d)", tid);
  return mask;
}

Status SetSigmask(pid_t tid, uint64_t mask) {
  if (ptrace(PTRACE_SETSIGMASK, tid, sizeof mask, &mask) < 0)
    return ErrnoError("ptrace(PTRACE_SETSIGMASK, pid=%d)", tid);
  return Ok{};
}

Status PtraceSyscall(pid_t tid, int sig) {
  if (ptrace(PTRACE_SYSCALL, tid, 0, sig) < 0)
    return ErrnoError("ptrace(PTRACE_SYSCALL, pid=%d)", tid);
  return Ok{};
}

Status PtraceDetach(pid_t tid, int sig) {
  if (ptrace(PTRACE_DETACH, tid, 0, sig) < 0)
    return ErrnoError("ptrace(PTRACE_DETACH, pid=%d)", tid);
  return Ok{};
}

Status DetachInsideSyscall(pid_t tid, const Registers& rewound, int64_t restart) {
  // Past the `syscall` instruction, with its number and its restart code.
  Registers r = rewound;
  r.orig_rax = r.rax;
  r.rax = static_cast<uint64_t>(restart);
  r.rip += 2;
  TRY(SetRegs(tid, r));
  // Out through the signal code: stop it there, and let go.
  TRY(PtraceInterrupt(tid));
  if (ptrace(PTRACE_CONT, tid, 0, 0) < 0) return ErrnoError("ptrace(PTRACE_CONT, pid=%d)", tid);
  int sig = 0;
  for (;;) {
    WaitStatus ws = TRY(WaitForTask(tid));
    if (ws.exited() || ws.signaled())
      return MakeError("thread %d ended while being released: %s", tid, ws.ToString().c_str());
    if (ws.ptrace_event() == PTRACE_EVENT_STOP) break;
    if (ws.stopped() && ws.ptrace_event() == 0) {  // a signal on its way: it goes on with it
      sig = ws.stop_sig();
      break;
    }
    if (ptrace(PTRACE_CONT, tid, 0, 0) < 0) return ErrnoError("ptrace(PTRACE_CONT, pid=%d)", tid);
  }
  return PtraceDetach(tid, sig);
}

Result<std::vector<siginfo_t>> PeekSiginfo(pid_t tid, bool shared) {
  std::vector<siginfo_t> out;
  for (;;) {
    siginfo_t batch[32];
    __ptrace_peeksiginfo_args args{};
    args.off = out.size();
    args.flags = shared ? PTRACE_PEEKSIGINFO_SHARED : 0;
    args.nr = 32;
    long n = ptrace(PTRACE_PEEKSIGINFO, tid, &args, batch);
    if (n < 0) return ErrnoError("ptrace(PTRACE_PEEKSIGINFO, pid=%d, shared=%d)", tid, shared);
    out.insert(out.end(), batch, batch + n);
    if (n < 32) return out;
  }
}

Status ReadRemote(pid_t pid, RemotePtr addr, void* buf, size_t len) {
  iovec local{buf, len}, remote{reinterpret_cast<void*>(addr.addr()), len};
  ssize_t n = process_vm_readv(pid, &local, 1, &remote, 1, 0);
  if (n != static_cast<ssize_t>(len))
    return ErrnoError("process_vm_readv(pid=%d, addr=0x%lx, len=%zu)", pid, addr.addr(), len);
  return Ok{};
}

Status WriteRemote(pid_t pid, RemotePtr addr, const void* buf, size_t len) {
  iovec local{const_cast<void*>(buf), len}, remote{reinterpret_cast<void*>(addr.addr()), len};
  ssize_t n = process_vm_writev(pid, &local, 1, &remote, 1, 0);
  if (n != static_cast<ssize_t>(len))
    return ErrnoError("process_vm_writev(pid=%d, addr=0x%lx, len=%zu)", pid, addr.addr(), len);
  return Ok{};
}

int64_t RestartCode(const Registers& r) {
  if (static_cast<long>(r.orig_rax) < 0) return 0;
  long ret = static_cast<long>(r.rax);
  return ret == -kERESTARTSYS || ret == -kERESTARTNOINTR || ret == -kERESTARTNOHAND ? ret : 0;
}

Registers RegistersForRestart(const Registers& in) {
  Registers r = in;
  if (static_cast<long>(r.orig_rax) < 0) return r;
  long ret = static_cast<long>(r.rax);
  if (RestartCode(r)) {
    r.rax = r.orig_rax;
    r.rip -= 2;  // back over the two-byte `syscall`
  } else if (ret == -kERESTART_RESTARTBLOCK) {
    // The kernel's restart block does not survive a restore. An absolute
    // clock_nanosleep, and a poll without a timeout (which the kernel also
    // restarts through a restart block: coreutils' `tail -f` dies of an
    // EINTR from it), have all they need in their arguments, so re-issue
    // them; anything else goes through restart_syscall, which returns EINTR
    // on a task without a restart block, as after a signal with a handler.
    bool abs_sleep = r.orig_rax == SYS_clock_nanosleep && (r.rsi & TIMER_ABSTIME);
    bool endless_poll = r.orig_rax == SYS_poll && static_cast<int>(r.rdx) < 0;
    if (abs_sleep || endless_poll)
      r.rax = r.orig_rax;
    else
      r.rax = SYS_restart_syscall;
    r.rip -= 2;
  }
  r.orig_rax = static_cast<unsigned long>(-1);
  return r;
}

}  // namespace crl
