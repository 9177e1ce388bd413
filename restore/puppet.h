// The puppet: a clone of criu-lite, created with the PID of the task it will
// become, stopped under ptrace, that criu-lite then drives syscall by syscall
// until it is that task (ARCHITECTURE.md, "Restore: the puppeteer").
//
// It runs nothing of its own: every syscall it makes is one criu-lite sets up
// at the `syscall` instruction in its "blob", a private mapping made before
// the fork at an address the restored task does not use. The blob also holds
// scratch memory for syscall arguments and room to park the vDSO while it is
// moved. Until Release(), destroying the Puppet kills it: a failed restore
// leaves nothing behind.
#pragma once

#include <sys/types.h>

#include <memory>
#include <vector>

#include "base/result.h"
#include "kernel/ptrace_task.h"
#include "kernel/remote_ptr.h"
#include "kernel/remote_syscalls.h"

namespace crl {

struct Blob {
  uint64_t start = 0;
  uint64_t size = 0;
  uint64_t syscall_insn() const { return start; }
  uint64_t batch_loop() const { return start + 64; }  // BatchLoop()
  uint64_t scratch_start() const { return start + 4096; }
  static constexpr uint64_t kScratchSize = 1 << 20;
  uint64_t park_start() const { return scratch_start() + kScratchSize; }  // for the vDSO
};

// Maps the blob in criu-lite at an address free of both criu-lite's own
// mappings and AVOID (the restored task's VMAs), with PARK_BYTES to spare.
Result<Blob> MapBlob(const std::vector<std::pair<uint64_t, uint64_t>>& avoid, uint64_t park_bytes);
void UnmapBlob(const Blob& blob);

// The PIDs a new task is made with: clone3's set_tid, innermost namespace
// first (one entry: in the creator's namespace for its children), and
// whether it is the init of a PID namespace of its own (CLONE_NEWPID: its
// first PID is then 1, and the second, if any, its PID in its creator's).
struct NewPid {
  std::vector<pid_t> set_tid;
  bool new_ns = false;
};

class Puppet {
 public:
  // Creates the root puppet with PIDS (clone3 set_tid, or ns_last_pid where
  // the kernel lacks it) and waits until it is stopped under ptrace.
  // SIBLING (--restore-sibling): its parent is criu-lite's parent.
  static Result<std::unique_ptr<Puppet>> Create(const NewPid& pids, const Blob& blob,
                                                bool use_clone3, bool sibling = false);
  // Makes this puppet fork a child puppet with PIDS, as the task did: the
  // child starts as a copy of this one (memory, files), traced too.
  Result<std::unique_ptr<Puppet>> Fork(const NewPid& pids);
  // Makes this puppet start a thread with TIDS (clone3's set_tid, as for a
  // process); it stays stopped, ready to be driven with thread_rs().
  Status CloneThread(const std::vector<pid_t>& tids);
  ~Puppet();

  // Its PID as criu-lite sees it: for criu-lite's own calls (ptrace, /proc,
  // prlimit...).
  pid_t pid() const { return pid_; }
  // Its PID, and thread I's TID, in its own PID namespace: for the remote
  // syscalls that name it (kill, rt_tgsigqueueinfo...).
  pid_t self_pid() const { return self_pid_; }
  pid_t thread_self_tid(size_t i) const { return threads_[i].self_tid; }
  const Blob& blob() const { return blob_; }
  RemoteSyscalls& rs() { return *threads_[0].rs; }
  RemoteScratch& scratch() { return scratch_; }
  pid_t thread_tid(size_t i) const { return threads_[i].tid; }
  RemoteSyscalls& thread_rs(size_t i) { return *threads_[i].rs; }
  // Syscalls thread I runs one after another in one resume (RemoteBatch).
  RemoteBatch Batch(size_t i = 0) {
    return RemoteBatch(*threads_[i].rs, scratch_, RemotePtr(blob_.batch_loop()));
  }
  // The task's pending signals are being queued: no batch from now on.
  void ForbidBatches() {
    for (Thread& t : threads_) t.rs->ForbidBatches();
  }

  // Sets each thread's final registers (REGS[i] for thread i), lets the task
  // run, and gives up ownership. STOP_SIGNAL, if not 0: leave it in a
  // group-stop by that signal, as dumped.
  // RESTART[i], where not 0, is the -ERESTART* code of the syscall thread i
  // was dumped in (REGS[i] has it rewound): the kernel then decides, as it
  // would have, between restarting it and EINTR for a signal that came
  // during the restore.
  Status Release(const std::vector<Registers>& regs, const std::vector<int64_t>& restart,
                 int stop_signal);
  // A task that has exited on purpose (a zombie being restored).
  void MarkExited() { exited_ = true; }
  // From now until the release, the seccomp filters restore installs in the
  // task do not see criu-lite's remote syscalls (PTRACE_O_SUSPEND_SECCOMP).
  Status SuspendSeccomp();

 private:
  struct Thread {
    pid_t tid, self_tid;
    std::unique_ptr<RemoteSyscalls> rs;
  };
  Puppet(pid_t pid, pid_t self_pid, const Blob& blob)
      : pid_(pid),
        self_pid_(self_pid),
        blob_(blob),
        scratch_(pid, RemotePtr(blob.scratch_start()), Blob::kScratchSize) {}
  Status AdoptThread(pid_t tid, pid_t self_tid);
  pid_t pid_, self_pid_;
  Blob blob_;
  RemoteScratch scratch_;
  std::vector<Thread> threads_;
  bool released_ = false, exited_ = false;
};

}  // namespace crl
