// A page holder: a small process that holds one task's pages in anonymous
// memory at the task's own addresses, for `page-server --pages=vm-mmap`.
// The page server puts the pages it receives there instead of in the page
// file; the restore then has each task take whole mappings from it with
// process_vm_mmap (no copy), and the holder lets go of what was taken.
//
// The holder is `criu-lite page-holder` (exec'd: a small address space of
// its own), driven over a SOCK_SEQPACKET socket on its fd 3; it exits when
// the socket closes, or when the page server that started it dies. It never
// maps anything after it started but the task's memory, so an address it
// could not hold (one of its own mappings is there) stays so: whatever held
// a page once holds its later versions.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <string>
#include <vector>

#include "base/result.h"
#include "base/scoped_fd.h"
#include "images/criu_lite.pb.h"

namespace crl {

// How V is mapped, as a holder maps it: PagePlace::kGrowsDown, kNoReserve.
uint32_t HolderFlags(const img::Vma& v);

// The `criu-lite page-holder` process: serves CONTROL until it closes.
int RunPageHolder(int control);

class PageHolder {
 public:
  // Starts one (the page server).
  static Result<PageHolder> Start();
  // One started by someone else, given as its control socket (the restore).
  static Result<PageHolder> FromControl(int fd);
  PageHolder(PageHolder&& o) noexcept { *this = std::move(o); }
  PageHolder& operator=(PageHolder&& o) noexcept;
  ~PageHolder();

  struct Piece {
    uint64_t start, end;
    bool held;
  };
  // Holds the task's mapping [VMA_START, VMA_END) (PagePlace::kGrowsDown,
  // kNoReserve as FLAGS say) where nothing of the holder's own is, and says
  // which pieces of [AT, AT+LEN), inside it, are held.
  Result<std::vector<Piece>> Hold(uint64_t vma_start, uint64_t vma_end, uint32_t flags, uint64_t at,
                                  uint64_t len);
  // Whether [START, END) is now held whole, as one mapping with FLAGS (what
  // a task can take with one process_vm_mmap).
  Result<bool> Cover(uint64_t start, uint64_t end, uint32_t flags);
  // The held pages of [START, END) are made zero (MADV_DONTNEED).
  Status Drop(uint64_t start, uint64_t end);
  // [START, END) is made of huge pages, if it can be (MADV_COLLAPSE).
  Status Collapse(uint64_t start, uint64_t end);
  // [START, END) is no longer held (taken by its task).
  Status Release(uint64_t start, uint64_t end);
  // Copies between this process and the holder's memory.
  Status Write(uint64_t at, const void* data, size_t len) const;
  Status Read(uint64_t at, void* data, size_t len) const;

  pid_t pid() const { return pid_; }
  int pidfd() const { return pidfd_.get(); }
  int control() const { return control_.get(); }

 private:
  PageHolder() = default;
  void End();
  Result<std::vector<Piece>> Call(uint32_t op, uint64_t a, uint64_t b, uint32_t flags = 0,
                                  uint64_t at = 0, uint64_t len = 0);
  ScopedFd control_, pidfd_;
  pid_t pid_ = -1;
  bool child_ = false;  // started here: reaped here
};

}  // namespace crl
