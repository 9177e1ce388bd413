#include "dump/memory_dump.h"

#include <fcntl.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/uio.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <csignal>
#include <cstring>
#include <future>
#include <map>
#include <set>
#include <sstream>

#include "base/interrupt.h"
#include "base/log.h"
#include "base/scoped_fd.h"
#include "dump/aio_dump.h"
#include "images/file_id.h"
#include "images/page_holder.h"
#include "kernel/kernel_probe.h"
#include "kernel/namespaces.h"
#include "kernel/proc_parsers.h"
#include "kernel/proc_task.h"
#include "kernel/uapi.h"

namespace crl {
namespace {

bool EndsWith(const std::string& s, const std::string& suffix) {
  return s.size() >= suffix.size() &&
         s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

void AddRun(std::vector<PageRun>* runs, uint64_t start, uint64_t end) {
  if (!runs->empty() && runs->back().end == start)
    runs->back().end = end;
  else
    runs->push_back({start, end});
}

// A "swapped" pagemap entry is data even without a swap device: a page
// being migrated (compaction, khugepaged) has a migration entry for as long
// as its copy takes, a large folio's 512 pages at once, and is read back
// whole. Left out, those pages were restored as zeros (seen on 6.1). A PTE
// marker is not data: uffd-wp's on the pages of a file mapping it protects
// (criu-lite's own tracking puts them there), a guard region's, a poisoned
// page's. Markers are the last swap type, whatever else the kernel has; the
// type is only shown to CAP_SYS_ADMIN, and unknown, the entry counts.
constexpr uint64_t kSwapTypeMask = (1 << 5) - 1;  // MAX_SWAPFILES_SHIFT
constexpr uint64_t kSwapPteMarker = kSwapTypeMask;

bool SwappedEntryHoldsData(uint64_t e) { return (e & kSwapTypeMask) != kSwapPteMarker; }

Result<std::vector<PageRun>> ScanWithPagemapFile(int fd, uint64_t start, uint64_t end,
                                                 bool shared_anon) {
  std::vector<PageRun> runs;
  std::vector<uint64_t> entries(4096);
  for (uint64_t pos = start; pos < end;) {
    size_t n = std::min<uint64_t>((end - pos) / kPageSize, entries.size());
    ssize_t got = pread(fd, entries.data(), n * 8, (pos / kPageSize) * 8);
    if (got != static_cast<ssize_t>(n * 8)) return ErrnoError("pread(pagemap, 0x%lx)", pos);
    for (size_t i = 0; i < n; i++) {
      uint64_t e = entries[i];
      bool present = e & (1ull << 63), swapped = e & (1ull << 62), file = e & (1ull << 61);
      bool keep = (present || (swapped && SwappedEntryHoldsData(e))) && (shared_anon || !file);
      uint64_t a = pos + i * kPageSize;
      if (keep) AddRun(&runs, a, a + kPageSize);
    }
    pos += n * kPageSize;
  }
  return runs;
}

// A PAGEMAP_SCAN request over [START, END) answered into VEC; which pages,
// and what is said of them, are the caller's to add.
pm_scan_arg ScanRequest(uint64_t start, uint64_t end, std::vector<page_region>& vec) {
  pm_scan_arg arg{};
  arg.size = sizeof arg;
  arg.start = start;
  arg.end = end;
  arg.vec = reinterpret_cast<uint64_t>(vec.data());
  arg.vec_len = vec.size();
  return arg;
}

Result<std::vector<PageRun>> ScanWithPagemapScan(int fd, uint64_t start, uint64_t end,
                                                 bool shared_anon) {
  std::vector<PageRun> runs;
  std::vector<page_region> vec(1024);
  uint64_t pos = start;
  while (pos < end) {
    pm_scan_arg arg = ScanRequest(pos, end, vec);
    arg.category_anyof_mask = PAGE_IS_PRESENT | PAGE_IS_SWAPPED;
    if (!shared_anon) {
      // Only anonymous pages: not page-cache pages of a private file mapping,
      // not the shared zero page.
      arg.category_inverted = PAGE_IS_FILE | PAGE_IS_PFNZERO;
      arg.category_mask = PAGE_IS_FILE | PAGE_IS_PFNZERO;
    }
    arg.return_mask = PAGE_IS_PRESENT | PAGE_IS_SWAPPED;
    long n = ioctl(fd, PAGEMAP_SCAN, &arg);
    if (n < 0) return ErrnoError("ioctl(PAGEMAP_SCAN, 0x%lx-0x%lx)", pos, end);
    for (long i = 0; i < n; i++) {
      if (vec[i].categories & PAGE_IS_PRESENT) {
        AddRun(&runs, vec[i].start, vec[i].end);
        continue;
      }
      // Swapped: PAGEMAP_SCAN does not tell a marker from a page.
      for (const PageRun& r : TRY(ScanWithPagemapFile(fd, vec[i].start, vec[i].end, shared_anon)))
        AddRun(&runs, r.start, r.end);
    }
    if (arg.walk_end <= pos) break;
    pos = arg.walk_end;
  }
  return runs;
}

// Reads runs of pages from PID into BUF (process_vm_readv with many iovecs;
// /proc/PID/mem for mappings the task itself cannot read, such as PROT_NONE).
class PageCopier {
 public:
  // Two buffers for every process of the dump: a fresh one each time would
  // be fresh memory, every page of it faulted in again (most of a tree's
  // processes have far less than a buffer holds). While criu-lite reads
  // one buffer's pages out of the task, another thread checksums and
  // writes the other's: both cores work.
  PageCopier(pid_t pid, PageWriter* writer) : pid_(pid), writer_(writer), bufs_(SharedBuffers()) {}
  ~PageCopier() { (void)Wait(); }
  // VMA: the private anonymous mapping [START, END) is in, if it is one.
  Status Add(uint64_t start, uint64_t end, bool readable, const PagePlace* vma) {
    if (!readable) {
      TRY(Flush());
      return CopyViaProcMem(start, end, vma);
    }
    while (start < end) {
      size_t take = std::min<uint64_t>(end - start, kPageChunkBytes - used_);
      remote_.push_back({reinterpret_cast<void*>(start), take});
      places_.push_back(vma ? std::optional<PagePlace>(*vma) : std::nullopt);
      used_ += take;
      start += take;
      if (used_ == kPageChunkBytes || remote_.size() == 1024) TRY(Flush());
    }
    return Ok{};
  }
  // LAST: no more pages come; if the writing thread has nothing to do,
  // they are written here (a small process starts no thread).
  Status Flush(bool last = false) {
    if (remote_.empty()) return Ok{};
    char* buf = bufs_[cur_].data();
    iovec local{buf, used_};
    ssize_t n = process_vm_readv(pid_, &local, 1, remote_.data(), remote_.size(), 0);
    if (n != static_cast<ssize_t>(used_))
      return ErrnoError("process_vm_readv(pid=%d, %zu ranges, %zu bytes) got %zd", pid_,
                        remote_.size(), used_, n);
    std::vector<Piece> pieces;
    size_t off = 0;
    for (size_t i = 0; i < remote_.size(); i++) {
      pieces.push_back({reinterpret_cast<uint64_t>(remote_[i].iov_base), buf + off,
                        remote_[i].iov_len, places_[i]});
      off += remote_[i].iov_len;
    }
    remote_.clear();
    places_.clear();
    used_ = 0;
    if (last && !writing_.valid()) return WritePieces(pieces);
    return Write(std::move(pieces));
  }
  // Everything written: the writer is the caller's again.
  Status Finish() {
    TRY(Flush(true));
    return Wait();
  }

 private:
  struct Piece {
    uint64_t vaddr;
    const char* data;
    size_t len;
    std::optional<PagePlace> vma;
  };
  // Hands PIECES (in the current buffer) to the writing thread, once it is
  // done with the buffer before; the next buffer is then free.
  Status Write(std::vector<Piece> pieces) {
    TRY(Wait());
    writing_ = std::async(std::launch::async, [this, pieces = std::move(pieces)]() -> Status {
      // The main thread takes the signals (a stop, the wait timer).
      sigset_t all;
      sigfillset(&all);
      pthread_sigmask(SIG_BLOCK, &all, nullptr);
      return WritePieces(pieces);
    });
    cur_ ^= 1;
    return Ok{};
  }
  Status WritePieces(const std::vector<Piece>& pieces) {
    for (const Piece& p : pieces)
      TRY(writer_->Append(p.vaddr, p.data, p.len, p.vma ? &*p.vma : nullptr));
    return Ok{};
  }
  Status Wait() {
    if (!writing_.valid()) return Ok{};
    return writing_.get();
  }

  Status CopyViaProcMem(uint64_t start, uint64_t end, const PagePlace* vma) {
    if (!mem_.valid()) {
      std::string path = ProcTask(pid_).Path("mem");
      mem_.reset(open(path.c_str(), O_RDONLY | O_CLOEXEC));
      if (!mem_.valid()) return ErrnoError("open(%s)", path.c_str());
    }
    while (start < end) {
      size_t take = std::min<uint64_t>(end - start, kPageChunkBytes);
      char* buf = bufs_[cur_].data();
      ssize_t n = pread(mem_.get(), buf, take, start);
      if (n != static_cast<ssize_t>(take))
        return ErrnoError("pread(/proc/%d/mem, 0x%lx, %zu)", pid_, start, take);
      TRY(Write({{start, buf, take, vma ? std::optional<PagePlace>(*vma) : std::nullopt}}));
      start += take;
    }
    return Ok{};
  }

  static std::array<std::vector<char>, 2>& SharedBuffers() {
    static thread_local std::array<std::vector<char>, 2> bufs{std::vector<char>(kPageChunkBytes),
                                                              std::vector<char>(kPageChunkBytes)};
    return bufs;
  }

  pid_t pid_;
  PageWriter* writer_;
  std::array<std::vector<char>, 2>& bufs_;
  int cur_ = 0;  // the buffer criu-lite reads into next
  std::vector<iovec> remote_;
  std::vector<std::optional<PagePlace>> places_;  // each of remote_'s
  size_t used_ = 0;
  ScopedFd mem_;
  std::future<Status> writing_;  // the writing thread's work, if any
};

// Every VmFlag smaps shows is either restored (by the kind of mapping, its
// protection, or the advice FinishVmas gives again) or refused here by name.
Status CheckVmFlagsCarried(pid_t pid, const VmaInfo& v) {
  static const std::set<std::string> kCarried = {
      "rd", "wr", "ex", "sh", "mr", "mw", "me", "ms", "gd", "ac", "nr", "dc", "wf", "dd", "hg",
      "nh", "mg", "sr", "rr", "lo", "lf", "sd", "uw",
      // Set by the kernel on its own for the kinds of mapping criu-lite maps.
      "de", "mm", "sf", "nl", "ar", "bt"};
  static const std::map<std::string, const char*> kRefused = {
      {"dp", "MAP_DROPPABLE"},     {"ss", "a shadow stack"},
      {"sl", "sealed by mseal()"}, {"pf", "a raw PFN mapping"},
      {"io", "memory-mapped I/O"}, {"ht", "hugetlbfs memory"},
      {"mt", "memory tagging"},    {"gu", "guard regions (MADV_GUARD_INSTALL)"}};
  std::istringstream codes(v.vmflags);
  for (std::string f; codes >> f;) {
    auto refused = kRefused.find(f);
    if (refused != kRefused.end() || !kCarried.count(f))
      return MakeError(
          "PID %d: the mapping at 0x%lx-0x%lx (%s) is %s (VmFlags '%s'), which criu-lite "
          "cannot restore yet",
          pid, v.start, v.end, v.path.empty() ? "anonymous" : v.path.c_str(),
          refused != kRefused.end() ? refused->second : "marked", f.c_str());
  }
  return Ok{};
}

// A mapping of a file by its path (not a memfd): its identity, and whether
// it is a deleted file, saved with the tree's deleted files (dump.cc).
Status DescribeFileVma(pid_t pid, const VmaInfo& v, img::Vma* out) {
  const std::string& p = v.path;
  out->set_kind(v.shared ? img::Vma::FILE_SHARED : img::Vma::FILE_PRIVATE);
  // map_files/ opens exactly the file mapped, whatever became of the path.
  std::string mf = ProcTask(pid).Path(Format("map_files/%lx-%lx", v.start, v.end));
  TRY(FillFileId(mf, out->mutable_file()));
  if (EndsWith(p, " (deleted)")) {
    // Unless other names still link to it: restore could not tell those
    // from a copy.
    struct stat st;
    if (stat(mf.c_str(), &st) < 0) return ErrnoError("stat(%s)", mf.c_str());
    if (!S_ISREG(st.st_mode) || st.st_nlink)
      return MakeError(
          "PID %d maps %s at 0x%lx-0x%lx, deleted under that name while it has other "
          "names: not supported",
          pid, p.c_str(), v.start, v.end);
    out->set_ghost(true);
  }
  if (out->file().ino() != v.inode)
    return MakeError("PID %d: mapping at 0x%lx says inode %lu but its file is inode %lu", pid,
                     v.start, v.inode, out->file().ino());
  return Ok{};
}

// An attachment of System V shared memory (maps shows its ID as the inode).
// The segment is carried with the IPC namespace the tree made, contents and
// all; one of the host's is not the tree's. An attachment is made again
// whole from the segment's start: a piece must start there, or go on from
// the piece before it (an attachment split by mprotect).
Status DescribeSysvAttachment(pid_t pid, const VmaInfo& v, const img::MmState* mm, img::Vma* out) {
  std::string what = Format("PID %d maps System V shared memory (shmid %lu, key 0x%.8s) at 0x%lx",
                            pid, v.inode, v.path.c_str() + 5, v.start);
  if (NamespaceId(pid, "ipc") == NamespaceId(getpid(), "ipc"))
    return MakeError(
        "%s, of criu-lite's own IPC namespace: it outlives the tree there, and is carried only "
        "in an IPC namespace of the tree's",
        what.c_str());
  out->set_kind(img::Vma::SYSV_SHM);
  out->set_shmid(static_cast<int32_t>(v.inode));
  if (v.offset == 0) return Ok{};
  int n = mm->vmas_size();
  const img::Vma* before = n ? &mm->vmas(n - 1) : nullptr;
  if (before && before->kind() == img::Vma::SYSV_SHM && before->shmid() == out->shmid() &&
      before->end() == v.start && before->pgoff() + (before->end() - before->start()) == v.offset)
    return Ok{};
  return MakeError(
      "%s from its byte %lu: a part of an attachment (the rest unmapped) is not "
      "carried yet",
      what.c_str(), v.offset);
}

}  // namespace

Status DescribeVmas(pid_t pid, const std::vector<VmaInfo>& vmas, img::MmState* mm) {
  for (const VmaInfo& v : vmas) {
    img::Vma out;
    out.set_start(v.start);
    out.set_end(v.end);
    out.set_prot((v.read ? PROT_READ : 0) | (v.write ? PROT_WRITE : 0) | (v.exec ? PROT_EXEC : 0));
    out.set_growsdown(v.HasFlag("gd"));
    out.set_pgoff(v.offset);
    out.set_path(v.path);
    for (const char* f : {"dd", "hg", "nh", "dc", "wf", "mg", "nr", "sr", "rr", "lo", "lf"})
      if (v.HasFlag(f)) out.add_madvise(f);
    if (v.HasFlag("um"))
      return MakeError(
          "PID %d: 0x%lx-0x%lx is registered with a userfaultfd for missing pages (a lazy "
          "restore still filling it: its log says 'lazy pages: done' when it is over; or the "
          "task's own userfaultfd): its missing pages cannot be dumped",
          pid, v.start, v.end);
    // Commit is charged for a private mapping once it is writable, and stays
    // charged: restore must give write access only to mappings that had it.
    out.set_accounted(v.HasFlag("ac"));
    out.set_may_write(v.shared && v.HasFlag("mw"));
    // The vDSO pieces are the kernel's own, moved as they are.
    bool vdso = v.path == "[vdso]" || v.path == "[vvar]" || v.path == "[vvar_vclock]" ||
                v.path == "[vsyscall]";
    if (!vdso) TRY(CheckVmFlagsCarried(pid, v));
    const std::string& p = v.path;
    if (p == "[vsyscall]") continue;  // fixed by the kernel, the same in every process
    if (IsAioRing(v)) continue;       // carried as a context (aio_dump.h)
    if (p == "anon_inode:[io_uring]" || p.rfind("/[io_uring]", 0) == 0)
      return MakeError(
          "PID %d maps the rings of an io_uring at 0x%lx: an io_uring's requests in flight "
          "have no interface to be read back (CRIU refuses it too)",
          pid, v.start);
    if (p == "[vdso]") {
      out.set_kind(img::Vma::VDSO);
    } else if (p == "[vvar]") {
      out.set_kind(img::Vma::VVAR);
    } else if (p == "[vvar_vclock]") {
      out.set_kind(img::Vma::VVAR_VCLOCK);
    } else if (v.shared && (p.rfind("/dev/zero", 0) == 0 || p.rfind("/SYSV", 0) == 0 ||
                            p.rfind("[anon_shmem", 0) == 0)) {
      if (p.rfind("/SYSV", 0) == 0) {
        TRY(DescribeSysvAttachment(pid, v, mm, &out));
        *mm->add_vmas() = std::move(out);
        continue;
      }
      out.set_kind(img::Vma::ANON_SHARED);
      out.set_shmem_ino(v.inode);
    } else if (p.empty() || p == "[heap]" || p == "[stack]" || p.rfind("[anon:", 0) == 0) {
      if (v.shared)
        return MakeError("PID %d has an unnamed shared mapping at 0x%lx: not supported", pid,
                         v.start);
      out.set_kind(img::Vma::ANON_PRIVATE);
    } else if (p.rfind("/memfd:", 0) == 0) {
      // A memfd: its contents are saved once for the tree (shared.img).
      out.set_kind(v.shared ? img::Vma::FILE_SHARED : img::Vma::FILE_PRIVATE);
      out.set_memfd_ino(v.inode);
      out.mutable_file()->set_ino(v.inode);
      out.mutable_file()->set_dev(makedev(v.dev_major, v.dev_minor));
    } else if (p[0] == '/') {
      TRY(DescribeFileVma(pid, v, &out));
    } else {
      return MakeError("PID %d has a %s mapping at 0x%lx-0x%lx: not supported", pid, p.c_str(),
                       v.start, v.end);
    }
    *mm->add_vmas() = std::move(out);
  }
  return Ok{};
}

Result<PagemapFile> PagemapFile::Open(pid_t pid) {
  std::string path = ProcTask(pid).Path("pagemap");
  ScopedFd fd(open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (!fd.valid()) return ErrnoError("open(%s)", path.c_str());
  return PagemapFile(pid, std::move(fd));
}

Result<std::vector<PageRun>> PagemapFile::DataPages(uint64_t start, uint64_t end,
                                                    bool shared_anon) const {
  if (Kernel().pagemap_scan) return ScanWithPagemapScan(fd(), start, end, shared_anon);
  return ScanWithPagemapFile(fd(), start, end, shared_anon);
}

Result<std::vector<uint64_t>> PagemapFile::Frames(uint64_t start, uint64_t end) const {
  std::vector<uint64_t> e((end - start) / kPageSize);
  ssize_t n = pread(fd(), e.data(), e.size() * 8, (start / kPageSize) * 8);
  if (n != static_cast<ssize_t>(e.size() * 8))
    return ErrnoError("pread(/proc/%d/pagemap, 0x%lx)", pid_, start);
  for (uint64_t& x : e) x = (x & (1ull << 63)) ? (x & ((1ull << 55) - 1)) : 0;
  return e;
}

void MarkInherited(const img::MmState& parent, img::MmState* child, bool shared_only) {
  for (img::Vma& v : *child->mutable_vmas()) {
    if (shared_only && v.kind() != img::Vma::ANON_SHARED && v.kind() != img::Vma::SYSV_SHM)
      continue;
    for (const img::Vma& p : parent.vmas()) {
      if (p.start() != v.start() || p.end() != v.end() || p.kind() != v.kind()) continue;
      bool same = false;
      switch (v.kind()) {
        case img::Vma::ANON_PRIVATE:
          same = true;
          break;
        case img::Vma::ANON_SHARED:
          same = p.shmem_ino() == v.shmem_ino();
          break;
        case img::Vma::SYSV_SHM:
          same = p.shmid() == v.shmid() && p.pgoff() == v.pgoff();
          break;
        case img::Vma::FILE_PRIVATE:
        case img::Vma::FILE_SHARED:
          same = p.pgoff() == v.pgoff() && p.file().dev() == v.file().dev() &&
                 p.file().ino() == v.file().ino();
          break;
        default:
          break;  // the vDSO moves by itself
      }
      v.set_inherited(same);
      break;
    }
  }
}

Result<uint64_t> SplitAgainstParent(const PagemapFile& child, const PagemapFile& parent,
                                    const img::Vma& v, const std::vector<PageRun>& runs,
                                    std::vector<PageRun>* own, img::MmState* mm,
                                    MemoryDumpStats* stats) {
  uint64_t shared = 0;
  for (const PageRun& r : runs) {
    auto mine = TRY(child.Frames(r.start, r.end));
    auto theirs = TRY(parent.Frames(r.start, r.end));
    for (size_t i = 0; i < mine.size(); i++) {
      uint64_t a = r.start + i * kPageSize;
      if (mine[i] != 0 && mine[i] == theirs[i]) {
        shared++;
        continue;
      }
      AddRun(own, a, a + kPageSize);
    }
  }
  stats->pages_shared_with_parent += shared;
  if (shared == 0 && v.kind() == img::Vma::ANON_PRIVATE) return shared;
  // Parent data pages where the child has none: the child dropped them.
  std::vector<PageRun> parent_runs =
      TRY(parent.DataPages(v.start(), v.end(), v.kind() == img::Vma::ANON_SHARED));
  size_t ci = 0;
  for (const PageRun& pr : parent_runs) {
    for (uint64_t a = pr.start; a < pr.end; a += kPageSize) {
      while (ci < runs.size() && runs[ci].end <= a) ci++;
      bool child_has = ci < runs.size() && runs[ci].start <= a;
      if (child_has) continue;
      int n = mm->zap_size();
      if (n && mm->zap(n - 1).end() == a) {
        mm->mutable_zap(n - 1)->set_end(a + kPageSize);
      } else {
        img::PageRange* z = mm->add_zap();
        z->set_start(a);
        z->set_end(a + kPageSize);
      }
    }
  }
  return shared;
}

Status RecordHugePages(const PagemapFile& pagemap, img::MmState* mm) {
  constexpr uint64_t kHuge = 2 << 20;
  mm->clear_huge();
  auto add = [mm](uint64_t start, uint64_t end) {
    int n = mm->huge_size();
    if (n && mm->huge(n - 1).end() == start) {
      mm->mutable_huge(n - 1)->set_end(end);
      return;
    }
    img::PageRange* r = mm->add_huge();
    r->set_start(start);
    r->set_end(end);
  };
  // Without PAGEMAP_SCAN, a process with no huge page at all (most) is not
  // looked at page by page.
  if (!Kernel().pagemap_scan) {
    std::string rollup = TRY(ProcTask(pagemap.pid()).Read("smaps_rollup"));
    size_t at = rollup.find("AnonHugePages:");
    if (at == std::string::npos || strtoull(rollup.c_str() + at + 14, nullptr, 10) == 0)
      return Ok{};
  }
  for (const img::Vma& v : mm->vmas()) {
    uint64_t first = (v.start() + kHuge - 1) & ~(kHuge - 1), last = v.end() & ~(kHuge - 1);
    if (v.kind() != img::Vma::ANON_PRIVATE || first >= last) continue;
    if (Kernel().pagemap_scan) {
      std::vector<page_region> vec(256);
      for (uint64_t pos = first; pos < last;) {
        pm_scan_arg arg = ScanRequest(pos, last, vec);
        arg.category_mask = PAGE_IS_HUGE | PAGE_IS_PRESENT;
        arg.return_mask = PAGE_IS_HUGE;
        long n = ioctl(pagemap.fd(), PAGEMAP_SCAN, &arg);
        if (n < 0) return ErrnoError("ioctl(PAGEMAP_SCAN, huge pages, 0x%lx-0x%lx)", pos, last);
        for (long i = 0; i < n; i++) {
          uint64_t s = (vec[i].start + kHuge - 1) & ~(kHuge - 1), e = vec[i].end & ~(kHuge - 1);
          if (s < e) add(s, e);
        }
        if (arg.walk_end <= pos) break;
        pos = arg.walk_end;
      }
      continue;
    }
    // Read whole only where the first page is a huge page's head: most of
    // a large mapping may be untouched (a sparse reservation of 64 GiB).
    for (uint64_t at = first; at < last; at += kHuge) {
      std::vector<uint64_t> head = TRY(pagemap.Frames(at, at + kPageSize));
      if (head[0] == 0 || head[0] % (kHuge / kPageSize) != 0) continue;
      std::vector<uint64_t> frames = TRY(pagemap.Frames(at, at + kHuge));
      bool huge = frames[0] != 0 && frames[0] % (kHuge / kPageSize) == 0;
      for (size_t i = 1; huge && i < frames.size(); i++) huge = frames[i] == frames[0] + i;
      if (huge) add(at, at + kHuge);
    }
  }
  return Ok{};
}

Result<MemoryPlan> PlanMemory(const PagemapFile& pagemap, const PagemapFile* parent,
                              img::MmState* mm, MemoryDumpStats* stats) {
  MemoryPlan plan;
  for (img::Vma& v : *mm->mutable_vmas()) {
    bool shared_anon = v.kind() == img::Vma::ANON_SHARED;
    if (v.kind() != img::Vma::ANON_PRIVATE && v.kind() != img::Vma::FILE_PRIVATE && !shared_anon)
      continue;
    // A shared object inherited from the parent is the parent's: one copy.
    if (shared_anon && v.inherited()) continue;
    stats->pages_scanned += (v.end() - v.start()) / kPageSize;
    std::vector<PageRun> runs = TRY(pagemap.DataPages(v.start(), v.end(), shared_anon));
    if (v.inherited() && parent) {
      std::vector<PageRun> own;
      uint64_t shared = TRY(SplitAgainstParent(pagemap, *parent, v, runs, &own, mm, stats));
      runs = std::move(own);
      // Private memory that shares no page with the parent's at the same
      // place (each process allocated its own after the fork, or wrote all
      // of it) is mapped afresh at restore: inherited, each of its pages
      // would be copied from the parent's only to be overwritten.
      if (shared == 0 && v.kind() == img::Vma::ANON_PRIVATE) v.set_inherited(false);
    }
    for (const PageRun& r : runs) plan.push_back({r, (v.prot() & PROT_READ) != 0});
  }
  return plan;
}

namespace {

// The private anonymous mapping of MM (one not inherited: the task maps it
// itself at restore) that RUN is in, if it is in one.
std::optional<PagePlace> AnonPlace(const img::MmState& mm, const PageRun& run) {
  auto it = std::upper_bound(mm.vmas().begin(), mm.vmas().end(), run.start,
                             [](uint64_t a, const img::Vma& v) { return a < v.start(); });
  if (it == mm.vmas().begin()) return std::nullopt;
  const img::Vma& v = *std::prev(it);
  if (v.end() < run.end || v.kind() != img::Vma::ANON_PRIVATE || v.inherited()) return std::nullopt;
  PagePlace at;
  at.vma_start = v.start();
  at.vma_end = v.end();
  at.flags = HolderFlags(v);
  return at;
}

}  // namespace

Status CopyPages(pid_t pid, const MemoryPlan& plan, const img::MmState& mm, bool keep_cow_shared,
                 PageWriter* writer, MemoryDumpStats* stats) {
  uint64_t bytes = 0;
  for (const auto& [r, readable] : plan) bytes += r.end - r.start;
  writer->Reserve(bytes);
  PageCopier copier(pid, writer);
  ScopedFd pagemap;
  if (keep_cow_shared) {
    pagemap.reset(open(ProcTask(pid).Path("pagemap").c_str(), O_RDONLY | O_CLOEXEC));
    if (!pagemap.valid()) return ErrnoError("open(/proc/%d/pagemap)", pid);
  }
  for (const auto& [r, readable] : plan) {
    TRY(CheckStop());
    stats->pages_written += (r.end - r.start) / kPageSize;
    std::optional<PagePlace> place = AnonPlace(mm, r);
    const PagePlace* at = place ? &*place : nullptr;
    if (!keep_cow_shared || !readable) {
      TRY(copier.Add(r.start, r.end, readable, at));
      continue;
    }
    // process_vm_readv pins pages, and pinning a page shared copy-on-write
    // unshares it (since 5.19): a task left running would pay with a copy of
    // every page it shares with its parent or children. /proc/PID/mem reads
    // without pinning: use it for the pages that are not exclusive.
    std::vector<uint64_t> e((r.end - r.start) / kPageSize);
    if (pread(pagemap.get(), e.data(), e.size() * 8, (r.start / kPageSize) * 8) !=
        static_cast<ssize_t>(e.size() * 8))
      return ErrnoError("pread(/proc/%d/pagemap)", pid);
    for (size_t i = 0; i < e.size();) {
      bool exclusive = e[i] & (1ull << 56);
      size_t j = i;
      while (j < e.size() && ((e[j] & (1ull << 56)) != 0) == exclusive) j++;
      TRY(copier.Add(r.start + i * kPageSize, r.start + j * kPageSize, exclusive, at));
      i = j;
    }
  }
  return copier.Finish();
}

}  // namespace crl

namespace crl {

Status CheckSharedAnonCarried(const std::vector<std::pair<pid_t, const img::MmState*>>& procs) {
  // Restore makes a shared anonymous object once, where a mapping of it is
  // not inherited, and every inherited mapping shares it by fork.
  std::map<uint64_t, std::pair<pid_t, uint64_t>> made;  // shmem ino -> (pid, address)
  for (const auto& [pid, mm] : procs)
    for (const img::Vma& v : mm->vmas()) {
      if (v.kind() != img::Vma::ANON_SHARED || v.inherited()) continue;
      auto [it, fresh] = made.try_emplace(v.shmem_ino(), pid, v.start());
      if (!fresh)
        return MakeError(
            "PID %d at 0x%lx and PID %d at 0x%lx map the same shared anonymous memory, and "
            "neither inherited it from its parent at that address: criu-lite cannot share it "
            "again yet",
            it->second.first, it->second.second, pid, v.start());
    }
  return Ok{};
}

}  // namespace crl
