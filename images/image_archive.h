// An image directory packed in one file (`dump --archive`, `restore
// --archive`, `show --archive`): a tar archive, compressed by its name's
// ending (.tar, .tar.zst, .tar.gz or .tgz).
//
// A dump streams into the archive: no file of the dump is on disk first.
// A tar header gives its file's size, and a page file's size is known only
// once it is written, so a streamed file is stored in pieces of at most
// kArchivePart bytes: NAME alone if it fits in one, else NAME.000001,
// NAME.000002, ... in order (`cat NAME.* > NAME` after `tar x` joins them).
// The inventory is the last entry, as it is the last file of a directory:
// an archive cut short has none.
#pragma once

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "base/result.h"
#include "base/scoped_fd.h"
#include "images/image_output.h"

struct archive;

namespace crl {

constexpr size_t kArchivePart = 8 << 20;

// Whether PATH names an archive (by its ending), and which filter: "" for
// plain tar, "zstd" or "gzip". An error names the endings understood.
Result<std::string> ArchiveFilterOf(const std::string& path);

// Writes the archive as PATH's hidden sibling and renames it to PATH on
// Commit(), so that a dump that fails or is killed leaves no archive that
// looks complete, and an archive that was at PATH stays as it was.
class ArchiveImageOutput : public ImageOutput {
 public:
  static Result<std::unique_ptr<ArchiveImageOutput>> Create(const std::string& path);
  ~ArchiveImageOutput() override;
  Status PutFile(const std::string& name, const std::string& data) override;
  Status AppendFile(const std::string& name, const void* data, size_t len) override;
  Status Symlink(const std::string& name, const std::string& target) override;
  Status Commit() override;

 private:
  ArchiveImageOutput() = default;
  Status Entry(const std::string& name, const void* data, size_t len);
  // Writes what is buffered of the stream being written as its next piece
  // (LAST: nothing more follows).
  Status FlushStream(bool last);
  Status Fail(const char* what);

  std::string path_, partial_;
  ScopedFd fd_;
  archive* a_ = nullptr;
  std::string stream_;             // the file being streamed
  std::vector<char> buf_;          // its bytes not written yet
  int parts_ = 0;                  // its pieces written
  std::vector<std::string> done_;  // streams ended: never appended to again
  bool committed_ = false;
};

// Unpacks archive PATH into DIR (an empty directory), joining pieces; WANT,
// if given, picks the files to unpack by name. The errors say which archive
// and what is wrong: not an archive, truncated or damaged, not criu-lite's
// images (an entry that is not a plain image file, no inventory).
Status UnpackImageArchive(const std::string& path, const std::string& dir,
                          const std::function<bool(const std::string&)>& want = nullptr);

// A private directory for an archive's files, removed with what is in it
// when this goes (under $TMPDIR, or /tmp).
class TempImageDir {
 public:
  static Result<TempImageDir> Create();
  TempImageDir(TempImageDir&& o) noexcept : path_(std::move(o.path_)) { o.path_.clear(); }
  ~TempImageDir();
  const std::string& path() const { return path_; }

 private:
  TempImageDir() = default;
  std::string path_;
};

}  // namespace crl
