// Unix sockets. A pair with both ends in the tree: its type and what each
// end had waiting to be read (peeked, so that it stays there); restore
// makes it again (a socketpair, or a connection to the listener of the tree
// it was accepted from, accepted again) and has each end send the other's
// data again. A socket on its own: bound to a path (the file the dumped
// socket left behind is replaced, and given its mode and owner; a deleted
// one is bound again and deleted) or an abstract name, listening with its
// backlog, a client waiting in a listener of the tree to be accepted (it
// connects again, in queue order), a stream socket whose peer was closed
// (its data, then end of file), or a datagram socket connected to a named
// socket outside the tree, connected again by name. Who made each socket
// (SO_PEERCRED, SO_PEERGROUPS) is the same after restore: the calls that
// record it are made as that task (kernel/as_task.h). A stream socket
// connected outside the tree is refused, or with --ext-unix-sk given back
// by --inherit-fd (CRIU's meaning); other families (netlink, packet...)
// are refused.
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
#include "kernel/as_task.h"
#include "kernel/namespaces.h"
#include "kernel/proc_parsers.h"
#include "kernel/proc_task.h"
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

// What SO_PEERCRED and SO_PEERGROUPS say of SOCK (pid 0: no one yet).
Status ReadPeerCred(int sock, img::PeerCred* out) {
  ucred uc{};
  socklen_t len = sizeof uc;
  if (getsockopt(sock, SOL_SOCKET, SO_PEERCRED, &uc, &len) < 0)
    return ErrnoError("getsockopt(SO_PEERCRED)");
  out->set_pid(uc.pid);
  out->set_uid(uc.uid);
  out->set_gid(uc.gid);
  std::vector<gid_t> groups(65536);
  len = groups.size() * sizeof(gid_t);
  if (getsockopt(sock, SOL_SOCKET, SO_PEERGROUPS, groups.data(), &len) < 0)
    return errno == ENODATA ? Status(Ok{}) : ErrnoError("getsockopt(SO_PEERGROUPS)");
  for (size_t i = 0; i < len / sizeof(gid_t); i++) out->add_groups(groups[i]);
  return Ok{};
}

// A socket HOLDER holds, made by a task in a PID namespace below
// criu-lite's: restore makes it again as the task with that PID there only
// where the task is of the tree and in its root's PID namespace (which
// exists when the files are made); otherwise the PID is not carried, and
// the dump says so.
//
// SOCK (criu-lite's copy, or -1): where the maker named (as criu-lite sees
// it) is no task of the tree, the PID the holder's namespace sees may be
// one's (a socket made again by a restore, by a short-lived process with
// that task's PID there): asked from inside that namespace.
Status MarkPidNotKept(pid_t holder, int fd, const TreeFds& tree, img::PeerCred* c, int sock = -1) {
  if (c->pid() == 0 || c->pid_not_kept()) return Ok{};
  if (TRY(PidNamespaceLevels(holder)) <= TRY(OwnPidNamespaceLevels())) return Ok{};
  uint64_t root_ns = NamespaceId(tree.root(), "pid");
  if (tree.HasTask(c->pid()) && NamespaceId(c->pid(), "pid") == root_ns) return Ok{};
  if (sock >= 0 && NamespaceId(holder, "pid") == root_ns) {
    ScopedFd ns(open(ProcTask(holder).Path("ns/pid").c_str(), O_RDONLY | O_CLOEXEC));
    if (!ns.valid()) return ErrnoError("open(the PID namespace of PID %d)", holder);
    auto seen = AsTaskInPidNamespace(ns.get(), TaskCreds{}, "getsockopt(SO_PEERCRED)",
                                     [sock](std::array<int, 2>& out) {
                                       ucred uc{};
                                       socklen_t len = sizeof uc;
                                       if (getsockopt(sock, SOL_SOCKET, SO_PEERCRED, &uc, &len) < 0)
                                         return -1;
                                       out[0] = uc.pid;
                                       return 0;
                                     });
    if (seen.ok() && (*seen)[0] > 0)
      for (pid_t t : tree.tasks()) {
        auto st = ProcTask(t).Status();
        if (st.ok() && st->tgid == t && !st->nspid.empty() && st->nspid.back() == (*seen)[0] &&
            NamespaceId(t, "pid") == root_ns) {
          c->set_pid(t);
          return Ok{};
        }
      }
  }
  c->set_pid_not_kept(true);
  LOG_WARN(
      "PID %d fd %d: a unix socket made in a PID namespace of the tree (by PID %d): the PID "
      "SO_PEERCRED names is not carried (after restore it names no task there)",
      holder, fd, c->pid());
  return Ok{};
}

// Task PID's credentials, as connect() would record them.
Result<img::PeerCred> TaskCred(pid_t pid) {
  std::string text = TRY(ReadFileToString(ProcTask(pid).Path("status")));
  ProcStatus st = TRY(ParseProcStatus(text));
  img::PeerCred c;
  c.set_pid(st.tgid ? st.tgid : pid);
  c.set_uid(st.uid[1]);
  c.set_gid(st.gid[1]);
  for (uint32_t g : st.groups) c.add_groups(g);
  return c;
}

// The tree's unix sockets as UNIX_DIAG sees them, and which of them wait in
// a listener's queue.
struct UnixTree {
  std::map<uint64_t, UnixSocketInfo> diag;
  std::set<uint64_t> mine;                                    // the tree's
  std::map<uint64_t, std::pair<uint64_t, uint32_t>> waiting;  // client: listener, place (from 1)
  std::map<std::string, uint64_t> listeners;                  // the tree's, by name

  const UnixSocketInfo& operator[](uint64_t ino) { return diag[ino]; }
};

Result<UnixTree> SeeUnixTree(const std::vector<FdRef>& mine) {
  UnixTree t;
  // UNIX_DIAG answers for its own network namespace: asked in each one the
  // tree's sockets are in (inodes are unique across them).
  std::map<std::string, pid_t> nets;
  for (const FdRef& r : mine) nets.emplace(ProcTask(r.pid).Link("ns/net").value_or(""), r.pid);
  for (const auto& [link, pid] : nets)
    TRY(InNamespaceOf(pid, "net", CLONE_NEWNET, [&]() -> Status {
      for (auto& [ino, si] : TRY(ListUnixSockets())) t.diag.emplace(ino, std::move(si));
      return Ok{};
    }));
  for (const FdRef& r : mine) t.mine.insert(r.fd->ino());
  for (const auto& [ino, si] : t.diag) {
    if (si.state != TCP_LISTEN) continue;
    for (size_t i = 0; i < si.icons.size(); i++) t.waiting[si.icons[i]] = {ino, i + 1};
    if (t.mine.count(ino) && !si.name.empty()) t.listeners[si.name] = ino;
  }
  return t;
}

// SI's bound name, with its file's mode and owner (or, deleted since,
// marked so), into U.
Status CollectName(const UnixSocketInfo& si, const std::string& what, img::UnixSocketFd* u) {
  if (si.name.empty()) return Ok{};
  if (si.name[0] != '/' && si.name[0] != '@')
    return MakeError("%s bound to the relative name %s: not carried", what.c_str(),
                     si.name.c_str());
  u->set_name(si.name);
  if (si.name[0] != '/') return Ok{};
  struct stat st;
  if (lstat(si.name.c_str(), &st) < 0 || !S_ISSOCK(st.st_mode) || st.st_ino != si.vfs_ino) {
    u->set_name_deleted(true);  // bound again at restore, and deleted
    return Ok{};
  }
  u->set_mode(st.st_mode & 07777);
  u->set_uid(st.st_uid);
  u->set_gid(st.st_gid);
  return Ok{};
}

// A unix socket with no peer in the tree: bound (listening or not), a
// client waiting in a listener of the tree, a stream socket whose peer is
// gone, or a datagram socket connected to a socket outside (reconnected by
// name).
Status CollectOnItsOwn(const FdRef& r, const UnixSocketInfo& si, UnixTree& t, const TreeFds& tree) {
  img::UnixSocketFd* u = r.fd->mutable_unix_socket();
  std::string what = Format("PID %d fd %d is a unix socket", r.pid, r.fd->fd());
  u->set_type(si.type);
  TRY(CollectName(si, what, u));
  if (si.state == TCP_LISTEN) {
    for (uint64_t client : si.icons)
      if (!t.mine.count(client))
        return MakeError(
            "%s listening on %s with a connection from outside the tree not accept()ed yet "
            "(its client would lose it): not carried",
            what.c_str(), si.name.c_str());
    u->set_listening(true);
    u->set_backlog(static_cast<int32_t>(si.wqueue));
    return Ok{};
  }
  if (si.type != SOCK_DGRAM && si.state == TCP_ESTABLISHED && si.peer_ino == 0) {
    if (auto w = t.waiting.find(si.ino); w != t.waiting.end()) {
      if (si.wqueue)
        return MakeError("%s waiting to be accepted by %s, with data sent: not carried yet",
                         what.c_str(), t[w->second.first].name.c_str());
      u->set_listener_ino(w->second.first);
      u->set_pending_index(w->second.second);
      *u->mutable_connector() = TRY(TaskCred(r.pid));
      TRY(MarkPidNotKept(r.pid, r.fd->fd(), tree, u->mutable_connector()));
      return Ok{};
    }
    if (!si.name.empty() && !t.listeners.count(si.name))
      return MakeError("%s bound to %s whose peer was closed: not carried yet", what.c_str(),
                       si.name.c_str());
    u->set_peer_gone(true);
    if (!si.name.empty()) {
      u->set_listener_ino(t.listeners[si.name]);
      u->set_accepted(true);
    }
    return Ok{};
  }
  if (si.peer_ino) {
    const UnixSocketInfo& peer = t[si.peer_ino];
    if (peer.name.empty() || (peer.name[0] != '/' && peer.name[0] != '@'))
      return MakeError("%s connected to an unnamed socket outside the tree: not carried",
                       what.c_str());
    u->set_peer_name(peer.name);
  }
  if (si.rqueue)
    LOG_WARN("%s (%s): the datagrams waiting in it are not carried", what.c_str(),
             si.name.empty() ? "unbound" : si.name.c_str());
  return Ok{};
}

// CALL made as the task CRED names, so that the socket records it
// (criu-lite itself for a socket no one connected or listened on): by that
// task itself where it exists already (FILES' stamper), else by a child of
// that PID. A PID another process has here (the task that made the socket
// had ended before the dump) is replaced by a new one, and said.
Result<std::array<int, 2>> MadeAs(const img::PeerCred& cred, const StampingCall& call,
                                  const OpenFiles& files) {
  auto here = [&call](std::array<int, 2>& out) { return call.Run(out); };
  if (cred.pid() == 0) {
    std::array<int, 2> out{-1, -1};
    if (here(out) < 0) return ErrnoError("%s", call.what());
    return out;
  }
  TaskCreds tc{cred.pid_not_kept() ? 0 : cred.pid(),
               cred.uid(),
               cred.gid(),
               {cred.groups().begin(), cred.groups().end()}};
  if (tc.pid)
    if (const OpenFiles::Stamper* by = files.StamperFor(tc.pid)) return (*by)(tc, call);
  auto made = AsTask(tc, call.what(), here);
  if (made.ok() || !made.error().Is(ErrorCode::kPidInUse)) return made;
  LOG_WARN(
      "%s: PID %d, which made the socket (SO_PEERCRED), is another process's here: made "
      "as a new PID with its credentials",
      call.what(), cred.pid());
  tc.pid = 0;
  return AsTask(tc, call.what(), here);
}

// Binds SOCK to U's name: the file the dumped socket left behind replaced,
// given its mode and owner; a name whose file had been deleted deleted
// again.
Status BindName(int sock, const img::UnixSocketFd& u) {
  const std::string& name = u.name();
  if (name.empty()) return Ok{};
  auto [addr, len] = TRY(UnixAddr(name));
  struct stat st;
  bool path = name[0] == '/';
  if (path && lstat(name.c_str(), &st) == 0) {
    if (u.name_deleted())
      return MakeError("%s, the deleted name of a unix socket, is taken again", name.c_str());
    if (!S_ISSOCK(st.st_mode))
      return MakeError("%s, a unix socket's name, is now something else", name.c_str());
    unlink(name.c_str());  // the dumped socket's file, left behind
  }
  if (bind(sock, reinterpret_cast<sockaddr*>(&addr), len) < 0)
    return ErrnoError("bind(%s)", name.c_str());
  if (path && u.name_deleted()) {
    if (unlink(name.c_str()) < 0) return ErrnoError("unlink(%s)", name.c_str());
  } else if (path &&
             (chmod(name.c_str(), u.mode()) < 0 || lchown(name.c_str(), u.uid(), u.gid()) < 0)) {
    return ErrnoError("giving %s its mode and owner", name.c_str());
  }
  return Ok{};
}

// The socket U describes, on its own: bound, listening (as the task that
// listened), or connected by name.
Result<ScopedFd> OpenOnItsOwn(const img::UnixSocketFd& u, const OpenFiles& files) {
  ScopedFd sock(socket(AF_UNIX, u.type() | SOCK_CLOEXEC, 0));
  if (!sock.valid()) return ErrnoError("socket(AF_UNIX)");
  TRY(BindName(sock.get(), u));
  if (u.listening()) TRY(MadeAs(u.cred(), StampingCall::Listen(sock.get(), u.backlog()), files));
  if (!u.peer_name().empty()) {
    auto [addr, len] = TRY(UnixAddr(u.peer_name()));
    if (connect(sock.get(), reinterpret_cast<sockaddr*>(&addr), len) < 0)
      return ErrnoError("connect(%s)", u.peer_name().c_str());
  }
  return sock;
}

// CLIENT connected to LISTENER (a listening socket criu-lite made) as
// CONNECTOR; with ACCEPT, the server's end accepted, else (a connection that
// waits to be accepted) none.
Result<ScopedFd> ConnectTo(int listener, int client, const img::PeerCred& connector, bool accept,
                           const OpenFiles& files) {
  sockaddr_un addr{};
  socklen_t len = sizeof addr;
  if (getsockname(listener, reinterpret_cast<sockaddr*>(&addr), &len) < 0)
    return ErrnoError("getsockname(listener)");
  TRY(MadeAs(connector, StampingCall::Connect(client, addr, len), files));
  if (!accept) return ScopedFd();
  // connect() has queued the connection: accept() does not wait.
  ScopedFd server(accept4(listener, nullptr, nullptr, SOCK_CLOEXEC));
  if (!server.valid()) return ErrnoError("accept4");
  return server;
}

// A stream socket of the tree connected outside it (to PEER), or waiting
// in a listener outside to be accepted: restore's own stdio under
// --shell-job, given back by --inherit-fd under --ext-unix-sk, refused
// otherwise.
Status ConnectedOutside(const FdRef& r, const std::string& peer, TreeFds& tree) {
  img::Fd& f = *r.fd;
  if (f.fd() <= 2 && tree.shell_job())
    return tree.External(r, "a unix socket connected outside the tree");
  if (tree.ExternalUnix(f.ino())) {
    f.mutable_external()->set_key(Format("socket:[%lu]", (unsigned long)f.ino()));
    return Ok{};
  }
  return MakeError(
      "PID %d fd %d is a unix socket connected outside the tree (to %s): not carried (with "
      "--ext-unix-sk, restore takes it from --inherit-fd fd[N]:socket:[%lu])%s",
      r.pid, f.fd(), peer.c_str(), (unsigned long)f.ino(),
      f.fd() <= 2 ? "; or dump with --shell-job to let the restored task use restore's own "
                    "stdin/stdout/stderr"
                  : "");
}

// A connection with both ends in the tree: a socketpair, or one accepted
// from a listener of the tree (the server's end bears the listener's name).
Status CollectPair(const FdRef& r, const UnixSocketInfo& si, UnixTree& t) {
  std::string what = Format("PID %d fd %d is a unix socket", r.pid, r.fd->fd());
  const UnixSocketInfo& peer = t[si.peer_ino];
  if (si.type == SOCK_DGRAM && !peer.name.empty())
    return MakeError("%s connected to %s, a bound datagram socket of the tree: not carried yet",
                     what.c_str(), peer.name.c_str());
  if (si.shutdown || peer.shutdown)
    return MakeError("%s pair with an end shut down (shutdown()): not carried yet", what.c_str());
  img::UnixSocketFd* u = r.fd->mutable_unix_socket();
  u->set_type(si.type);
  u->set_peer_ino(si.peer_ino);
  if (si.name.empty() && peer.name.empty()) return Ok{};  // a socketpair
  const std::string& name = si.name.empty() ? peer.name : si.name;
  auto l = t.listeners.find(name);
  if (si.type == SOCK_DGRAM || l == t.listeners.end() || (!si.name.empty() && !peer.name.empty()))
    return MakeError(
        "%s connected to one of the tree, with the name %s: not carried yet (a client bound to a "
        "name of its own, or accepted from a listener no longer open in the tree)",
        what.c_str(), name.c_str());
  u->set_listener_ino(l->second);
  u->set_accepted(!si.name.empty());
  return Ok{};
}

// Who made each of CARRIED (SO_PEERCRED), the connector of each accepted
// connection, and what each connected socket has waiting to be read.
Status SaveCredsAndQueues(const std::vector<FdRef>& carried, TreeFds& tree) {
  std::map<uint64_t, img::PeerCred> creds;
  for (const FdRef& r : carried) {
    img::Fd& f = *r.fd;
    img::UnixSocketFd* u = f.mutable_unix_socket();
    ScopedFd mine_fd = TRY(TakeFd(r.pid, f.fd()));
    if (!creds.count(f.ino())) {
      TRY(ReadPeerCred(mine_fd.get(), &creds[f.ino()])
              .Context(Format("PID %d fd %d", r.pid, f.fd())));
      TRY(MarkPidNotKept(r.pid, f.fd(), tree, &creds[f.ino()], mine_fd.get()));
    }
    *u->mutable_cred() = creds[f.ino()];
    bool connected = u->peer_ino() || u->peer_gone();
    if (!connected || !tree.First("socket data", f.ino())) continue;
    auto chunks =
        TRY(PeekSocket(mine_fd.get(), u->type()).Context(Format("PID %d fd %d", r.pid, f.fd())));
    if (chunks.empty()) continue;
    img::QueuedData* q = tree.shared()->add_queues();
    q->set_ino(f.ino());
    for (auto& c : chunks) q->add_chunks(std::move(c));
  }
  // The server's end of a connection says who connected; the client's end
  // is told too, whichever restore makes first.
  for (const FdRef& r : carried) {
    img::UnixSocketFd* u = r.fd->mutable_unix_socket();
    if (u->listener_ino() && !u->pending_index())
      *u->mutable_connector() = creds[u->accepted() ? r.fd->ino() : u->peer_ino()];
  }
  return Ok{};
}

// Listener INO of the tree, made already (listeners are opened first).
Result<int> Listener(const FdKind* kind, OpenFiles& files, uint64_t ino) {
  std::vector<int>& l = files.Object(kind, ino);
  if (l.empty()) return MakeError("its listener (socket %lu) was not made", (unsigned long)ino);
  return l[0];
}

// What socket INO had waiting to be read, sent again from FROM.
Status Refill(OpenFiles& files, uint64_t ino, int from) {
  const img::QueuedData* q = files.Queued(ino);
  if (!q) return Ok{};
  for (const std::string& c : q->chunks())
    if (send(from, c.data(), c.size(), MSG_DONTWAIT) != static_cast<ssize_t>(c.size()))
      return ErrnoError("refilling socket %lu (%zu bytes)", (unsigned long)ino, c.size());
  return Ok{};
}

// F's connection with both ends in the tree: a socketpair made as the task
// that made it, or a connection to the listener it was accepted from; each
// end then holds what it had waiting to be read.
Status MakePair(const FdKind* kind, const img::Fd& f, OpenFiles& files) {
  const img::UnixSocketFd& u = f.unix_socket();
  std::map<uint64_t, ScopedFd> ends;
  if (!u.listener_ino()) {
    auto sv = TRY(MadeAs(u.cred(), StampingCall::Socketpair(u.type()), files));
    ends[f.ino()] = ScopedFd(sv[0]);
    ends[u.peer_ino()] = ScopedFd(sv[1]);
  } else {
    int listener = TRY(Listener(kind, files, u.listener_ino()));
    ScopedFd client(socket(AF_UNIX, u.type() | SOCK_CLOEXEC, 0));
    if (!client.valid()) return ErrnoError("socket(AF_UNIX)");
    ScopedFd server = TRY(ConnectTo(listener, client.get(), u.connector(), true, files));
    ends[u.accepted() ? u.peer_ino() : f.ino()] = std::move(client);
    ends[u.accepted() ? f.ino() : u.peer_ino()] = std::move(server);
  }
  int a = ends[f.ino()].get(), b = ends[u.peer_ino()].get();
  TRY(Refill(files, f.ino(), b));
  TRY(Refill(files, u.peer_ino(), a));
  files.Object(kind, f.ino()) = {files.Hold(std::move(ends[f.ino()]))};
  files.Object(kind, u.peer_ino()) = {files.Hold(std::move(ends[u.peer_ino()]))};
  return Ok{};
}

// A connection with one end: a client waiting in its listener's queue
// (connected again, not accepted), or a stream socket whose peer was closed
// (made with a peer that sends what it had to read, then is closed).
Result<ScopedFd> OpenConnection(const FdKind* kind, const img::Fd& f, OpenFiles& files) {
  const img::UnixSocketFd& u = f.unix_socket();
  if (u.pending_index()) {
    int listener = TRY(Listener(kind, files, u.listener_ino()));
    ScopedFd client(socket(AF_UNIX, u.type() | SOCK_CLOEXEC, 0));
    if (!client.valid()) return ErrnoError("socket(AF_UNIX)");
    TRY(BindName(client.get(), u));
    TRY(ConnectTo(listener, client.get(), u.connector(), false, files));
    return client;
  }
  ScopedFd mine, peer;
  if (u.accepted()) {
    int listener = TRY(Listener(kind, files, u.listener_ino()));
    peer = ScopedFd(socket(AF_UNIX, u.type() | SOCK_CLOEXEC, 0));
    if (!peer.valid()) return ErrnoError("socket(AF_UNIX)");
    mine = TRY(ConnectTo(listener, peer.get(), u.connector(), true, files));
  } else {
    auto sv = TRY(MadeAs(u.cred(), StampingCall::Socketpair(u.type()), files));
    mine = ScopedFd(sv[0]);
    peer = ScopedFd(sv[1]);
  }
  TRY(Refill(files, f.ino(), peer.get()));
  return mine;  // PEER closes here: MINE reads what it holds, then end of file
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
    UnixTree t = TRY(SeeUnixTree(mine));
    std::vector<FdRef> carried;
    for (const FdRef& r : mine) {
      auto it = t.diag.find(r.fd->ino());
      if (it == t.diag.end()) {
        TRY(tree.External(r, "a socket that is not a unix socket"));
        continue;
      }
      const UnixSocketInfo& si = it->second;
      bool stream = si.type != SOCK_DGRAM, in_tree = t.mine.count(si.peer_ino);
      if (stream && si.state == TCP_ESTABLISHED && si.peer_ino == 0) {
        auto w = t.waiting.find(si.ino);
        if (w != t.waiting.end() && !t.mine.count(w->second.first)) {
          TRY(ConnectedOutside(r, t[w->second.first].name + ", not accepted yet", tree));
          continue;
        }
      } else if (stream && si.peer_ino && !in_tree) {
        TRY(ConnectedOutside(
            r, t[si.peer_ino].name.empty() ? "an unnamed socket" : t[si.peer_ino].name, tree));
        continue;
      }
      if (si.peer_ino && in_tree)
        TRY(CollectPair(r, si, t));
      else
        TRY(CollectOnItsOwn(r, si, t, tree));
      carried.push_back(r);
    }
    return SaveCredsAndQueues(carried, tree);
  }

  // Listeners first, then connections (accepted ones, then those waiting,
  // in their queue's order): a connection is made by connecting to its
  // listener.
  int OpenOrder(const img::Fd& f) const override {
    const img::UnixSocketFd& u = f.unix_socket();
    return u.listening() ? 0 : u.pending_index() ? 1 + static_cast<int>(u.pending_index()) : 1;
  }

  Result<ScopedFd> Open(const img::Fd& f, OpenFiles& files) const override {
    const img::UnixSocketFd& u = f.unix_socket();
    std::string what = Format("unix socket of fd %d", f.fd());
    std::vector<int>& mine = files.Object(this, f.ino());
    if (mine.empty()) {
      if (u.peer_ino())
        TRY(MakePair(this, f, files).Context(what));
      else if (u.pending_index() || u.peer_gone())
        mine = {files.Hold(TRY(OpenConnection(this, f, files).Context(what)))};
      else
        mine = {files.Hold(TRY(OpenOnItsOwn(u, files).Context(what)))};
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
