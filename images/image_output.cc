#include "images/image_output.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <vector>

#include "base/interrupt.h"
#include "images/image_dir.h"

namespace crl {

Status WriteAllToFd(int fd, const void* data, size_t len, const std::string& what) {
  const char* p = static_cast<const char*>(data);
  while (len > 0) {
    ssize_t n = write(fd, p, len);
    if (n < 0 && errno == EINTR) {
      TRY(CheckStop());
      continue;
    }
    if (n < 0) return ErrnoError("write(%s, %zu bytes)", what.c_str(), len);
    p += n;
    len -= n;
  }
  return Ok{};
}

// Called with mu_ held.
Result<std::string> LocalImageOutput::Staged(const std::string& name) {
  if (staging_.empty()) {
    std::string dir = dir_ + "/.criu-lite-partial." + std::to_string(getpid());
    if (mkdir(dir.c_str(), 0700) < 0 && errno != EEXIST)
      return ErrnoError("mkdir(%s)", dir.c_str());
    staging_ = dir;
  }
  names_.insert(name);
  return staging_ + "/" + name;
}

Status LocalImageOutput::PutFile(const std::string& name, const std::string& data) {
  std::string path;
  {
    std::lock_guard lock(mu_);
    path = TRY(Staged(name));
  }
  ScopedFd fd(open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600));
  if (!fd.valid()) return ErrnoError("open(%s)", path.c_str());
  return WriteAllToFd(fd.get(), data.data(), data.size(), path);
}

Result<int> LocalImageOutput::Stream(const std::string& name) {
  std::lock_guard lock(mu_);
  auto it = streams_.find(name);
  if (it == streams_.end()) {
    std::string path = TRY(Staged(name));
    ScopedFd fd(open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600));
    if (!fd.valid()) return ErrnoError("open(%s)", path.c_str());
    it = streams_.emplace(name, std::move(fd)).first;
  }
  return it->second.get();
}

Status LocalImageOutput::AppendFile(const std::string& name, const void* data, size_t len) {
  int fd = TRY(Stream(name));  // the staging directory is made
  return SpliceOrWrite(fd, data, len, staging_ + "/" + name);
}

void LocalImageOutput::Reserve(const std::string& name, uint64_t len) {
  Result<int> fd = Stream(name);
  // A file system without fallocate allocates as it is written.
  if (fd.ok() && len > 0) (void)fallocate(*fd, FALLOC_FL_KEEP_SIZE, 0, static_cast<off_t>(len));
}

Status LocalImageOutput::SpliceOrWrite(int fd, const void* data, size_t len,
                                       const std::string& what) {
  if (len < (64 << 10) || splice_refused_) return WriteAllToFd(fd, data, len, what);
  // A pipe of the pool for the time of this call (empty again after it).
  std::unique_ptr<Pipe> taken;
  {
    std::lock_guard lock(mu_);
    if (!pipes_.empty()) {
      taken = std::move(pipes_.back());
      pipes_.pop_back();
    }
  }
  if (!taken) taken = std::make_unique<Pipe>();
  Pipe* pipe = taken.get();
  // Back to the pool at the end unless closed (a failure left it so).
  struct GiveBack {
    LocalImageOutput* out;
    std::unique_ptr<Pipe>& pipe;
    ~GiveBack() {
      if (!pipe->w.valid()) return;
      std::lock_guard lock(out->mu_);
      out->pipes_.push_back(std::move(pipe));
    }
  } give_back{this, taken};
  if (!pipe->w.valid()) {
    int p[2];
    if (pipe2(p, O_CLOEXEC) < 0) return ErrnoError("pipe2 (to write %s)", what.c_str());
    pipe->r.reset(p[0]);
    pipe->w.reset(p[1]);
    fcntl(p[1], F_SETPIPE_SZ, 1 << 20);  // pipe-max-size, without CAP_SYS_RESOURCE
    int size = fcntl(p[1], F_GETPIPE_SZ);
    pipe->size = size > 0 ? size : 65536;
  }
  // Whatever goes wrong, no bytes are left in the pipe for the next call.
  auto fail = [&](Error e) -> Status {
    pipe->r.reset();
    pipe->w.reset();
    return e;
  };
  const char* p = static_cast<const char*>(data);
  while (len > 0) {
    iovec iov{const_cast<char*>(p), std::min(len, pipe->size)};
    ssize_t n = vmsplice(pipe->w.get(), &iov, 1, 0);
    if (n < 0 && errno == EINTR) {
      if (Status stop = CheckStop(); !stop.ok()) return fail(stop.error());
      continue;
    }
    if (n <= 0) return fail(ErrnoError("vmsplice(%s, %zu bytes)", what.c_str(), iov.iov_len));
    for (ssize_t left = n; left > 0;) {
      ssize_t m = splice(pipe->r.get(), nullptr, fd, nullptr, left, SPLICE_F_MOVE);
      if (m < 0 && errno == EINTR) {
        if (Status stop = CheckStop(); !stop.ok()) return fail(stop.error());
        continue;
      }
      if (m < 0 && errno == EINVAL) {
        // A file system that takes no splice: what is in the pipe is
        // written, and so is everything after it.
        splice_refused_ = true;
        std::vector<char> rest(left);
        if (read(pipe->r.get(), rest.data(), left) != left)
          return fail(ErrnoError("reading back the pipe to %s", what.c_str()));
        pipe->r.reset();
        pipe->w.reset();
        TRY(WriteAllToFd(fd, rest.data(), rest.size(), what));
        return WriteAllToFd(fd, p + n, len - n, what);
      }
      if (m <= 0) return fail(ErrnoError("splice(%s, %zd bytes)", what.c_str(), left));
      left -= m;
    }
    p += n;
    len -= n;
  }
  return Ok{};
}

Status LocalImageOutput::Symlink(const std::string& name, const std::string& target) {
  std::string path;
  {
    std::lock_guard lock(mu_);
    path = TRY(Staged(name));
  }
  unlink(path.c_str());
  if (symlink(target.c_str(), path.c_str()) < 0) return ErrnoError("symlink(%s)", path.c_str());
  return Ok{};
}

Status LocalImageOutput::Commit() {
  std::lock_guard lock(mu_);
  streams_.clear();
  if (staging_.empty()) return Ok{};
  // Without an inventory the directory is no checkpoint while files move:
  // never one that mixes two dumps.
  const std::string kInventory = ImageDir::InventoryName();
  std::string inventory = ImageDir(dir_).Inventory();
  if (unlink(inventory.c_str()) < 0 && errno != ENOENT)
    return ErrnoError("unlink(%s)", inventory.c_str());
  auto move = [&](const std::string& name) -> Status {
    std::string from = staging_ + "/" + name, to = dir_ + "/" + name;
    if (rename(from.c_str(), to.c_str()) < 0) return ErrnoError("rename(%s)", from.c_str());
    return Ok{};
  };
  for (const std::string& name : names_)
    if (name != kInventory) TRY(move(name));
  if (names_.count(kInventory)) TRY(move(kInventory));
  names_.clear();
  rmdir(staging_.c_str());
  staging_.clear();
  return Ok{};
}

LocalImageOutput::~LocalImageOutput() {
  if (staging_.empty()) return;
  streams_.clear();
  for (const std::string& name : names_) unlink((staging_ + "/" + name).c_str());
  rmdir(staging_.c_str());
}

}  // namespace crl
