#include "kernel/remote_syscalls.h"

#include <sys/ptrace.h>

#include <cstring>

#include "kernel/log.h"

namespace crl {

RemoteSyscalls::RemoteSyscalls(pid_t tid, RemotePtr syscall_insn, const Registers& saved, Mode mode)
    : tid_(tid), syscall_insn_(syscall_insn), saved_(saved), mode_(mode) {}

RemoteSyscalls::~RemoteSyscalls() {
  if (mode_ == Mode::kWindow) {
    Status s = CloseWindow();
    if (!s.ok()) LOG_WARN("leaving thread %d as it was: %s", tid_, s.error().message.c_str());
    return;
  }
  if (!restore_) return;
  Status s = SetRegs(tid_, saved_);
  if (!s.ok()) LOG_WARN("restoring registers after remote syscalls: %s", s.error().message.c_str());
}

Status RemoteSyscalls::OpenWindow() {
  // The fault-injection test reads these two lines: a criu-lite killed
  // between them may leave this thread changed (and nowhere else).
  LOG_DEBUG("remote-syscall window opens in thread %d", tid_);
  // No handler may run on the registers criu-lite loads.
  saved_mask_ = TRY(GetSigmask(tid_));
  TRY(SetSigmask(tid_, ~0ull));
  window_open_ = true;
  return Ok{};
}

Status RemoteSyscalls::CloseWindow() {
  if (!window_open_) return Ok{};
  window_open_ = false;
  TRY(SetRegs(tid_, saved_));
  // The task is in a syscall-exit stop now. Resumed from there, it would
  // return to user space with a syscall it had been in unfinished (rax
  // -ERESTART*): the kernel restarts syscalls only on its way out through
  // the signal code. Stop it there again, where it was seized.
  TRY(PtraceInterrupt(tid_));
  if (ptrace(PTRACE_CONT, tid_, 0, 0) < 0) return ErrnoError("ptrace(PTRACE_CONT, pid=%d)", tid_);
  for (;;) {
    WaitStatus ws = TRY(WaitForTask(tid_));
    if (ws.exited() || ws.signaled())
      return MakeError("thread %d ended: %s", tid_, ws.ToString().c_str());
    if (ws.ptrace_event() == PTRACE_EVENT_STOP) break;
    // Every signal but SIGKILL is blocked: nothing else can stop it here.
    return MakeError("thread %d: expected to stop in its signal code, got %s", tid_,
                     ws.ToString().c_str());
  }
  TRY(SetSigmask(tid_, saved_mask_));
  LOG_DEBUG("remote-syscall window closed in thread %d", tid_);
  return Ok{};
}

Registers RemoteSyscalls::RegsFor(long nr, uint64_t a1, uint64_t a2, uint64_t a3, uint64_t a4,
                                  uint64_t a5, uint64_t a6) const {
  Registers r = saved_;
  r.rip = syscall_insn_.addr();
  r.rax = nr;
  // orig_rax = -1: when the tracee leaves a signal stop, the kernel must not
  // take our registers for an interrupted syscall and rewind them.
  r.orig_rax = static_cast<unsigned long>(-1);
  r.rdi = a1;
  r.rsi = a2;
  r.rdx = a3;
  r.r10 = a4;
  r.r8 = a5;
  r.r9 = a6;
  return r;
}

Result<int64_t> RemoteSyscalls::Syscall(long nr, uint64_t a1, uint64_t a2, uint64_t a3, uint64_t a4,
                                        uint64_t a5, uint64_t a6) {
  if (mode_ == Mode::kWindow && !window_open_) TRY(OpenWindow());
  TRY(SetRegs(tid_, RegsFor(nr, a1, a2, a3, a4, a5, a6)));
  // Two syscall stops: entry, then exit. A clone or fork in between reports
  // an event stop first, which carries the new task's TID.
  int group_stop_traps = 0;
  for (int stops = 0; stops < 2;) {
    TRY(PtraceSyscall(tid_));
    WaitStatus ws = TRY(WaitForTask(tid_));
    if (ws.is_syscall_stop()) {
      stops++;
      continue;
    }
    int ev = ws.ptrace_event();
    // A task whose group-stop was just ended traps once more to say so.
    if (ev == PTRACE_EVENT_STOP && ++group_stop_traps <= 4) continue;
    if (ev == PTRACE_EVENT_FORK || ev == PTRACE_EVENT_CLONE || ev == PTRACE_EVENT_VFORK) {
      unsigned long msg = 0;
      ptrace(PTRACE_GETEVENTMSG, tid_, 0, &msg);
      last_new_task_ = static_cast<pid_t>(msg);
      continue;
    }
    return MakeError("remote syscall %ld in pid %d: expected a syscall stop, got %s", nr, tid_,
                     ws.ToString().c_str());
  }
  Registers after = TRY(GetRegs(tid_));
  LOG_DEBUG("remote syscall %ld(0x%lx, 0x%lx, 0x%lx, 0x%lx, 0x%lx, 0x%lx) in pid %d = %ld", nr, a1,
            a2, a3, a4, a5, a6, tid_, static_cast<long>(after.rax));
  return static_cast<int64_t>(after.rax);
}

Result<WaitStatus> RemoteSyscalls::SyscallThatExits(long nr, uint64_t a1, uint64_t a2) {
  TRY(SetRegs(tid_, RegsFor(nr, a1, a2)));
  restore_ = false;
  int sig = 0;
  for (;;) {
    if (ptrace(PTRACE_CONT, tid_, 0, sig) < 0)
      return ErrnoError("ptrace(PTRACE_CONT, pid=%d)", tid_);
    WaitStatus ws = TRY(WaitForTask(tid_));
    if (ws.exited() || ws.signaled()) return ws;
    // A fatal signal it sent itself stops it on the way: deliver it.
    sig = ws.stopped() && ws.ptrace_event() == 0 ? ws.stop_sig() : 0;
  }
}

Result<int64_t> RemoteSyscalls::Checked(const char* what, long nr, uint64_t a1, uint64_t a2,
                                        uint64_t a3, uint64_t a4, uint64_t a5, uint64_t a6) {
  int64_t r = TRY(Syscall(nr, a1, a2, a3, a4, a5, a6));
  if (r < 0 && r > -4096) return ErrnoError(static_cast<int>(-r), "%s in pid %d", what, tid_);
  return r;
}

Result<RemotePtr> RemoteScratch::Reserve(size_t len) {
  size_t aligned = (len + 15) & ~size_t{15};
  if (used_ + aligned > size_)
    return MakeError("scratch memory in pid %d exhausted (%zu of %zu bytes used, %zu more wanted)",
                     pid_, used_, size_, len);
  RemotePtr p = base_ + used_;
  used_ += aligned;
  return p;
}

Result<RemotePtr> RemoteScratch::Push(const void* data, size_t len) {
  RemotePtr p = TRY(Reserve(len));
  TRY(WriteRemote(pid_, p, data, len));
  return p;
}

Result<RemotePtr> FindSyscallInsn(pid_t pid, uint64_t start, uint64_t end) {
  std::vector<uint8_t> buf(end - start);
  TRY(ReadRemote(pid, RemotePtr(start), buf.data(), buf.size()));
  for (size_t i = 0; i + 1 < buf.size(); i++)
    if (buf[i] == 0x0f && buf[i + 1] == 0x05) return RemotePtr(start + i);
  return MakeError("no syscall instruction in pid %d at 0x%lx-0x%lx", pid, start, end);
}

}  // namespace crl
