// Inet sockets (TCP, UDP and MPTCP over IPv4 and IPv6) that hold no TCP
// connection: unbound, bound, listening (with their backlog), UDP bound or
// connected. Dump takes each into criu-lite and reads it with getsockname,
// getpeername, TCP_INFO and getsockopt; of its options it keeps those a new
// socket of the same kind does not already have (setting the others could
// change what they are: a buffer size set by hand is no longer tuned by the
// kernel). Restore makes the socket as the task's owner (SO_REUSEPORT
// groups sockets by owner), sets those options (the ones that steer the
// bind, SO_REUSEPORT, SO_BINDTODEVICE, IP_FREEBIND..., before it), binds it with
// SO_REUSEADDR for the moment (a connection of the old socket may still be
// in TIME_WAIT on its port), and listens or connects.
//
// Established TCP connections (--tcp-established, as CRIU's) are read and
// made again in repair mode (TCP_REPAIR: a socket that sends nothing, whose
// sequence numbers, queues, options and window can be read and set), under
// the network lock (kernel/net_lock.h): dump locks each connection, then
// puts it in repair mode, and reads its sequence numbers, the bytes
// received and not read, the bytes written and not acknowledged (which of
// them were never sent), its MSS, window scales, SACK and timestamps, and
// its window. Restore binds and connects the new socket in repair mode (no
// handshake), sets all that, and takes it out of repair mode once the lock
// is lifted, just before the tree runs. With --tcp-close a connection is
// saved as a closed socket instead.
//
// Refused by name: a TCP connection without either option, one connecting
// or closing (only established ones are carried), a listener with
// connections not accepted yet. Datagrams waiting in a UDP socket are not carried: the dump says
// how many bytes were dropped (UDP may lose datagrams anyway).
#include <arpa/inet.h>
#include <fcntl.h>
#include <linux/sockios.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <netinet/udp.h>
#include <sys/fsuid.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstring>
#include <string>

#include "base/log.h"
#include "files/fd_kind.h"
#include "files/sock_opt.h"
#include "kernel/kernel_probe.h"
#include "kernel/net_lock.h"
#include "kernel/task_fd.h"

namespace crl {
namespace {

// The options read from every inet socket (those a kind has not are skipped:
// getsockopt fails on them).
constexpr OptName kOpts[] = {
    {SOL_SOCKET, SO_BINDTODEVICE},
    {SOL_IP, IP_FREEBIND},  // steer the bind: first
    {SOL_IP, IP_TRANSPARENT},
    {SOL_IPV6, IPV6_V6ONLY},
    {SOL_IPV6, IPV6_FREEBIND},
    {SOL_IPV6, IPV6_TRANSPARENT},
    {SOL_IP, IP_BIND_ADDRESS_NO_PORT},
    {SOL_SOCKET, SO_REUSEADDR},
    {SOL_SOCKET, SO_REUSEPORT},
    {SOL_SOCKET, SO_KEEPALIVE},
    {SOL_SOCKET, SO_BROADCAST},
    {SOL_SOCKET, SO_OOBINLINE},
    {SOL_SOCKET, SO_PASSCRED},
    {SOL_SOCKET, SO_PRIORITY},
    {SOL_SOCKET, SO_RCVLOWAT},
    {SOL_SOCKET, SO_MARK},
    {SOL_SOCKET, SO_RCVBUF},
    {SOL_SOCKET, SO_SNDBUF},
    {SOL_SOCKET, SO_LINGER},
    {SOL_SOCKET, SO_RCVTIMEO},
    {SOL_SOCKET, SO_SNDTIMEO},
    {SOL_SOCKET, SO_TIMESTAMP},
    {SOL_SOCKET, SO_TIMESTAMPNS},
    {SOL_SOCKET, SO_DONTROUTE},
    {SOL_SOCKET, SO_NO_CHECK},
    {SOL_SOCKET, SO_ZEROCOPY},
    {SOL_SOCKET, SO_BUSY_POLL},
    {SOL_TCP, TCP_NODELAY},
    {SOL_TCP, TCP_CORK},
    {SOL_TCP, TCP_KEEPIDLE},
    {SOL_TCP, TCP_KEEPINTVL},
    {SOL_TCP, TCP_KEEPCNT},
    {SOL_TCP, TCP_DEFER_ACCEPT},
    {SOL_TCP, TCP_FASTOPEN},
    {SOL_TCP, TCP_USER_TIMEOUT},
    {SOL_TCP, TCP_MAXSEG},
    {SOL_TCP, TCP_SYNCNT},
    {SOL_TCP, TCP_LINGER2},
    {SOL_TCP, TCP_WINDOW_CLAMP},
    {SOL_TCP, TCP_NOTSENT_LOWAT},
    {SOL_TCP, TCP_CONGESTION},
    {SOL_IP, IP_TOS},
    {SOL_IP, IP_TTL},
    {SOL_IP, IP_RECVERR},
    {SOL_IP, IP_PKTINFO},
    {SOL_IP, IP_RECVTOS},
    {SOL_IP, IP_RECVTTL},
    {SOL_IP, IP_MTU_DISCOVER},
    {SOL_IP, IP_MULTICAST_TTL},
    {SOL_IP, IP_MULTICAST_LOOP},
    {SOL_IP, IP_RECVORIGDSTADDR},
    {SOL_IPV6, IPV6_UNICAST_HOPS},
    {SOL_IPV6, IPV6_TCLASS},
    {SOL_IPV6, IPV6_RECVPKTINFO},
    {SOL_IPV6, IPV6_MULTICAST_HOPS},
    {SOL_IPV6, IPV6_MULTICAST_LOOP},
    {SOL_IPV6, IPV6_RECVERR},
    {SOL_IPV6, IPV6_MTU_DISCOVER},
    {SOL_UDP, UDP_CORK},
    {SOL_UDP, UDP_SEGMENT},
    {SOL_UDP, UDP_GRO},
};

bool SteersBind(const img::SockOpt& o) {
  return (o.level() == SOL_SOCKET && (o.name() == SO_BINDTODEVICE || o.name() == SO_REUSEPORT)) ||
         (o.level() == SOL_IP && (o.name() == IP_FREEBIND || o.name() == IP_TRANSPARENT ||
                                  o.name() == IP_BIND_ADDRESS_NO_PORT)) ||
         (o.level() == SOL_IPV6 &&
          (o.name() == IPV6_V6ONLY || o.name() == IPV6_FREEBIND || o.name() == IPV6_TRANSPARENT));
}

// SOCKADDR as "1.2.3.4:80" or "[::1]:80", for messages.
std::string AddrText(const std::string& sa) {
  char host[INET6_ADDRSTRLEN] = "?";
  if (sa.size() >= sizeof(sockaddr_in6) &&
      reinterpret_cast<const sockaddr*>(sa.data())->sa_family == AF_INET6) {
    auto* a = reinterpret_cast<const sockaddr_in6*>(sa.data());
    inet_ntop(AF_INET6, &a->sin6_addr, host, sizeof host);
    return Format("[%s]:%u", host, ntohs(a->sin6_port));
  }
  if (sa.size() >= sizeof(sockaddr_in)) {
    auto* a = reinterpret_cast<const sockaddr_in*>(sa.data());
    inet_ntop(AF_INET, &a->sin_addr, host, sizeof host);
    return Format("%s:%u", host, ntohs(a->sin_port));
  }
  return "?";
}

// Whether SA names an address or a port (an unbound socket's has neither).
bool Bound(const std::string& sa) {
  static const char zero[sizeof(sockaddr_in6)] = {};
  auto* s = reinterpret_cast<const sockaddr*>(sa.data());
  if (s->sa_family == AF_INET6) {
    auto* a = reinterpret_cast<const sockaddr_in6*>(s);
    return a->sin6_port || memcmp(&a->sin6_addr, zero, sizeof a->sin6_addr);
  }
  auto* a = reinterpret_cast<const sockaddr_in*>(s);
  return a->sin_port || a->sin_addr.s_addr;
}

Result<std::string> Name(int fd, bool peer) {
  sockaddr_storage ss{};
  socklen_t len = sizeof ss;
  int r = peer ? getpeername(fd, reinterpret_cast<sockaddr*>(&ss), &len)
               : getsockname(fd, reinterpret_cast<sockaddr*>(&ss), &len);
  if (r < 0) {
    if (peer && errno == ENOTCONN) return std::string();
    return ErrnoError(peer ? "getpeername" : "getsockname");
  }
  return std::string(reinterpret_cast<const char*>(&ss), len);
}

Status SetInt(int fd, int level, int name, int v, const char* what) {
  if (setsockopt(fd, level, name, &v, sizeof v) < 0) return ErrnoError("setsockopt(%s)", what);
  return Ok{};
}

// LEN bytes of repair queue Q of FD (peeked), and its sequence number.
Status ReadQueue(int fd, int q, uint32_t len, uint32_t* seq, std::string* bytes) {
  TRY(SetInt(fd, SOL_TCP, TCP_REPAIR_QUEUE, q, "TCP_REPAIR_QUEUE"));
  socklen_t sl = sizeof *seq;
  if (getsockopt(fd, SOL_TCP, TCP_QUEUE_SEQ, seq, &sl) < 0) return ErrnoError("TCP_QUEUE_SEQ");
  bytes->resize(len + 1);
  ssize_t n = len ? recv(fd, bytes->data(), len + 1, MSG_PEEK | MSG_DONTWAIT) : 0;
  if (n != static_cast<ssize_t>(len))
    return MakeError("the %s queue holds %zd bytes, not %u",
                     q == TCP_RECV_QUEUE ? "receive" : "send", n, len);
  bytes->resize(len);
  return Ok{};
}

// An established connection in repair mode, read (see the top).
Status SaveConnection(int fd, img::TcpConnection* c) {
  tcp_info ti{};
  socklen_t len = sizeof ti;
  if (getsockopt(fd, SOL_TCP, TCP_INFO, &ti, &len) < 0) return ErrnoError("TCP_INFO");
  int outq = 0, unsent = 0, inq = 0, mss = 0;
  if (ioctl(fd, SIOCOUTQ, &outq) < 0 || ioctl(fd, SIOCOUTQNSD, &unsent) < 0 ||
      ioctl(fd, SIOCINQ, &inq) < 0)
    return ErrnoError("the queues' sizes");
  len = sizeof mss;
  if (getsockopt(fd, SOL_TCP, TCP_MAXSEG, &mss, &len) < 0) return ErrnoError("TCP_MAXSEG");
  int sndbuf = 0, rcvbuf = 0;
  len = sizeof(int);
  getsockopt(fd, SOL_SOCKET, SO_SNDBUF, &sndbuf, &len);
  getsockopt(fd, SOL_SOCKET, SO_RCVBUF, &rcvbuf, &len);
  c->set_sndbuf(sndbuf);
  c->set_rcvbuf(rcvbuf);
  c->set_state(ti.tcpi_state);
  c->set_unsent(unsent);
  c->set_mss_clamp(mss);
  c->set_options(ti.tcpi_options);
  c->set_snd_wscale(ti.tcpi_snd_wscale);
  c->set_rcv_wscale(ti.tcpi_rcv_wscale);
  if (ti.tcpi_options & TCPI_OPT_TIMESTAMPS) {
    uint32_t ts = 0;
    len = sizeof ts;
    if (getsockopt(fd, SOL_TCP, TCP_TIMESTAMP, &ts, &len) < 0) return ErrnoError("TCP_TIMESTAMP");
    c->set_timestamp(ts);
  }
  tcp_repair_window w{};
  len = sizeof w;
  if (getsockopt(fd, SOL_TCP, TCP_REPAIR_WINDOW, &w, &len) == 0) {
    c->set_window(true);
    c->set_snd_wl1(w.snd_wl1);
    c->set_snd_wnd(w.snd_wnd);
    c->set_max_window(w.max_window);
    c->set_rcv_wnd(w.rcv_wnd);
    c->set_rcv_wup(w.rcv_wup);
  }
  uint32_t seq = 0;
  TRY(ReadQueue(fd, TCP_RECV_QUEUE, inq, &seq, c->mutable_inq()));
  c->set_inq_seq(seq);
  TRY(ReadQueue(fd, TCP_SEND_QUEUE, outq, &seq, c->mutable_outq()));
  c->set_outq_seq(seq);
  return SetInt(fd, SOL_TCP, TCP_REPAIR_QUEUE, TCP_NO_QUEUE, "TCP_REPAIR_QUEUE");
}

// BYTES into repair queue Q of FD (the receive queue: as received; the send
// queue: as sent and not acknowledged).
Status FillQueue(int fd, int q, const char* bytes, size_t len) {
  if (q >= 0) TRY(SetInt(fd, SOL_TCP, TCP_REPAIR_QUEUE, q, "TCP_REPAIR_QUEUE"));
  for (size_t off = 0, chunk = len; off < len;) {
    ssize_t n = send(fd, bytes + off, std::min(chunk, len - off), MSG_DONTWAIT);
    if (n <= 0 && chunk > 4096) {  // the kernel wants a smaller linear buffer
      chunk /= 2;
      continue;
    }
    if (n <= 0) return ErrnoError("refilling a TCP queue (%zu of %zu bytes in)", off, len);
    off += n;
  }
  return Ok{};
}

Status SetQueueSeq(int fd, int q, uint32_t seq) {
  TRY(SetInt(fd, SOL_TCP, TCP_REPAIR_QUEUE, q, "TCP_REPAIR_QUEUE"));
  return SetInt(fd, SOL_TCP, TCP_QUEUE_SEQ, static_cast<int>(seq), "TCP_QUEUE_SEQ");
}

// FD, a new socket in repair mode bound to LOCAL, made connection C to PEER.
Status RestoreConnection(int fd, const img::TcpConnection& c, const std::string& peer) {
  TRY(SetQueueSeq(fd, TCP_RECV_QUEUE, c.inq_seq() - c.inq().size()));
  TRY(SetQueueSeq(fd, TCP_SEND_QUEUE, c.outq_seq() - c.outq().size()));
  if (connect(fd, reinterpret_cast<const sockaddr*>(peer.data()), peer.size()) < 0)
    return ErrnoError("connect(%s) in repair mode", AddrText(peer).c_str());
  std::vector<tcp_repair_opt> opts;
  if (c.options() & TCPI_OPT_SACK) opts.push_back({TCPOPT_SACK_PERMITTED, 0});
  if (c.options() & TCPI_OPT_WSCALE)
    opts.push_back({TCPOPT_WINDOW, c.snd_wscale() + (c.rcv_wscale() << 16)});
  if (c.options() & TCPI_OPT_TIMESTAMPS) opts.push_back({TCPOPT_TIMESTAMP, 0});
  opts.push_back({TCPOPT_MAXSEG, c.mss_clamp()});
  if (setsockopt(fd, SOL_TCP, TCP_REPAIR_OPTIONS, opts.data(), opts.size() * sizeof opts[0]) < 0)
    return ErrnoError("TCP_REPAIR_OPTIONS");
  if (c.options() & TCPI_OPT_TIMESTAMPS)
    TRY(SetInt(fd, SOL_TCP, TCP_TIMESTAMP, static_cast<int>(c.timestamp()), "TCP_TIMESTAMP"));
  // Buffers as large as at dump hold the queues again; that fixes their
  // size (as a program's SO_SNDBUF would), so only where bytes are queued.
  if (!c.outq().empty())
    TRY(SetInt(fd, SOL_SOCKET, SO_SNDBUFFORCE, std::max<int>(c.sndbuf() / 2, c.outq().size()),
               "SO_SNDBUFFORCE"));
  if (!c.inq().empty())
    TRY(SetInt(fd, SOL_SOCKET, SO_RCVBUFFORCE, std::max<int>(c.rcvbuf() / 2, c.inq().size()),
               "SO_RCVBUFFORCE"));
  TRY(FillQueue(fd, TCP_RECV_QUEUE, c.inq().data(), c.inq().size()));
  size_t sent = c.outq().size() - c.unsent();
  TRY(FillQueue(fd, TCP_SEND_QUEUE, c.outq().data(), sent));
  if (c.unsent()) {
    // Never sent: written as the process would, out of repair mode.
    TRY(SetInt(fd, SOL_TCP, TCP_REPAIR, TCP_REPAIR_OFF_NO_WP, "TCP_REPAIR"));
    TRY(FillQueue(fd, -1, c.outq().data() + sent, c.unsent()));
    TRY(SetInt(fd, SOL_TCP, TCP_REPAIR, 1, "TCP_REPAIR"));
  }
  if (c.window()) {
    tcp_repair_window w{c.snd_wl1(), c.snd_wnd(), c.max_window(), c.rcv_wnd(), c.rcv_wup()};
    if (setsockopt(fd, SOL_TCP, TCP_REPAIR_WINDOW, &w, sizeof w) < 0)
      return ErrnoError("TCP_REPAIR_WINDOW");
  }
  return SetInt(fd, SOL_TCP, TCP_REPAIR_QUEUE, TCP_NO_QUEUE, "TCP_REPAIR_QUEUE");
}

const char* TcpStateName(int state) {
  static const char* const kNames[] = {"?",          "ESTABLISHED", "SYN_SENT",  "SYN_RECV",
                                       "FIN_WAIT1",  "FIN_WAIT2",   "TIME_WAIT", "CLOSE",
                                       "CLOSE_WAIT", "LAST_ACK",    "LISTEN",    "CLOSING"};
  return state > 0 && state < 12 ? kNames[state] : "?";
}

// A TCP connection: with --tcp-established locked and read, with
// --tcp-close saved as a closed socket, otherwise refused.
Status CollectConnection(const FdSeen& s, ScopedFd& fd, const std::string& local, int state,
                         img::InetSocketFd* in) {
  std::string peer = TRY(Name(fd.get(), true));
  std::string what = Format("PID %d fd %d is a TCP connection %s -> %s", s.pid, s.fd,
                            AddrText(local).c_str(), peer.empty() ? "?" : AddrText(peer).c_str());
  TcpRepairs* tcp = s.tcp;
  if (tcp && tcp->close()) {
    in->clear_local();  // a socket with no connection, as after a reset
    return Ok{};
  }
  if (!tcp || !tcp->established())
    return MakeError(
        "%s: established connections are carried with --tcp-established (TCP_REPAIR; or saved "
        "as closed with --tcp-close), as CRIU's",
        what.c_str());
  if (state != TCP_ESTABLISHED)
    return MakeError("%s in state %s: only established connections are carried", what.c_str(),
                     TcpStateName(state));
  if (s.sock_proto.rfind("MPTCP", 0) == 0)
    return MakeError(
        "%s over MPTCP: TCP_REPAIR does not apply to MPTCP connections (MPTCP listeners are "
        "carried)",
        what.c_str());
  // Locked with the tree's other connections, then read, in Resolve.
  in->set_peer(peer);
  in->mutable_tcp();
  tcp->Defer(s.pid, s.fd, std::move(fd), local, peer);
  return Ok{};
}

// What a TCP socket is, from TCP_INFO: listening with no connection
// waiting, closed, or a connection.
Status CollectTcpState(const FdSeen& s, ScopedFd& fd, const std::string& local,
                       img::InetSocketFd* in) {
  tcp_info ti{};
  socklen_t len = sizeof ti;
  if (getsockopt(fd.get(), SOL_TCP, TCP_INFO, &ti, &len) < 0) return ErrnoError("TCP_INFO");
  if (ti.tcpi_state == TCP_LISTEN) {
    if (ti.tcpi_unacked)
      return MakeError(
          "PID %d fd %d is a socket listening on %s with %u connection(s) not accept()ed yet: "
          "they cannot be carried; dump again once they are accepted",
          s.pid, s.fd, AddrText(local).c_str(), ti.tcpi_unacked);
    in->set_listening(true);
    in->set_backlog(static_cast<int32_t>(ti.tcpi_sacked));
    return Ok{};
  }
  if (ti.tcpi_state == TCP_CLOSE) return Ok{};
  return CollectConnection(s, fd, local, ti.tcpi_state, in);
}

class InetSocket : public FdKind {
 public:
  img::Fd::KindCase arm() const override { return img::Fd::kInetSocket; }
  const char* name() const override { return "inet socket"; }

  bool Claims(const FdSeen& s) const override {
    for (const char* p : {"TCP", "TCPv6", "UDP", "UDPv6", "MPTCP", "MPTCPv6"})
      if (s.sock_proto == p) return true;
    return false;
  }

  Status Collect(const FdSeen& s, img::Fd* out) const override {
    ScopedFd fd = TRY(TakeFd(s.pid, s.fd));
    img::InetSocketFd* in = out->mutable_inet_socket();
    int family = 0, type = 0, protocol = 0;
    socklen_t len = sizeof(int);
    getsockopt(fd.get(), SOL_SOCKET, SO_DOMAIN, &family, &len);
    getsockopt(fd.get(), SOL_SOCKET, SO_TYPE, &type, &len);
    getsockopt(fd.get(), SOL_SOCKET, SO_PROTOCOL, &protocol, &len);
    in->set_family(family);
    in->set_type(type);
    in->set_protocol(protocol);
    in->set_uid(s.st.st_uid);
    std::string local = TRY(Name(fd.get(), false));
    if (Bound(local)) in->set_local(local);
    int sock = fd.get();  // a connection's stays open in criu-lite (TcpRepairs)
    if (type == SOCK_STREAM) {
      TRY(CollectTcpState(s, fd, local, in));
    } else {
      in->set_peer(TRY(Name(fd.get(), true)));
      int queued = 0;
      if (ioctl(fd.get(), SIOCINQ, &queued) == 0 && queued > 0)
        LOG_WARN(
            "PID %d fd %d: the datagrams waiting in UDP socket %s are not carried (%d bytes "
            "in the first)",
            s.pid, s.fd, AddrText(local).c_str(), queued);
    }
    ScopedFd fresh(socket(family, type, protocol));
    if (!fresh.valid()) return ErrnoError("socket(%d, %d, %d)", family, type, protocol);
    for (OptName o : kOpts) {
      // A connection's MSS, window clamp and buffer sizes are the kernel's
      // tuning (the MSS comes back through TCP_REPAIR_OPTIONS): setting them
      // would pin them.
      if (in->has_tcp() &&
          ((o.level == SOL_TCP && (o.name == TCP_MAXSEG || o.name == TCP_WINDOW_CLAMP)) ||
           (o.level == SOL_SOCKET && (o.name == SO_RCVBUF || o.name == SO_SNDBUF))))
        continue;
      // Multicast is for datagrams (the kernel refuses its options on a stream).
      bool multicast =
          (o.level == SOL_IP && (o.name == IP_MULTICAST_TTL || o.name == IP_MULTICAST_LOOP)) ||
          (o.level == SOL_IPV6 && (o.name == IPV6_MULTICAST_HOPS || o.name == IPV6_MULTICAST_LOOP));
      if (multicast && type == SOCK_STREAM) continue;
      AddIfDiffers(sock, fresh.get(), o, in->mutable_opts());
    }
    return Ok{};
  }

  // The tree's connections, locked together (one nftables transaction, the
  // tree frozen meanwhile), then each read in repair mode.
  Status Resolve(const std::vector<FdRef>& mine, TreeFds& tree) const override {
    TcpRepairs* tcp = tree.tcp();
    if (!tcp) return Ok{};
    TRY(tcp->Lock());
    for (const FdRef& r : mine) {
      img::InetSocketFd* in = r.fd->mutable_inet_socket();
      int fd = tcp->Taken(r.pid, r.fd->fd());
      if (!in->has_tcp() || fd < 0) continue;
      TRY(SaveConnection(fd, in->mutable_tcp())
              .Context(Format("PID %d fd %d is a TCP connection %s -> %s", r.pid, r.fd->fd(),
                              AddrText(in->local()).c_str(), AddrText(in->peer()).c_str())));
    }
    return Ok{};
  }

  Result<ScopedFd> Open(const img::Fd& f, OpenFiles& files) const override {
    const img::InetSocketFd& in = f.inet_socket();
    ScopedFd sock = TRY(MakeAs(in));
    int fd = sock.get();
    // A connection is made in repair mode, which also lets it bind to its
    // listener's port; it leaves repair mode just before the tree runs.
    if (in.has_tcp()) {
      TRY(SetInt(fd, SOL_TCP, TCP_REPAIR, 1, "TCP_REPAIR"));
      files.Repairing(fd);
    }
    auto set = [&](const img::SockOpt& o) { return SetOpt(fd, o, f.fd()); };
    for (const img::SockOpt& o : in.opts())
      if (SteersBind(o)) TRY(set(o));
    if (in.has_tcp()) {
      if (bind(fd, reinterpret_cast<const sockaddr*>(in.local().data()), in.local().size()) < 0)
        return ErrnoError("bind(%s) of fd %d", AddrText(in.local()).c_str(), f.fd());
      TRY(RestoreConnection(fd, in.tcp(), in.peer())
              .Context(Format("the TCP connection %s -> %s of fd %d", AddrText(in.local()).c_str(),
                              AddrText(in.peer()).c_str(), f.fd())));
    } else if (!in.local().empty()) {
      int one = 1;
      setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
      if (bind(fd, reinterpret_cast<const sockaddr*>(in.local().data()), in.local().size()) < 0)
        return ErrnoError("bind(%s) of fd %d", AddrText(in.local()).c_str(), f.fd());
      int zero = 0;
      setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &zero, sizeof zero);
    }
    for (const img::SockOpt& o : in.opts())
      if (!SteersBind(o)) TRY(set(o));
    if (in.listening() && listen(fd, in.backlog()) < 0)
      return ErrnoError("listen(%s) of fd %d", AddrText(in.local()).c_str(), f.fd());
    if (!in.has_tcp() && !in.peer().empty() &&
        connect(fd, reinterpret_cast<const sockaddr*>(in.peer().data()), in.peer().size()) < 0)
      return ErrnoError("connect(%s) of fd %d", AddrText(in.peer()).c_str(), f.fd());
    return sock;
  }

 private:
  // The socket, owned by IN's owner: criu-lite takes that filesystem uid for
  // the moment (this thread only).
  static Result<ScopedFd> MakeAs(const img::InetSocketFd& in) {
    uid_t was = setfsuid(in.uid());
    ScopedFd sock(socket(in.family(), in.type() | SOCK_CLOEXEC, in.protocol()));
    int err = errno;
    setfsuid(was);
    if (!sock.valid()) {
      errno = err;
      return ErrnoError("socket(%d, %d, %d)", in.family(), in.type(), in.protocol());
    }
    return sock;
  }
};

}  // namespace

TcpRepairs::TcpRepairs(bool established, bool close, std::string lock_table)
    : established_(established), close_(close), lock_table_(std::move(lock_table)) {}

TcpRepairs::~TcpRepairs() { LetGo(); }

void TcpRepairs::Defer(pid_t pid, int fd, ScopedFd sock, const std::string& local,
                       const std::string& peer) {
  conns_[{pid, fd}] = Conn{std::move(sock), local, peer};
}

// The network namespace the connections are in, where their lock goes:
// none if it is criu-lite's own. A tree's connections in two namespaces
// are refused (the tree's root's is the one carried).
Result<ScopedFd> TcpRepairs::ConnectionsNamespace() const {
  struct stat own {};
  if (stat("/proc/self/ns/net", &own) < 0) return ErrnoError("stat(/proc/self/ns/net)");
  ScopedFd found;
  ino_t found_ino = 0;
  for (const auto& [at, c] : conns_) {
    ScopedFd ns(ioctl(c.sock.get(), SIOCGSKNS));
    struct stat st {};
    if (!ns.valid() || fstat(ns.get(), &st) < 0)
      return ErrnoError("the network namespace of PID %d fd %d (SIOCGSKNS)", at.first, at.second);
    if (found.valid() && st.st_ino != found_ino)
      return MakeError(
          "PID %d fd %d is a TCP connection in another network namespace than the "
          "tree's other connections: not carried",
          at.first, at.second);
    if (!found.valid()) {
      found_ino = st.st_ino;
      found = std::move(ns);
    }
  }
  if (found_ino == own.st_ino) return ScopedFd();
  return found;
}

Status TcpRepairs::Lock() {
  std::vector<std::pair<std::string, std::string>> tuples;
  for (const auto& [at, c] : conns_)
    if (!c.repairing) tuples.push_back({c.local, c.peer});
  if (tuples.empty()) return Ok{};
  if (!NftablesWork())
    return MakeError(
        "the network lock needs nf_tables, which this kernel does not offer (criu-lite check)");
  // The same connection in several fds (dup, fork) is locked once.
  std::sort(tuples.begin(), tuples.end());
  tuples.erase(std::unique(tuples.begin(), tuples.end()), tuples.end());
  if (!lock_) lock_ = std::make_unique<NetLock>(lock_table_, TRY(ConnectionsNamespace()));
  auto t0 = std::chrono::steady_clock::now();
  Status locked = lock_->Add(tuples);
  lock_usec_ +=
      std::chrono::duration_cast<std::chrono::microseconds>(std::chrono::steady_clock::now() - t0)
          .count();
  TRY(locked);
  for (auto& [at, c] : conns_) {
    if (c.repairing) continue;
    TRY(SetInt(c.sock.get(), SOL_TCP, TCP_REPAIR, 1, "TCP_REPAIR")
            .Context(Format("PID %d fd %d", at.first, at.second)));
    c.repairing = true;
  }
  return Ok{};
}

int TcpRepairs::Taken(pid_t pid, int fd) const {
  auto it = conns_.find({pid, fd});
  return it == conns_.end() || !it->second.repairing ? -1 : it->second.sock.get();
}

std::string TcpRepairs::lock_table() const { return lock_ && lock_->made() ? lock_table_ : ""; }

std::string TcpRepairs::Keep() {
  kept_ = true;
  conns_.clear();  // in repair mode: the tree's close sends nothing
  return lock_table();
}

void TcpRepairs::LetGo() {
  if (kept_) return;
  for (auto& [at, c] : conns_) {
    int off = TCP_REPAIR_OFF;
    if (c.repairing && setsockopt(c.sock.get(), SOL_TCP, TCP_REPAIR, &off, sizeof off) < 0)
      LOG_ERROR("a TCP connection of the tree stays in repair mode: %s", strerror(errno));
  }
  conns_.clear();
  if (lock_ && lock_->made())
    if (Status st = Unlock(lock_table_, lock_->netns()); !st.ok())
      LOG_ERROR("%s", st.error().message.c_str());
  lock_.reset();
}

const FdKind& InetSocketKind() {
  static const InetSocket kind;
  return kind;
}

}  // namespace crl
