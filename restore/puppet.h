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

#include "kernel/ptrace_task.h"
#include "kernel/remote_ptr.h"
#include "kernel/remote_syscalls.h"
#include "kernel/result.h"

namespace crl {

struct Blob {
  uint64_t start = 0;
  uint64_t size = 0;
  uint64_t syscall_insn() const { return start; }
  uint64_t scratch_start() const { return start + 4096; }
  static constexpr uint64_t kScratchSize = 1 << 20;
  uint64_t park_start() const { return scratch_start() + kScratchSize; }  // for the vDSO
};

// Maps the blob in criu-lite at an address free of both criu-lite's own
// mappings and AVOID (the restored task's VMAs), with PARK_BYTES to spare.
Result<Blob> MapBlob(const std::vector<std::pair<uint64_t, uint64_t>>& avoid, uint64_t park_bytes);
void UnmapBlob(const Blob& blob);

class Puppet {
 public:
  // Creates the puppet with PID (clone3 set_tid, or ns_last_pid where the
  // kernel lacks it) and waits until it is stopped under ptrace.
  static Result<std::unique_ptr<Puppet>> Create(pid_t pid, const Blob& blob, bool use_clone3);
  ~Puppet();

  pid_t pid() const { return pid_; }
  const Blob& blob() const { return blob_; }
  RemoteSyscalls& rs() { return *rs_; }
  RemoteScratch& scratch() { return scratch_; }

  // Sets the final registers, lets the task run, and gives up ownership.
  Status Release(const Registers& regs);

 private:
  Puppet(pid_t pid, const Blob& blob)
      : pid_(pid), blob_(blob), scratch_(pid, RemotePtr(blob.scratch_start()), Blob::kScratchSize) {}
  pid_t pid_;
  Blob blob_;
  RemoteScratch scratch_;
  std::unique_ptr<RemoteSyscalls> rs_;
  bool released_ = false;
};

}  // namespace crl
