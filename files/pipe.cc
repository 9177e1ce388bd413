// Pipes and FIFOs (reopened by path): their capacity, and the bytes in
// flight in them, copied out with tee() so that they stay there; restore
// makes one pipe per pipe of the tree and refills it.
//
// A pipe whose other end is outside the tree (a supervisor's, a shell
// pipeline's, a container runtime's stdio) is carried as CRIU carries it:
// with the bytes in flight if the tree reads it, and restored as a new pipe
// whose other end criu-lite holds until it exits, unless the caller hands
// in the end to use with --inherit-fd fd[N]:pipe:[INO] (restore/file_table).
// With --shell-job, stdin/out/err that are such pipes are restore's own.
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <climits>
#include <cstring>
#include <map>

#include "base/log.h"
#include "files/fd_kind.h"
#include "kernel/task_fd.h"

namespace crl {
namespace {

// Bytes in a pipe, copied out with tee() so that they stay in it.
Result<std::string> PeekPipe(int read_end) {
  int tmp[2];
  if (pipe2(tmp, O_CLOEXEC | O_NONBLOCK) < 0) return ErrnoError("pipe2");
  ScopedFd r(tmp[0]), w(tmp[1]);
  int size = fcntl(read_end, F_GETPIPE_SZ);
  if (size > 0) fcntl(w.get(), F_SETPIPE_SZ, size);
  ssize_t n = tee(read_end, w.get(), INT_MAX, SPLICE_F_NONBLOCK);
  if (n < 0 && errno != EAGAIN) return ErrnoError("tee(pipe)");
  std::string data(n > 0 ? n : 0, '\0');
  if (n > 0 && read(r.get(), data.data(), n) != n) return ErrnoError("read(tee copy)");
  return data;
}

// A FIFO whose name was removed (its link ends in " (deleted)").
bool Unlinked(const img::Fd& f) {
  const std::string& p = f.path();
  return f.has_fifo() && p.size() > 10 && p.compare(p.size() - 10, 10, " (deleted)") == 0;
}

Status WriteAllNonblocking(int fd, const std::string& data) {
  size_t off = 0;
  while (off < data.size()) {
    ssize_t n = write(fd, data.data() + off, data.size() - off);
    if (n < 0) return ErrnoError("refilling a pipe (%zu of %zu bytes)", off, data.size());
    off += n;
  }
  return Ok{};
}

class PipeLike : public FdKind {
 public:
  explicit PipeLike(bool fifo) : fifo_(fifo) {}
  img::Fd::KindCase arm() const override { return fifo_ ? img::Fd::kFifo : img::Fd::kPipe; }
  const char* name() const override { return fifo_ ? "FIFO" : "pipe"; }

  bool Claims(const FdSeen& s) const override {
    return fifo_ ? !s.anon && S_ISFIFO(s.st.st_mode) : s.anon == "pipe";
  }

  Status Collect(const FdSeen&, img::Fd* out) const override {
    if (fifo_)
      out->mutable_fifo();
    else
      out->mutable_pipe();
    return Ok{};
  }

  Status Resolve(const std::vector<FdRef>& mine, TreeFds& tree) const override {
    // A pipe is carried when the tree holds both its ends (a FIFO is
    // reopened by its path).
    if (!fifo_) {
      std::map<uint64_t, std::pair<bool, bool>> ends;  // ino -> (read end, write end)
      for (const FdRef& r : mine) {
        int acc = r.fd->flags() & O_ACCMODE;
        if (acc != O_WRONLY) ends[r.fd->ino()].first = true;
        if (acc != O_RDONLY) ends[r.fd->ino()].second = true;
      }
      for (const FdRef& r : mine) {
        auto [rd, wr] = ends[r.fd->ino()];
        if (rd && wr) continue;
        if (r.fd->fd() <= 2 && tree.shell_job()) {
          TRY(tree.External(r, "a pipe with its other end outside the tree"));
          continue;
        }
        r.fd->mutable_pipe()->set_outside(true);
        LOG_INFO("PID %d fd %d: %s has its other end outside the tree", r.pid, r.fd->fd(),
                 r.fd->path().c_str());
      }
    }
    for (const FdRef& r : mine) {
      img::Fd& f = *r.fd;
      if (f.kind_case() != arm()) continue;  // now restore's own stdio
      ScopedFd mine_fd = TRY(TakeFd(r.pid, f.fd()));
      int size = fcntl(mine_fd.get(), F_GETPIPE_SZ);
      img::PipeFd* p = fifo_ ? f.mutable_fifo() : f.mutable_pipe();
      if (size > 0) p->set_pipe_size(size);
      if ((f.flags() & O_ACCMODE) == O_WRONLY || !tree.First("pipe data", f.ino())) continue;
      std::string data =
          TRY(PeekPipe(mine_fd.get()).Context(Format("PID %d fd %d", r.pid, f.fd())));
      if (data.empty()) continue;
      img::QueuedData* q = tree.shared()->add_queues();
      q->set_ino(f.ino());
      q->add_chunks(std::move(data));
      LOG_INFO("pipe %lu: %zu bytes in flight", f.ino(), q->chunks(0).size());
    }
    return Ok{};
  }

  Status Check(const img::Fd& f, bool) const override {
    if (fifo_ && !Unlinked(f) && access(f.path().c_str(), F_OK) < 0)
      return ErrnoError("%s", f.path().c_str());
    return Ok{};
  }

  Result<ScopedFd> Open(const img::Fd& f, OpenFiles& files) const override {
    std::vector<int>& ends = files.Object(this, f.ino());
    if (ends.empty()) {
      ends = TRY(Make(f, files));
      if (!fifo_ && f.pipe().outside())
        LOG_WARN(
            "fd %d: %s had its other end outside the tree: it is a new pipe, whose other "
            "end closes when restore exits (hand one in with --inherit-fd fd[N]:%s)",
            f.fd(), f.path().c_str(), f.path().c_str());
    }
    int acc = f.flags() & O_ACCMODE;
    int end = acc == O_WRONLY ? ends[1] : ends[0];
    if (fifo_) {
      // A description of its own, with its access mode (a FIFO may be open
      // O_RDWR), as open() made it (O_LARGEFILE included).
      ScopedFd fd(open(Format("/proc/self/fd/%d", end).c_str(), acc | O_NONBLOCK | O_CLOEXEC));
      if (!fd.valid()) return ErrnoError("reopening %s", f.path().c_str());
      return fd;
    }
    ScopedFd fd(fcntl(end, F_DUPFD_CLOEXEC, 3));  // pipe2() made it: no O_LARGEFILE
    if (!fd.valid()) return ErrnoError("dup(pipe end)");
    return fd;
  }

 private:
  // The pipe, its two ends held by FILES, refilled with what it held.
  Result<std::vector<int>> Make(const img::Fd& f, OpenFiles& files) const {
    int p[2];
    if (!fifo_) {
      if (pipe2(p, O_CLOEXEC) < 0) return ErrnoError("pipe2");
    } else {
      // An unlinked FIFO is made again for the moment, under its name (or
      // beside it), and opened through criu-lite's fd of it once unlinked.
      std::string path = f.path();
      if (Unlinked(f)) {
        std::string name = path.substr(0, path.size() - strlen(" (deleted)"));
        mode_t mode = f.file().mode() & 07777;
        ScopedFd made = TRY(MakeUnlinked(name, [mode](const std::string& at) {
          if (mkfifo(at.c_str(), 0600) < 0) return -1;
          int fd = open(at.c_str(), O_RDWR | O_NONBLOCK | O_CLOEXEC);
          if (fd >= 0) fchmod(fd, mode);  // not through the umask
          return fd;
        }));
        path = Format("/proc/self/fd/%d", made.get());
        files.Hold(std::move(made));
      }
      // A FIFO opens without blocking once one end is open: keep an O_RDWR
      // end of our own for that, and to refill it.
      ScopedFd keeper(open(path.c_str(), O_RDWR | O_NONBLOCK | O_CLOEXEC));
      if (!keeper.valid()) return ErrnoError("open(FIFO %s)", path.c_str());
      files.Hold(std::move(keeper));
      p[0] = open(path.c_str(), O_RDONLY | O_NONBLOCK | O_CLOEXEC);
      p[1] = open(path.c_str(), O_WRONLY | O_NONBLOCK | O_CLOEXEC);
      if (p[0] < 0 || p[1] < 0) {
        int e = errno;
        if (p[0] >= 0) close(p[0]);
        if (p[1] >= 0) close(p[1]);
        return ErrnoError(e, "open(FIFO %s)", f.path().c_str());
      }
    }
    std::vector<int> ends = {files.Hold(ScopedFd(p[0])), files.Hold(ScopedFd(p[1]))};
    uint32_t size = fifo_ ? f.fifo().pipe_size() : f.pipe().pipe_size();
    if (size && fcntl(ends[1], F_SETPIPE_SZ, size) < 0)
      LOG_WARN("pipe %lu: F_SETPIPE_SZ(%u): %m", f.ino(), size);
    if (const img::QueuedData* q = files.Queued(f.ino())) {
      int old = fcntl(ends[1], F_GETFL);
      fcntl(ends[1], F_SETFL, old | O_NONBLOCK);
      for (const std::string& c : q->chunks()) TRY(WriteAllNonblocking(ends[1], c));
      fcntl(ends[1], F_SETFL, old);
    }
    return ends;
  }

  bool fifo_;
};

}  // namespace

const FdKind& PipeKind() {
  static const PipeLike k(false);
  return k;
}
const FdKind& FifoKind() {
  static const PipeLike k(true);
  return k;
}

}  // namespace crl
