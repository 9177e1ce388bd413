// Where a dump's files go: an image directory on disk, or a page server on
// another host (pageserver/), or both (a migration keeps the small files it
// needs for the next pass locally and sends everything).
#pragma once

#include <atomic>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <vector>

#include "base/result.h"
#include "base/scoped_fd.h"

namespace crl {

// Where raw page data belongs: at VADDR of a private anonymous mapping that
// spans [VMA_START, VMA_END) (with MAP_GROWSDOWN, MAP_NORESERVE as FLAGS
// say). A page server that holds pages in memory (page-server --pages=
// vm-mmap) places them there; anything else appends them to the file.
struct PagePlace {
  static constexpr uint32_t kGrowsDown = 1, kNoReserve = 2;
  uint64_t vaddr = 0, vma_start = 0, vma_end = 0;
  uint32_t flags = 0;
};

class ImageOutput {
 public:
  virtual ~ImageOutput() = default;
  // A whole file (an image record): replaces any earlier one of that name.
  virtual Status PutFile(const std::string& name, const std::string& data) = 0;
  // Appends to a file written as a stream (page data).
  virtual Status AppendFile(const std::string& name, const void* data, size_t len) = 0;
  // Appends raw pages that belong AT a private anonymous mapping.
  virtual Status AppendPages(const std::string& name, const PagePlace& /*at*/, const void* data,
                             size_t len) {
    return AppendFile(name, data, len);
  }
  // About LEN bytes will be appended to stream NAME: a file on disk gets
  // its blocks at once (a hint; nothing else needs it).
  virtual void Reserve(const std::string& /*name*/, uint64_t /*len*/) {}
  virtual Status Symlink(const std::string& name, const std::string& target) = 0;
  // Every file is complete.
  virtual Status Commit() = 0;
};

// An image directory on disk. Files are written into a hidden staging
// directory inside it and moved in by Commit() (the old inventory removed
// first, the new one last), so that a dump that fails, or is killed, leaves
// the checkpoint that was there as it was; an uncommitted output removes
// what it staged. Threads may write different files at once (a tree's page
// files are written on two); Commit comes after them all.
class LocalImageOutput : public ImageOutput {
 public:
  explicit LocalImageOutput(std::string dir) : dir_(std::move(dir)) {}
  ~LocalImageOutput() override;
  Status PutFile(const std::string& name, const std::string& data) override;
  Status AppendFile(const std::string& name, const void* data, size_t len) override;
  // fallocate (the size kept): one allocation of its blocks instead of one
  // per page as they are written (delayed allocation on ext4), which made
  // writing a page file a third slower on the development machine.
  void Reserve(const std::string& name, uint64_t len) override;
  Status Symlink(const std::string& name, const std::string& target) override;
  Status Commit() override;

 private:
  // The stream NAME writes to, opened on first use.
  Result<int> Stream(const std::string& name);
  // The staged path of NAME (the staging directory is made on first use:
  // the image directory may not exist yet when this is constructed).
  Result<std::string> Staged(const std::string& name);
  // LEN bytes at DATA to FD (named WHAT) through a pipe: vmsplice takes
  // references to the caller's pages, splice copies them into the file's
  // page cache, one copy as with write(), but several times faster than
  // write() into fresh page cache on the development machine (the floors
  // of tests/bench/vs_criu.sh); CRIU writes its pages this way too. Small
  // pieces, and files that refuse splice, are written.
  Status SpliceOrWrite(int fd, const void* data, size_t len, const std::string& what);
  // A pipe for SpliceOrWrite: one per writing thread at a time, kept for
  // the next call.
  struct Pipe {
    ScopedFd r, w;
    size_t size = 0;
  };
  std::string dir_, staging_;
  std::mutex mu_;  // guards the names, the streams and the pool of pipes
  std::set<std::string> names_;
  std::map<std::string, ScopedFd> streams_;
  std::vector<std::unique_ptr<Pipe>> pipes_;
  std::atomic<bool> splice_refused_{false};
};

// Small files to both; page streams to the second only.
class TeeImageOutput : public ImageOutput {
 public:
  TeeImageOutput(ImageOutput* small, ImageOutput* all) : small_(small), all_(all) {}
  Status PutFile(const std::string& name, const std::string& data) override {
    TRY(small_->PutFile(name, data));
    return all_->PutFile(name, data);
  }
  Status AppendFile(const std::string& name, const void* data, size_t len) override {
    return all_->AppendFile(name, data, len);
  }
  void Reserve(const std::string& name, uint64_t len) override { all_->Reserve(name, len); }
  Status AppendPages(const std::string& name, const PagePlace& at, const void* data,
                     size_t len) override {
    return all_->AppendPages(name, at, data, len);
  }
  Status Symlink(const std::string& name, const std::string& target) override {
    TRY(small_->Symlink(name, target));
    return all_->Symlink(name, target);
  }
  Status Commit() override {
    TRY(small_->Commit());
    return all_->Commit();
  }

 private:
  ImageOutput* small_;
  ImageOutput* all_;
};

Status WriteAllToFd(int fd, const void* data, size_t len, const std::string& what);

}  // namespace crl
