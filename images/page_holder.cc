#include "images/page_holder.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <map>
#include <memory_resource>
#include <utility>

#include "images/image_output.h"
#include "kernel/uapi.h"

namespace crl {
namespace {

enum Op : uint32_t { kHold = 1, kCover, kDrop, kCollapse, kRelease, kPid };

struct Request {
  uint32_t op, flags;
  uint64_t a, b;     // a mapping (HOLD), or the range the others act on
  uint64_t at, len;  // HOLD: the pages it is about
};

struct WirePiece {
  uint64_t start, end;
  uint32_t held, pad;
};

constexpr size_t kMaxPieces = 256;

struct Reply {
  int32_t err;  // an errno, or 0
  uint32_t n;
  WirePiece pieces[kMaxPieces];
};

constexpr uint64_t kPage = 4096;

// The holder's bookkeeping lives in memory that was there before it looked
// at its own mappings: it never maps anything of its own afterwards.
alignas(64) std::byte g_arena[8 << 20];
char g_maps[256 << 10];

class Holder {
 public:
  explicit Holder(int maps_fd) : maps_fd_(maps_fd) {}

  // What is mapped now is the holder's own: never held. Below its stack,
  // room for the stack to grow.
  bool Snapshot() {
    size_t used = 0;
    for (ssize_t n; (n = pread(maps_fd_, g_maps + used, sizeof g_maps - 1 - used, used)) > 0;)
      used += n;
    if (used == 0 || used >= sizeof g_maps - 1) return false;
    g_maps[used] = 0;
    for (char* line = g_maps; *line;) {
      char* nl = strchr(line, '\n');
      if (nl) *nl = 0;
      unsigned long s, e;
      if (sscanf(line, "%lx-%lx", &s, &e) == 2) {
        if (strstr(line, "[stack]")) s = s > (64ul << 20) ? s - (64ul << 20) : 0;
        AddOwn(s, e);
      }
      if (!nl) break;
      line = nl + 1;
    }
    return true;
  }

  void Serve(int fd) {
    for (;;) {
      Request req;
      ssize_t n = recv(fd, &req, sizeof req, 0);
      if (n < 0 && errno == EINTR) continue;
      if (n != sizeof req) return;  // closed, or not this protocol
      reply_.err = 0;
      reply_.n = 0;
      Handle(req);
      size_t size = offsetof(Reply, pieces) + reply_.n * sizeof(WirePiece);
      if (send(fd, &reply_, size, MSG_NOSIGNAL) != static_cast<ssize_t>(size)) return;
    }
  }

 private:
  struct Region {
    uint64_t end;
    uint32_t flags;
  };

  static bool Valid(uint64_t s, uint64_t e) {
    return s < e && s % kPage == 0 && e % kPage == 0 && e <= (1ul << 47);
  }

  void Handle(const Request& r) {
    if (r.op == kPid) {
      reply_.pieces[reply_.n++] = {static_cast<uint64_t>(getpid()), 0, 0, 0};
      return;
    }
    if (!Valid(r.a, r.b)) {
      reply_.err = EINVAL;
      return;
    }
    switch (r.op) {
      case kHold:
        if (!Valid(r.at, r.at + r.len) || r.at < r.a || r.at + r.len > r.b) {
          reply_.err = EINVAL;
          return;
        }
        MapHoles(r.a, r.b, r.flags);
        Pieces(r.at, r.at + r.len);
        return;
      case kCover:
        MapHoles(r.a, r.b, r.flags);
        if (Covers(r.a, r.b, r.flags)) reply_.pieces[reply_.n++] = {r.a, r.b, 1, 0};
        return;
      case kDrop:
        ForHeld(r.a, r.b, [](uint64_t s, uint64_t e) {
          madvise(reinterpret_cast<void*>(s), e - s, MADV_DONTNEED);
        });
        return;
      case kCollapse:
        prctl(PR_SET_THP_DISABLE, 0, 0, 0, 0);
        if (madvise(reinterpret_cast<void*>(r.a), r.b - r.a, MADV_COLLAPSE) != 0)
          reply_.err = errno;
        prctl(PR_SET_THP_DISABLE, 1, 0, 0, 0);
        return;
      case kRelease:
        Release(r.a, r.b);
        return;
      default:
        reply_.err = EINVAL;
    }
  }

  void AddOwn(uint64_t s, uint64_t e) { own_[s] = std::max(own_[s], e); }

  // The first range of MAP (start -> end, or -> Region) that ends after AT.
  template <typename M>
  static typename M::const_iterator FirstEndingAfter(const M& map, uint64_t at) {
    auto it = map.upper_bound(at);
    if (it != map.begin()) {
      auto prev = std::prev(it);
      uint64_t end;
      if constexpr (std::is_same_v<typename M::mapped_type, Region>)
        end = prev->second.end;
      else
        end = prev->second;
      if (end > at) return prev;
    }
    return it;
  }

  // Where in [S, E) the next range of MAP begins (E if none), and where
  // the one covering S ends (S if none).
  template <typename M>
  static uint64_t CoveredUntil(const M& map, uint64_t s) {
    auto it = FirstEndingAfter(map, s);
    if (it == map.end() || it->first > s) return s;
    if constexpr (std::is_same_v<typename M::mapped_type, Region>)
      return it->second.end;
    else
      return it->second;
  }
  template <typename M>
  static uint64_t NextStart(const M& map, uint64_t s, uint64_t e) {
    auto it = map.lower_bound(s);
    return it == map.end() ? e : std::min(e, it->first);
  }

  // Maps every part of [S, E) that is neither held nor the holder's own.
  void MapHoles(uint64_t s, uint64_t e, uint32_t flags) {
    int mflags = MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE |
                 (flags & PagePlace::kGrowsDown ? MAP_GROWSDOWN : 0) |
                 (flags & PagePlace::kNoReserve ? MAP_NORESERVE : 0);
    while (s < e) {
      uint64_t skip = std::max(CoveredUntil(held_, s), CoveredUntil(own_, s));
      if (skip > s) {
        s = skip;
        continue;
      }
      uint64_t stop = std::min(NextStart(held_, s, e), NextStart(own_, s, e));
      void* p = mmap(reinterpret_cast<void*>(s), stop - s, PROT_READ | PROT_WRITE, mflags, -1, 0);
      if (p == reinterpret_cast<void*>(s)) {
        held_[s] = {stop, flags};
      } else {
        if (p != MAP_FAILED) munmap(p, stop - s);
        AddOwn(s, stop);  // something is there after all: never held
      }
      s = stop;
    }
  }

  // The pieces of [S, E), held or not.
  void Pieces(uint64_t s, uint64_t e) {
    while (s < e && reply_.n < kMaxPieces) {
      uint64_t held_until = CoveredUntil(held_, s);
      bool held = held_until > s;
      uint64_t stop = held ? std::min(e, held_until) : NextStart(held_, s, e);
      if (stop == s) stop = e;
      WirePiece* last = reply_.n ? &reply_.pieces[reply_.n - 1] : nullptr;
      if (last && last->end == s && last->held == held)
        last->end = stop;
      else
        reply_.pieces[reply_.n++] = {s, stop, held, 0};
      s = stop;
    }
  }

  // [S, E) held whole, with FLAGS, as one mapping.
  bool Covers(uint64_t s, uint64_t e, uint32_t flags) {
    for (uint64_t at = s; at < e;) {
      auto it = FirstEndingAfter(held_, at);
      if (it == held_.end() || it->first > at || it->second.flags != flags) return false;
      at = it->second.end;
    }
    procmap_query q{};
    q.size = sizeof q;
    q.query_addr = s;
    if (ioctl(maps_fd_, PROCMAP_QUERY, &q) != 0) return false;
    return q.vma_start <= s && q.vma_end >= e;
  }

  template <typename F>
  void ForHeld(uint64_t s, uint64_t e, F f) {
    for (auto it = FirstEndingAfter(held_, s); it != held_.end() && it->first < e; ++it)
      f(std::max(s, it->first), std::min(e, it->second.end));
  }

  void Release(uint64_t s, uint64_t e) {
    munmap(reinterpret_cast<void*>(s), e - s);
    for (auto it = FirstEndingAfter(held_, s); it != held_.end() && it->first < e;) {
      Region r = it->second;
      uint64_t start = it->first;
      it = held_.erase(it);
      if (start < s) held_[start] = {s, r.flags};
      if (r.end > e) {
        held_[e] = r;
        break;
      }
    }
  }

  int maps_fd_;
  std::pmr::monotonic_buffer_resource arena_{g_arena, sizeof g_arena,
                                             std::pmr::null_memory_resource()};
  std::pmr::map<uint64_t, Region> held_{&arena_};   // start -> region: the task's, held
  std::pmr::map<uint64_t, uint64_t> own_{&arena_};  // start -> end: never held
  Reply reply_;
};

}  // namespace

uint32_t HolderFlags(const img::Vma& v) {
  bool noreserve = std::count(v.madvise().begin(), v.madvise().end(), "nr") > 0;
  return (v.growsdown() ? PagePlace::kGrowsDown : 0) | (noreserve ? PagePlace::kNoReserve : 0);
}

int RunPageHolder(int control) {
  prctl(PR_SET_PDEATHSIG, SIGKILL);
  if (getppid() == 1) return 1;  // the page server is gone already
  // Pages arrive a piece at a time: huge pages only where the restore
  // makes them (MADV_COLLAPSE), as where the dumped task had them.
  prctl(PR_SET_THP_DISABLE, 1, 0, 0, 0);
  int maps = open("/proc/self/maps", O_RDONLY | O_CLOEXEC);
  if (maps < 0) return 1;
  static Holder holder(maps);
  if (!holder.Snapshot()) return 1;
  holder.Serve(control);
  return 0;
}

Result<PageHolder> PageHolder::Start() {
  int sv[2];
  if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) < 0)
    return ErrnoError("socketpair");
  ScopedFd mine(sv[0]), theirs(sv[1]);
  char exe[] = "/proc/self/exe", name[] = "criu-lite", cmd[] = "page-holder";
  char* argv[] = {name, cmd, nullptr};
  int pidfd = -1;
  pid_t pid = static_cast<pid_t>(syscall(SYS_clone, CLONE_PIDFD | SIGCHLD, 0, &pidfd, 0, 0));
  if (pid < 0) return ErrnoError("clone(page holder)");
  if (pid == 0) {
    dup2(theirs.get(), 3);
    syscall(SYS_close_range, 4, ~0U, 0);
    execv(exe, argv);
    _exit(127);
  }
  PageHolder h;
  h.control_ = std::move(mine);
  h.pidfd_.reset(pidfd);
  h.pid_ = pid;
  h.child_ = true;
  return h;
}

Result<PageHolder> PageHolder::FromControl(int fd) {
  int type = 0;
  socklen_t len = sizeof type;
  if (getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &len) < 0 || type != SOCK_SEQPACKET)
    return MakeError("page holder fd %d: not a SOCK_SEQPACKET socket", fd);
  PageHolder h;
  h.control_.reset(fcntl(fd, F_DUPFD_CLOEXEC, 3));
  if (!h.control_.valid()) return ErrnoError("dup(page holder fd %d)", fd);
  close(fd);
  // Its PID, from itself (a socket pair's peer credentials are its
  // maker's, the page server's), then a pidfd; the holder answering once
  // more says the PID was still its own when the pidfd was made.
  std::vector<Piece> pid = TRY(h.Call(kPid, 0, 0));
  if (pid.empty() || pid[0].start == 0 || pid[0].start > INT32_MAX)
    return MakeError("page holder fd %d: no PID", fd);
  h.pid_ = static_cast<pid_t>(pid[0].start);
  h.pidfd_.reset(static_cast<int>(syscall(SYS_pidfd_open, h.pid_, 0)));
  if (!h.pidfd_.valid()) return ErrnoError("pidfd_open(page holder %d)", h.pid_);
  std::vector<Piece> again = TRY(h.Call(kPid, 0, 0));
  if (again.empty() || again[0].start != pid[0].start)
    return MakeError("page holder %d changed its PID", h.pid_);
  return h;
}

PageHolder& PageHolder::operator=(PageHolder&& o) noexcept {
  if (this == &o) return *this;
  End();
  control_ = std::move(o.control_);
  pidfd_ = std::move(o.pidfd_);
  pid_ = std::exchange(o.pid_, -1);
  child_ = std::exchange(o.child_, false);
  return *this;
}

PageHolder::~PageHolder() { End(); }

void PageHolder::End() {
  control_.reset();  // EOF: the holder exits
  if (child_ && pid_ > 0) {
    syscall(SYS_pidfd_send_signal, pidfd_.get(), SIGKILL, nullptr, 0);
    waitpid(pid_, nullptr, 0);
  }
  pidfd_.reset();
  pid_ = -1;
  child_ = false;
}

Result<std::vector<PageHolder::Piece>> PageHolder::Call(uint32_t op, uint64_t a, uint64_t b,
                                                        uint32_t flags, uint64_t at, uint64_t len) {
  Request req{op, flags, a, b, at, len};
  if (send(control_.get(), &req, sizeof req, MSG_NOSIGNAL) != sizeof req)
    return ErrnoError("page holder %d", pid_);
  Reply reply;
  ssize_t n;
  while ((n = recv(control_.get(), &reply, sizeof reply, 0)) < 0 && errno == EINTR) {
  }
  if (n < static_cast<ssize_t>(offsetof(Reply, pieces)) ||
      n != static_cast<ssize_t>(offsetof(Reply, pieces) + reply.n * sizeof(WirePiece)))
    return n < 0 ? ErrnoError("page holder %d", pid_)
                 : MakeError("page holder %d is gone (it may have been killed)", pid_);
  if (reply.err) {
    errno = reply.err;
    return ErrnoError("page holder %d, 0x%lx-0x%lx", pid_, a, b);
  }
  std::vector<Piece> out;
  for (uint32_t i = 0; i < reply.n; i++)
    out.push_back({reply.pieces[i].start, reply.pieces[i].end, reply.pieces[i].held != 0});
  return out;
}

Result<std::vector<PageHolder::Piece>> PageHolder::Hold(uint64_t vma_start, uint64_t vma_end,
                                                        uint32_t flags, uint64_t at, uint64_t len) {
  std::vector<Piece> out;
  for (uint64_t end = at + len; at < end;) {
    std::vector<Piece> part = TRY(Call(kHold, vma_start, vma_end, flags, at, end - at));
    if (part.empty()) return MakeError("page holder %d answered nothing", pid_);
    at = part.back().end;
    out.insert(out.end(), part.begin(), part.end());
  }
  return out;
}

Result<bool> PageHolder::Cover(uint64_t start, uint64_t end, uint32_t flags) {
  return !TRY(Call(kCover, start, end, flags)).empty();
}

Status PageHolder::Drop(uint64_t start, uint64_t end) {
  TRY(Call(kDrop, start, end));
  return Ok{};
}

Status PageHolder::Collapse(uint64_t start, uint64_t end) {
  TRY(Call(kCollapse, start, end));
  return Ok{};
}

Status PageHolder::Release(uint64_t start, uint64_t end) {
  TRY(Call(kRelease, start, end));
  return Ok{};
}

// process_vm_writev and _readv may move less than asked: the rest follows.
Status PageHolder::Write(uint64_t at, const void* data, size_t len) const {
  for (size_t done = 0; done < len;) {
    iovec local{const_cast<char*>(static_cast<const char*>(data)) + done, len - done},
        remote{reinterpret_cast<void*>(at + done), len - done};
    ssize_t n = process_vm_writev(pid_, &local, 1, &remote, 1, 0);
    if (n <= 0) return ErrnoError("writing %zu bytes at 0x%lx of page holder %d", len, at, pid_);
    done += n;
  }
  return Ok{};
}

Status PageHolder::Read(uint64_t at, void* data, size_t len) const {
  for (size_t done = 0; done < len;) {
    iovec local{static_cast<char*>(data) + done, len - done},
        remote{reinterpret_cast<void*>(at + done), len - done};
    ssize_t n = process_vm_readv(pid_, &local, 1, &remote, 1, 0);
    if (n <= 0) return ErrnoError("reading %zu bytes at 0x%lx of page holder %d", len, at, pid_);
    done += n;
  }
  return Ok{};
}

}  // namespace crl
