#include "images/file_id.h"

#include <sys/stat.h>

namespace crl {

Status FillFileId(const std::string& path, img::FileId* id) {
  struct stat s;
  if (stat(path.c_str(), &s) < 0) return ErrnoError("stat(%s)", path.c_str());
  id->set_dev(s.st_dev);
  id->set_ino(s.st_ino);
  id->set_size(s.st_size);
  id->set_mtime_ns(s.st_mtim.tv_sec * 1000000000ll + s.st_mtim.tv_nsec);
  id->set_mode(s.st_mode);
  return Ok{};
}

}  // namespace crl
