// The layout of an image directory: which file holds which record.
#pragma once

#include <sys/types.h>

#include <string>

#include "base/result.h"
#include "images/criu_lite.pb.h"

namespace crl {

class ImageDir {
 public:
  explicit ImageDir(std::string path) : path_(std::move(path)) {}
  const std::string& path() const { return path_; }

  // Names in the directory: what an ImageOutput (local or a page server)
  // writes, and what every reader finds. Nothing else spells them.
  static std::string InventoryName() { return "inventory.img"; }
  static std::string CoreName(pid_t pid) { return Format("core-%d.img", pid); }
  static std::string MmName(pid_t pid) { return Format("mm-%d.img", pid); }
  static std::string PagemapName(pid_t pid) { return Format("pagemap-%d.img", pid); }
  static std::string PagesName(pid_t pid) { return Format("pages-%d.img", pid); }
  static std::string FdsName(pid_t pid) { return Format("fds-%d.img", pid); }
  static std::string StatsName(const char* kind) { return Format("stats-%s.img", kind); }
  static std::string SharedName() { return "shared.img"; }
  static std::string TrackingName() { return "tracking.img"; }
  // The previous pass of an iterative dump: a symlink to "../DIR".
  static constexpr const char* kParentLink = "parent";

  // Paths of those in this directory.
  std::string At(const std::string& name) const { return path_ + "/" + name; }
  std::string Inventory() const { return At(InventoryName()); }
  std::string Core(pid_t pid) const { return At(CoreName(pid)); }
  std::string Mm(pid_t pid) const { return At(MmName(pid)); }
  std::string Pagemap(pid_t pid) const { return At(PagemapName(pid)); }
  std::string Pages(pid_t pid) const { return At(PagesName(pid)); }
  std::string Fds(pid_t pid) const { return At(FdsName(pid)); }
  std::string Stats(const char* kind) const { return At(StatsName(kind)); }
  std::string Shared() const { return At(SharedName()); }
  std::string Tracking() const { return At(TrackingName()); }
  std::string ParentLink() const { return At(kParentLink); }

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
