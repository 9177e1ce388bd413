// Unix socket pairs with both ends in the tree: their type and what each
// end had waiting to be read (peeked, so that it stays there); restore
// makes one socketpair per pair and has each end send the other's data
// again. A socket of another family, a bound one, or one connected outside
// the tree is refused (or, as stdio under --shell-job, restore's own).
#include <fcntl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <map>
#include <set>

#include "files/fd_kind.h"
#include "kernel/task_fd.h"
#include "kernel/unix_diag.h"

namespace crl {
namespace {

// One message (or, for a stream, the next bytes) of a socket's receive
// queue, peeked at SO_PEEK_OFF. File descriptors in flight with it
// (SCM_RIGHTS) are refused: peeking installs copies of them in criu-lite,
// which are closed at once.
Result<ssize_t> PeekOne(int sock, std::vector<char>& buf) {
  alignas(cmsghdr) char control[CMSG_SPACE(sizeof(int) * 253)];
  iovec iov{buf.data(), buf.size()};
  msghdr msg{};
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  msg.msg_control = control;
  msg.msg_controllen = sizeof control;
  ssize_t n = recvmsg(sock, &msg, MSG_PEEK | MSG_DONTWAIT | MSG_CMSG_CLOEXEC);
  if (n < 0) return n;
  bool rights = msg.msg_flags & MSG_CTRUNC;
  for (cmsghdr* c = CMSG_FIRSTHDR(&msg); c; c = CMSG_NXTHDR(&msg, c)) {
    if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS) continue;
    rights = true;
    size_t count = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
    for (size_t i = 0; i < count; i++) close(reinterpret_cast<int*>(CMSG_DATA(c))[i]);
  }
  if (rights)
    return MakeError(
        "file descriptors are in flight in it (SCM_RIGHTS): criu-lite cannot carry them yet");
  return n;
}

// A socket's receive queue, peeked: all bytes of a stream, or each message,
// walking the queue with SO_PEEK_OFF. An empty message does not move the
// peek offset, so it cannot be walked past: refused, rather than peeked for
// ever (it cannot be told from the end of a shut-down socket either).
Result<std::vector<std::string>> PeekSocket(int sock, int type) {
  std::vector<std::string> out;
  std::vector<char> buf(1 << 20);
  int off = 0;
  if (setsockopt(sock, SOL_SOCKET, SO_PEEK_OFF, &off, sizeof off) < 0)
    return ErrnoError("setsockopt(SO_PEEK_OFF)");
  Status st = [&]() -> Status {
    for (;;) {
      ssize_t n = TRY(PeekOne(sock, buf));
      if (n < 0 && errno == EAGAIN) return Ok{};
      if (n < 0) return ErrnoError("recvmsg(MSG_PEEK)");
      if (type == SOCK_STREAM) {
        if (n == 0) return Ok{};  // the peer shut down its end: nothing more
        if (out.empty()) out.emplace_back();
        out[0].append(buf.data(), n);  // a stream is one chunk
        continue;
      }
      if (n == 0)
        return MakeError("an empty message (or end of stream) is queued: not carried yet");
      out.emplace_back(buf.data(), n);
    }
  }();
  off = -1;  // back to plain peeking: the socket is the task's
  setsockopt(sock, SOL_SOCKET, SO_PEEK_OFF, &off, sizeof off);
  TRY(st);
  return out;
}

class UnixSocket : public FdKind {
 public:
  img::Fd::KindCase arm() const override { return img::Fd::kUnixSocket; }
  const char* name() const override { return "unix socket"; }

  // Every socket: one that is not a unix socket pair is refused, named,
  // once the tree is seen.
  bool Claims(const FdSeen& s) const override { return s.anon == "socket"; }

  Status Collect(const FdSeen& s, img::Fd* out) const override {
    // Inet sockets are files/inet_socket.cc's; the others (netlink, raw,
    // packet...) are refused by name, unless they are stdio under
    // --shell-job (Resolve makes them restore's own).
    bool unix_family = s.sock_proto.empty() || s.sock_proto.rfind("UNIX", 0) == 0;
    if (!unix_family && !(s.shell_job && s.fd <= 2))
      return MakeError("PID %d fd %d is a %s socket: criu-lite does not carry those yet", s.pid,
                       s.fd, s.sock_proto.c_str());
    out->mutable_unix_socket();
    return Ok{};
  }

  Status Resolve(const std::vector<FdRef>& mine, TreeFds& tree) const override {
    if (mine.empty()) return Ok{};
    std::set<uint64_t> sockets;
    for (const FdRef& r : mine) sockets.insert(r.fd->ino());
    std::map<uint64_t, UnixSocketInfo> diag = TRY(ListUnixSockets());
    std::vector<FdRef> pairs;
    for (const FdRef& r : mine) {
      img::Fd& f = *r.fd;
      auto it = diag.find(f.ino());
      if (it == diag.end()) {
        TRY(tree.External(r, "a socket that is not a unix socket"));
        continue;
      }
      const UnixSocketInfo& si = it->second;
      if (!si.name.empty() || !sockets.count(si.peer_ino)) {
        TRY(tree.External(r, si.name.empty() ? "a unix socket connected outside the tree"
                                             : "a bound unix socket"));
        continue;
      }
      if (si.shutdown || diag[si.peer_ino].shutdown)
        return MakeError(
            "PID %d fd %d is a unix socket pair with an end shut down (shutdown()): not "
            "carried yet",
            r.pid, f.fd());
      f.mutable_unix_socket()->set_type(si.type);
      f.mutable_unix_socket()->set_peer_ino(si.peer_ino);
      pairs.push_back(r);
    }
    // What each end has waiting to be read, through criu-lite's own copy.
    for (const FdRef& r : pairs) {
      img::Fd& f = *r.fd;
      if (!tree.First("socket data", f.ino())) continue;
      ScopedFd mine_fd = TRY(TakeFd(r.pid, f.fd()));
      auto chunks = TRY(PeekSocket(mine_fd.get(), f.unix_socket().type())
                            .Context(Format("PID %d fd %d", r.pid, f.fd())));
      if (chunks.empty()) continue;
      img::QueuedData* q = tree.shared()->add_queues();
      q->set_ino(f.ino());
      for (auto& c : chunks) q->add_chunks(std::move(c));
    }
    return Ok{};
  }

  Result<ScopedFd> Open(const img::Fd& f, OpenFiles& files) const override {
    std::vector<int>& mine = files.Object(this, f.ino());
    if (mine.empty()) {
      const img::UnixSocketFd& u = f.unix_socket();
      int sv[2];
      if (socketpair(AF_UNIX, u.type() | SOCK_CLOEXEC, 0, sv) < 0)
        return ErrnoError("socketpair(type %d)", u.type());
      mine = {files.Hold(ScopedFd(sv[0]))};
      files.Object(this, u.peer_ino()) = {files.Hold(ScopedFd(sv[1]))};
      // What each end had waiting to be read, sent again by its peer.
      for (auto [ino, from] :
           {std::make_pair(f.ino(), sv[1]), std::make_pair(u.peer_ino(), sv[0])}) {
        const img::QueuedData* q = files.Queued(ino);
        if (!q) continue;
        for (const std::string& c : q->chunks())
          if (send(from, c.data(), c.size(), MSG_DONTWAIT) != static_cast<ssize_t>(c.size()))
            return ErrnoError("refilling socket %lu (%zu bytes)", ino, c.size());
      }
    }
    ScopedFd fd(fcntl(files.Object(this, f.ino())[0], F_DUPFD_CLOEXEC, 3));
    if (!fd.valid()) return ErrnoError("dup(socket)");
    return fd;
  }
};

}  // namespace

const FdKind& UnixSocketKind() {
  static const UnixSocket k;
  return k;
}

}  // namespace crl
