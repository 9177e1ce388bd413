// Checks of image records before restore acts on any of them: every size and
// count bounded, every reference cross-checked, no cycle. Pure functions over
// parsed records (no files, no processes), so that the fuzz target and the
// unit tests run them on anything.
#pragma once

#include "base/result.h"
#include "images/criu_lite.pb.h"

namespace crl {

// Bounds far above anything real, far below what would exhaust memory.
constexpr int kMaxTasks = 1 << 16;
constexpr int kMaxThreadsPerTask = 1 << 16;
constexpr int kMaxVmas = 1 << 21;               // max_map_count can be raised; 2M is a lot
constexpr int kMaxFds = 1 << 20;                // the kernel's nr_open ceiling
constexpr uint64_t kUserSpaceEnd = 1ull << 57;  // 5-level paging's user half
constexpr int kMaxPid = 1 << 22;                // PID_MAX_LIMIT

// The tree: the root first, each PID once, each parent listed before its
// children, thread IDs unique across the tree, zombies without threads.
Status ValidateTree(const img::Inventory& inv);
// Mappings: page-aligned, sorted, not overlapping, in user space.
Status ValidateMm(const img::MmState& mm);
// Page runs: page-aligned, non-empty, sorted, not overlapping, each inside
// the task's mappings, lengths that cannot overflow, data offsets aligned
// and counted (total_pages).
Status ValidatePagemap(const img::Pagemap& pm, const img::MmState& mm);
// The task's threads and descriptors: counts bounded, fd numbers in range
// and each once.
Status ValidateCore(const img::TaskCore& core);
Status ValidateFds(const img::Fds& fds);

}  // namespace crl
