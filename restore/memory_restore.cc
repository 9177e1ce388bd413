#include "restore/memory_restore.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/shm.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <unistd.h>

#include <algorithm>
#include <climits>
#include <cstring>
#include <map>
#include <optional>
#include <set>

#include "base/interrupt.h"
#include "base/log.h"
#include "images/image_dir.h"
#include "images/image_file.h"
#include "images/validate.h"
#include "kernel/kernel_probe.h"
#include "kernel/proc_parsers.h"
#include "kernel/proc_task.h"
#include "kernel/task_fd.h"
#include "kernel/uapi.h"

namespace crl {
namespace {

bool IsSpecial(img::Vma::Kind k) {
  return k == img::Vma::VDSO || k == img::Vma::VVAR || k == img::Vma::VVAR_VCLOCK;
}

bool NeedsPages(const img::Vma& v) {
  return v.kind() == img::Vma::ANON_PRIVATE || v.kind() == img::Vma::FILE_PRIVATE ||
         v.kind() == img::Vma::ANON_SHARED;
}

// Pages are written into a mapping before its final protection is set, so
// it is mapped writable while they are; and so is a private mapping the
// kernel charged commit for (VM_ACCOUNT: it was writable once), since only
// becoming writable charges it. Any other stays as it was: giving it write
// access for a moment would charge it for good.
bool WritableWhileBuilt(const img::Vma& v, const VmasWithPages& with_pages) {
  if (!NeedsPages(v)) return false;
  return with_pages.any.count(v.start()) || (v.accounted() && v.kind() != img::Vma::ANON_SHARED);
}

bool HasMadvise(const img::Vma& v, const char* code) {
  return std::find(v.madvise().begin(), v.madvise().end(), code) != v.madvise().end();
}

Status CheckFileUnchanged(const std::string& path, const img::FileId& id, const char* what,
                          bool same_inode) {
  struct stat s;
  if (stat(path.c_str(), &s) < 0)
    return ErrnoError("%s %s is gone since the dump: stat", what, path.c_str());
  int64_t mtime = s.st_mtim.tv_sec * 1000000000ll + s.st_mtim.tv_nsec;
  std::string changes;
  if (same_inode && (s.st_dev != id.dev() || s.st_ino != id.ino()))
    changes += Format(" it is another file (inode %lu, was %lu);", s.st_ino, id.ino());
  if (static_cast<uint64_t>(s.st_size) != id.size())
    changes += Format(" its size is %ld, was %lu;", s.st_size, id.size());
  if (mtime != id.mtime_ns()) changes += " it was modified;";
  if (!changes.empty()) {
    changes.pop_back();
    return MakeError("%s %s changed since the dump:%s; refusing to map a different file", what,
                     path.c_str(), changes.c_str());
  }
  return Ok{};
}

struct SpecialMapping {
  uint64_t start, end;
};

// [vdso], [vvar], [vvar_vclock] of criu-lite itself (and so of the puppet).
Result<std::map<std::string, SpecialMapping>> OwnSpecialMappings() {
  std::string text = TRY(ReadFileToString("/proc/self/maps"));
  std::map<std::string, SpecialMapping> out;
  for (const MapsEntry& e : TRY(ParseProcMaps(text)))
    if (e.path == "[vdso]" || e.path == "[vvar]" || e.path == "[vvar_vclock]")
      out[e.path] = {e.start, e.end};
  return out;
}

}  // namespace

const char* PagePlacementName(PagePlacement p) {
  switch (p) {
    case PagePlacement::kRead:
      return "read";
    case PagePlacement::kWritev:
      return "writev";
    case PagePlacement::kLazy:
      return "lazy";
    case PagePlacement::kVmMmap:
      return "vm-mmap";
  }
  return "?";
}

std::optional<PagePlacement> ParsePagePlacement(std::string_view name) {
  for (PagePlacement p :
       {PagePlacement::kRead, PagePlacement::kWritev, PagePlacement::kLazy, PagePlacement::kVmMmap})
    if (name == PagePlacementName(p)) return p;
  return std::nullopt;
}

Status ValidateVmas(const img::MmState& mm) {
  auto own = TRY(OwnSpecialMappings());
  size_t recorded_specials = 0;
  for (const img::Vma& v : mm.vmas()) {
    if (IsSpecial(v.kind())) {
      recorded_specials++;
      auto it = own.find(v.path());
      if (it == own.end() || it->second.end - it->second.start != v.end() - v.start())
        return MakeError(
            "the image's %s (%lu bytes) does not match this kernel's; the images come "
            "from a kernel with a different vDSO",
            v.path().c_str(), v.end() - v.start());
    }
  }
  if (recorded_specials != own.size())
    return MakeError(
        "the image has %zu vDSO mappings, this kernel %zu: the images come from a "
        "kernel with a different vDSO layout",
        recorded_specials, own.size());
  return Ok{};
}

Status CheckMappedFiles(const img::MmState& mm, bool same_inode) {
  for (const img::Vma& v : mm.vmas())
    if ((v.kind() == img::Vma::FILE_PRIVATE || v.kind() == img::Vma::FILE_SHARED) &&
        !v.memfd_ino() && !v.ghost())
      TRY(CheckFileUnchanged(v.path(), v.file(), "mapped file", same_inode));
  if (!mm.exe_path().empty())
    TRY(CheckFileUnchanged(mm.exe_path(), mm.exe_file(), "executable", same_inode));
  return Ok{};
}

Status ClearAddressSpace(Puppet& p, const img::MmState& mm) {
  RemoteSyscalls& rs = p.rs();
  const Blob& blob = p.blob();
  std::string text = TRY(ProcTask(p.pid()).Read("maps"));
  std::map<std::string, SpecialMapping> specials;
  // Mappings inherited from the parent by fork stay, with their pages.
  std::vector<std::pair<uint64_t, uint64_t>> keep;
  for (const img::Vma& v : mm.vmas())
    if (v.inherited()) keep.push_back({v.start(), v.end()});
  RemoteBatch unmaps = p.Batch();
  for (const MapsEntry& e : TRY(ParseProcMaps(text))) {
    if (e.path == "[vdso]" || e.path == "[vvar]" || e.path == "[vvar_vclock]") {
      specials[e.path] = {e.start, e.end};
      continue;
    }
    if (e.path == "[vsyscall]") continue;
    if (e.start >= blob.start && e.end <= blob.start + blob.size) continue;
    // Unmap what is not kept; kept ranges may be parts of a larger mapping.
    uint64_t pos = e.start;
    for (const auto& [ks, ke] : keep) {
      if (ke <= pos || ks >= e.end) continue;
      if (ks > pos) unmaps.Add(Format("munmap(0x%lx-0x%lx)", pos, ks), SYS_munmap, pos, ks - pos);
      pos = std::max(pos, ke);
    }
    if (pos < e.end)
      unmaps.Add(Format("munmap(0x%lx-0x%lx %s)", pos, e.end, e.path.c_str()), SYS_munmap, pos,
                 e.end - pos);
  }
  TRY(unmaps.Run());
  // Park each vDSO piece in the blob first, so that no move lands on a piece
  // that has not moved yet; then put each where the task had it.
  uint64_t park = blob.park_start();
  std::map<std::string, uint64_t> parked;
  for (auto& [name, m] : specials) {
    bool in_place = false;
    for (const img::Vma& v : mm.vmas())
      if (v.path() == name && v.start() == m.start) in_place = true;
    if (in_place) continue;  // inherited where it belongs
    TRY(rs.Checked(Format("mremap(%s to park)", name.c_str()).c_str(), SYS_mremap, m.start,
                   m.end - m.start, m.end - m.start, MREMAP_MAYMOVE | MREMAP_FIXED, park));
    parked[name] = park;
    park += m.end - m.start;
  }
  for (const img::Vma& v : mm.vmas()) {
    if (!IsSpecial(v.kind())) continue;
    auto it = parked.find(v.path());
    if (it == parked.end()) {
      if (specials.count(v.path())) continue;  // already in place
      return MakeError("this kernel gave the puppet no %s", v.path().c_str());
    }
    TRY(rs.Checked(Format("mremap(%s to 0x%lx)", v.path().c_str(), v.start()).c_str(), SYS_mremap,
                   it->second, v.end() - v.start(), v.end() - v.start(),
                   MREMAP_MAYMOVE | MREMAP_FIXED, v.start()));
  }
  return Ok{};
}

namespace {

// Attaches V's segment at V's start, as it was attached (read-only unless it
// could be made writable, executable if it is), and unmaps what lies past
// END, where the task had unmapped its tail.
Status AttachSysv(Puppet& p, const img::Vma& v, uint64_t end) {
  RemoteSyscalls& rs = p.rs();
  RemoteScratch::Frame frame(p.scratch());
  int flags = (v.may_write() ? 0 : SHM_RDONLY) | ((v.prot() & PROT_EXEC) ? SHM_EXEC : 0);
  std::string what = Format("shmat(%d at 0x%lx)", v.shmid(), v.start());
  int64_t at = TRY(rs.Checked(what.c_str(), SYS_shmat, v.shmid(), v.start(), flags));
  if (static_cast<uint64_t>(at) != v.start())
    return MakeError("%s attached it at 0x%lx", what.c_str(), static_cast<uint64_t>(at));
  RemotePtr ds = TRY(p.scratch().Reserve(sizeof(shmid_ds)));
  TRY(rs.Checked("shmctl(IPC_STAT)", SYS_shmctl, v.shmid(), IPC_STAT, ds));
  shmid_ds got = TRY(ReadRemote(p.pid(), ds.As<shmid_ds>()));
  uint64_t whole = v.start() + ((got.shm_segsz + kPageSize - 1) & ~(kPageSize - 1));
  if (end < whole) TRY(rs.Checked("munmap(the attachment's tail)", SYS_munmap, end, whole - end));
  return Ok{};
}

}  // namespace

Status MapVmas(Puppet& p, const img::MmState& mm, const VmasWithPages& with_pages,
               const std::function<Result<int>(const img::Vma&)>& file_of) {
  RemoteSyscalls& rs = p.rs();
  RemoteScratch& scratch = p.scratch();
  RemoteScratch::Frame scm_frame(scratch);
  RemotePtr scm = TRY(scratch.Reserve(kScmScratchBytes));
  std::optional<FdGiver> giver;
  std::map<std::string, RemoteFd> open_files;  // file+mode -> fd in the puppet
  // A file the task opens itself; a memfd or a deleted file, criu-lite's
  // (FileTable), is given to it, reopened read-only here first for a
  // mapping that may not become writable.
  auto open_remote = [&](const img::Vma& v, int flags) -> Result<int64_t> {
    bool given = v.memfd_ino() || v.ghost();
    std::string key = (v.memfd_ino() ? Format("memfd:%lu", v.memfd_ino())
                       : v.ghost()   ? Format("ghost:%lu:%lu", v.file().dev(), v.file().ino())
                                     : v.path()) +
                      (flags == O_RDWR ? "\1rw" : "\1ro");
    if (auto it = open_files.find(key); it != open_files.end()) return it->second.get();
    RemoteFd fd;
    if (!given) {
      fd = TRY(OpenRemote(rs, scratch, v.path(), flags));
    } else {
      int local = TRY(file_of(v));
      ScopedFd ro;
      if (flags != O_RDWR) {
        ro.reset(open(Format("/proc/self/fd/%d", local).c_str(), O_RDONLY | O_CLOEXEC));
        if (!ro.valid()) return ErrnoError("reopening %s read-only", v.path().c_str());
        local = ro.get();
      }
      if (!giver) giver.emplace(TRY(FdGiver::Open(rs, scm)));
      fd = TRY(giver->Give(local, v.path()));
    }
    return open_files.emplace(key, std::move(fd)).first->second.get();
  };
  // Each System V attachment's end: its first piece and those that go on
  // from it (an attachment mprotect split) are attached at once.
  std::map<uint64_t, uint64_t> sysv_end;  // start of a first piece -> end
  for (auto it = mm.vmas().begin(); it != mm.vmas().end(); ++it) {
    if (it->kind() != img::Vma::SYSV_SHM) continue;
    if (it->pgoff() == 0)
      sysv_end[it->start()] = it->end();
    else if (!sysv_end.empty() && std::prev(sysv_end.end())->second == it->start())
      std::prev(sysv_end.end())->second = it->end();
    else
      return MakeError("System V shared memory at 0x%lx goes on from no attachment", it->start());
  }
  // The mappings are made in one batch, each file opened first.
  RemoteBatch batch = p.Batch();
  std::vector<std::pair<size_t, uint64_t>> mmaps;  // the batch's mmaps: index, address
  for (const img::Vma& v : mm.vmas()) {
    if (IsSpecial(v.kind()) || v.kind() == img::Vma::VSYSCALL) continue;
    uint64_t len = v.end() - v.start();
    if (v.kind() == img::Vma::SYSV_SHM && !v.inherited()) {
      if (v.pgoff() == 0) TRY(AttachSysv(p, v, sysv_end[v.start()]));
      continue;
    }
    if (v.inherited()) {
      // Already there from the parent; its pages may need writing.
      if (WritableWhileBuilt(v, with_pages))
        batch.Add(Format("mprotect(0x%lx, rw)", v.start()), SYS_mprotect, v.start(), len,
                  PROT_READ | PROT_WRITE);
      continue;
    }
    uint32_t prot = v.prot() | (WritableWhileBuilt(v, with_pages) ? PROT_READ | PROT_WRITE : 0);
    uint64_t flags =
        MAP_FIXED | (v.growsdown() ? MAP_GROWSDOWN : 0) | (HasMadvise(v, "nr") ? MAP_NORESERVE : 0);
    int64_t fd = -1;
    uint64_t pgoff = 0;
    switch (v.kind()) {
      case img::Vma::ANON_PRIVATE:
        flags |= MAP_PRIVATE | MAP_ANONYMOUS;
        break;
      case img::Vma::ANON_SHARED:
        flags |= MAP_SHARED | MAP_ANONYMOUS;
        break;
      case img::Vma::FILE_PRIVATE:
        flags |= MAP_PRIVATE;
        fd = TRY(open_remote(v, O_RDONLY));
        pgoff = v.pgoff();
        break;
      case img::Vma::FILE_SHARED:
        flags |= MAP_SHARED;
        // Opened for writing if the mapping may become writable (mprotect).
        fd = TRY(open_remote(v, (v.prot() & PROT_WRITE) || v.may_write() ? O_RDWR : O_RDONLY));
        pgoff = v.pgoff();
        break;
      default:
        return MakeError("unexpected VMA kind %d at 0x%lx", v.kind(), v.start());
    }
    mmaps.push_back({batch.size(), v.start()});
    batch.Add(Format("mmap(0x%lx-0x%lx %s)", v.start(), v.end(), v.path().c_str()), SYS_mmap,
              v.start(), len, prot, flags, fd, pgoff);
    // Huge-page advice before any page lands: with THP "always", writing
    // the first page of a 2 MiB range would otherwise fault in a huge page
    // and make its untouched rest resident (found on Debian's 6.1).
    if (HasMadvise(v, "nh") || HasMadvise(v, "hg"))
      batch.Add("madvise(THP)", SYS_madvise, v.start(), len,
                HasMadvise(v, "nh") ? MADV_NOHUGEPAGE : MADV_HUGEPAGE);
  }
  TRY(batch.Run());
  for (const auto& [i, start] : mmaps)
    if (static_cast<uint64_t>(batch.result(i)) != start)
      return MakeError("mmap in pid %d put 0x%lx at 0x%lx", p.pid(), start, batch.result(i));
  return Ok{};
}

Status PrepareHugePages(Puppet& p, const img::MmState& mm) {
  // Not where the task inherited the mapping: it has the parent's pages,
  // in huge pages if the parent's are.
  std::vector<std::pair<uint64_t, uint64_t>> ranges;
  for (const img::PageRange& r : mm.huge()) {
    bool inherited = false;
    for (const img::Vma& v : mm.vmas())
      inherited |= v.inherited() && v.start() < r.end() && r.start() < v.end();
    if (!inherited) ranges.push_back({r.start(), r.end()});
  }
  if (ranges.empty()) return Ok{};
  constexpr uint64_t kHuge = 2 << 20;
  static const char zero = 0;
  std::vector<iovec> local, remote;
  for (const auto& [s, e] : ranges)
    for (uint64_t at = s; at < e; at += kHuge) {
      local.push_back({const_cast<char*>(&zero), 1});
      remote.push_back({reinterpret_cast<void*>(at), 1});
    }
  for (size_t i = 0; i < local.size(); i += 1024) {
    size_t n = std::min<size_t>(local.size() - i, 1024);
    if (process_vm_writev(p.pid(), &local[i], n, &remote[i], n, 0) != static_cast<ssize_t>(n))
      return ErrnoError("process_vm_writev(pid %d, a byte in each huge page)", p.pid());
  }
  RemoteBatch batch = p.Batch();
  for (const auto& [s, e] : ranges)
    batch.AddMayFail("madvise(MADV_COLLAPSE)", SYS_madvise, s, e - s, MADV_COLLAPSE);
  TRY(batch.Run());
  uint64_t bytes = 0, failed = 0;
  int64_t error = 0;
  for (size_t i = 0; i < ranges.size(); i++) {
    bytes += ranges[i].second - ranges[i].first;
    if (batch.result(i) < 0) failed += ranges[i].second - ranges[i].first, error = batch.result(i);
  }
  if (failed)
    LOG_INFO(
        "PID %d: %lu of the %lu MiB it had in huge pages left in small pages: "
        "MADV_COLLAPSE: %s",
        p.pid(), failed >> 20, bytes >> 20, strerror(static_cast<int>(-error)));
  else
    LOG_DEBUG("PID %d: %lu MiB in huge pages again", p.pid(), bytes >> 20);
  return Ok{};
}

namespace {

Status PlaceByTaskReadFrom(Puppet& p, PageReader& pages, const img::Pagemap& pm, int64_t fd);

// After a (possibly short) read of N bytes, drops what the iovecs received.
void ConsumeIovecs(std::vector<iovec>* iov, int64_t n) {
  while (n > 0 && !iov->empty()) {
    iovec& front = iov->front();
    if (static_cast<uint64_t>(n) >= front.iov_len) {
      n -= front.iov_len;
      iov->erase(iov->begin());
    } else {
      front.iov_base = static_cast<char*>(front.iov_base) + n;
      front.iov_len -= n;
      n = 0;
    }
  }
}

// --pages=read: the task opens the page file and reads its own pages, one
// preadv per batch of runs that lie back to back in the file. No copy passes
// through criu-lite.
Status PlaceByTaskRead(Puppet& p, PageReader& pages, const img::Pagemap& pm) {
  RemoteScratch::Frame frame(p.scratch());
  RemotePtr scm = TRY(p.scratch().Reserve(kScmScratchBytes));
  FdGiver giver = TRY(FdGiver::Open(p.rs(), scm));
  RemoteFd fd = TRY(giver.Give(pages.fd(), pages.path()));
  return PlaceByTaskReadFrom(p, pages, pm, fd.get());
}

Status PlaceByTaskReadFrom(Puppet& p, PageReader& pages, const img::Pagemap& pm, int64_t fd) {
  RemoteSyscalls& rs = p.rs();
  RemoteScratch& scratch = p.scratch();
  std::vector<iovec> iov;
  uint64_t batch_off = 0, batch_len = 0;
  auto flush = [&]() -> Status {
    while (!iov.empty()) {
      RemoteScratch::Frame frame(scratch);
      auto riov = TRY(scratch.PushArray(iov.data(), iov.size()));
      int64_t n = TRY(rs.Checked(Format("preadv(%s)", pages.path().c_str()).c_str(), SYS_preadv, fd,
                                 riov, iov.size(), batch_off, 0));
      if (n == 0) return MakeError("pages file %s ended early", pages.path().c_str());
      // A short read (the kernel caps one call near 2 GiB): drop what was done.
      batch_off += n;
      batch_len -= n;
      ConsumeIovecs(&iov, n);
    }
    return Ok{};
  };
  for (const img::PagemapEntry& e : pm.entries()) {
    uint64_t len = e.nr_pages() * kPageSize;
    if (!iov.empty() && (e.data_offset() != batch_off + batch_len || iov.size() == 1024))
      TRY(flush());
    if (iov.empty()) batch_off = e.data_offset();
    iov.push_back({reinterpret_cast<void*>(e.vaddr()), len});
    batch_len += len;
  }
  return flush();
}

Status PlaceByWritev(Puppet& p, PageReader& pages) {
  pid_t pid = p.pid();
  return pages.ForEachChunk([pid](uint64_t vaddr, const char* data, size_t len) -> Status {
    return WriteRemote(pid, RemotePtr(vaddr), data, len);
  });
}

// --pages=vm-mmap. criu-lite holds the pages of each private anonymous
// mapping in memory of its own at the same address (read there from the
// page file, whose cache is then dropped) and the task takes the whole
// mapping with process_vm_mmap: its pages are shared, not copied, and
// once criu-lite unmaps its copy they are the task's alone, so memory is
// never held twice. The same address on both sides keeps the mapping's page
// offset what mmap gave the dumped task (brk, mmap and mremap merge by it)
// and lets a huge page be shared whole. The mapping the task gets is a copy
// of criu-lite's: made as MapVmas makes the task's (growing down, without
// reserve), and FinishVmas sets its protection and advice as for the others.
//
// Pages anywhere else (private file mappings, shared memory, mappings
// inherited from the parent, an address criu-lite itself uses) are read
// by criu-lite and written into the task, as --pages=writev does.
class VmMmapHolder {
 public:
  ~VmMmapHolder() {
    for (const auto& [start, end] : regions_) munmap(reinterpret_cast<void*>(start), end - start);
  }

  // Holds V's pages, if criu-lite can map it at its address.
  bool Hold(const img::Vma& v) {
    int flags = MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE |
                (v.growsdown() ? MAP_GROWSDOWN : 0) | (HasMadvise(v, "nr") ? MAP_NORESERVE : 0);
    void* at = mmap(reinterpret_cast<void*>(v.start()), v.end() - v.start(), PROT_READ | PROT_WRITE,
                    flags, -1, 0);
    if (at == MAP_FAILED) {
      LOG_INFO("vm-mmap: 0x%lx-0x%lx is taken in criu-lite (%s): its pages are written in",
               v.start(), v.end(), strerror(errno));
      return false;
    }
    if (at != reinterpret_cast<void*>(v.start())) {  // a kernel before 4.17 ignores the flag
      munmap(at, v.end() - v.start());
      return false;
    }
    regions_[v.start()] = v.end();
    return true;
  }
  bool Holds(uint64_t start, uint64_t len) const {
    auto it = regions_.upper_bound(start);
    return it != regions_.begin() && std::prev(it)->second >= start + len;
  }
  // [START, START+LEN) cut where criu-lite's copies begin and end.
  struct Piece {
    uint64_t start, end;
    bool held;
  };
  std::vector<Piece> Split(uint64_t start, uint64_t len) const {
    std::vector<Piece> out;
    uint64_t end = start + len;
    while (start < end) {
      auto next = regions_.upper_bound(start);
      if (next != regions_.begin() && std::prev(next)->second > start) {
        uint64_t stop = std::min(end, std::prev(next)->second);
        out.push_back({start, stop, true});
        start = stop;
      } else {
        uint64_t stop = next == regions_.end() ? end : std::min(end, next->first);
        out.push_back({start, stop, false});
        start = stop;
      }
    }
    return out;
  }
  const std::map<uint64_t, uint64_t>& regions() const { return regions_; }

 private:
  std::map<uint64_t, uint64_t> regions_;  // start -> end
};

// Reads LEN bytes at OFFSET of FD to ADDR, in criu-lite. With DROP, a
// piece at a time, each piece's page cache dropped once read: the page file
// and criu-lite's copy are never both held whole, even for one long run.
Status ReadInto(int fd, const std::string& path, uint64_t offset, uint64_t addr, uint64_t len,
                bool drop = false) {
  constexpr uint64_t kPiece = 8 << 20;
  while (len > 0) {
    ssize_t n =
        pread(fd, reinterpret_cast<void*>(addr), drop ? std::min(len, kPiece) : len, offset);
    if (n <= 0)
      return n < 0 ? ErrnoError("pread(%s)", path.c_str())
                   : MakeError("%s ended early", path.c_str());
    if (drop) posix_fadvise(fd, offset, n, POSIX_FADV_DONTNEED);
    addr += n;
    offset += n;
    len -= n;
  }
  return Ok{};
}

// The task of P takes each of RANGES (start -> end) whole from the process
// of HOLDER_PIDFD (FROM, for the log) at the same address, in one batch of
// process_vm_mmap (syscall NR).
Status TakeMappings(Puppet& p, long nr, int holder_pidfd,
                    const std::map<uint64_t, uint64_t>& ranges, const std::string& from) {
  RemoteScratch::Frame frame(p.scratch());
  RemotePtr scm = TRY(p.scratch().Reserve(kScmScratchBytes));
  FdGiver giver = TRY(FdGiver::Open(p.rs(), scm));
  RemoteFd pidfd = TRY(giver.Give(holder_pidfd, from + "'s pidfd"));
  RemoteBatch batch = p.Batch();
  for (const auto& [start, end] : ranges)
    batch.Add(Format("process_vm_mmap(0x%lx-0x%lx)", start, end), nr, pidfd.get(), start,
              end - start, start, kPvmmapFixed | kPvmmapPidfd);
  TRY(batch.Run());
  size_t i = 0;
  uint64_t bytes = 0;
  for (const auto& [start, end] : ranges) {
    if (static_cast<uint64_t>(batch.result(i++)) != start)
      return MakeError("process_vm_mmap in pid %d put 0x%lx at 0x%lx", p.pid(), start,
                       batch.result(i - 1));
    bytes += end - start;
  }
  LOG_INFO("vm-mmap: pid %d took %zu mappings (%lu KiB) from %s", p.pid(), ranges.size(),
           bytes >> 10, from.c_str());
  return Ok{};
}

}  // namespace

Status PlaceByVmMmap(Puppet& p, const img::MmState& mm, const VmasWithPages& with_pages,
                     PageReader& pages, const PageChain* chain, bool huge_pages) {
  long nr = ProcessVmMmapNr();
  if (nr < 0) return MakeError("--pages=vm-mmap: this kernel has no process_vm_mmap");
  VmMmapHolder holder;
  {
    Status filled = [&]() -> Status {
      for (const img::Vma& v : mm.vmas())
        if (v.kind() == img::Vma::ANON_PRIVATE && !v.inherited() &&
            with_pages.eager.count(v.start()))
          holder.Hold(v);
      // Huge pages only where the dumped task had them: made first, with
      // huge pages allowed (THP "always" gives them here at once; the
      // collapse below makes the rest), then none while filling.
      if (huge_pages)
        for (const img::PageRange& r : mm.huge())
          if (holder.Holds(r.start(), r.end() - r.start()))
            madvise(reinterpret_cast<void*>(r.start()), r.end() - r.start(), MADV_POPULATE_WRITE);
      prctl(PR_SET_THP_DISABLE, 1, 0, 0, 0);
      // Bytes for [VADDR, VADDR+LEN) come from DATA (in criu-lite) or
      // OFFSET of FD: into criu-lite's copy where it holds them, written
      // into the task elsewhere (the task's mapping there stays its own).
      std::vector<char> buf;
      auto place = [&](uint64_t vaddr, uint64_t len, const char* data, const PageReader* file,
                       uint64_t offset) -> Status {
        for (const VmMmapHolder::Piece& piece : holder.Split(vaddr, len)) {
          uint64_t skip = piece.start - vaddr, n = piece.end - piece.start;
          if (piece.held) {
            char* to = reinterpret_cast<char*>(piece.start);
            // One fault-free pass makes the pages (a fault per page is most of
            // the time a copy into fresh memory takes), then they are filled.
            madvise(to, n, MADV_POPULATE_WRITE);
            if (data)
              memcpy(to, data + skip, n);
            else
              TRY(ReadInto(file->fd(), file->path(), offset + skip, piece.start, n, true));
            continue;
          }
          const char* from = data ? data + skip : nullptr;
          if (!data) {
            buf.resize(n);
            TRY(ReadInto(file->fd(), file->path(), offset + skip,
                         reinterpret_cast<uint64_t>(buf.data()), n));
            from = buf.data();
          }
          TRY(WriteRemote(p.pid(), RemotePtr(piece.start), from, n));
        }
        return Ok{};
      };
      if (chain) {
        for (const ChainedRun& r : chain->runs)
          TRY(place(r.vaddr, r.len, nullptr, chain->sources[r.source].get(), r.offset));
        return Ok{};
      }
      if (!pages.raw())
        return pages.ForEachChunk([&](uint64_t vaddr, const char* data, size_t len) {
          return place(vaddr, len, data, nullptr, 0);
        });
      for (const img::PagemapEntry& e : pages.pagemap().entries())
        TRY(place(e.vaddr(), e.nr_pages() * kPageSize, nullptr, &pages, e.data_offset()));
      return Ok{};
    }();
    prctl(PR_SET_THP_DISABLE, 0, 0, 0, 0);
    TRY(std::move(filled));
  }
  if (holder.regions().empty()) return Ok{};
  // Memory the dumped task had in huge pages is collapsed here, in
  // criu-lite's copy, at the same address: the task then shares it whole.
  if (huge_pages)
    for (const img::PageRange& r : mm.huge())
      if (holder.Holds(r.start(), r.end() - r.start()) &&
          madvise(reinterpret_cast<void*>(r.start()), r.end() - r.start(), MADV_COLLAPSE) != 0)
        LOG_INFO("vm-mmap: MADV_COLLAPSE(0x%lx-0x%lx): %s: small pages there", r.start(), r.end(),
                 strerror(errno));
  ScopedFd own(static_cast<int>(syscall(SYS_pidfd_open, getpid(), 0)));
  if (!own.valid()) return ErrnoError("pidfd_open(criu-lite)");
  TRY(TakeMappings(p, nr, own.get(), holder.regions(), "criu-lite"));
  return Ok{};
}

Status PlaceFromPageHolder(Puppet& p, const img::MmState& mm, const VmasWithPages& with_pages,
                           PageReader& pages, const PageChain* chain, bool huge_pages,
                           PageHolder& holder, const HeldRanges& held) {
  long nr = ProcessVmMmapNr();
  if (nr < 0) return MakeError("--pages=vm-mmap: this kernel has no process_vm_mmap");
  // Compressed pages never go to a holder.
  if (!chain && !pages.raw()) return PlacePages(p, pages, PagePlacement::kRead);
  // Every run of the task's pages, cut where what the holder got of its
  // page file begins and ends: in the holder, or in the file. (An address
  // the holder held once it holds for good: the newest version of a page
  // it got is the one the chain resolves to.)
  struct Piece {
    uint64_t start, end;
    const PageReader* file;
    uint64_t offset;
    bool held;
  };
  std::vector<Piece> pieces;
  auto add = [&](uint64_t vaddr, uint64_t len, const PageReader* file, uint64_t offset) {
    auto it = held.find(file);
    uint64_t end = vaddr + len;
    if (it != held.end()) {
      const auto& ranges = it->second;
      auto r = std::upper_bound(ranges.begin(), ranges.end(), std::make_pair(vaddr, ~0ul));
      if (r != ranges.begin() && std::prev(r)->second > vaddr) --r;
      for (; r != ranges.end() && r->first < end && vaddr < end; ++r) {
        if (r->first > vaddr) {
          pieces.push_back({vaddr, r->first, file, offset, false});
          offset += r->first - vaddr;
          vaddr = r->first;
        }
        uint64_t stop = std::min(end, r->second);
        pieces.push_back({vaddr, stop, file, offset, true});
        offset += stop - vaddr;
        vaddr = stop;
      }
    }
    if (vaddr < end) pieces.push_back({vaddr, end, file, offset, false});
  };
  if (chain) {
    for (const ChainedRun& r : chain->runs)
      add(r.vaddr, r.len, chain->sources[r.source].get(), r.offset);
  } else {
    for (const img::PagemapEntry& e : pages.pagemap().entries())
      add(e.vaddr(), e.nr_pages() * kPageSize, &pages, e.data_offset());
  }
  std::sort(pieces.begin(), pieces.end(),
            [](const Piece& a, const Piece& b) { return a.start < b.start; });
  // A run may go on into the next mapping: each piece in one mapping.
  {
    std::vector<Piece> cut;
    auto v = mm.vmas().begin();
    for (Piece piece : pieces) {
      while (v != mm.vmas().end() && v->end() <= piece.start) ++v;
      while (v != mm.vmas().end() && v->start() <= piece.start && v->end() < piece.end) {
        Piece head = piece;
        head.end = v->end();
        cut.push_back(head);
        piece.offset += v->end() - piece.start;
        piece.start = v->end();
        ++v;
      }
      cut.push_back(piece);
    }
    pieces = std::move(cut);
  }
  // The mappings the task takes whole: each private anonymous one of its
  // own that the holder has pages of and can hold whole, as one mapping.
  std::map<uint64_t, uint64_t> taken;
  for (const img::Vma& v : mm.vmas()) {
    if (v.kind() != img::Vma::ANON_PRIVATE || v.inherited() || !with_pages.eager.count(v.start()))
      continue;
    auto first = std::lower_bound(pieces.begin(), pieces.end(), v.start(),
                                  [](const Piece& a, uint64_t at) { return a.start < at; });
    bool any = false;
    for (auto it = first; it != pieces.end() && it->start < v.end() && !any; ++it) any = it->held;
    if (!any) continue;
    if (!TRY(holder.Cover(v.start(), v.end(), HolderFlags(v)))) {
      LOG_INFO("vm-mmap: 0x%lx-0x%lx is not held whole: its pages are copied in", v.start(),
               v.end());
      continue;
    }
    // What the holder has there but the task had not (a page of an earlier
    // pass since dropped) is made zero; what the files have is written in
    // after the take.
    uint64_t at = v.start();
    for (auto it = first; it != pieces.end() && it->start < v.end(); ++it) {
      if (!it->held) continue;
      if (it->start > at) TRY(holder.Drop(at, it->start));
      at = it->end;
    }
    if (at < v.end()) TRY(holder.Drop(at, v.end()));
    taken[v.start()] = v.end();
  }
  auto in_taken = [&](uint64_t start) {
    auto it = taken.upper_bound(start);
    return it != taken.begin() && std::prev(it)->second > start;
  };
  if (huge_pages)
    for (const img::PageRange& r : mm.huge())
      if (in_taken(r.start()))
        if (Status c = holder.Collapse(r.start(), r.end()); !c.ok())
          LOG_INFO("vm-mmap: MADV_COLLAPSE(0x%lx-0x%lx): %s: small pages there", r.start(), r.end(),
                   c.error().message.c_str());
  if (!taken.empty()) {
    TRY(TakeMappings(p, nr, holder.pidfd(), taken, Format("page holder %d", holder.pid())));
    // The task's alone now: the holder lets go of its side.
    for (const auto& [start, end] : taken) TRY(holder.Release(start, end));
  }
  // Everything else is copied in: from the holder where it got it, else
  // from the file.
  std::vector<char> buf;
  uint64_t copied = 0;
  for (const Piece& piece : pieces) {
    if (piece.held && in_taken(piece.start)) continue;
    for (uint64_t at = piece.start; at < piece.end;) {
      uint64_t n = std::min<uint64_t>(piece.end - at, kPageChunkBytes);
      buf.resize(n);
      if (piece.held)
        TRY(holder.Read(at, buf.data(), n));
      else
        TRY(ReadInto(piece.file->fd(), piece.file->path(), piece.offset + (at - piece.start),
                     reinterpret_cast<uint64_t>(buf.data()), n));
      TRY(WriteRemote(p.pid(), RemotePtr(at), buf.data(), n));
      copied += n;
      at += n;
    }
  }
  if (copied) LOG_INFO("vm-mmap: %lu KiB copied into pid %d", copied >> 10, p.pid());
  return Ok{};
}

Status PlacePages(Puppet& p, PageReader& pages, PagePlacement how) {
  if (how != PagePlacement::kWritev && pages.raw())
    return PlaceByTaskRead(p, pages, pages.pagemap());
  if (how != PagePlacement::kWritev)
    LOG_INFO("pages are zstd-compressed: criu-lite decompresses them and writes them in");
  return PlaceByWritev(p, pages);
}

Result<std::unique_ptr<PagesBeingPlaced>> StartPlacePages(Puppet& p, PageReader& pages,
                                                          PagePlacement how) {
  // Each preadv at most 1024 runs and 1 GiB (the kernel cuts one read short
  // near 2 GiB), of runs back to back in the file; their iovecs all in the
  // task's scratch memory at once.
  constexpr size_t kMaxIovecs = 1024, kMaxScratchIovecs = 16384;
  constexpr uint64_t kMaxRead = 1ull << 30;
  const img::Pagemap& pm = pages.pagemap();
  uint64_t total = 0;
  for (const img::PagemapEntry& e : pm.entries()) total += e.nr_pages() * kPageSize;
  // An entry longer than a read is cut into reads: at most one more iovec
  // for each kMaxRead.
  if (how == PagePlacement::kWritev || !pages.raw() ||
      static_cast<size_t>(pm.entries_size()) + total / kMaxRead > kMaxScratchIovecs) {
    TRY(PlacePages(p, pages, how));
    return std::unique_ptr<PagesBeingPlaced>();
  }
  // The task's share: the first half, where there is enough to share.
  constexpr uint64_t kShareFrom = 256ull << 20;
  uint64_t task_share = total >= kShareFrom ? total / 2 / kPageSize * kPageSize : total;
  auto placing = std::make_unique<PagesBeingPlaced>(p, pages.path(), pages.fd());
  std::vector<std::vector<iovec>> reads;
  std::vector<uint64_t> offsets, lengths;
  uint64_t given = 0;
  for (const img::PagemapEntry& e : pm.entries()) {
    uint64_t len = e.nr_pages() * kPageSize;
    uint64_t take = std::min(len, task_share - given);
    if (take < len)
      placing->share_.push_back({e.vaddr() + take, e.data_offset() + take, len - take});
    given += take;
    for (uint64_t done = 0; done < take;) {
      uint64_t at = e.data_offset() + done;
      bool joins = !reads.empty() && at == offsets.back() + lengths.back() &&
                   reads.back().size() < kMaxIovecs && lengths.back() < kMaxRead;
      if (!joins) {
        reads.emplace_back();
        offsets.push_back(at);
        lengths.push_back(0);
      }
      uint64_t piece = std::min(take - done, kMaxRead - lengths.back());
      reads.back().push_back({reinterpret_cast<void*>(e.vaddr() + done), piece});
      lengths.back() += piece;
      done += piece;
    }
  }
  placing->frame_ = std::make_unique<RemoteScratch::Frame>(p.scratch());
  int fd;
  {
    RemoteScratch::Frame frame(p.scratch());
    RemotePtr scm = TRY(p.scratch().Reserve(kScmScratchBytes));
    FdGiver giver = TRY(FdGiver::Open(p.rs(), scm));
    fd = TRY(giver.Give(pages.fd(), pages.path())).Release();  // closed by the batch
  }
  // The iovecs stay in the task's scratch memory until Finish.
  RemoteBatch& batch = placing->batch_;
  std::string what = Format("preadv(%s)", pages.path().c_str());
  for (size_t i = 0; i < reads.size(); i++) {
    auto riov = TRY(p.scratch().PushArray(reads[i].data(), reads[i].size()));
    batch.Add(what, SYS_preadv, fd, riov, reads[i].size(), offsets[i], 0);
  }
  batch.AddMayFail("close(pages)", SYS_close, fd);
  placing->lengths_ = std::move(lengths);
  TRY(batch.Start());
  return placing;
}

// A piece at a time, each mapped (MAP_POPULATE: the page cache's pages,
// no copy) and written into the task: criu-lite's memory holds no more than
// a piece of it.
Status PagesBeingPlaced::PlaceShare() {
  constexpr uint64_t kPiece = 8 << 20;
  for (const Run& r : share_) {
    for (uint64_t done = 0; done < r.len;) {
      TRY(CheckStop());
      uint64_t n = std::min(r.len - done, kPiece);
      uint64_t at = r.offset + done, skew = at % kPageSize;
      void* m = mmap(nullptr, n + skew, PROT_READ, MAP_SHARED | MAP_POPULATE, fd_, at - skew);
      if (m == MAP_FAILED) return ErrnoError("mmap(%s, 0x%lx)", path_.c_str(), at);
      iovec local{static_cast<char*>(m) + skew, n};
      iovec remote{reinterpret_cast<void*>(r.vaddr + done), n};
      ssize_t w = process_vm_writev(pid_, &local, 1, &remote, 1, 0);
      int err = errno;
      munmap(m, n + skew);
      if (w != static_cast<ssize_t>(n)) {
        errno = err;
        return w < 0 ? ErrnoError("process_vm_writev(pid=%d, 0x%lx, %lu bytes)", pid_,
                                  r.vaddr + done, n)
                     : MakeError(
                           "process_vm_writev(pid=%d, 0x%lx): %zd of %lu bytes "
                           "(page file %s ended early?)",
                           pid_, r.vaddr + done, w, n, path_.c_str());
      }
      done += n;
    }
  }
  return Ok{};
}

Status PagesBeingPlaced::Finish() {
  Status mine = PlaceShare();
  TRY(batch_.Finish());
  TRY(std::move(mine));
  frame_.reset();
  for (size_t i = 0; i < lengths_.size(); i++)
    if (static_cast<uint64_t>(batch_.result(i)) != lengths_[i])
      return MakeError("page file %s ended early", path_.c_str());
  return Ok{};
}

Status PlaceChainedPages(Puppet& p, const PageChain& chain, PagePlacement how) {
  if (how == PagePlacement::kWritev) {
    std::vector<char> buf(kPageChunkBytes);
    for (const ChainedRun& r : chain.runs) {
      for (uint64_t done = 0; done < r.len;) {
        size_t n = std::min<uint64_t>(r.len - done, buf.size());
        int fd = chain.sources[r.source]->fd();
        if (pread(fd, buf.data(), n, r.offset + done) != static_cast<ssize_t>(n))
          return ErrnoError("pread(%s)", chain.sources[r.source]->path().c_str());
        TRY(WriteRemote(p.pid(), RemotePtr(r.vaddr + done), buf.data(), n));
        done += n;
      }
    }
    return Ok{};
  }
  // --pages=read: the task opens each page file of the chain it needs and
  // reads runs with preadv, up to 1024 at a time: runs of one file whose data
  // lie back to back, or with a small gap (newer pages from a later pass)
  // read into a scratch page and thrown away, which costs far less than a
  // syscall per run.
  RemoteSyscalls& rs = p.rs();
  RemoteScratch& scratch = p.scratch();
  constexpr uint64_t kMaxGap = 64 << 10;
  std::map<size_t, RemoteFd> fds;
  {
    RemoteScratch::Frame frame(scratch);
    RemotePtr scm = TRY(scratch.Reserve(kScmScratchBytes));
    std::optional<FdGiver> giver;
    RemotePtr trash = TRY(scratch.Reserve(kMaxGap));
    std::vector<iovec> iov;
    size_t src = 0;
    uint64_t start = 0, end = 0;  // file range the batch covers
    auto flush = [&]() -> Status {
      if (iov.empty()) return Ok{};
      if (!fds.count(src)) {
        if (!giver) giver.emplace(TRY(FdGiver::Open(rs, scm)));
        const PageReader& source = *chain.sources[src];
        fds.emplace(src, TRY(giver->Give(source.fd(), source.path())));
      }
      uint64_t off = start;
      while (!iov.empty()) {
        // Scratch space for the iovec arrays is reused batch after batch.
        RemoteScratch::Frame for_iovecs(scratch);
        auto riov = TRY(scratch.PushArray(iov.data(), std::min<size_t>(iov.size(), 1024)));
        int64_t n = TRY(rs.Checked("preadv(pages)", SYS_preadv, fds.at(src).get(), riov,
                                   std::min<size_t>(iov.size(), 1024), off, 0));
        if (n <= 0)
          return MakeError("page file %s ended early", chain.sources[src]->path().c_str());
        off += n;
        ConsumeIovecs(&iov, n);
      }
      return Ok{};
    };
    for (const ChainedRun& r : chain.runs) {
      bool joins = !iov.empty() && r.source == src && r.offset >= end &&
                   r.offset - end <= kMaxGap && iov.size() < 1000;
      if (!joins) {
        TRY(flush());
        src = r.source;
        start = end = r.offset;
      } else if (r.offset > end) {
        iov.push_back({reinterpret_cast<void*>(trash.addr()), r.offset - end});
      }
      iov.push_back({reinterpret_cast<void*>(r.vaddr), r.len});
      end = r.offset + r.len;
    }
    return flush();
  }
}

Status ZapDroppedPages(Puppet& p, const img::MmState& mm) {
  RemoteBatch batch = p.Batch();
  for (const img::PageRange& z : mm.zap())
    batch.Add(Format("madvise(0x%lx, DONTNEED)", z.start()), SYS_madvise, z.start(),
              z.end() - z.start(), MADV_DONTNEED);
  return batch.Run();
}

Status FinishVmas(Puppet& p, const img::MmState& mm, const VmasWithPages& with_pages) {
  static const std::pair<const char*, int> kAdvice[] = {
      {"dd", MADV_DONTDUMP},   {"hg", MADV_HUGEPAGE},   {"nh", MADV_NOHUGEPAGE},
      {"dc", MADV_DONTFORK},   {"wf", MADV_WIPEONFORK}, {"mg", MADV_MERGEABLE},
      {"sr", MADV_SEQUENTIAL}, {"rr", MADV_RANDOM}};
  RemoteBatch batch = p.Batch();
  for (const img::Vma& v : mm.vmas()) {
    if (IsSpecial(v.kind()) || v.kind() == img::Vma::VSYSCALL) continue;
    uint64_t len = v.end() - v.start();
    // Made unwritable, an anonymous mapping that never had a page (no
    // anon_vma) loses its commit charge. One that had the charge while not
    // writable had had pages: if none was placed (all lazy, or none saved),
    // one is touched and dropped, which leaves the anon_vma behind.
    if (v.kind() == img::Vma::ANON_PRIVATE && v.accounted() && !(v.prot() & PROT_WRITE) &&
        !v.inherited() && !with_pages.eager.count(v.start())) {
      char zero = 0;
      TRY(WriteRemote(p.pid(), RemotePtr(v.start()), &zero, 1));
      batch.Add("madvise(DONTNEED)", SYS_madvise, v.start(), kPageSize, MADV_DONTNEED);
    }
    if ((WritableWhileBuilt(v, with_pages) && v.prot() != (PROT_READ | PROT_WRITE)) ||
        v.inherited() || v.kind() == img::Vma::SYSV_SHM)
      batch.Add(Format("mprotect(0x%lx)", v.start()), SYS_mprotect, v.start(), len, v.prot());
    for (const auto& [code, advice] : kAdvice)
      if (HasMadvise(v, code))
        batch.Add(Format("madvise(0x%lx, %s)", v.start(), code), SYS_madvise, v.start(), len,
                  advice);
    // Locked memory (mlock, or mlock2 MLOCK_ONFAULT: "lf") is locked again.
    if (HasMadvise(v, "lo"))
      batch.Add(Format("mlock2(0x%lx)", v.start()), SYS_mlock2, v.start(), len,
                HasMadvise(v, "lf") ? MLOCK_ONFAULT : 0);
  }
  return batch.Run();
}

}  // namespace crl
