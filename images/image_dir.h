// The layout of an image directory: which file holds which record.
#pragma once

#include <sys/types.h>

#include <string>

#include "images/criu_lite.pb.h"
#include "kernel/result.h"

namespace crl {

class ImageDir {
 public:
  explicit ImageDir(std::string path) : path_(std::move(path)) {}
  const std::string& path() const { return path_; }

  std::string Inventory() const { return path_ + "/inventory.img"; }
  std::string Core(pid_t pid) const { return Format("%s/core-%d.img", path_.c_str(), pid); }
  std::string Mm(pid_t pid) const { return Format("%s/mm-%d.img", path_.c_str(), pid); }
  std::string Pagemap(pid_t pid) const { return Format("%s/pagemap-%d.img", path_.c_str(), pid); }
  std::string PagesName(pid_t pid) const { return Format("pages-%d.img", pid); }
  std::string Fds(pid_t pid) const { return Format("%s/fds-%d.img", path_.c_str(), pid); }
  std::string Stats(const char* kind) const { return path_ + "/stats-" + kind + ".img"; }
  std::string Shared() const { return path_ + "/shared.img"; }
  std::string Tracking() const { return path_ + "/tracking.img"; }
  // The previous pass of an iterative dump: a symlink named `parent`.
  std::string ParentLink() const { return path_ + "/parent"; }

  // For dump: creates the directory if needed (like CRIU, an existing one is
  // reused), and removes what dumps killed before they ended left in it.
  Status PrepareForDump() const;
  // For restore: the directory exists and holds an inventory this criu-lite reads.
  Result<img::Inventory> ReadInventory() const;

 private:
  void RemoveAbandonedStaging() const;
  std::string path_;
};

}  // namespace crl
