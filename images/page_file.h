// Page data files (pages-PID.img): raw pages back to back, or zstd frames
// (one per few MiB of pages, each with a content checksum). Where each run of
// pages lives is recorded in the Pagemap record.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "base/result.h"
#include "base/scoped_fd.h"
#include "images/criu_lite.pb.h"
#include "images/image_output.h"

namespace crl {

constexpr uint64_t kPageSize = 4096;

class PageWriter {
 public:
  // zstd_level 0 means raw pages.
  static Result<PageWriter> Create(const std::string& dir, const std::string& name, int zstd_level);
  // Pages stream to file NAME of OUT (a directory, or a page server).
  static Result<PageWriter> Create(ImageOutput* out, const std::string& name, int zstd_level);
  PageWriter(PageWriter&&) = default;

  // Appends LEN bytes (whole pages) that belong at VADDR; VMA, if given: the
  // private anonymous mapping they are in (for a page server holding pages).
  Status Append(uint64_t vaddr, const void* data, size_t len, const PagePlace* vma = nullptr);
  // About LEN bytes of pages will be appended (raw pages: the file is
  // given its blocks at once).
  void Reserve(uint64_t len) {
    if (zstd_level_ == 0) out_->Reserve(name_, len);
  }
  // Records pages at [VADDR, VADDR+LEN) whose data is in the parent image.
  void AppendInParent(uint64_t vaddr, size_t len);
  // Flushes and fills in everything the pagemap needs to find the pages.
  Status Finish(img::Pagemap* pagemap);
  uint64_t bytes_written() const { return file_offset_; }
  // Time spent on checksums, to say what they cost.
  uint64_t checksum_nsec() const { return checksum_nsec_; }

 private:
  PageWriter() = default;
  Status WriteOut(const void* data, size_t len, const PagePlace* at = nullptr);
  Status FlushFrame();
  void Hash(const void* data, size_t len);
  void EndRunHash();

  std::string path_, name_;
  std::unique_ptr<ImageOutput> own_out_;  // when created for a directory
  ImageOutput* out_ = nullptr;
  int zstd_level_ = 0;
  struct CctxFree {
    void operator()(void* c) const;
  };
  std::unique_ptr<void, CctxFree> cctx_;  // ZSTD_CCtx
  std::vector<char> frame_raw_, frame_out_;
  uint64_t file_offset_ = 0, raw_offset_ = 0, frame_raw_start_ = 0;
  img::Pagemap pm_;
  struct HashFree {
    void operator()(void* s) const;
  };
  std::unique_ptr<void, HashFree> hash_;  // XXH3_state_t of the run being written
  int hashed_entry_ = -1;                 // which entry it hashes
  uint64_t checksum_nsec_ = 0;
};

// Reads the pages a Pagemap describes.
class PageReader {
 public:
  // Checks that the pages file exists and has the size the pagemap recorded.
  static Result<PageReader> Open(const std::string& dir, const img::Pagemap& pagemap);
  PageReader(PageReader&&) = default;

  bool raw() const { return pm_.encoding() == img::Pagemap::RAW; }
  int fd() const { return fd_.get(); }
  const std::string& path() const { return path_; }
  const img::Pagemap& pagemap() const { return pm_; }

  // Calls FN(vaddr, data, len) for every run of pages, in pagemap order,
  // holding at most a few MiB in memory at a time.
  Status ForEachChunk(const std::function<Status(uint64_t, const char*, size_t)>& fn);
  // Checks every run against its checksum (raw pages; zstd frames are
  // checked as they are decompressed). Reads the file through a buffer.
  // DROP_CACHE: the page cache of what it read dropped behind it.
  Status Verify(bool drop_cache = false) const;

 private:
  PageReader() = default;
  std::string path_;
  ScopedFd fd_;
  img::Pagemap pm_;
};

// Size of one zstd frame's input / one raw read: large enough for streaming
// speed, small enough to keep criu-lite's RSS low whatever the target's size.
constexpr size_t kPageChunkBytes = 4 << 20;

}  // namespace crl
