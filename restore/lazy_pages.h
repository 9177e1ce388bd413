// --pages=lazy: restored tasks run before their memory is in place.
//
// Each task's private anonymous mappings are registered with a userfaultfd
// (missing pages) before the tree is released; a lazy-pages daemon, forked
// from criu-lite, then answers every fault with the page from the image
// (UFFDIO_COPY straight from the page file mapped in the daemon: one copy)
// and fills everything else in the background, so that the restored tree
// runs at once and is fully resident a moment later. The daemon follows the
// tasks' own forks, mremaps, munmaps and MADV_DONTNEEDs while it works
// (userfaultfd events), and exits once every page is in place.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <string>
#include <vector>

#include "base/result.h"
#include "base/scoped_fd.h"
#include "restore/memory_restore.h"
#include "restore/puppet.h"

namespace crl {

// Pages at VADDR (LEN bytes) whose data is at OFFSET of page file SOURCE.
struct LazyRun {
  uint64_t vaddr, len;
  size_t source;
  uint64_t offset;
};

struct LazyTask {
  pid_t pid = 0;
  ScopedFd uffd;  // criu-lite's own copy of the task's userfaultfd
  std::vector<LazyRun> runs;
};

// Registers RANGES of the puppet (stopped, about to be released) with a new
// userfaultfd that reports missing pages, forks, remaps, removes and unmaps.
Result<ScopedFd> RegisterLazyRanges(Puppet& p,
                                    const std::vector<std::pair<uint64_t, uint64_t>>& ranges);

// Forks the daemon that serves TASKS from the page files SOURCES (open fds,
// uncompressed). Faults are served at once; the background fill places at
// most FILL_MIB_S MiB/s (0: as fast as it can). criu-lite's copies of the
// userfaultfds are closed on return: once the daemon is done, the kernel
// takes over the mappings again. The daemon's parent, a guard, checks the
// pages of VERIFY against their checksums meanwhile, and kills the tree
// under TREE_ROOT, saying why, on a mismatch or if the daemon ends before
// its work is done. Returns the guard's PID.
Result<pid_t> StartLazyPagesDaemon(std::vector<LazyTask> tasks,
                                   const std::vector<std::pair<int, std::string>>& sources,
                                   uint64_t fill_mib_s, pid_t tree_root,
                                   const std::vector<const PageReader*>& verify);

}  // namespace crl
