// Dumping a stopped task's memory: classify its VMAs, find the pages that
// hold data (PAGEMAP_SCAN, or /proc/PID/pagemap where the kernel lacks it),
// read them in large batches and write them to the page file.
#pragma once

#include <sys/types.h>

#include <vector>

#include "images/criu_lite.pb.h"
#include "images/page_file.h"
#include "kernel/result.h"
#include "kernel/vma_list.h"

namespace crl {

// A run of pages that hold data: [start, end).
struct PageRun {
  uint64_t start, end;
};

// Fills mm->vmas from the VMA list; refuses mappings criu-lite cannot restore.
Status DescribeVmas(pid_t pid, const std::vector<VmaInfo>& vmas, img::MmState* mm);

// Which pages of [start, end) in PID hold data worth dumping. For private
// mappings: anonymous pages (also the COW copies in private file mappings),
// not the shared zero page; for shared anonymous memory: every page.
Result<std::vector<PageRun>> FindDataPages(pid_t pid, uint64_t start, uint64_t end,
                                           bool shared_anon);

struct MemoryDumpStats {
  uint64_t pages_scanned = 0, pages_written = 0;
};
Status DumpMemory(pid_t pid, const img::MmState& mm, PageWriter* writer, MemoryDumpStats* stats);

}  // namespace crl
