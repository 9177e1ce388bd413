#include "images/image_dir.h"

#include <sys/stat.h>

#include <cerrno>
#include <csignal>
#include <filesystem>

#include "images/image_file.h"
#include "kernel/proc_task.h"

namespace crl {

Status ImageDir::PrepareForDump() const {
  if (mkdir(path_.c_str(), 0700) < 0 && errno != EEXIST)
    return ErrnoError("mkdir(%s)", path_.c_str());
  struct stat st;
  if (stat(path_.c_str(), &st) < 0) return ErrnoError("stat(%s)", path_.c_str());
  if (!S_ISDIR(st.st_mode)) return MakeError("%s is not a directory", path_.c_str());
  RemoveAbandonedStaging();
  return Ok{};
}

// A dump killed with SIGKILL cannot remove its staging directory: the next
// dump into the directory does, once no live criu-lite has that PID.
void ImageDir::RemoveAbandonedStaging() const {
  const std::string kPrefix = ".criu-lite-partial.";
  std::error_code ec;
  for (const auto& e : std::filesystem::directory_iterator(path_, ec)) {
    std::string name = e.path().filename();
    if (name.rfind(kPrefix, 0) != 0) continue;
    pid_t pid = atoi(name.c_str() + kPrefix.size());
    if (IsLiveCriuLite(pid)) continue;
    std::filesystem::remove_all(e.path(), ec);
  }
}

Result<img::Inventory> ImageDir::ReadInventory() const {
  struct stat st;
  if (stat(path_.c_str(), &st) < 0) {
    if (errno == ENOENT) return MakeError("image directory %s does not exist", path_.c_str());
    return ErrnoError("stat(%s)", path_.c_str());
  }
  if (!S_ISDIR(st.st_mode)) return MakeError("%s is not a directory", path_.c_str());
  if (stat(Inventory().c_str(), &st) < 0 && errno == ENOENT)
    return MakeError(
        "%s holds no inventory.img: not a criu-lite image directory (empty, or the "
        "dump did not finish)",
        path_.c_str());
  img::Inventory inv;
  TRY(ReadImage(Inventory(), ImageKind::kInventory, &inv));
  if (inv.pids_size() == 0) return MakeError("%s lists no tasks", Inventory().c_str());
  return inv;
}

}  // namespace crl
