// Rebuilding a task's address space inside the puppet: clear out criu-lite's
// mappings, move the vDSO, map the recorded VMAs, place the pages, then set
// the final protections.
#pragma once

#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "base/result.h"
#include "images/criu_lite.pb.h"
#include "images/page_chain.h"
#include "images/page_file.h"
#include "images/page_holder.h"
#include "restore/puppet.h"

namespace crl {

enum class PagePlacement {
  kRead,    // the task preadv()s its pages from the page file: one copy
  kWritev,  // criu-lite process_vm_writev()s them: the baseline
  kLazy,    // private anonymous memory is filled after the tree runs (lazy_pages.h)
  kVmMmap,  // the task takes its pages from criu-lite's memory: process_vm_mmap
};
// The name --pages gives it, and back (nothing for a name it does not know).
const char* PagePlacementName(PagePlacement p);
std::optional<PagePlacement> ParsePagePlacement(std::string_view name);

// Checks, before any task exists, that the VMAs can be mapped again here:
// a vDSO of the same layout.
Status ValidateVmas(const img::MmState& mm);
// That the files mapped and the executable are those of the dump: of the
// same size and modification time, and (SAME_INODE) the same inode. In a
// mount namespace restore makes (run inside it) the inode is not asked
// for: --root may be a copy of the container's root.
Status CheckMappedFiles(const img::MmState& mm, bool same_inode);

// Unmaps everything in the puppet except the blob, the vDSO and the mappings
// it inherits from its parent, and moves the vDSO to where the task had it.
Status ClearAddressSpace(Puppet& p, const img::MmState& mm);
// Which VMAs (by start) have pages to place: ANY, eagerly or lazily; EAGER,
// before the tree runs.
struct VmasWithPages {
  std::set<uint64_t> any, eager;
};
// FILE_OF gives criu-lite's fd of a mapped file the task cannot open by
// path (a memfd, a deleted file): the task is given it.
Status MapVmas(Puppet& p, const img::MmState& mm, const VmasWithPages& with_pages,
               const std::function<Result<int>(const img::Vma&)>& file_of);
// Before its pages are placed: memory the task had in transparent huge
// pages (MmState.huge) gets huge pages, each range touched once and
// collapsed (MADV_COLLAPSE fills the rest with zeros), so that the pages
// are then written into them: no small pages made only to be collapsed. A
// collapse that fails (no huge page free; a kernel before 6.1) leaves small
// pages, said at -v: the same bytes.
Status PrepareHugePages(Puppet& p, const img::MmState& mm);
// In mappings inherited by fork: drops the parent's pages the task had not.
Status ZapDroppedPages(Puppet& p, const img::MmState& mm);
Status PlacePages(Puppet& p, PageReader& pages, PagePlacement how);
// --pages=read, begun by StartPlacePages: the task reads its pages in one
// resume while criu-lite drives other tasks. Finish waits for it and checks
// that every read was whole; until then nothing else may be asked of the
// task. Destroyed unfinished, it leaves the task to die with its Puppet.
class PagesBeingPlaced {
 public:
  PagesBeingPlaced(Puppet& p, const std::string& path, int fd)
      : batch_(p.Batch()), pid_(p.pid()), path_(path), fd_(fd) {}
  PagesBeingPlaced(const PagesBeingPlaced&) = delete;
  PagesBeingPlaced& operator=(const PagesBeingPlaced&) = delete;
  // Places criu-lite's share of the pages (if any) while the task reads
  // its own, then waits for the task.
  Status Finish();

 private:
  friend Result<std::unique_ptr<PagesBeingPlaced>> StartPlacePages(Puppet& p, PageReader& pages,
                                                                   PagePlacement how);
  // A run of pages of the page file: LEN bytes at OFFSET, for VADDR.
  struct Run {
    uint64_t vaddr, offset, len;
  };
  Status PlaceShare();
  // The iovecs' frame in its scratch memory, then the batch (its own frame
  // inside): released in that order's reverse.
  std::unique_ptr<RemoteScratch::Frame> frame_;
  RemoteBatch batch_;
  std::vector<uint64_t> lengths_;  // what each preadv of the batch must read
  std::vector<Run> share_;         // what criu-lite places itself
  pid_t pid_;
  std::string path_;
  int fd_;  // criu-lite's, of the page file
};
// Places the task's pages as PlacePages does: begun and left running where
// the task reads them itself (--pages=read, raw pages, few enough runs for
// its scratch memory), else done before it returns (null). A task with
// much memory reads half of it; criu-lite places the other half in Finish
// (process_vm_writev from the page file mapped in pieces): faulting in
// fresh memory is most of the time, and one task faults on one CPU.
Result<std::unique_ptr<PagesBeingPlaced>> StartPlacePages(Puppet& p, PageReader& pages,
                                                          PagePlacement how);

Status PlaceChainedPages(Puppet& p, const PageChain& chain, PagePlacement how);
// --pages=vm-mmap (CHAIN: the pages of a pre-copy chain, else PAGES); with
// HUGE_PAGES, memory recorded in huge pages is collapsed before the task
// takes it (PrepareHugePages is not used).
Status PlaceByVmMmap(Puppet& p, const img::MmState& mm, const VmasWithPages& with_pages,
                     PageReader& pages, const PageChain* chain, bool huge_pages);
// --pages=vm-mmap from a page server's page holder (page-server
// --pages=vm-mmap): HELD, for each page file of the task, the ranges the
// holder got instead of the file (its `held-pages`). Whole private
// anonymous mappings are taken from the holder; what the holder has of
// anything else is copied from it, what it has not is read from the files.
using HeldRanges = std::map<const PageReader*, std::vector<std::pair<uint64_t, uint64_t>>>;
Status PlaceFromPageHolder(Puppet& p, const img::MmState& mm, const VmasWithPages& with_pages,
                           PageReader& pages, const PageChain* chain, bool huge_pages,
                           PageHolder& holder, const HeldRanges& held);
Status FinishVmas(Puppet& p, const img::MmState& mm, const VmasWithPages& with_pages);

}  // namespace crl
