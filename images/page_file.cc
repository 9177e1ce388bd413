#include "images/page_file.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>
#include <xxhash.h>
#include <zstd.h>

#include <algorithm>
#include <chrono>
#include <cstring>

#include "base/clock.h"
#include "base/interrupt.h"

namespace crl {

Result<PageWriter> PageWriter::Create(const std::string& dir, const std::string& name,
                                      int zstd_level) {
  auto out = std::make_unique<LocalImageOutput>(dir);
  PageWriter w = TRY(Create(out.get(), name, zstd_level));
  w.own_out_ = std::move(out);
  w.path_ = dir + "/" + name;
  return w;
}

Result<PageWriter> PageWriter::Create(ImageOutput* out, const std::string& name, int zstd_level) {
  PageWriter w;
  w.name_ = name;
  w.path_ = name;
  w.out_ = out;
  // An empty page file still exists.
  TRY(out->AppendFile(name, "", 0));
  w.zstd_level_ = zstd_level;
  if (zstd_level > 0) {
    ZSTD_CCtx* c = ZSTD_createCCtx();
    if (!c) return MakeError("ZSTD_createCCtx failed");
    ZSTD_CCtx_setParameter(c, ZSTD_c_compressionLevel, zstd_level);
    ZSTD_CCtx_setParameter(c, ZSTD_c_checksumFlag, 1);
    w.cctx_.reset(c);
    w.frame_raw_.reserve(kPageChunkBytes);
    w.frame_out_.resize(ZSTD_compressBound(kPageChunkBytes));
  }
  w.pm_.set_pages_file(name);
  w.pm_.set_encoding(zstd_level > 0 ? img::Pagemap::ZSTD : img::Pagemap::RAW);
  if (zstd_level == 0) {
    w.hash_.reset(XXH3_createState());
    if (!w.hash_) return MakeError("XXH3_createState failed");
    w.pm_.set_checksummed(true);
  }
  return w;
}

void PageWriter::CctxFree::operator()(void* c) const { ZSTD_freeCCtx(static_cast<ZSTD_CCtx*>(c)); }
void PageWriter::HashFree::operator()(void* s) const {
  XXH3_freeState(static_cast<XXH3_state_t*>(s));
}

// The checksum of the run being written, fed as its pages come.
void PageWriter::Hash(const void* data, size_t len) {
  auto t0 = Clock::now();
  auto* st = static_cast<XXH3_state_t*>(hash_.get());
  int entry = pm_.entries_size() - 1;
  if (hashed_entry_ != entry) {
    EndRunHash();
    XXH3_64bits_reset(st);
    hashed_entry_ = entry;
  }
  XXH3_64bits_update(st, data, len);
  checksum_nsec_ += NsecBetween(t0, Clock::now());
}

void PageWriter::EndRunHash() {
  if (hashed_entry_ < 0) return;
  pm_.mutable_entries(hashed_entry_)
      ->set_xxh3(XXH3_64bits_digest(static_cast<XXH3_state_t*>(hash_.get())));
  hashed_entry_ = -1;
}

Status PageWriter::WriteOut(const void* data, size_t len, const PagePlace* at) {
  if (at)
    TRY(out_->AppendPages(name_, *at, data, len));
  else
    TRY(out_->AppendFile(name_, data, len));
  file_offset_ += len;
  return Ok{};
}

Status PageWriter::FlushFrame() {
  if (frame_raw_.empty()) return Ok{};
  size_t n = ZSTD_compress2(static_cast<ZSTD_CCtx*>(cctx_.get()), frame_out_.data(),
                            frame_out_.size(), frame_raw_.data(), frame_raw_.size());
  if (ZSTD_isError(n)) return MakeError("zstd compression failed: %s", ZSTD_getErrorName(n));
  img::ZstdFrame* f = pm_.add_frames();
  f->set_file_offset(file_offset_);
  f->set_compressed_size(n);
  f->set_raw_offset(frame_raw_start_);
  f->set_raw_size(frame_raw_.size());
  TRY(WriteOut(frame_out_.data(), n));
  frame_raw_start_ += frame_raw_.size();
  frame_raw_.clear();
  return Ok{};
}

void PageWriter::AppendInParent(uint64_t vaddr, size_t len) {
  int n = pm_.entries_size();
  img::PagemapEntry* last = n ? pm_.mutable_entries(n - 1) : nullptr;
  if (last && last->in_parent() && last->vaddr() + last->nr_pages() * kPageSize == vaddr) {
    last->set_nr_pages(last->nr_pages() + len / kPageSize);
    return;
  }
  img::PagemapEntry* e = pm_.add_entries();
  e->set_vaddr(vaddr);
  e->set_nr_pages(len / kPageSize);
  e->set_in_parent(true);
}

Status PageWriter::Append(uint64_t vaddr, const void* data, size_t len, const PagePlace* vma) {
  CRL_CHECK(len % kPageSize == 0 && vaddr % kPageSize == 0, "unaligned pages at 0x%lx", vaddr);
  int n = pm_.entries_size();
  img::PagemapEntry* last = n ? pm_.mutable_entries(n - 1) : nullptr;
  if (last && !last->in_parent() && last->vaddr() + last->nr_pages() * kPageSize == vaddr &&
      last->data_offset() + last->nr_pages() * kPageSize == raw_offset_) {
    last->set_nr_pages(last->nr_pages() + len / kPageSize);
  } else {
    img::PagemapEntry* e = pm_.add_entries();
    e->set_vaddr(vaddr);
    e->set_nr_pages(len / kPageSize);
    e->set_data_offset(raw_offset_);
  }
  raw_offset_ += len;
  pm_.set_total_pages(pm_.total_pages() + len / kPageSize);
  if (zstd_level_ == 0) {
    Hash(data, len);
    if (!vma) return WriteOut(data, len);
    PagePlace at = *vma;
    at.vaddr = vaddr;
    return WriteOut(data, len, &at);
  }
  const char* p = static_cast<const char*>(data);
  while (len > 0) {
    size_t take = std::min(len, kPageChunkBytes - frame_raw_.size());
    frame_raw_.insert(frame_raw_.end(), p, p + take);
    p += take;
    len -= take;
    if (frame_raw_.size() == kPageChunkBytes) TRY(FlushFrame());
  }
  return Ok{};
}

Status PageWriter::Finish(img::Pagemap* pagemap) {
  if (zstd_level_ > 0) TRY(FlushFrame());
  EndRunHash();
  // No fsync, as CRIU: images go through the page cache; `sync` them if the
  // machine may crash before restore. (fsync doubled the dump time on ext4.)
  pm_.set_pages_file_size(file_offset_);
  *pagemap = pm_;
  // A writer that owns its directory output puts the file in place now.
  if (own_out_) TRY(own_out_->Commit());
  return Ok{};
}

Result<PageReader> PageReader::Open(const std::string& dir, const img::Pagemap& pagemap) {
  PageReader r;
  r.pm_ = pagemap;
  if (pagemap.pages_file().empty() || pagemap.pages_file().find('/') != std::string::npos)
    return MakeError("pagemap in %s names a bad pages file '%s'", dir.c_str(),
                     pagemap.pages_file().c_str());
  r.path_ = dir + "/" + pagemap.pages_file();
  r.fd_.reset(open(r.path_.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK));
  if (!r.fd_.valid()) {
    if (errno == ENOENT) return MakeError("pages file %s is missing", r.path_.c_str());
    return ErrnoError("open(%s)", r.path_.c_str());
  }
  struct stat st;
  if (fstat(r.fd_.get(), &st) < 0) return ErrnoError("fstat(%s)", r.path_.c_str());
  if (!S_ISREG(st.st_mode))
    return MakeError("pages file %s is not a regular file", r.path_.c_str());
  if (static_cast<uint64_t>(st.st_size) != pagemap.pages_file_size())
    return MakeError(
        "pages file %s is %s: %ld bytes, the pagemap expects %lu", r.path_.c_str(),
        static_cast<uint64_t>(st.st_size) < pagemap.pages_file_size() ? "truncated" : "too long",
        st.st_size, pagemap.pages_file_size());
  // Every run must lie inside the page stream the file holds.
  uint64_t raw_total = 0;
  if (r.raw()) {
    raw_total = pagemap.pages_file_size();
  } else {
    for (const auto& f : pagemap.frames()) {
      if (f.file_offset() + f.compressed_size() > pagemap.pages_file_size() ||
          f.raw_offset() != raw_total)
        return MakeError("pagemap for %s has an inconsistent zstd frame table", r.path_.c_str());
      raw_total += f.raw_size();
    }
  }
  for (const auto& e : pagemap.entries()) {
    if (e.in_parent()) continue;
    if (e.data_offset() + e.nr_pages() * kPageSize > raw_total)
      return MakeError("pagemap for %s points past the end of its pages (run at 0x%lx)",
                       r.path_.c_str(), e.vaddr());
  }
  return r;
}

Status PageReader::ForEachChunk(const std::function<Status(uint64_t, const char*, size_t)>& fn) {
  std::vector<char> buf;
  if (raw()) {
    buf.resize(kPageChunkBytes);
    for (const auto& e : pm_.entries()) {
      if (e.in_parent()) continue;
      uint64_t done = 0, total = e.nr_pages() * kPageSize;
      while (done < total) {
        size_t want = std::min<uint64_t>(total - done, buf.size());
        ssize_t n = pread(fd_.get(), buf.data(), want, e.data_offset() + done);
        if (n < 0 && errno == EINTR) {
          TRY(CheckStop());
          continue;
        }
        if (n < 0) return ErrnoError("pread(%s)", path_.c_str());
        if (static_cast<size_t>(n) != want)
          return MakeError("pages file %s ended early at offset %lu", path_.c_str(),
                           e.data_offset() + done + n);
        TRY(fn(e.vaddr() + done, buf.data(), want));
        done += want;
      }
    }
    return Ok{};
  }
  // zstd: decompress frame by frame; entries are in raw-offset order.
  std::vector<char> in;
  int next_entry = 0;
  uint64_t entry_done = 0;
  for (int fi = 0; fi < pm_.frames_size(); fi++) {
    const img::ZstdFrame& f = pm_.frames(fi);
    in.resize(f.compressed_size());
    buf.resize(f.raw_size());
    ssize_t n = pread(fd_.get(), in.data(), in.size(), f.file_offset());
    if (n != static_cast<ssize_t>(in.size()))
      return MakeError("pages file %s: zstd frame %d is cut short", path_.c_str(), fi);
    size_t out = ZSTD_decompress(buf.data(), buf.size(), in.data(), in.size());
    if (ZSTD_isError(out) || out != f.raw_size())
      return MakeError("pages file %s: zstd frame %d is corrupt: %s", path_.c_str(), fi,
                       ZSTD_isError(out) ? ZSTD_getErrorName(out) : "wrong decompressed size");
    uint64_t frame_end = f.raw_offset() + f.raw_size();
    while (next_entry < pm_.entries_size()) {
      const img::PagemapEntry& e = pm_.entries(next_entry);
      if (e.in_parent()) {
        next_entry++;
        continue;
      }
      uint64_t pos = e.data_offset() + entry_done;
      uint64_t total = e.nr_pages() * kPageSize;
      if (pos >= frame_end) break;
      size_t len = std::min<uint64_t>(total - entry_done, frame_end - pos);
      TRY(fn(e.vaddr() + entry_done, buf.data() + (pos - f.raw_offset()), len));
      entry_done += len;
      if (entry_done == total) {
        next_entry++;
        entry_done = 0;
      }
    }
  }
  while (next_entry < pm_.entries_size() && pm_.entries(next_entry).in_parent()) next_entry++;
  if (next_entry != pm_.entries_size())
    return MakeError("pages file %s holds fewer pages than its pagemap lists", path_.c_str());
  return Ok{};
}

Status PageReader::Verify(bool drop_cache) const {
  if (!raw() || !pm_.checksummed() || pm_.pages_file_size() == 0) return Ok{};
  // Read through a buffer, not a mapping of the whole file: mapped, the
  // file's pages would count in criu-lite's RSS (200 MiB for 200 MiB of pages).
  std::vector<char> buf(kPageChunkBytes);
  std::unique_ptr<XXH3_state_t, decltype(&XXH3_freeState)> st(XXH3_createState(), XXH3_freeState);
  if (!st) return MakeError("XXH3_createState failed");
  for (const auto& e : pm_.entries()) {
    if (e.in_parent()) continue;
    XXH3_64bits_reset(st.get());
    uint64_t len = e.nr_pages() * kPageSize;  // inside the file: Open checked
    for (uint64_t done = 0; done < len;) {
      size_t want = std::min<uint64_t>(len - done, buf.size());
      ssize_t n = pread(fd_.get(), buf.data(), want, e.data_offset() + done);
      if (n < 0 && errno == EINTR) continue;
      if (n < 0) return ErrnoError("pread(%s)", path_.c_str());
      if (n == 0) return MakeError("pages file %s ended early", path_.c_str());
      XXH3_64bits_update(st.get(), buf.data(), n);
      if (drop_cache) posix_fadvise(fd_.get(), e.data_offset() + done, n, POSIX_FADV_DONTNEED);
      done += n;
    }
    if (XXH3_64bits_digest(st.get()) != e.xxh3())
      return MakeError(
          "pages file %s is corrupt: the run at 0x%lx (%lu pages at offset %lu) does not match "
          "its checksum",
          path_.c_str(), e.vaddr(), e.nr_pages(), e.data_offset());
  }
  return Ok{};
}

}  // namespace crl
