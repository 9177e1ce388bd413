#include "kernel/remote_syscalls.h"

#include <cpuid.h>
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/ptrace.h>
#include <sys/syscall.h>

#include <algorithm>
#include <atomic>
#include <cstddef>
#include <cstring>
#include <map>
#include <mutex>
#include <optional>
#include <tuple>

#include "base/interrupt.h"
#include "base/log.h"
#include "kernel/kernel_probe.h"
#include "kernel/proc_task.h"
#include "kernel/uapi.h"
#include "kernel/vma_list.h"

namespace crl {
namespace {

// The kernel's x86-64 signal frame (asm/sigframe.h, uapi asm/sigcontext.h):
// what rt_sigreturn reads at rsp - 8.
struct KernelSigcontext {
  uint64_t r8, r9, r10, r11, r12, r13, r14, r15;
  uint64_t di, si, bp, bx, dx, ax, cx, sp, ip, flags;
  uint16_t cs, gs, fs, ss;
  uint64_t err, trapno, oldmask, cr2;
  uint64_t fpstate;
  uint64_t reserved1[8];
};
struct KernelStack {
  uint64_t sp;
  int32_t flags;
  int32_t pad;
  uint64_t size;
};
struct KernelUcontext {
  uint64_t flags;
  uint64_t link;
  KernelStack stack;
  KernelSigcontext mcontext;
  uint64_t sigmask;
};
struct KernelRtSigframe {
  uint64_t pretcode;
  KernelUcontext uc;
  uint8_t info[128];
};
static_assert(sizeof(KernelSigcontext) == 256);
static_assert(offsetof(KernelUcontext, sigmask) == 296);
static_assert(sizeof(KernelRtSigframe) == 440);

constexpr uint64_t kUcFpXstate = 0x1, kUcSigcontextSs = 0x2, kUcStrictRestoreSs = 0x4;
// The software-defined bytes of an xsave area in a signal frame
// (uapi asm/sigcontext.h, struct _fpx_sw_bytes), at the end of its legacy
// fxsave part; MAGIC2 follows the xstate.
struct FpxSwBytes {
  uint32_t magic1;
  uint32_t extended_size;
  uint64_t xfeatures;
  uint32_t xstate_size;
  uint32_t padding[7];
};
static_assert(sizeof(FpxSwBytes) == 48);
constexpr size_t kSwBytesOffset = 464;
constexpr size_t kMinXstate = 512 + 64;  // fxsave area and xsave header
constexpr uint32_t kFpXstateMagic1 = 0x46505853, kFpXstateMagic2 = 0x46505845;
constexpr uint64_t kRedZone = 128;  // the ABI's, under rsp: never written

// `mov $15, %rax; syscall` (glibc's __restore_rt, Go's sigreturn) and
// `mov $15, %eax; syscall` (musl's): executed from their first byte, both
// are an rt_sigreturn wherever they are found.
constexpr uint8_t kMovRaxSigreturn[] = {0x48, 0xc7, 0xc0, 0x0f, 0x00, 0x00, 0x00, 0x0f, 0x05};
constexpr uint8_t kMovEaxSigreturn[] = {0xb8, 0x0f, 0x00, 0x00, 0x00, 0x0f, 0x05};

bool IsSigreturn(const uint8_t* p, size_t len) {
  return (len >= sizeof kMovRaxSigreturn &&
          memcmp(p, kMovRaxSigreturn, sizeof kMovRaxSigreturn) == 0) ||
         (len >= sizeof kMovEaxSigreturn &&
          memcmp(p, kMovEaxSigreturn, sizeof kMovEaxSigreturn) == 0);
}

// Offset of the first rt_sigreturn sequence in mapping M of PID, or -1.
int64_t ScanForSigreturn(pid_t pid, const MapsEntry& m) {
  constexpr size_t kChunk = 1 << 20;
  std::vector<uint8_t> buf;
  for (uint64_t at = m.start; at < m.end; at += kChunk) {
    size_t len = std::min<uint64_t>(kChunk + sizeof kMovRaxSigreturn, m.end - at);
    buf.resize(len);
    if (!ReadRemote(pid, RemotePtr(at), buf.data(), len).ok()) return -1;  // execute-only
    for (size_t i = 0; i < std::min(len, kChunk); i++)
      if ((buf[i] == 0x48 || buf[i] == 0xb8) && IsSigreturn(&buf[i], len - i))
        return static_cast<int64_t>(at - m.start + i);
  }
  return -1;
}

Result<std::vector<MapsEntry>> ExecutableFileMappings(pid_t pid) {
  std::vector<MapsEntry> all;
  if (Kernel().procmap_query) {
    all = TRY(QueryVmasWithProcmapQuery(
        pid, PROCMAP_QUERY_VMA_EXECUTABLE | PROCMAP_QUERY_FILE_BACKED_VMA));
  } else {
    std::string text = TRY(ProcTask(pid).Read("maps"));
    all = TRY(ParseProcMaps(text).Context(ProcTask(pid).Path("maps")));
  }
  std::vector<MapsEntry> out;
  for (auto& m : all)
    if (m.exec && m.read && m.inode != 0) out.push_back(std::move(m));
  // A libc has one; a program's own text seldom does: look there first.
  std::stable_partition(out.begin(), out.end(), [](const MapsEntry& m) {
    return m.path.find("/libc") != std::string::npos || m.path.find("ld-musl") != std::string::npos;
  });
  return out;
}

std::mutex g_sigreturn_mu;
std::map<pid_t, uint64_t> g_sigreturn_by_pid;
// (device, inode, file offset, length) of a mapping -> offset in it, or -1.
std::map<std::tuple<uint32_t, uint32_t, uint64_t, uint64_t, uint64_t>, int64_t> g_sigreturn_by_file;

}  // namespace

Result<RemotePtr> FindSigreturnInsn(pid_t pid) {
  std::lock_guard lock(g_sigreturn_mu);
  auto check = [&](uint64_t addr) {
    uint8_t b[sizeof kMovRaxSigreturn] = {};
    return ReadRemote(pid, RemotePtr(addr), b, sizeof kMovEaxSigreturn).ok() &&
           (IsSigreturn(b, sizeof kMovEaxSigreturn) ||
            (ReadRemote(pid, RemotePtr(addr), b, sizeof b).ok() && IsSigreturn(b, sizeof b)));
  };
  if (auto it = g_sigreturn_by_pid.find(pid); it != g_sigreturn_by_pid.end()) {
    if (check(it->second)) return RemotePtr(it->second);
    g_sigreturn_by_pid.erase(it);
  }
  for (const MapsEntry& m : TRY(ExecutableFileMappings(pid))) {
    auto key = std::make_tuple(m.dev_major, m.dev_minor, m.inode, m.offset, m.end - m.start);
    auto [it, fresh] = g_sigreturn_by_file.try_emplace(key, -1);
    if (fresh) it->second = ScanForSigreturn(pid, m);
    if (it->second < 0 || !check(m.start + it->second)) continue;
    g_sigreturn_by_pid[pid] = m.start + it->second;
    return RemotePtr(m.start + it->second);
  }
  return RemotePtr();
}

namespace {
std::atomic<uint64_t> g_unguarded_windows{0};
}  // namespace

uint64_t RemoteSyscalls::UnguardedWindows() { return g_unguarded_windows; }

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
  saved_mask_ = TRY(GetSigmask(tid_));
  // The task is still as it was: a frame written under its stack pointer
  // is where the kernel may write one at any moment.
  TRY(GuardWindow());
  // The fault-injection test reads these lines: a criu-lite killed inside
  // an unguarded window may leave this thread changed.
  LOG_DEBUG("%sremote-syscall window opens in thread %d", guarded_ ? "guarded " : "unguarded ",
            tid_);
  if (!guarded_) g_unguarded_windows++;
  window_open_ = true;
  if (guarded_) {
    Registers rest = saved_;
    rest.rip = sigreturn_.addr();
    rest.rsp = frame_.addr() + 8;
    rest.orig_rax = static_cast<unsigned long>(-1);  // no syscall to restart
    TRY(SetRegs(tid_, rest));
  }
  // No handler may run on the registers criu-lite loads.
  TRY(SetSigmask(tid_, ~0ull));
  FaultPoint("remote-syscall-window-open");
  return Ok{};
}

namespace {

// TID's xsave area as a signal frame holds it, or nothing (logged). The
// software bytes say which components the area holds and how long it is:
// those its header marks present (the rest are in their initial state,
// which rt_sigreturn gives them), up to the end of the last one (CPUID leaf
// 0xD gives where each component is); MAGIC2 follows.
std::optional<std::vector<uint8_t>> FrameXstate(pid_t tid) {
  Result<std::vector<uint8_t>> xs = GetXstate(tid);
  if (!xs.ok() || xs->size() < kMinXstate) {
    LOG_DEBUG("thread %d: no xsave area to put in a signal frame", tid);
    return std::nullopt;
  }
  std::vector<uint8_t> fpu = std::move(*xs);
  uint64_t present;
  memcpy(&present, fpu.data() + 512, sizeof present);
  uint32_t size = kMinXstate;
  for (unsigned i = 2; i < 64; i++) {
    if (!(present & (1ull << i))) continue;
    unsigned eax, ebx, ecx, edx;
    __cpuid_count(0xd, i, eax, ebx, ecx, edx);
    size = std::max(size, ebx + eax);
  }
  if (size > fpu.size()) {
    LOG_DEBUG("thread %d: xsave area of %zu bytes, %u wanted", tid, fpu.size(), size);
    return std::nullopt;
  }
  FpxSwBytes sw{};
  sw.magic1 = kFpXstateMagic1;
  sw.xfeatures = present | 3;  // x87 and SSE: always restored
  sw.xstate_size = size;
  sw.extended_size = size + sizeof kFpXstateMagic2;
  memcpy(fpu.data() + kSwBytesOffset, &sw, sizeof sw);
  fpu.resize(size + sizeof kFpXstateMagic2);
  memcpy(fpu.data() + size, &kFpXstateMagic2, sizeof kFpXstateMagic2);
  return fpu;
}

// The frame that returns to where the kernel's own detach would have: an
// interrupted syscall restarted (rt_sigreturn cannot carry "restart").
KernelRtSigframe MakeFrame(const Registers& saved, uint64_t mask, RemotePtr sigreturn,
                           uint64_t fpu_at) {
  Registers r = RegistersForRestart(saved);
  KernelRtSigframe f{};
  f.pretcode = sigreturn.addr();
  f.uc.flags = kUcFpXstate | kUcSigcontextSs | kUcStrictRestoreSs;
  // Neither a mode nor "disable": rt_sigreturn then leaves the alternate
  // signal stack as it is (it sets it from here, ignoring all but EFAULT).
  f.uc.stack.flags = SS_ONSTACK | SS_DISABLE;
  f.uc.sigmask = mask;
  KernelSigcontext& c = f.uc.mcontext;
  c.r8 = r.r8, c.r9 = r.r9, c.r10 = r.r10, c.r11 = r.r11;
  c.r12 = r.r12, c.r13 = r.r13, c.r14 = r.r14, c.r15 = r.r15;
  c.di = r.rdi, c.si = r.rsi, c.bp = r.rbp, c.bx = r.rbx;
  c.dx = r.rdx, c.ax = r.rax, c.cx = r.rcx, c.sp = r.rsp;
  c.ip = r.rip, c.flags = r.eflags;
  c.cs = r.cs, c.ss = r.ss;
  c.fpstate = fpu_at;
  return f;
}

}  // namespace

Status RemoteSyscalls::GuardWindow() {
  sigreturn_ = TRY(FindSigreturnInsn(tid_));
  if (sigreturn_.null()) {
    LOG_DEBUG("thread %d: no rt_sigreturn instruction in its executable files", tid_);
    return Ok{};
  }
  std::optional<std::vector<uint8_t>> fpu = FrameXstate(tid_);
  if (!fpu) return Ok{};

  // Laid out as the kernel lays out a signal frame: under the red zone, the
  // xsave area 64-byte aligned, the frame such that rsp = frame + 8 is
  // 16-byte aligned; the scratch under it. What was there is put back at
  // the close; only a criu-lite killed meanwhile leaves it written, which
  // is harmless where the kernel itself writes signal frames (not so on a
  // stack a runtime sized by hand, such as a goroutine's, where a kill
  // inside a window may then leave memory under that stack changed).
  uint64_t fpu_at = (saved_.rsp - kRedZone - fpu->size()) & ~uint64_t{63};
  uint64_t frame_at = ((fpu_at - sizeof(KernelRtSigframe)) & ~uint64_t{15}) - 8;
  uint64_t scratch_at = (frame_at - kScratchBytes) & ~uint64_t{63};
  uint64_t end = fpu_at + fpu->size();
  KernelRtSigframe f = MakeFrame(saved_, saved_mask_, sigreturn_, fpu_at);

  std::vector<uint8_t> bytes(end - scratch_at);
  if (Status s = ReadRemote(tid_, RemotePtr(scratch_at), bytes.data(), bytes.size()); !s.ok()) {
    LOG_DEBUG("thread %d: no room for a signal frame under its stack pointer: %s", tid_,
              s.error().message.c_str());
    return Ok{};
  }
  covered_ = RemotePtr(scratch_at);
  covered_bytes_ = bytes;
  memcpy(bytes.data() + (frame_at - scratch_at), &f, sizeof f);
  memcpy(bytes.data() + (fpu_at - scratch_at), fpu->data(), fpu->size());
  if (Status s = WriteRemote(tid_, covered_, bytes.data(), bytes.size()); !s.ok()) {
    LOG_DEBUG("thread %d: cannot write a signal frame under its stack pointer: %s", tid_,
              s.error().message.c_str());
    return Ok{};
  }
  frame_ = RemotePtr(frame_at);
  scratch_ = RemotePtr(scratch_at);
  guarded_ = true;
  return Ok{};
}

Result<RemotePtr> RemoteSyscalls::Scratch() {
  if (mode_ != Mode::kWindow) return MakeError("thread %d: scratch memory is for windows", tid_);
  if (!window_open_) TRY(OpenWindow());
  if (guarded_ || scratch_mapped_) return scratch_;
  // Shared, so that it never merges with a private mapping next to it: on a
  // soft-dirty kernel, a mapping merged into marks the whole VMA soft-dirty,
  // and the next pass of a pre-copy would copy all of it again.
  int64_t addr = TRY(Checked("mmap(scratch)", SYS_mmap, 0, 4096, PROT_READ | PROT_WRITE,
                             MAP_SHARED | MAP_ANONYMOUS, -1, 0));
  scratch_ = RemotePtr(addr);
  scratch_mapped_ = true;
  return scratch_;
}

// Stops the task in its signal code (from a syscall stop, or again there):
// resumed from a syscall-exit stop, a task would return to user space with
// a syscall it had been in unfinished (rax -ERESTART*): the kernel restarts
// syscalls only on its way out through the signal code.
static Status ParkInSignalCode(pid_t tid) {
  TRY(PtraceInterrupt(tid));
  if (ptrace(PTRACE_CONT, tid, 0, 0) < 0) return ErrnoError("ptrace(PTRACE_CONT, pid=%d)", tid);
  WaitStatus ws = TRY(WaitForTask(tid));
  if (ws.exited() || ws.signaled())
    return MakeError("thread %d ended: %s", tid, ws.ToString().c_str());
  // Every signal but SIGKILL is blocked: nothing else can stop it here.
  if (ws.ptrace_event() != PTRACE_EVENT_STOP)
    return MakeError("thread %d: expected to stop in its signal code, got %s", tid,
                     ws.ToString().c_str());
  return Ok{};
}

Status RemoteSyscalls::CloseWindow() {
  if (!window_open_) return Ok{};
  if (scratch_mapped_) {
    scratch_mapped_ = false;
    Result<int64_t> un = Checked("munmap(scratch)", SYS_munmap, scratch_, 4096);
    if (!un.ok()) LOG_WARN("%s", un.error().message.c_str());
  }
  window_open_ = false;
  if (guarded_) {
    // Each step leaves the task resumable: parked at the rt_sigreturn, then
    // with its own mask, then with its own registers; its stack bytes last.
    TRY(ParkInSignalCode(tid_));
    TRY(SetSigmask(tid_, saved_mask_));
    FaultPoint("remote-syscall-window-closing");
    TRY(SetRegs(tid_, saved_));
    TRY(WriteRemote(tid_, covered_, covered_bytes_.data(), covered_bytes_.size()));
  } else {
    TRY(SetRegs(tid_, saved_));
    TRY(ParkInSignalCode(tid_));
    TRY(SetSigmask(tid_, saved_mask_));
  }
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

Result<int64_t> RemoteSyscalls::RawSyscall(long nr, uint64_t a1, uint64_t a2, uint64_t a3,
                                           uint64_t a4, uint64_t a5, uint64_t a6) {
  if (mode_ == Mode::kWindow && !window_open_) TRY(OpenWindow());
  if (guarded_) {
    Registers r = RegsFor(nr, a1, a2, a3, a4, a5, a6);
    r.rip = sigreturn_.addr();
    r.rsp = frame_.addr() + 8;
    r.orig_rax = nr;
    int64_t result = TRY(GuardedSyscall(nr, r));
    LOG_DEBUG("remote syscall %ld(0x%lx, 0x%lx, 0x%lx, 0x%lx, 0x%lx, 0x%lx) in pid %d = %ld", nr,
              a1, a2, a3, a4, a5, a6, tid_, static_cast<long>(result));
    return result;
  }
  last_new_task_ = 0;
  // Not a syscall that may take away the stub it runs from: it would fault
  // on its next instruction (the release unmaps the blob).
  auto touches_stub = [&] {
    bool on_range = nr == SYS_munmap || nr == SYS_mremap || nr == SYS_mmap || nr == SYS_mprotect;
    return on_range && a1 < loop_.addr() + 4096 && loop_.addr() < a1 + a2;
  };
  if (mode_ == Mode::kPuppet && !loop_.null() && !batches_forbidden_ && !touches_stub())
    return StubSyscall(RegsFor(nr, a1, a2, a3, a4, a5, a6));
  TRY(SetRegs(tid_, RegsFor(nr, a1, a2, a3, a4, a5, a6)));
  // Two syscall stops: entry, then exit.
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
    if (TRY(TookNewTask(ev))) continue;
    return MakeError("remote syscall %ld in pid %d: expected a syscall stop, got %s", nr, tid_,
                     ws.ToString().c_str());
  }
  Registers after = TRY(GetRegs(tid_));
  LOG_DEBUG("remote syscall %ld(0x%lx, 0x%lx, 0x%lx, 0x%lx, 0x%lx, 0x%lx) in pid %d = %ld", nr, a1,
            a2, a3, a4, a5, a6, tid_, static_cast<long>(after.rax));
  return static_cast<int64_t>(after.rax);
}

Result<bool> RemoteSyscalls::TookNewTask(int event) {
  // A fork or clone it made reports first, with the new task's PID as
  // criu-lite sees it.
  if (event != PTRACE_EVENT_FORK && event != PTRACE_EVENT_CLONE && event != PTRACE_EVENT_VFORK)
    return false;
  unsigned long msg = 0;
  if (ptrace(PTRACE_GETEVENTMSG, tid_, 0, &msg) < 0)
    return ErrnoError("ptrace(PTRACE_GETEVENTMSG, pid=%d)", tid_);
  last_new_task_ = static_cast<pid_t>(msg);
  return true;
}

Result<int64_t> RemoteSyscalls::StubSyscall(Registers r) {
  r.rip = (loop_ + BatchLoop().single_offset).addr();
  TRY(SetRegs(tid_, r));
  RemotePtr stop = loop_ + BatchLoop().stop_offset;
  int group_stop_traps = 0;
  for (;;) {
    if (ptrace(PTRACE_CONT, tid_, 0, 0) < 0) return ErrnoError("ptrace(PTRACE_CONT, pid=%d)", tid_);
    WaitStatus ws = TRY(WaitForTask(tid_));
    int ev = ws.ptrace_event();
    if (ev == PTRACE_EVENT_STOP && ++group_stop_traps <= 4) continue;
    if (TRY(TookNewTask(ev))) continue;
    if (!ws.stopped() || ev != 0 || ws.stop_sig() != SIGSTOP)
      return MakeError("remote syscall %llu in pid %d: expected it to stop itself, got %s", r.rax,
                       tid_, ws.ToString().c_str());
    Registers after = TRY(GetRegs(tid_));
    if (after.rip != stop.addr())
      return MakeError("remote syscall %llu in pid %d stopped at 0x%llx, not after it", r.rax, tid_,
                       after.rip);
    // The SIGSTOP is discarded: the next resume passes no signal.
    LOG_DEBUG("remote syscall %llu(0x%llx, 0x%llx, 0x%llx, 0x%llx, 0x%llx, 0x%llx) in pid %d = %ld",
              r.rax, r.rdi, r.rsi, r.rdx, r.r10, r.r8, r.r9, tid_, static_cast<long>(after.r13));
    return static_cast<int64_t>(after.r13);
  }
}

Result<int64_t> RemoteSyscalls::GuardedSyscall(long nr, const Registers& regs) {
  // Resting at the rt_sigreturn, resumed, the task enters it; at that entry
  // stop criu-lite makes it NR, returning to the rt_sigreturn again. Killed
  // before, the task returns through its frame; after, it runs NR first.
  int syscall_stops = 0, group_stop_traps = 0;
  while (syscall_stops < 2) {
    TRY(PtraceSyscall(tid_));
    WaitStatus ws = TRY(WaitForTask(tid_));
    if (ws.is_syscall_stop()) {
      if (syscall_stops++ > 0) break;
      Registers entry = TRY(GetRegs(tid_));
      if (entry.orig_rax != SYS_rt_sigreturn)
        return MakeError("thread %d: expected to enter rt_sigreturn, entered syscall %ld at 0x%llx",
                         tid_, static_cast<long>(entry.orig_rax), entry.rip);
      TRY(SetRegs(tid_, regs));
      FaultPoint("remote-syscall-entered");
      continue;
    }
    int ev = ws.ptrace_event();
    if (ev == PTRACE_EVENT_STOP && ++group_stop_traps <= 4) continue;
    return MakeError("remote syscall %ld in pid %d: expected a syscall stop, got %s", nr, tid_,
                     ws.ToString().c_str());
  }
  Registers after = TRY(GetRegs(tid_));
  FaultPoint("remote-syscall-done");
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

// The batch loop. rbx: the first record (RemoteBatch::Record), r12: how
// many. Each record's syscall is made and its result stored; a failure
// (-4095..-1) stops the loop unless the record may fail. Then the task
// sends itself SIGSTOP (tkill(gettid())) and stops at crl_batch_loop_stop:
// rbx and r12 then say how far it went.
// After it, the same for one syscall whose arguments are in the registers
// already: crl_single makes it, keeps its result in r13, and stops through
// the loop's end. One stop where PTRACE_SYSCALL takes two.
asm(R"(
  .pushsection .rodata.crl_batch_loop, "a"
  .globl crl_batch_loop, crl_batch_loop_stop, crl_batch_loop_end
crl_batch_loop:
1:
  test %r12, %r12
  jz 2f
  mov (%rbx), %eax
  mov 8(%rbx), %rdi
  mov 16(%rbx), %rsi
  mov 24(%rbx), %rdx
  mov 32(%rbx), %r10
  mov 40(%rbx), %r8
  mov 48(%rbx), %r9
  syscall
  mov %rax, 56(%rbx)
  add $64, %rbx
  dec %r12
  cmp $-4095, %rax
  jb 1b
  testb $1, -60(%rbx)
  jnz 1b
2:
  mov $186, %eax
  syscall
  mov %eax, %edi
  mov $19, %esi
  mov $200, %eax
  syscall
crl_batch_loop_stop:
  ud2
crl_single:
  syscall
  mov %rax, %r13
  jmp 2b
crl_batch_loop_end:
  .popsection
)");
extern "C" const uint8_t crl_batch_loop[], crl_batch_loop_stop[], crl_single[],
    crl_batch_loop_end[];
static_assert(SYS_gettid == 186 && SYS_tkill == 200 && SIGSTOP == 19);

BatchLoopCode BatchLoop() {
  auto at = [](const uint8_t* label) { return static_cast<size_t>(label - crl_batch_loop); };
  return {crl_batch_loop, at(crl_batch_loop_end), at(crl_batch_loop_stop), at(crl_single)};
}

Result<size_t> RemoteSyscalls::RunBatchLoop(RemotePtr loop, RemotePtr records, size_t n) {
  TRY(StartBatchLoop(loop, records, n));
  return WaitBatchLoop();
}

Status RemoteSyscalls::StartBatchLoop(RemotePtr loop, RemotePtr records, size_t n) {
  if (mode_ != Mode::kPuppet) return MakeError("thread %d: batches are for puppets", tid_);
  if (batches_forbidden_)
    return MakeError("thread %d: no batch of syscalls once its pending signals are queued", tid_);
  Registers r = saved_;
  r.rip = loop.addr();
  r.rbx = records.addr();
  r.r12 = n;
  r.orig_rax = static_cast<unsigned long>(-1);
  TRY(SetRegs(tid_, r));
  if (ptrace(PTRACE_CONT, tid_, 0, 0) < 0) return ErrnoError("ptrace(PTRACE_CONT, pid=%d)", tid_);
  batch_stop_ = loop + BatchLoop().stop_offset;
  batch_n_ = n;
  return Ok{};
}

Result<size_t> RemoteSyscalls::WaitBatchLoop() {
  size_t n = std::exchange(batch_n_, 0);
  int group_stop_traps = 0;
  for (;;) {
    WaitStatus ws = TRY(WaitForTask(tid_));
    if (ws.ptrace_event() == PTRACE_EVENT_STOP && ++group_stop_traps <= 4) {
      if (ptrace(PTRACE_CONT, tid_, 0, 0) < 0)
        return ErrnoError("ptrace(PTRACE_CONT, pid=%d)", tid_);
      continue;
    }
    if (!ws.stopped() || ws.ptrace_event() != 0 || ws.stop_sig() != SIGSTOP)
      return MakeError(
          "a batch of %zu remote syscalls in pid %d: expected it to stop itself, got %s", n, tid_,
          ws.ToString().c_str());
    Registers after = TRY(GetRegs(tid_));
    if (after.rip != batch_stop_.addr() || after.r12 > n)
      return MakeError("a batch of %zu remote syscalls in pid %d stopped at 0x%llx, not at its end",
                       n, tid_, after.rip);
    LOG_DEBUG("a batch of %zu remote syscalls in pid %d ran %llu", n, tid_, n - after.r12);
    // The SIGSTOP is discarded: the next resume passes no signal.
    return n - after.r12;
  }
}

void RemoteBatch::Append(std::string what, bool may_fail, long nr,
                         const std::array<uint64_t, 6>& args) {
  Record rec{};
  rec.nr = static_cast<uint32_t>(nr);
  rec.may_fail = may_fail ? 1 : 0;
  std::copy(args.begin(), args.end(), rec.args);
  records_.push_back(rec);
  what_.push_back(std::move(what));
}

Status RemoteBatch::Run() {
  TRY(Start());
  return Finish();
}

Status RemoteBatch::Start() {
  running_ = std::exchange(records_, {});
  running_what_ = std::exchange(what_, {});
  results_.clear();
  ran_ = 0;
  if (running_.empty()) return Ok{};
  frame_ = std::make_unique<RemoteScratch::Frame>(scratch_);
  if (rs_.batches_forbidden()) {
    // One at a time, stopping where the loop would: done once Start returns.
    while (ran_ < running_.size()) {
      Record& r = running_[ran_++];
      r.result =
          TRY(rs_.Syscall(r.nr, r.args[0], r.args[1], r.args[2], r.args[3], r.args[4], r.args[5]));
      if (Failed(r)) break;
    }
    return Ok{};
  }
  records_at_ = RemotePtr(TRY(scratch_.PushArray(running_.data(), running_.size())));
  TRY(rs_.StartBatchLoop(loop_, records_at_, running_.size()));
  started_ = true;
  return Ok{};
}

Status RemoteBatch::Finish() {
  if (started_) {
    started_ = false;
    ran_ = TRY(rs_.WaitBatchLoop());
    TRY(ReadRemote(rs_.tid(), records_at_, running_.data(), ran_ * sizeof(Record)));
    for (size_t i = 0; i < ran_; i++)
      LOG_DEBUG(
          "remote syscall %u(0x%lx, 0x%lx, 0x%lx, 0x%lx, 0x%lx, 0x%lx) in pid %d = %ld "
          "(batched)",
          running_[i].nr, running_[i].args[0], running_[i].args[1], running_[i].args[2],
          running_[i].args[3], running_[i].args[4], running_[i].args[5], rs_.tid(),
          static_cast<long>(running_[i].result));
  }
  frame_.reset();
  std::vector<Record> records = std::exchange(running_, {});
  std::vector<std::string> what = std::exchange(running_what_, {});
  for (size_t i = 0; i < ran_; i++) {
    results_.push_back(records[i].result);
    if (Failed(records[i]))
      return ErrnoError(static_cast<int>(-records[i].result), "%s in pid %d", what[i].c_str(),
                        rs_.tid());
  }
  if (ran_ < records.size())
    return MakeError("a batch of %zu remote syscalls in pid %d stopped after %zu", records.size(),
                     rs_.tid(), ran_);
  return Ok{};
}

Result<int64_t> RemoteSyscalls::RawChecked(const char* what, long nr, uint64_t a1, uint64_t a2,
                                           uint64_t a3, uint64_t a4, uint64_t a5, uint64_t a6) {
  int64_t r = TRY(RawSyscall(nr, a1, a2, a3, a4, a5, a6));
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

void RemoteFd::Close() {
  if (rs_ && fd_ >= 0) (void)rs_->Syscall(SYS_close, fd_);
  fd_ = -1;
}

Result<RemoteFd> OpenRemote(RemoteSyscalls& rs, RemoteScratch& scratch, const std::string& path,
                            int flags) {
  RemoteScratch::Frame frame(scratch);
  auto rpath = TRY(scratch.PushString(path));
  int64_t fd = TRY(rs.Checked(Format("open(%s)", path.c_str()).c_str(), SYS_openat, AT_FDCWD, rpath,
                              flags | O_CLOEXEC));
  return RemoteFd(rs, static_cast<int>(fd));
}

}  // namespace crl
