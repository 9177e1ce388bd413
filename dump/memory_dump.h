// Dumping a stopped task's memory: classify its VMAs, find the pages that
// hold data (PAGEMAP_SCAN, or /proc/PID/pagemap where the kernel lacks it),
// read them in large batches and write them to the page file.
#pragma once

#include <sys/types.h>

#include <vector>

#include "base/result.h"
#include "base/scoped_fd.h"
#include "images/criu_lite.pb.h"
#include "images/page_file.h"
#include "kernel/vma_list.h"

namespace crl {

// A run of pages that hold data: [start, end).
struct PageRun {
  uint64_t start, end;
};

// Fills mm->vmas from the VMA list; refuses mappings criu-lite cannot restore.
Status DescribeVmas(pid_t pid, const std::vector<VmaInfo>& vmas, img::MmState* mm);

// A task's /proc/PID/pagemap, opened once for all of its mappings (each
// open checks ptrace access anew: a process with a hundred mappings paid a
// hundred of them).
class PagemapFile {
 public:
  static Result<PagemapFile> Open(pid_t pid);
  pid_t pid() const { return pid_; }
  int fd() const { return fd_.get(); }
  // Which pages of [start, end) hold data worth dumping. For private
  // mappings: anonymous pages (also the COW copies in private file
  // mappings), not the shared zero page; for shared anonymous memory: every
  // page.
  Result<std::vector<PageRun>> DataPages(uint64_t start, uint64_t end, bool shared_anon) const;
  // Page frame numbers of [start, end) (0 where no page is present).
  Result<std::vector<uint64_t>> Frames(uint64_t start, uint64_t end) const;

 private:
  PagemapFile(pid_t pid, ScopedFd fd) : pid_(pid), fd_(std::move(fd)) {}
  pid_t pid_;
  ScopedFd fd_;
};

// Marks the child's mappings that it will inherit from its restored parent
// by fork (same range, kind and object).
void MarkInherited(const img::MmState& parent, img::MmState* child, bool shared_only = false);
// Refuses shared anonymous memory that restore could not share again: one
// object mapped afresh (not inherited by fork) in more than one place.
Status CheckSharedAnonCarried(const std::vector<std::pair<pid_t, const img::MmState*>>& procs);

struct MemoryDumpStats {
  uint64_t pages_scanned = 0, pages_written = 0, pages_shared_with_parent = 0;
};

// Splits a child's data pages RUNS of a mapping V it inherited into those
// to dump, OWN (not the parent's page frame at this moment), and records in
// MM's zap list the parent's pages the child lacks; returns how many pages
// it shares with the parent (none: private memory gets no zap list).
Result<uint64_t> SplitAgainstParent(const PagemapFile& child, const PagemapFile& parent,
                                    const img::Vma& v, const std::vector<PageRun>& runs,
                                    std::vector<PageRun>* own, img::MmState* mm,
                                    MemoryDumpStats* stats);
// Records in MM's huge list the private anonymous memory of PID that is in
// transparent huge pages (mapped whole by one page-table entry):
// PAGEMAP_SCAN's PAGE_IS_HUGE, else /proc/PID/pagemap, where such a page
// shows as 512 present pages whose frames are one aligned run.
Status RecordHugePages(const PagemapFile& pagemap, img::MmState* mm);

// The runs of pages to copy, and whether the task itself can read them.
using MemoryPlan = std::vector<std::pair<PageRun, bool>>;

// Which pages the image needs. PARENT is the process the task inherits its
// `inherited` mappings from, or -1: pages still shared copy-on-write with it
// (same page frame) are left out, and parent pages the task dropped become
// mm->zap ranges. Every process of a tree is planned before any page is
// read: reading can unshare pages (see CopyPages).
Result<MemoryPlan> PlanMemory(const PagemapFile& pagemap, const PagemapFile* parent,
                              img::MmState* mm, MemoryDumpStats* stats);

// Copies the planned pages to the page file, each with the private
// anonymous mapping of MM it is in, if any. KEEP_COW_SHARED (for a tree
// left running): read pages shared copy-on-write without unsharing them.
Status CopyPages(pid_t pid, const MemoryPlan& plan, const img::MmState& mm, bool keep_cow_shared,
                 PageWriter* writer, MemoryDumpStats* stats);

}  // namespace crl
