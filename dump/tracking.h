// Tracking which pages a task writes between the passes of an iterative
// dump (pre-dump ... dump --track-mem).
//
// uffd-wp (6.7+): a userfaultfd is created in the task (a remote syscall:
// its mm is the task's), taken out with pidfd_getfd and closed there. With
// UFFD_FEATURE_WP_ASYNC + WP_UNPOPULATED, registering a VMA in write-protect
// mode makes the kernel note every first write to a page instead of
// faulting; PAGEMAP_SCAN with PAGE_IS_WRITTEN and PM_SCAN_WP_MATCHING reports
// the written pages and re-protects them in one call. The registration lives
// as long as the userfaultfd is open, so between passes (each its own
// criu-lite process) a small holder process keeps the task's userfaultfd;
// the next pass takes it back with pidfd_getfd. The final dump ends the
// holder. A task that registers its own userfaultfd, or a VMA that is new
// or remapped, is not write-protected (PM_SCAN_CHECK_WPASYNC fails): such
// VMAs count as fully written.
//
// soft-dirty (kernels with CONFIG_MEM_SOFT_DIRTY and no uffd-wp): writing
// "4" to /proc/PID/clear_refs clears the bits; pagemap bit 55 says written.
#pragma once

#include <sys/types.h>

#include <map>
#include <string>
#include <vector>

#include "base/result.h"
#include "base/scoped_fd.h"
#include "dump/memory_dump.h"
#include "dump/seized_tree.h"
#include "images/criu_lite.pb.h"

namespace crl {

enum class TrackingMethod { kNone, kUffdWp, kSoftDirty };
TrackingMethod BestTrackingMethod();
const char* TrackingMethodName(TrackingMethod m);

class Tracker {
 public:
  // Takes the tracking state left by the previous pass in PREV_DIR. An empty
  // result for a task means its tracking was lost (the reason is logged).
  static Result<Tracker> Resume(const std::string& prev_dir);
  static Tracker Fresh(TrackingMethod m) { return Tracker(m); }

  // Before the first page of a chained pass is taken: marks PREV_DIR's state
  // as used, so that a pass that fails from here on (its written-page
  // information consumed, its images never complete) leaves the chain to
  // fall back to a full copy, said in the log, instead of to a stale one;
  // the previous holder goes (criu-lite has the userfaultfds now).
  Status Consume(const std::string& prev_dir);
  // Ends the tracking a pass left in DIR (its holder): for a chain that is
  // abandoned, such as a failed migration's.
  static void EndChain(const std::string& dir);

  TrackingMethod method() const { return method_; }
  bool Tracking(pid_t pid) const;
  // Arms tracking for a task from now on (all its pages count as written
  // until the next scan). The task must be seized.
  Status Start(const SeizedProcess& p, const img::MmState& mm);
  // The written pages of [start, end) since the last scan, re-armed in the
  // same call. Error kUntracked: this range is not tracked.
  Result<std::vector<PageRun>> TakeWritten(pid_t pid, uint64_t start, uint64_t end);
  // After a pass of soft-dirty: clear the bits for the next one.
  Status Rearm(pid_t pid);
  // Leaves the state for the next pass: spawns the holder. Only once the
  // pass's images are complete.
  // With OWNER > 0, the holder also ends when process OWNER does.
  Status Save(const std::string& dir, pid_t owner = -1);
  // Ends tracking: the holder goes, the tasks' registrations with it.
  void Stop();
  // Drops a task that is gone (it exited while a pre-dump copied): its PID,
  // if taken again, is some other process's.
  void Forget(pid_t pid) {
    uffds_.erase(pid);
    soft_dirty_.erase(pid);
  }

 private:
  explicit Tracker(TrackingMethod m) : method_(m) {}
  TrackingMethod method_;
  std::map<pid_t, ScopedFd> uffds_;  // uffd-wp: criu-lite's copy of each task's userfaultfd
  std::map<pid_t, bool> soft_dirty_;
  pid_t holder_ = -1;
  std::map<pid_t, int> holder_fds_;
};

// The incremental plan of one process: pages written since the previous
// pass are copied; pages present but not written are "in parent".
struct IncrementalPlan {
  MemoryPlan copy;
  std::vector<PageRun> in_parent;
};
// PREV: the task's mappings at the previous pass; a mapping that was not
// there (new, moved or re-mapped) counts as fully written. PREV_PAGES: the
// pages the previous pass's image (and so the chain) holds, sorted: a page
// present now, not written and not among them is copied too (khugepaged
// collapsing a range with empty pages into a huge page fills them without
// marking them written: seen on 6.1 with soft-dirty). PARENT (> 0): in
// mappings inherited from it, pages still shared with it copy-on-write are
// left out (the child inherits them again at restore; MM gets the zap list).
Result<IncrementalPlan> PlanIncremental(pid_t pid, pid_t parent, img::MmState* mm,
                                        const img::MmState& prev,
                                        const std::vector<PageRun>& prev_pages, Tracker& tracker,
                                        MemoryDumpStats* stats);

}  // namespace crl
