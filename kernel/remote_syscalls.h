// Running syscalls inside a stopped tracee (rr's AutoRemoteSyscalls).
//
// The constructor saves the tracee's registers; Syscall() points rip at a
// `syscall` instruction in the tracee, loads the arguments, resumes it to the
// syscall-exit stop and returns the kernel's raw result; the destructor puts
// the saved registers back. The tracee must be in a ptrace stop throughout
// and should have its signals blocked (PTRACE_SETSIGMASK) so that no handler
// runs in the middle.
#pragma once

#include <sys/types.h>

#include <array>
#include <cstdint>
#include <memory>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include "base/result.h"
#include "kernel/ptrace_task.h"
#include "kernel/remote_ptr.h"

namespace crl {

class RemoteSyscalls {
 public:
  // How the task is left between remote syscalls and at the end.
  enum class Mode {
    // A task criu-lite made and keeps (restore's puppets): registers put
    // back, signal mask left to the caller.
    kPuppet,
    // A task that must be able to run on if criu-lite dies (the dump): it
    // was seized stopped inside the kernel's signal code with its own
    // registers and mask, the state a ptrace detach (even the kernel's, when
    // the tracer dies) resumes correctly. The first syscall opens a window:
    // it writes a signal frame holding the task's registers, mask and FPU
    // state under its stack pointer (where the kernel would put one), and
    // parks the task at an rt_sigreturn instruction of its own (libc's
    // __restore_rt) with every signal blocked. Each syscall is run by
    // turning that rt_sigreturn into it at the syscall-entry stop, returning
    // to the same place. So at every moment a criu-lite killed leaves the
    // task either as it was or about to return through the frame to where
    // it was. The destructor parks it in its signal code again with its own
    // registers and mask, and puts its stack bytes back.
    kWindow,
  };
  RemoteSyscalls(pid_t tid, RemotePtr syscall_insn, const Registers& saved,
                 Mode mode = Mode::kPuppet);
  ~RemoteSyscalls();
  RemoteSyscalls(const RemoteSyscalls&) = delete;
  RemoteSyscalls& operator=(const RemoteSyscalls&) = delete;

  pid_t tid() const { return tid_; }

  // The raw kernel result (-errno on failure). The outer error is for the
  // tracee itself going away or ptrace failing.
  Result<int64_t> Syscall(long nr, SyscallArg a1 = 0, SyscallArg a2 = 0, SyscallArg a3 = 0,
                          SyscallArg a4 = 0, SyscallArg a5 = 0, SyscallArg a6 = 0) {
    return RawSyscall(nr, a1.value(), a2.value(), a3.value(), a4.value(), a5.value(), a6.value());
  }
  // Like Syscall, but a -errno result is an error naming WHAT and the pid.
  Result<int64_t> Checked(const char* what, long nr, SyscallArg a1 = 0, SyscallArg a2 = 0,
                          SyscallArg a3 = 0, SyscallArg a4 = 0, SyscallArg a5 = 0,
                          SyscallArg a6 = 0) {
    return RawChecked(what, nr, a1.value(), a2.value(), a3.value(), a4.value(), a5.value(),
                      a6.value());
  }

  // kWindow: kScratchBytes of memory in the task for a syscall's answers,
  // valid while this object lives (under the frame on the task's stack).
  static constexpr size_t kScratchBytes = 256;
  Result<RemotePtr> Scratch();

  // Whether the window rests on a signal frame (else, with no rt_sigreturn
  // instruction in the task or no room under its stack pointer, a criu-lite
  // killed inside it leaves the task changed).
  bool guarded() const { return guarded_; }
  // How many unguarded windows criu-lite has opened (each maps scratch
  // memory in its task, and unmaps it).
  static uint64_t UnguardedWindows();

  // kPuppet: LOOP is BatchLoop() copied into the task; from now on each
  // syscall runs through its single-syscall stub (one ptrace stop instead
  // of PTRACE_SYSCALL's two), except once batches are forbidden.
  void UseLoop(RemotePtr loop) { loop_ = loop; }

  // Leaves the registers as they are at destruction (the restorer sets the
  // final ones itself).
  void DontRestoreRegisters() { restore_ = false; }
  // The task's pending signals are queued: from now on RunBatchLoop
  // refuses, and a RemoteBatch runs its syscalls one at a time.
  void ForbidBatches() { batches_forbidden_ = true; }
  bool batches_forbidden() const { return batches_forbidden_; }

  // The task the last remote fork or clone made, by its PID in criu-lite's
  // namespace (the syscall's result is the one in the caller's), or 0.
  pid_t last_new_task() const { return last_new_task_; }

  // Runs a syscall that ends the task (exit_group, or a kill of itself with
  // a fatal signal) and waits until it is gone; returns how it ended.
  Result<WaitStatus> SyscallThatExits(long nr, uint64_t a1 = 0, uint64_t a2 = 0);

  // kPuppet: runs the batch loop at LOOP (BatchLoop(), copied into the
  // task) over the N records at RECORDS, in one resume; returns how many
  // ran (the last of them the one that failed, if one did). RemoteBatch is
  // the way to use it.
  Result<size_t> RunBatchLoop(RemotePtr loop, RemotePtr records, size_t n);
  // The same in two halves: the task is resumed and runs the batch while
  // criu-lite does other work; WaitBatchLoop waits until it has stopped.
  // Nothing else may be asked of the task in between.
  Status StartBatchLoop(RemotePtr loop, RemotePtr records, size_t n);
  Result<size_t> WaitBatchLoop();

 private:
  // The saved registers, at the syscall instruction, loaded for NR(args).
  Registers RegsFor(long nr, uint64_t a1 = 0, uint64_t a2 = 0, uint64_t a3 = 0, uint64_t a4 = 0,
                    uint64_t a5 = 0, uint64_t a6 = 0) const;
  Status OpenWindow();
  Status GuardWindow();
  Status CloseWindow();
  Result<int64_t> RawSyscall(long nr, uint64_t a1, uint64_t a2, uint64_t a3, uint64_t a4,
                             uint64_t a5, uint64_t a6);
  Result<int64_t> RawChecked(const char* what, long nr, uint64_t a1, uint64_t a2, uint64_t a3,
                             uint64_t a4, uint64_t a5, uint64_t a6);
  Result<int64_t> GuardedSyscall(long nr, const Registers& regs);
  Result<int64_t> StubSyscall(Registers regs);
  // Whether a stop with ptrace EVENT was a fork or clone's report (its new
  // task kept in last_new_task_).
  Result<bool> TookNewTask(int event);
  pid_t tid_;
  pid_t last_new_task_ = 0;
  RemotePtr syscall_insn_;
  RemotePtr loop_;
  Registers saved_;
  Mode mode_;
  bool window_open_ = false;
  uint64_t saved_mask_ = 0;
  // A guarded window: the task rests at sigreturn_ with rsp = frame_ + 8.
  bool guarded_ = false;
  RemotePtr sigreturn_;
  RemotePtr frame_;
  RemotePtr scratch_;
  bool scratch_mapped_ = false;  // an unguarded window's scratch: an mmap
  // The task's bytes the frame and scratch cover, put back at the close.
  RemotePtr covered_;
  std::vector<uint8_t> covered_bytes_;
  bool restore_ = true;
  bool batches_forbidden_ = false;
  // The batch the task is running (StartBatchLoop): its stop, its length.
  RemotePtr batch_stop_;
  size_t batch_n_ = 0;
};

// Scratch memory in a puppet (criu-lite's own blob in it), used as a
// stack: Push() copies bytes in and returns their remote address. What is
// pushed lives as long as the innermost Frame: each user opens one, and its
// end releases what was pushed in it (last in, first out).
class RemoteScratch {
 public:
  RemoteScratch(pid_t pid, RemotePtr base, size_t size) : pid_(pid), base_(base), size_(size) {}
  Result<RemotePtr> Push(const void* data, size_t len);
  // V copied in: a pointer to it there.
  template <typename T>
  requires std::is_trivially_copyable_v<T> Result<remote_ptr<T>> Push(const T& v) {
    RemotePtr p = TRY(Push(&v, sizeof v));
    return p.As<T>();
  }
  // N elements from DATA copied in: a pointer to the first.
  template <typename T>
  requires std::is_trivially_copyable_v<T> Result<remote_ptr<T>> PushArray(const T* data,
                                                                           size_t n) {
    RemotePtr p = TRY(Push(data, n * sizeof(T)));
    return p.As<T>();
  }
  Result<remote_ptr<char>> PushString(const std::string& s) {
    return PushArray(s.c_str(), s.size() + 1);
  }
  Result<RemotePtr> Reserve(size_t len);
  RemotePtr base() const { return base_; }
  size_t size() const { return size_; }

  class Frame {
   public:
    explicit Frame(RemoteScratch& s) : s_(s), mark_(s.used_) {}
    ~Frame() { s_.used_ = mark_; }
    Frame(const Frame&) = delete;
    Frame& operator=(const Frame&) = delete;

   private:
    RemoteScratch& s_;
    size_t mark_;
  };

 private:
  pid_t pid_;
  RemotePtr base_;
  size_t size_;
  size_t used_ = 0;
};

// The loop a puppet runs a RemoteBatch with: position-independent code to
// copy into the task (the restore's blob), and the offset of the instruction
// it stops at once done.
struct BatchLoopCode {
  const uint8_t* bytes;
  size_t size;
  size_t stop_offset;
  // One syscall from the registers, stopping at the same place
  // (RemoteSyscalls::UseLoop).
  size_t single_offset;
};
BatchLoopCode BatchLoop();

// Syscalls a puppet runs one after another by itself, in one resume
// (RemoteSyscalls::RunBatchLoop), where each syscall made one at a time
// costs two trips through ptrace. For syscalls whose arguments do not
// depend on an earlier one's result. The first that fails stops the batch
// (its error names it), unless it was added with AddMayFail.
//
// The loop ends with the task sending itself SIGSTOP, the one signal it
// cannot block, which criu-lite takes at its delivery stop and discards.
// Sending a stop signal also discards a pending SIGCONT: once the task's
// pending signals are queued (RemoteSyscalls::ForbidBatches), a batch is run
// one syscall at a time.
class RemoteBatch {
 public:
  RemoteBatch(RemoteSyscalls& rs, RemoteScratch& scratch, RemotePtr loop)
      : rs_(rs), scratch_(scratch), loop_(loop) {}
  // NR(args); WHAT names it if it fails.
  void Add(std::string what, long nr, SyscallArg a1 = 0, SyscallArg a2 = 0, SyscallArg a3 = 0,
           SyscallArg a4 = 0, SyscallArg a5 = 0, SyscallArg a6 = 0) {
    Append(std::move(what), false, nr,
           {a1.value(), a2.value(), a3.value(), a4.value(), a5.value(), a6.value()});
  }
  // The same, for a syscall whose failure is an answer (result() has it).
  void AddMayFail(std::string what, long nr, SyscallArg a1 = 0, SyscallArg a2 = 0,
                  SyscallArg a3 = 0, SyscallArg a4 = 0, SyscallArg a5 = 0, SyscallArg a6 = 0) {
    Append(std::move(what), true, nr,
           {a1.value(), a2.value(), a3.value(), a4.value(), a5.value(), a6.value()});
  }
  size_t size() const { return records_.size(); }
  // Runs what was added (then empty again); what the arguments point to in
  // the task must stay there until this returns.
  Status Run();
  // Run in two halves: Start resumes the task on the batch, Finish waits
  // for it. In between criu-lite may drive other tasks, not this one (nor
  // its scratch memory); the arguments must stay until Finish. Where
  // batches are forbidden, Start runs it all.
  Status Start();
  Status Finish();
  // The raw result of the I-th syscall of the last Run.
  int64_t result(size_t i) const { return results_.at(i); }

  // One syscall as the loop reads it (64 bytes).
  struct Record {
    uint32_t nr;
    uint32_t may_fail;
    uint64_t args[6];
    int64_t result;
  };
  static_assert(sizeof(Record) == 64);

 private:
  void Append(std::string what, bool may_fail, long nr, const std::array<uint64_t, 6>& args);
  static bool Failed(const Record& r) { return r.result < 0 && r.result > -4096 && !r.may_fail; }
  RemoteSyscalls& rs_;
  RemoteScratch& scratch_;
  RemotePtr loop_;
  std::vector<Record> records_;
  std::vector<std::string> what_;
  std::vector<int64_t> results_;
  // Between Start and Finish: what runs, where its records are in the task
  // (in a scratch frame of their own), whether the task runs them still.
  std::vector<Record> running_;
  std::vector<std::string> running_what_;
  std::unique_ptr<RemoteScratch::Frame> frame_;
  RemotePtr records_at_;
  size_t ran_ = 0;
  bool started_ = false;
};

// An fd opened in a task by remote syscalls, closed there when this ends:
// no path out of a restore step leaves one behind in the task.
class RemoteFd {
 public:
  RemoteFd() = default;
  RemoteFd(RemoteSyscalls& rs, int fd) : rs_(&rs), fd_(fd) {}
  RemoteFd(RemoteFd&& o) noexcept : rs_(o.rs_), fd_(std::exchange(o.fd_, -1)) {}
  RemoteFd& operator=(RemoteFd&& o) noexcept {
    if (this != &o) {
      Close();
      rs_ = o.rs_;
      fd_ = std::exchange(o.fd_, -1);
    }
    return *this;
  }
  ~RemoteFd() { Close(); }
  int get() const { return fd_; }
  bool valid() const { return fd_ >= 0; }
  // The task keeps it: no longer closed here.
  int Release() { return std::exchange(fd_, -1); }

 private:
  void Close();
  RemoteSyscalls* rs_ = nullptr;
  int fd_ = -1;
};

// PATH opened in the task with FLAGS (O_CLOEXEC added); the path goes
// through SCRATCH in a frame of its own.
Result<RemoteFd> OpenRemote(RemoteSyscalls& rs, RemoteScratch& scratch, const std::string& path,
                            int flags);

// Address of a `syscall` instruction (0f 05) in [start, end) of PID's memory.
Result<RemotePtr> FindSyscallInsn(pid_t pid, uint64_t start, uint64_t end);

// Address of `mov $15, %rax` (or %eax) followed by `syscall`, an
// rt_sigreturn as every libc's signal restorer has it, in an executable
// file mapping of PID; a null pointer if it has none. Found once per file
// (and per process, checked again on each use).
Result<RemotePtr> FindSigreturnInsn(pid_t pid);

}  // namespace crl
