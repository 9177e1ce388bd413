#include "images/image_archive.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <ctime>
#include <filesystem>
#include <map>

#include "base/interrupt.h"
#include "images/image_dir.h"
#include "kernel/lib_archive.h"
#include "kernel/proc_task.h"

namespace crl {

namespace {

bool EndsWith(const std::string& s, const std::string& end) {
  return s.size() >= end.size() && s.compare(s.size() - end.size(), end.size(), end) == 0;
}

const char* ArchiveError(archive* a) {
  const char* e = Archive().archive_error_string(a);
  return e ? e : "unknown error";
}

// Piece K of a streamed file: "NAME.img.00000K" gives NAME.img and K.
bool PieceOf(const std::string& name, std::string* file, int* k) {
  constexpr size_t kDigits = 6;
  if (name.size() <= kDigits + 1 || name[name.size() - kDigits - 1] != '.') return false;
  std::string digits = name.substr(name.size() - kDigits);
  if (!std::all_of(digits.begin(), digits.end(), [](char c) { return c >= '0' && c <= '9'; }))
    return false;
  *file = name.substr(0, name.size() - kDigits - 1);
  *k = std::stoi(digits);
  return *k > 0 && EndsWith(*file, ".img");
}

struct ReadFree {
  void operator()(archive* a) const { Archive().archive_read_free(a); }
};

}  // namespace

Result<std::string> ArchiveFilterOf(const std::string& path) {
  if (EndsWith(path, ".tar")) return std::string();
  if (EndsWith(path, ".tar.zst")) return std::string("zstd");
  if (EndsWith(path, ".tar.gz") || EndsWith(path, ".tgz")) return std::string("gzip");
  return MakeError("%s: not an archive name (.tar, .tar.zst, .tar.gz or .tgz)", path.c_str());
}

Result<std::unique_ptr<ArchiveImageOutput>> ArchiveImageOutput::Create(const std::string& path) {
  TRY(LoadLibArchive());
  std::string filter = TRY(ArchiveFilterOf(path));
  std::unique_ptr<ArchiveImageOutput> out(new ArchiveImageOutput());
  out->path_ = path;
  size_t slash = path.rfind('/');
  std::string dir = slash == std::string::npos ? "./" : path.substr(0, slash + 1);
  std::string base = slash == std::string::npos ? path : path.substr(slash + 1);
  // A dump killed with SIGKILL cannot remove its partial archive: the next
  // dump to the same name does, once no live criu-lite has that PID.
  std::string prefix = "." + base + ".criu-lite-partial.";
  std::error_code ec;
  for (const auto& e : std::filesystem::directory_iterator(dir, ec)) {
    std::string name = e.path().filename();
    if (name.rfind(prefix, 0) == 0 && !IsLiveCriuLite(atoi(name.c_str() + prefix.size())))
      unlink(e.path().c_str());
  }
  out->partial_ = dir + prefix + std::to_string(getpid());
  out->fd_.reset(
      open(out->partial_.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW | O_CLOEXEC, 0600));
  if (!out->fd_.valid()) return ErrnoError("creating the archive %s", path.c_str());
  out->a_ = Archive().archive_write_new();
  if (!out->a_) return MakeError("archive_write_new failed");
  archive* a = out->a_;
  int r = Archive().archive_write_set_format_pax_restricted(a);
  if (r == ARCHIVE_OK && filter == "zstd") r = Archive().archive_write_add_filter_zstd(a);
  if (r == ARCHIVE_OK && filter == "gzip") r = Archive().archive_write_add_filter_gzip(a);
  if (r == ARCHIVE_OK) r = Archive().archive_write_set_bytes_in_last_block(a, 1);
  if (r == ARCHIVE_OK) r = Archive().archive_write_open_fd(a, out->fd_.get());
  if (r != ARCHIVE_OK) return out->Fail("opening").error();
  out->buf_.reserve(kArchivePart);
  return out;
}

ArchiveImageOutput::~ArchiveImageOutput() {
  if (a_) Archive().archive_write_free(a_);
  if (!committed_ && !partial_.empty()) unlink(partial_.c_str());
}

Status ArchiveImageOutput::Fail(const char* what) {
  return MakeError("%s the archive %s: %s", what, path_.c_str(), ArchiveError(a_));
}

Status ArchiveImageOutput::Entry(const std::string& name, const void* data, size_t len) {
  TRY(CheckStop());
  archive_entry* e = Archive().archive_entry_new();
  if (!e) return MakeError("archive_entry_new failed");
  Archive().archive_entry_set_pathname(e, name.c_str());
  Archive().archive_entry_set_filetype(e, AE_IFREG);
  Archive().archive_entry_set_perm(e, 0600);
  Archive().archive_entry_set_size(e, static_cast<la_int64_t>(len));
  Archive().archive_entry_set_mtime(e, time(nullptr), 0);
  int r = Archive().archive_write_header(a_, e);
  Archive().archive_entry_free(e);
  if (r != ARCHIVE_OK) return Fail("writing to");
  const char* p = static_cast<const char*>(data);
  while (len > 0) {
    la_ssize_t n = Archive().archive_write_data(a_, p, len);
    if (n <= 0) return Fail("writing to");
    p += n;
    len -= n;
  }
  if (Archive().archive_write_finish_entry(a_) != ARCHIVE_OK) return Fail("writing to");
  return Ok{};
}

Status ArchiveImageOutput::FlushStream(bool last) {
  if (stream_.empty()) return Ok{};
  std::string name = last && parts_ == 0 ? stream_ : Format("%s.%06d", stream_.c_str(), ++parts_);
  TRY(Entry(name, buf_.data(), buf_.size()));
  buf_.clear();
  if (last) {
    done_.push_back(stream_);
    stream_.clear();
  }
  return Ok{};
}

Status ArchiveImageOutput::PutFile(const std::string& name, const std::string& data) {
  TRY(FlushStream(true));
  return Entry(name, data.data(), data.size());
}

Status ArchiveImageOutput::AppendFile(const std::string& name, const void* data, size_t len) {
  if (name != stream_) {
    TRY(FlushStream(true));
    // An entry once written cannot be added to.
    if (std::find(done_.begin(), done_.end(), name) != done_.end())
      return MakeError("%s: the archive has %s already", path_.c_str(), name.c_str());
    stream_ = name;
    parts_ = 0;
  }
  const char* p = static_cast<const char*>(data);
  while (len > 0) {
    // A full piece is written only once more follows: the last piece of a
    // file that fits in one is the file under its own name.
    if (buf_.size() == kArchivePart) TRY(FlushStream(false));
    size_t n = std::min(len, kArchivePart - buf_.size());
    buf_.insert(buf_.end(), p, p + n);
    p += n;
    len -= n;
  }
  return Ok{};
}

Status ArchiveImageOutput::Symlink(const std::string& name, const std::string& target) {
  return MakeError("%s: an archive holds no link (%s -> %s): the dump's parent is a directory",
                   path_.c_str(), name.c_str(), target.c_str());
}

Status ArchiveImageOutput::Commit() {
  TRY(FlushStream(true));
  if (Archive().archive_write_close(a_) != ARCHIVE_OK) return Fail("finishing");
  if (fsync(fd_.get()) < 0) return ErrnoError("fsync(%s)", partial_.c_str());
  if (rename(partial_.c_str(), path_.c_str()) < 0)
    return ErrnoError("rename(%s, %s)", partial_.c_str(), path_.c_str());
  committed_ = true;
  return Ok{};
}

Status UnpackImageArchive(const std::string& path, const std::string& dir,
                          const std::function<bool(const std::string&)>& want) {
  TRY(LoadLibArchive());
  std::unique_ptr<archive, ReadFree> owned(Archive().archive_read_new());
  archive* a = owned.get();
  if (!a) return MakeError("archive_read_new failed");
  Archive().archive_read_support_format_tar(a);
  Archive().archive_read_support_filter_zstd(a);
  Archive().archive_read_support_filter_gzip(a);
  struct stat st;
  if (stat(path.c_str(), &st) < 0) return ErrnoError("the archive %s", path.c_str());
  if (Archive().archive_read_open_filename(a, path.c_str(), 1 << 20) != ARCHIVE_OK)
    return MakeError("%s: not a tar archive (.tar, .tar.zst, .tar.gz): %s", path.c_str(),
                     ArchiveError(a));
  std::map<std::string, int> pieces;  // a streamed file: the last piece seen
  std::vector<char> buf(1 << 20);
  bool inventory = false;
  for (bool first = true;; first = false) {
    TRY(CheckStop());
    archive_entry* e = nullptr;
    int r = Archive().archive_read_next_header(a, &e);
    if (r == ARCHIVE_EOF) break;
    if (r != ARCHIVE_OK) {
      if (first)
        return MakeError("%s: not a tar archive (.tar, .tar.zst, .tar.gz): %s", path.c_str(),
                         ArchiveError(a));
      return MakeError("%s: truncated or damaged: %s", path.c_str(), ArchiveError(a));
    }
    std::string name =
        Archive().archive_entry_pathname(e) ? Archive().archive_entry_pathname(e) : "";
    if (name.rfind("./", 0) == 0) name = name.substr(2);
    if (Archive().archive_entry_filetype(e) != AE_IFREG || name.empty() || name[0] == '.' ||
        name.find('/') != std::string::npos)
      return MakeError(
          "%s is not a criu-lite image archive: it holds '%.100s'", path.c_str(),
          Archive().archive_entry_pathname(e) ? Archive().archive_entry_pathname(e) : "");
    if (inventory)
      return MakeError("%s is damaged: '%s' after the inventory, which comes last", path.c_str(),
                       name.c_str());
    std::string file = name;
    int k = 0;
    bool piece = PieceOf(name, &file, &k);
    if (piece) {
      int last = pieces.count(file) ? pieces[file] : 0;
      if (k != last + 1)
        return MakeError("%s is damaged: piece %d of %s follows piece %d", path.c_str(), k,
                         file.c_str(), last);
      pieces[file] = k;
    } else if (pieces.count(file)) {
      return MakeError("%s is damaged: it holds %s whole and in pieces", path.c_str(),
                       file.c_str());
    }
    if (file == ImageDir::InventoryName()) inventory = true;
    if (want && !want(file)) {
      if (Archive().archive_read_data_skip(a) != ARCHIVE_OK)
        return MakeError("%s: truncated or damaged: %s", path.c_str(), ArchiveError(a));
      continue;
    }
    std::string out = dir + "/" + file;
    int flags = O_WRONLY | O_CREAT | O_NOFOLLOW | O_CLOEXEC;
    flags |= piece && k > 1 ? O_APPEND : O_EXCL;
    ScopedFd fd(open(out.c_str(), flags, 0600));
    if (!fd.valid()) {
      if (errno == EEXIST)
        return MakeError("%s is damaged: it holds %s twice", path.c_str(), file.c_str());
      return ErrnoError("open(%s)", out.c_str());
    }
    for (;;) {
      la_ssize_t n = Archive().archive_read_data(a, buf.data(), buf.size());
      if (n == 0) break;
      if (n < 0) return MakeError("%s: truncated or damaged: %s", path.c_str(), ArchiveError(a));
      TRY(WriteAllToFd(fd.get(), buf.data(), n, out));
    }
  }
  if (!inventory)
    return MakeError("%s is not a complete criu-lite image archive: it has no %s (cut short?)",
                     path.c_str(), ImageDir::InventoryName().c_str());
  return Ok{};
}

Result<TempImageDir> TempImageDir::Create() {
  const char* tmp = getenv("TMPDIR");
  std::string templ = std::string(tmp && *tmp ? tmp : "/tmp") + "/criu-lite-archive.XXXXXX";
  if (!mkdtemp(templ.data())) return ErrnoError("mkdtemp(%s)", templ.c_str());
  TempImageDir d;
  d.path_ = templ;
  return d;
}

TempImageDir::~TempImageDir() {
  if (path_.empty()) return;
  std::error_code ec;
  std::filesystem::remove_all(path_, ec);
}

}  // namespace crl
