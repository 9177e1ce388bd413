#include "images/image_output.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>

namespace crl {

Status WriteAllToFd(int fd, const void* data, size_t len, const std::string& what) {
  const char* p = static_cast<const char*>(data);
  while (len > 0) {
    ssize_t n = write(fd, p, len);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return ErrnoError("write(%s, %zu bytes)", what.c_str(), len);
    p += n;
    len -= n;
  }
  return Ok{};
}

Status LocalImageOutput::PutFile(const std::string& name, const std::string& data) {
  std::string path = dir_ + "/" + name, tmp = path + ".tmp";
  ScopedFd fd(open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600));
  if (!fd.valid()) return ErrnoError("open(%s)", tmp.c_str());
  TRY(WriteAllToFd(fd.get(), data.data(), data.size(), tmp));
  fd.reset();
  if (rename(tmp.c_str(), path.c_str()) < 0) return ErrnoError("rename(%s)", tmp.c_str());
  return Ok{};
}

Status LocalImageOutput::AppendFile(const std::string& name, const void* data, size_t len) {
  auto it = streams_.find(name);
  if (it == streams_.end()) {
    std::string path = dir_ + "/" + name;
    ScopedFd fd(open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600));
    if (!fd.valid()) return ErrnoError("open(%s)", path.c_str());
    it = streams_.emplace(name, std::move(fd)).first;
  }
  return WriteAllToFd(it->second.get(), data, len, dir_ + "/" + name);
}

Status LocalImageOutput::Symlink(const std::string& name, const std::string& target) {
  std::string path = dir_ + "/" + name;
  unlink(path.c_str());
  if (symlink(target.c_str(), path.c_str()) < 0) return ErrnoError("symlink(%s)", path.c_str());
  return Ok{};
}

Status LocalImageOutput::Commit() {
  streams_.clear();
  return Ok{};
}

}  // namespace crl
