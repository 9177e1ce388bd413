// Unix sockets. A pair with both ends in the tree: its type and what each
// end had waiting to be read (peeked, so that it stays there); restore
// makes one socketpair per pair and has each end send the other's data
// again. A socket on its own: bound to a path (the file the dumped socket
// left behind is replaced, and given its mode and owner) or an abstract
// name, listening with its backlog, or a datagram socket connected to a
// named socket outside the tree, connected again by name. Refused: a
// connection accepted from a listener (its name and peer credentials would
// differ), a stream socket connected outside the tree (or, as stdio under
// --shell-job, restore's own), other families (netlink, packet...).
#include <fcntl.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <map>
#include <set>

#include "base/log.h"
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

// NAME as a sockaddr_un (an abstract name is "@NAME").
Result<std::pair<sockaddr_un, socklen_t>> UnixAddr(const std::string& name) {
  sockaddr_un a{};
  a.sun_family = AF_UNIX;
  if (name.size() >= sizeof a.sun_path) return MakeError("the name %s is too long", name.c_str());
  memcpy(a.sun_path, name.data(), name.size());
  if (name[0] == '@') a.sun_path[0] = 0;
  return std::make_pair(a, static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + name.size()));
}

// A unix socket with no peer in the tree: bound (listening or not), or a
// datagram socket connected to a socket outside (reconnected by name).
Status CollectOnItsOwn(const FdRef& r, const UnixSocketInfo& si,
                       const std::map<uint64_t, UnixSocketInfo>& diag) {
  img::UnixSocketFd* u = r.fd->mutable_unix_socket();
  std::string what = Format("PID %d fd %d is a unix socket", r.pid, r.fd->fd());
  u->set_type(si.type);
  if (!si.name.empty()) {
    if (si.name[0] != '/' && si.name[0] != '@')
      return MakeError("%s bound to the relative name %s: not carried", what.c_str(),
                       si.name.c_str());
    if (si.name[0] == '/') {
      struct stat st;
      if (lstat(si.name.c_str(), &st) < 0 || !S_ISSOCK(st.st_mode) || st.st_ino != si.vfs_ino)
        return MakeError("%s bound to %s, whose file was deleted or replaced: not carried yet",
                         what.c_str(), si.name.c_str());
      u->set_mode(st.st_mode & 07777);
      u->set_uid(st.st_uid);
      u->set_gid(st.st_gid);
    }
    u->set_name(si.name);
  }
  if (si.state == TCP_LISTEN) {
    if (si.rqueue)
      return MakeError("%s listening on %s with %u connection(s) not accept()ed yet: not carried",
                       what.c_str(), si.name.c_str(), si.rqueue);
    u->set_listening(true);
    u->set_backlog(static_cast<int32_t>(si.wqueue));
    return Ok{};
  }
  if (si.peer_ino) {
    auto peer = diag.find(si.peer_ino);
    std::string name = peer == diag.end() ? "" : peer->second.name;
    if (name.empty() || (name[0] != '/' && name[0] != '@'))
      return MakeError("%s connected to an unnamed socket outside the tree: not carried",
                       what.c_str());
    u->set_peer_name(name);
  }
  if (si.rqueue)
    LOG_WARN("%s (%s): the datagrams waiting in it are not carried", what.c_str(),
             si.name.empty() ? "unbound" : si.name.c_str());
  return Ok{};
}

// The socket U describes, on its own: bound (its stale file from the dump
// replaced), listening, or connected by name.
Result<ScopedFd> OpenOnItsOwn(const img::UnixSocketFd& u) {
  ScopedFd sock(socket(AF_UNIX, u.type() | SOCK_CLOEXEC, 0));
  if (!sock.valid()) return ErrnoError("socket(AF_UNIX)");
  const std::string& name = u.name();
  if (!name.empty()) {
    auto [addr, len] = TRY(UnixAddr(name));
    struct stat st;
    if (name[0] == '/' && lstat(name.c_str(), &st) == 0) {
      if (!S_ISSOCK(st.st_mode))
        return MakeError("%s, a unix socket's name, is now something else", name.c_str());
      unlink(name.c_str());  // the dumped socket's file, left behind
    }
    if (bind(sock.get(), reinterpret_cast<sockaddr*>(&addr), len) < 0)
      return ErrnoError("bind(%s)", name.c_str());
    if (name[0] == '/' &&
        (chmod(name.c_str(), u.mode()) < 0 || lchown(name.c_str(), u.uid(), u.gid()) < 0))
      return ErrnoError("giving %s its mode and owner", name.c_str());
  }
  if (u.listening() && listen(sock.get(), u.backlog()) < 0)
    return ErrnoError("listen(%s)", name.c_str());
  if (!u.peer_name().empty()) {
    auto [addr, len] = TRY(UnixAddr(u.peer_name()));
    if (connect(sock.get(), reinterpret_cast<sockaddr*>(&addr), len) < 0)
      return ErrnoError("connect(%s)", u.peer_name().c_str());
  }
  return sock;
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
      bool in_tree = sockets.count(si.peer_ino);
      if (in_tree && si.type == SOCK_DGRAM && !diag[si.peer_ino].name.empty())
        return MakeError(
            "PID %d fd %d is a datagram unix socket connected to %s, a bound socket of the "
            "tree: not carried yet",
            r.pid, f.fd(), diag[si.peer_ino].name.c_str());
      if (si.peer_ino == 0 || (!in_tree && si.type == SOCK_DGRAM)) {
        TRY(CollectOnItsOwn(r, si, diag));
        continue;
      }
      if (!si.name.empty() || !sockets.count(si.peer_ino)) {
        TRY(tree.External(r, si.name.empty()
                                 ? "a unix socket connected outside the tree"
                                 : "a connection accepted from a listening unix socket (carried "
                                   "with its name and peer credentials: not yet)"));
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
    if (f.unix_socket().peer_ino() == 0 || !f.unix_socket().peer_name().empty())
      return OpenOnItsOwn(f.unix_socket()).Context(Format("unix socket of fd %d", f.fd()));
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
