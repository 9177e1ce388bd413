// The network side of a process: inet sockets.
#include <arpa/inet.h>
#include <linux/genetlink.h>
#include <linux/netlink.h>
#include <linux/rtnetlink.h>
#include <net/if.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/un.h>

#include "test-containers/workload/workload.h"

namespace wl {
namespace {

struct Sock {
  const char* what;
  int fd;
  sockaddr_storage name;  // getsockname before the dump
};

sockaddr_storage NameOf(int fd) {
  sockaddr_storage ss{};
  socklen_t len = sizeof ss;
  getsockname(fd, reinterpret_cast<sockaddr*>(&ss), &len);
  return ss;
}
socklen_t LenOf(const sockaddr_storage& ss) {
  return ss.ss_family == AF_INET6 ? sizeof(sockaddr_in6) : sizeof(sockaddr_in);
}
int Opt(int fd, int level, int name) {
  int v = -1;
  socklen_t len = sizeof v;
  getsockopt(fd, level, name, &v, &len);
  return v;
}
bool SetOpt(int fd, int level, int name, int v) {
  return setsockopt(fd, level, name, &v, sizeof v) == 0;
}
int Listener(int family, const char* addr, int backlog) {
  int fd = socket(family, SOCK_STREAM, 0);
  sockaddr_storage ss{};
  if (family == AF_INET) {
    auto* a = reinterpret_cast<sockaddr_in*>(&ss);
    a->sin_family = AF_INET;
    inet_pton(AF_INET, addr, &a->sin_addr);
  } else {
    auto* a = reinterpret_cast<sockaddr_in6*>(&ss);
    a->sin6_family = AF_INET6;
    inet_pton(AF_INET6, addr, &a->sin6_addr);
  }
  if (fd < 0 || bind(fd, reinterpret_cast<sockaddr*>(&ss), LenOf(ss)) < 0) return -1;
  if (backlog >= 0 && listen(fd, backlog) < 0) return -1;
  return fd;
}
// A client connects to the address LISTENERS share (through loopback:
// SO_REUSEPORT listeners share one), and the one of them the kernel picks
// accepts; each side sends the other a line. Returns the fd that accepted
// (-1 on failure).
int ServedBy(const std::vector<int>& listeners) {
  sockaddr_storage to = NameOf(listeners[0]);
  if (to.ss_family == AF_INET6) {
    auto* a = reinterpret_cast<sockaddr_in6*>(&to);
    if (IN6_IS_ADDR_UNSPECIFIED(&a->sin6_addr)) a->sin6_addr = in6addr_loopback;
  }
  int c = socket(to.ss_family, SOCK_STREAM, 0);
  if (c < 0 || connect(c, reinterpret_cast<sockaddr*>(&to), LenOf(to)) < 0) return -1;
  std::vector<pollfd> p;
  for (int l : listeners) p.push_back({l, POLLIN, 0});
  int by = -1;
  if (poll(p.data(), p.size(), 2000) > 0)
    for (const pollfd& q : p)
      if (q.revents & POLLIN) by = q.fd;
  int s = by >= 0 ? accept(by, nullptr, nullptr) : -1;
  char buf[8] = {};
  bool ok = s >= 0 && write(c, "ping", 4) == 4 && read(s, buf, 4) == 4 &&
            write(s, "pong", 4) == 4 && read(c, buf + 4, 4) == 4 &&
            std::string(buf, 8) == "pingpong";
  close(c);
  close(s);
  return ok ? by : -1;
}
bool Serves(int listener) { return ServedBy({listener}) == listener; }

}  // namespace

// Inet sockets in every state but connected TCP: listeners on IPv4 and
// IPv6 (v6-only and dual-stack), two sharing a port with SO_REUSEPORT, an
// MPTCP listener, a TCP socket bound and one never bound, UDP sockets bound
// to a device and connected; with options set by hand. After restore each
// has the same address, backlog and options, the listeners serve a new
// client, the UDP sockets pass a datagram.
int Inet() {
  int l4 = Listener(AF_INET, "127.0.0.1", 17), l6 = socket(AF_INET6, SOCK_STREAM, 0);
  int dual = socket(AF_INET6, SOCK_STREAM, 0), p1 = socket(AF_INET, SOCK_STREAM, 0),
      p2 = socket(AF_INET, SOCK_STREAM, 0);
  if (l4 < 0 || l6 < 0 || dual < 0 || p1 < 0 || p2 < 0) return 2;
  if (!SetOpt(l4, SOL_SOCKET, SO_KEEPALIVE, 1) || !SetOpt(l4, SOL_TCP, TCP_KEEPIDLE, 77) ||
      !SetOpt(l4, SOL_TCP, TCP_NODELAY, 1) || !SetOpt(l4, SOL_SOCKET, SO_RCVBUF, 65536) ||
      !SetOpt(l4, SOL_SOCKET, SO_REUSEADDR, 1))
    return 2;
  // l6: v6-only, deferred accept; dual: both families.
  sockaddr_in6 any6{};
  any6.sin6_family = AF_INET6;
  if (!SetOpt(l6, SOL_IPV6, IPV6_V6ONLY, 1) || bind(l6, (sockaddr*)&any6, sizeof any6) < 0 ||
      listen(l6, 5) < 0 || !SetOpt(l6, SOL_TCP, TCP_DEFER_ACCEPT, 5))
    return 2;
  if (!SetOpt(dual, SOL_IPV6, IPV6_V6ONLY, 0) || bind(dual, (sockaddr*)&any6, sizeof any6) < 0 ||
      listen(dual, 64) < 0)
    return 2;
  // Two listeners on one port (SO_REUSEPORT), as nginx's workers have.
  sockaddr_in lo{};
  lo.sin_family = AF_INET;
  lo.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (!SetOpt(p1, SOL_SOCKET, SO_REUSEPORT, 1) || bind(p1, (sockaddr*)&lo, sizeof lo) < 0) return 2;
  sockaddr_storage p1_name = NameOf(p1);
  memcpy(&lo, &p1_name, sizeof lo);
  if (!SetOpt(p2, SOL_SOCKET, SO_REUSEPORT, 1) || bind(p2, (sockaddr*)&lo, sizeof lo) < 0 ||
      listen(p1, 8) < 0 || listen(p2, 9) < 0)
    return 2;
  int mptcp = socket(AF_INET, SOCK_STREAM, IPPROTO_MPTCP);  // -1 where MPTCP is off
  if (mptcp >= 0) {
    sockaddr_in m{};
    m.sin_family = AF_INET;
    m.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (bind(mptcp, (sockaddr*)&m, sizeof m) < 0 || listen(mptcp, 12) < 0) return 2;
  }
  int bound = Listener(AF_INET, "127.0.0.1", -1), unbound = socket(AF_INET6, SOCK_STREAM, 0);
  if (bound < 0 || unbound < 0 || !SetOpt(unbound, SOL_TCP, TCP_CORK, 1)) return 2;
  // UDP: one bound to an address and to lo, one connected to it.
  int u1 = socket(AF_INET, SOCK_DGRAM, 0), u2 = socket(AF_INET, SOCK_DGRAM, 0);
  sockaddr_in u{};
  u.sin_family = AF_INET;
  u.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (u1 < 0 || u2 < 0 || setsockopt(u1, SOL_SOCKET, SO_BINDTODEVICE, "lo", 3) < 0 ||
      bind(u1, (sockaddr*)&u, sizeof u) < 0)
    return 2;
  sockaddr_storage u1name = NameOf(u1);
  if (connect(u2, (sockaddr*)&u1name, sizeof(sockaddr_in)) < 0 || !SetOpt(u2, SOL_IP, IP_TOS, 0x10))
    return 2;
  std::vector<Sock> socks = {{"l4", l4, {}},           {"l6", l6, {}}, {"dual", dual, {}},
                             {"p1", p1, {}},           {"p2", p2, {}}, {"bound", bound, {}},
                             {"unbound", unbound, {}}, {"u1", u1, {}}, {"u2", u2, {}}};
  if (mptcp >= 0) socks.push_back({"mptcp", mptcp, {}});
  for (Sock& s : socks) s.name = NameOf(s.fd);
  InstallCheckHandler();
  Ready();
  WaitForCheck();
  for (const Sock& s : socks) {
    sockaddr_storage now = NameOf(s.fd);
    EXPECT(memcmp(&now, &s.name, LenOf(s.name)) == 0, "%s has another address", s.what);
  }
  tcp_info ti{};
  socklen_t len = sizeof ti;
  EXPECT(getsockopt(l4, SOL_TCP, TCP_INFO, &ti, &len) == 0 && ti.tcpi_sacked == 17,
         "l4's backlog is %u, not 17", ti.tcpi_sacked);
  EXPECT(Opt(l4, SOL_SOCKET, SO_KEEPALIVE) == 1 && Opt(l4, SOL_TCP, TCP_KEEPIDLE) == 77 &&
             Opt(l4, SOL_TCP, TCP_NODELAY) == 1 && Opt(l4, SOL_SOCKET, SO_REUSEADDR) == 1 &&
             Opt(l4, SOL_SOCKET, SO_RCVBUF) == 131072,
         "l4's options: keepalive %d idle %d nodelay %d reuseaddr %d rcvbuf %d",
         Opt(l4, SOL_SOCKET, SO_KEEPALIVE), Opt(l4, SOL_TCP, TCP_KEEPIDLE),
         Opt(l4, SOL_TCP, TCP_NODELAY), Opt(l4, SOL_SOCKET, SO_REUSEADDR),
         Opt(l4, SOL_SOCKET, SO_RCVBUF));
  EXPECT(Opt(l6, SOL_IPV6, IPV6_V6ONLY) == 1 && Opt(dual, SOL_IPV6, IPV6_V6ONLY) == 0,
         "v6-only: l6 %d, dual %d", Opt(l6, SOL_IPV6, IPV6_V6ONLY),
         Opt(dual, SOL_IPV6, IPV6_V6ONLY));
  EXPECT(Opt(l6, SOL_TCP, TCP_DEFER_ACCEPT) > 0, "l6 lost TCP_DEFER_ACCEPT");
  EXPECT(Opt(p1, SOL_SOCKET, SO_REUSEPORT) == 1 && Opt(p2, SOL_SOCKET, SO_REUSEPORT) == 1,
         "the SO_REUSEPORT pair lost it");
  EXPECT(Opt(unbound, SOL_TCP, TCP_CORK) == 1, "the unbound socket lost TCP_CORK");
  EXPECT(Opt(bound, SOL_SOCKET, SO_ACCEPTCONN) == 0, "the bound socket listens");
  for (int fd : {l4, dual})
    EXPECT(Serves(fd), "a listener (fd %d) does not serve a new client", fd);
  // The kernel spreads a port's connections over its SO_REUSEPORT group.
  bool by_p1 = false, by_p2 = false;
  for (int i = 0; i < 64 && !(by_p1 && by_p2); i++) {
    int by = ServedBy({p1, p2});
    EXPECT(by >= 0, "the SO_REUSEPORT pair does not serve a new client");
    if (by < 0) break;
    (by == p1 ? by_p1 : by_p2) = true;
  }
  EXPECT(by_p1 && by_p2, "one of the SO_REUSEPORT pair gets no connection (%d, %d)", by_p1, by_p2);
  if (mptcp >= 0) {
    EXPECT(Opt(mptcp, SOL_SOCKET, SO_PROTOCOL) == IPPROTO_MPTCP, "the MPTCP listener is not MPTCP");
    EXPECT(Serves(mptcp), "the MPTCP listener does not serve a new client");
  }
  char dev[16] = {};
  socklen_t dlen = sizeof dev;
  EXPECT(getsockopt(u1, SOL_SOCKET, SO_BINDTODEVICE, dev, &dlen) == 0 && std::string(dev) == "lo",
         "u1 is bound to device '%s'", dev);
  EXPECT(Opt(u2, SOL_IP, IP_TOS) == 0x10, "u2's TOS is %d", Opt(u2, SOL_IP, IP_TOS));
  char got[8] = {};
  EXPECT(send(u2, "dgram", 5, 0) == 5 && recv(u1, got, sizeof got, 0) == 5 &&
             std::string(got) == "dgram",
         "the connected UDP socket's datagram did not arrive");
  Report();
}

}  // namespace wl

namespace wl {
namespace {

// A connected pair over loopback (FAMILY): the client end and the server's.
bool Connected(int family, int* client, int* server) {
  sockaddr_storage ss{};
  socklen_t len;
  if (family == AF_INET6) {
    auto* a = reinterpret_cast<sockaddr_in6*>(&ss);
    a->sin6_family = AF_INET6;
    a->sin6_addr = in6addr_loopback;
    len = sizeof *a;
  } else {
    auto* a = reinterpret_cast<sockaddr_in*>(&ss);
    a->sin_family = AF_INET;
    a->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    len = sizeof *a;
  }
  int l = socket(family, SOCK_STREAM, 0);
  *client = socket(family, SOCK_STREAM, 0);
  if (l < 0 || *client < 0 || bind(l, (sockaddr*)&ss, len) < 0 || listen(l, 1) < 0 ||
      getsockname(l, (sockaddr*)&ss, &len) < 0 || connect(*client, (sockaddr*)&ss, len) < 0)
    return false;
  *server = accept(l, nullptr, nullptr);
  close(l);
  return *server >= 0;
}

unsigned char Byte(size_t i) { return static_cast<unsigned char>(i * 7 + i / 4096); }

}  // namespace

// TCP connections with both ends in the process (IPv4 and IPv6), data in
// flight both ways: bytes the server has not read, and megabytes the client
// has not read, more than its receive buffer holds (so that the server's
// send queue holds bytes sent and not acknowledged, and bytes never sent).
// After restore every byte arrives, in order, and the connections go on.
int Tcp() {
  int c4, s4, c6, s6;
  if (!Connected(AF_INET, &c4, &s4) || !Connected(AF_INET6, &c6, &s6)) return 2;
  int one = 1, small = 65536;
  setsockopt(c4, SOL_TCP, TCP_NODELAY, &one, sizeof one);
  setsockopt(c4, SOL_SOCKET, SO_RCVBUF, &small, sizeof small);
  const size_t kBig = 4 << 20;
  std::vector<unsigned char> big(kBig);
  for (size_t i = 0; i < kBig; i++) big[i] = Byte(i);
  if (write(c4, "hello server", 12) != 12 || write(c6, "v6 hello", 8) != 8) return 2;
  fcntl(s4, F_SETFL, O_NONBLOCK);
  size_t sent = 0;
  for (int stalls = 0; sent < kBig && stalls < 50;) {
    ssize_t n = write(s4, big.data() + sent, kBig - sent);
    if (n > 0) {
      sent += n;
      stalls = 0;
    } else {
      stalls++;
      usleep(2000);
    }
  }
  fcntl(s4, F_SETFL, 0);
  WriteFile("tcp-sent", std::to_string(sent) + "\n");
  InstallCheckHandler();
  Ready();
  WaitForCheck();
  char buf[16] = {};
  EXPECT(read(s4, buf, 12) == 12 && std::string(buf) == "hello server", "the server read '%s'",
         buf);
  memset(buf, 0, sizeof buf);
  EXPECT(read(s6, buf, 8) == 8 && std::string(buf) == "v6 hello", "the v6 server read '%s'", buf);
  std::thread rest([&] {  // what did not fit before the dump
    if (sent < kBig) {
      ssize_t n = write(s4, big.data() + sent, kBig - sent);
      (void)n;
    }
  });
  std::vector<unsigned char> got(kBig);
  size_t have = 0;
  while (have < kBig) {
    ssize_t n = read(c4, got.data() + have, kBig - have);
    if (n <= 0) break;
    have += n;
  }
  rest.join();
  EXPECT(have == kBig, "the client read %zu of %zu bytes", have, kBig);
  size_t bad = 0;
  while (bad < have && got[bad] == big[bad]) bad++;
  EXPECT(bad == have, "byte %zu of the stream differs", bad);
  EXPECT(write(s6, "more", 4) == 4 && read(c6, buf, 4) == 4 && std::string(buf, 4) == "more",
         "the v6 connection does not go on");
  Report();
}

}  // namespace wl

namespace wl {
namespace {

sockaddr_un UnixName(const std::string& name, socklen_t* len) {
  sockaddr_un a{};
  a.sun_family = AF_UNIX;
  memcpy(a.sun_path, name.data(), name.size());
  if (name[0] == '@') a.sun_path[0] = 0;
  *len = offsetof(sockaddr_un, sun_path) + name.size();
  return a;
}

int BoundUnix(int type, const std::string& name) {
  int fd = socket(AF_UNIX, type, 0);
  socklen_t len;
  sockaddr_un a = UnixName(name, &len);
  return fd >= 0 && bind(fd, (sockaddr*)&a, len) == 0 ? fd : -1;
}

// A client of NAME (TYPE) is accepted by LISTENER and passes a message.
bool UnixServes(int listener, int type, const std::string& name) {
  int c = socket(AF_UNIX, type, 0);
  socklen_t len;
  sockaddr_un a = UnixName(name, &len);
  if (c < 0 || connect(c, (sockaddr*)&a, len) < 0) return false;
  int s = accept(listener, nullptr, nullptr);
  char buf[4] = {};
  bool ok = s >= 0 && write(c, "uds", 3) == 3 && read(s, buf, 3) == 3 && std::string(buf) == "uds";
  close(c);
  close(s);
  return ok;
}

}  // namespace

// Unix sockets on their own: a stream listener bound to a path (mode 0640,
// backlog 7), a seqpacket listener with an abstract name, a datagram socket
// bound to a path, and one neither bound nor connected. After restore each
// has its name, the path its mode, and each serves a new client.
int Unix() {
  std::string path = g_dir + "/listen.sock", dpath = g_dir + "/dgram.sock";
  std::string abstract = "@crl-unix-" + std::to_string(getpid());
  int l = BoundUnix(SOCK_STREAM, path), sp = BoundUnix(SOCK_SEQPACKET, abstract);
  int dg = BoundUnix(SOCK_DGRAM, dpath), loose = socket(AF_UNIX, SOCK_STREAM, 0);
  if (l < 0 || sp < 0 || dg < 0 || loose < 0 || listen(l, 7) < 0 || listen(sp, 3) < 0 ||
      chmod(path.c_str(), 0640) < 0)
    return 2;
  InstallCheckHandler();
  Ready();
  WaitForCheck();
  struct stat st {};
  EXPECT(stat(path.c_str(), &st) == 0 && S_ISSOCK(st.st_mode) && (st.st_mode & 07777) == 0640,
         "%s has mode 0%o", path.c_str(), st.st_mode & 07777);
  EXPECT(UnixServes(l, SOCK_STREAM, path), "the listener on %s serves no client", path.c_str());
  EXPECT(UnixServes(sp, SOCK_SEQPACKET, abstract), "the abstract listener serves no client");
  int c = socket(AF_UNIX, SOCK_DGRAM, 0);
  socklen_t len;
  sockaddr_un a = UnixName(dpath, &len);
  char buf[8] = {};
  EXPECT(sendto(c, "dgram", 5, 0, (sockaddr*)&a, len) == 5 && recv(dg, buf, sizeof buf, 0) == 5,
         "the datagram socket on %s receives nothing", dpath.c_str());
  close(c);
  EXPECT(Opt(loose, SOL_SOCKET, SO_TYPE) == SOCK_STREAM, "the loose socket is gone");
  Report();
}

}  // namespace wl

namespace wl {
namespace {

// SO_PEERCRED of FD as "PID UID GID".
std::string PeerCred(int fd) {
  ucred c{};
  socklen_t len = sizeof c;
  if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &c, &len) < 0) return "error";
  return Format2("%d %u %u", c.pid, c.uid, c.gid);
}

// SO_PEERGROUPS of FD, space-separated.
std::string PeerGroups(int fd) {
  gid_t g[64];
  socklen_t len = sizeof g;
  if (getsockopt(fd, SOL_SOCKET, SO_PEERGROUPS, g, &len) < 0) return "error";
  std::string out;
  for (size_t i = 0; i < len / sizeof *g; i++) out += Format2("%s%u", out.empty() ? "" : " ", g[i]);
  return out;
}

std::string SockName(int fd, bool peer) {
  sockaddr_un a{};
  socklen_t len = sizeof a;
  if ((peer ? getpeername : getsockname)(fd, (sockaddr*)&a, &len) < 0) return "error";
  if (len <= offsetof(sockaddr_un, sun_path)) return "";
  return a.sun_path[0] ? std::string(a.sun_path) : "@" + std::string(a.sun_path + 1);
}

std::string ReadSome(int fd, size_t n) {
  std::string s(n, 0);
  ssize_t got = recv(fd, s.data(), n, MSG_DONTWAIT);
  return got < 0 ? "error" : s.substr(0, got);
}

// The client, running as nobody (uid and gid 65534, groups 100 and 65534):
// one connection accepted by its parent with data each way in flight, one
// waiting to be accepted, and a socketpair of its own. At the check it says
// what it sees in DIR/child.fail (empty: all well).
[[noreturn]] void UnixClient(const std::string& path, int go, int ready) {
  gid_t groups[] = {65534, 100};
  if (setgroups(2, groups) < 0 || setresgid(65534, 65534, 65534) < 0 ||
      setresuid(65534, 65534, 65534) < 0)
    _exit(2);
  socklen_t len;
  sockaddr_un a = UnixName(path, &len);
  int c1 = socket(AF_UNIX, SOCK_STREAM, 0), c2 = socket(AF_UNIX, SOCK_STREAM, 0), sv[2];
  if (connect(c1, (sockaddr*)&a, len) < 0 || write(c1, "to-server", 9) != 9 ||
      connect(c2, (sockaddr*)&a, len) < 0 || socketpair(AF_UNIX, SOCK_SEQPACKET, 0, sv) < 0)
    _exit(3);
  char c = 'r';
  if (write(ready, &c, 1) != 1 || read(go, &c, 1) != 1) _exit(4);  // then the check
  std::string fail, me = Format2("%d 65534 65534", getpid()), parent = Format2("%d 0 0", getppid());
  auto expect = [&](bool ok, const std::string& what) { fail += ok ? "" : what + "\n"; };
  std::string got = ReadSome(c1, 64);
  expect(got == "to-client", "c1 read " + got);
  expect(PeerCred(c1) == parent, "c1's peer is " + PeerCred(c1) + ", not " + parent);
  expect(SockName(c1, true) == path, "c1 is connected to " + SockName(c1, true));
  expect(PeerCred(c2) == parent, "c2's peer is " + PeerCred(c2));
  expect(PeerCred(sv[0]) == me && PeerCred(sv[1]) == me, "the pair's peer is " + PeerCred(sv[0]));
  expect(PeerGroups(sv[0]) == "100 65534", "the pair's peer groups are " + PeerGroups(sv[0]));
  expect(send(sv[0], "p", 1, 0) == 1 && ReadSome(sv[1], 8) == "p", "the pair passes nothing");
  WriteFile("child.fail", fail);
  _exit(0);
}

}  // namespace

// Unix connections: a listener on a path with a connection from a child
// running as nobody accepted (data in flight each way), and one waiting to
// be accepted; a socketpair of the child's; a socket whose peer was closed
// with data left to read; a listener whose file was deleted. After restore
// each end has its name, its peer's credentials (SO_PEERCRED, as the task
// that made the connection), its data, and the waiting connection is
// accepted.
int UnixConns() {
  std::string path = g_dir + "/conns.sock", gone = g_dir + "/gone.sock";
  int l = BoundUnix(SOCK_STREAM, path), lg = BoundUnix(SOCK_STREAM, gone), go[2], ready[2], sv[2];
  if (l < 0 || lg < 0 || listen(l, 4) < 0 || listen(lg, 2) < 0 || unlink(gone.c_str()) < 0 ||
      pipe(go) < 0 || pipe(ready) < 0 || socketpair(AF_UNIX, SOCK_STREAM, 0, sv) < 0 ||
      write(sv[1], "bye", 3) != 3)
    return 2;
  close(sv[1]);
  // The child, as nobody, connects to PATH.
  if (chmod(g_dir.c_str(), 0777) < 0 || chmod(path.c_str(), 0666) < 0) return 2;
  pid_t kid = fork();
  if (kid == 0) UnixClient(path, go[0], ready[1]);
  char c;
  int s1 = accept(l, nullptr, nullptr);
  if (s1 < 0 || write(s1, "to-client", 9) != 9 || read(ready[0], &c, 1) != 1) return 2;
  InstallCheckHandler();
  Ready();
  WaitForCheck();
  std::string kid_cred = Format2("%d 65534 65534", kid);
  std::string got = ReadSome(s1, 64);
  EXPECT(got == "to-server", "s1 read %s", got.c_str());
  EXPECT(PeerCred(s1) == kid_cred, "s1's peer is %s, not %s", PeerCred(s1).c_str(),
         kid_cred.c_str());
  EXPECT(PeerGroups(s1) == "100 65534", "s1's peer groups are %s", PeerGroups(s1).c_str());
  EXPECT(SockName(s1, false) == path, "s1 is named %s", SockName(s1, false).c_str());
  int s2 = accept4(l, nullptr, nullptr, SOCK_NONBLOCK);
  EXPECT(s2 >= 0 && PeerCred(s2) == kid_cred, "the waiting connection: %s",
         s2 < 0 ? strerror(errno) : PeerCred(s2).c_str());
  EXPECT(ReadSome(sv[0], 8) == "bye" && ReadSome(sv[0], 8).empty(),
         "the socket whose peer was closed reads no 'bye' then end of file");
  EXPECT(SockName(lg, false) == gone && access(gone.c_str(), F_OK) < 0,
         "the listener on a deleted file is named %s", SockName(lg, false).c_str());
  EXPECT(write(go[1], "c", 1) == 1, "no word to the child");
  int st;
  EXPECT(waitpid(kid, &st, 0) == kid && WIFEXITED(st) && WEXITSTATUS(st) == 0,
         "the child ended with %d", st);
  std::string kid_fail = ReadFileOr("child.fail");
  EXPECT(kid_fail.empty(), "the child: %s", kid_fail.c_str());
  Report();
}

}  // namespace wl

namespace wl {
namespace {

// FD's port id, first 32 groups and every group it listens to, as text.
std::string NetlinkState(int fd) {
  sockaddr_nl a{};
  socklen_t len = sizeof a;
  uint32_t mask[4] = {};
  socklen_t mlen = sizeof mask;
  if (getsockname(fd, (sockaddr*)&a, &len) < 0 ||
      getsockopt(fd, SOL_NETLINK, NETLINK_LIST_MEMBERSHIPS, mask, &mlen) < 0)
    return "error";
  return Format2("port %u groups %x memberships %x %x", a.nl_pid, a.nl_groups, mask[0], mask[1]);
}

// Sends REQ (TYPE, FLAGS, BODY) on FD and says whether the kernel answers
// it (the answer to our sequence number, to our port; notifications passed
// over).
bool KernelAnswers(int fd, uint16_t type, uint16_t flags, const void* body, size_t blen) {
  char buf[1 << 16];
  auto* h = reinterpret_cast<nlmsghdr*>(buf);
  *h = nlmsghdr{static_cast<uint32_t>(NLMSG_LENGTH(blen)), type,
                static_cast<uint16_t>(NLM_F_REQUEST | flags), 4242, 0};
  memcpy(NLMSG_DATA(h), body, blen);
  sockaddr_nl kernel{};
  kernel.nl_family = AF_NETLINK;
  if (sendto(fd, buf, h->nlmsg_len, 0, (sockaddr*)&kernel, sizeof kernel) < 0) return false;
  // Read to the end of the answer (NLMSG_DONE): nothing is left waiting.
  bool answered = false;
  for (int tries = 0; tries < 1000; tries++) {
    ssize_t n = recv(fd, buf, sizeof buf, 0);
    if (n < 0) return false;
    for (auto* m = h; NLMSG_OK(m, n); m = NLMSG_NEXT(m, n)) {
      if (m->nlmsg_seq != 4242) continue;
      if (m->nlmsg_type == NLMSG_DONE || m->nlmsg_type == NLMSG_ERROR) return answered;
      answered = true;
    }
  }
  return false;
}

}  // namespace

// Netlink sockets as programs keep them: a route socket listening to link
// and address changes and to a group past 32 (NETLINK_ADD_MEMBERSHIP), with
// NETLINK_EXT_ACK and NETLINK_NO_ENOBUFS; a uevent socket; a generic
// socket used once (so bound by the kernel) and one never used. After
// restore each has its port, groups and options, and the kernel answers
// requests on the first and the third.
int Netlink() {
  int rt = socket(AF_NETLINK, SOCK_RAW, NETLINK_ROUTE);
  int ue = socket(AF_NETLINK, SOCK_DGRAM, NETLINK_KOBJECT_UEVENT);
  int gen = socket(AF_NETLINK, SOCK_RAW, NETLINK_GENERIC);
  int idle = socket(AF_NETLINK, SOCK_RAW, NETLINK_GENERIC);
  sockaddr_nl a{};
  a.nl_family = AF_NETLINK;
  a.nl_groups = RTMGRP_LINK | RTMGRP_IPV4_IFADDR;
  int one = 1, high = RTNLGRP_BRVLAN;
  if (rt < 0 || ue < 0 || gen < 0 || idle < 0 || bind(rt, (sockaddr*)&a, sizeof a) < 0 ||
      setsockopt(rt, SOL_NETLINK, NETLINK_ADD_MEMBERSHIP, &high, sizeof high) < 0 ||
      setsockopt(rt, SOL_NETLINK, NETLINK_EXT_ACK, &one, sizeof one) < 0 ||
      setsockopt(rt, SOL_NETLINK, NETLINK_NO_ENOBUFS, &one, sizeof one) < 0)
    return 2;
  a.nl_groups = 1;
  if (bind(ue, (sockaddr*)&a, sizeof a) < 0) return 2;
  genlmsghdr family{CTRL_CMD_GETFAMILY, 1, 0};
  if (!KernelAnswers(gen, GENL_ID_CTRL, NLM_F_DUMP, &family, sizeof family)) return 2;
  std::string before[] = {NetlinkState(rt), NetlinkState(ue), NetlinkState(gen),
                          NetlinkState(idle)};
  InstallCheckHandler();
  Ready();
  WaitForCheck();
  std::string after[] = {NetlinkState(rt), NetlinkState(ue), NetlinkState(gen), NetlinkState(idle)};
  for (int i = 0; i < 4; i++)
    EXPECT(before[i] == after[i], "netlink socket %d: %s, was %s", i, after[i].c_str(),
           before[i].c_str());
  EXPECT(
      Opt(rt, SOL_NETLINK, NETLINK_EXT_ACK) == 1 && Opt(rt, SOL_NETLINK, NETLINK_NO_ENOBUFS) == 1,
      "the route socket lost its options");
  ifinfomsg link{};
  EXPECT(KernelAnswers(rt, RTM_GETLINK, NLM_F_DUMP, &link, sizeof link),
         "the kernel does not answer the route socket");
  EXPECT(KernelAnswers(gen, GENL_ID_CTRL, NLM_F_DUMP, &family, sizeof family),
         "the kernel does not answer the generic socket");
  Report();
}

}  // namespace wl

namespace wl {

// A TCP server on loopback with N connections from clients of the same
// process, idle: at the check each passes a message both ways.
int Conns(int n) {
  int l = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof a;
  if (l < 0 || bind(l, (sockaddr*)&a, sizeof a) < 0 || listen(l, 128) < 0 ||
      getsockname(l, (sockaddr*)&a, &len) < 0)
    return 2;
  std::vector<std::pair<int, int>> conns;
  for (int i = 0; i < n; i++) {
    int c = socket(AF_INET, SOCK_STREAM, 0);
    if (c < 0 || connect(c, (sockaddr*)&a, sizeof a) < 0) return 2;
    int s = accept(l, nullptr, nullptr);
    if (s < 0) return 2;
    conns.push_back({c, s});
  }
  InstallCheckHandler();
  Ready();
  WaitForCheck();
  int bad = 0;
  for (auto [c, s] : conns) {
    char buf[2];
    bool ok = write(c, "q", 1) == 1 && read(s, buf, 1) == 1 && write(s, "a", 1) == 1 &&
              read(c, buf, 1) == 1 && buf[0] == 'a';
    bad += !ok;
  }
  EXPECT(bad == 0, "%d of %d connections do not pass data", bad, n);
  Report();
}

}  // namespace wl

namespace wl {

// ---- netns ---------------------------------------------------------------------
// A network namespace of the workload's own with loopback up, and sockets
// made in it: a TCP listener on 127.0.0.1:7777 and a unix listener on the
// abstract name "crl-netns" (both names exist only in this namespace: the
// test checks the host cannot reach the unix one), a UDP socket, and a
// unix connection a child made to the listener, accepted. After restore
// loopback is up, both listeners take new connections, and the accepted
// connection passes bytes both ways, each end's peer credentials naming the
// other's maker.
bool LoopbackUp() {
  int s = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  ifreq req{};
  strcpy(req.ifr_name, "lo");
  bool up = s >= 0 && ioctl(s, SIOCGIFFLAGS, &req) == 0 && (req.ifr_flags & IFF_UP);
  close(s);
  return up;
}

sockaddr_un NetNsName(socklen_t* len) {
  sockaddr_un a{};
  a.sun_family = AF_UNIX;
  memcpy(a.sun_path, "\0crl-netns", 10);
  *len = offsetof(sockaddr_un, sun_path) + 10;
  return a;
}

bool NewNetNamespaceWithLoopbackUp() {
  if (unshare(CLONE_NEWNET) < 0) return false;
  int s = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  ifreq req{};
  strcpy(req.ifr_name, "lo");
  bool up = ioctl(s, SIOCGIFFLAGS, &req) == 0 && ((req.ifr_flags |= IFF_UP), true) &&
            ioctl(s, SIOCSIFFLAGS, &req) == 0;
  close(s);
  return up && LoopbackUp();
}

int NetNs() {
  if (!NewNetNamespaceWithLoopbackUp()) return 2;
  sockaddr_in tcp{};
  tcp.sin_family = AF_INET;
  tcp.sin_port = htons(7777);
  tcp.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  int tl = socket(AF_INET, SOCK_STREAM, 0), one = 1;
  setsockopt(tl, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  if (bind(tl, reinterpret_cast<sockaddr*>(&tcp), sizeof tcp) < 0 || listen(tl, 8) < 0) return 2;
  int udp = socket(AF_INET, SOCK_DGRAM, 0);
  sockaddr_in u = tcp;
  u.sin_port = htons(7778);
  if (bind(udp, reinterpret_cast<sockaddr*>(&u), sizeof u) < 0) return 2;
  socklen_t len;
  sockaddr_un name = NetNsName(&len);
  int ul = socket(AF_UNIX, SOCK_STREAM, 0);
  if (bind(ul, reinterpret_cast<sockaddr*>(&name), len) < 0 || listen(ul, 8) < 0) return 2;
  pid_t kid = fork();
  if (kid == 0) {
    int c = socket(AF_UNIX, SOCK_STREAM, 0);
    if (connect(c, reinterpret_cast<sockaddr*>(&name), len) < 0) _exit(2);
    InstallCheckHandler();
    WaitForCheck();
    char b[4] = {};
    ucred peer{};
    socklen_t plen = sizeof peer;
    bool ok = write(c, "ping", 4) == 4 && read(c, b, 4) == 4 && memcmp(b, "pong", 4) == 0;
    // The listener's maker: the root.
    ok = ok && getsockopt(c, SOL_SOCKET, SO_PEERCRED, &peer, &plen) == 0 && peer.pid == getppid();
    _exit(ok && LoopbackUp() ? 0 : 1);
  }
  int conn = accept(ul, nullptr, nullptr);
  if (conn < 0) return 2;
  InstallCheckHandler();
  Ready();
  WaitForCheck();
  EXPECT(LoopbackUp(), "loopback is down");
  ucred peer{};
  socklen_t plen = sizeof peer;
  EXPECT(getsockopt(conn, SOL_SOCKET, SO_PEERCRED, &peer, &plen) == 0 && peer.pid == kid,
         "the accepted connection's peer is PID %d, not the child %d", peer.pid, kid);
  int t = socket(AF_INET, SOCK_STREAM, 0);
  EXPECT(connect(t, reinterpret_cast<sockaddr*>(&tcp), sizeof tcp) == 0 &&
             accept(tl, nullptr, nullptr) >= 0,
         "the TCP listener on 127.0.0.1:7777 takes no connection: %s", strerror(errno));
  int again = socket(AF_UNIX, SOCK_STREAM, 0);
  EXPECT(connect(again, reinterpret_cast<sockaddr*>(&name), len) == 0 &&
             accept(ul, nullptr, nullptr) >= 0,
         "the abstract unix listener takes no connection: %s", strerror(errno));
  EXPECT(sendto(udp, "u", 1, 0, reinterpret_cast<sockaddr*>(&u), sizeof u) == 1, "UDP: %s",
         strerror(errno));
  kill(kid, SIGUSR1);
  char b[4] = {};
  EXPECT(read(conn, b, 4) == 4 && memcmp(b, "ping", 4) == 0 && write(conn, "pong", 4) == 4,
         "the accepted connection passes nothing");
  int st;
  EXPECT(waitpid(kid, &st, 0) == kid && WIFEXITED(st) && WEXITSTATUS(st) == 0, "child failed");
  Report();
}

}  // namespace wl

namespace wl {

// ---- netnsbelow ----------------------------------------------------------------
// A network namespace below the root (a child ran unshare -n): loopback up,
// its ip_default_ttl changed, a TCP listener on 127.0.0.1:7777 with an
// established connection the child's child made, and a unix listener on
// the abstract name "crl-netns-below", which the root has bound in its own
// namespace (criu-lite's) too. After restore each name reaches its own
// namespace's listener, the connection passes bytes both ways, and the
// sysctl is as it was.
namespace {

sockaddr_un BelowName(socklen_t* len) {
  sockaddr_un a{};
  a.sun_family = AF_UNIX;
  memcpy(a.sun_path, "\0crl-netns-below", 16);
  *len = offsetof(sockaddr_un, sun_path) + 16;
  return a;
}

// Whether a new connection to NAME is accepted by LISTENER (within 2 s).
bool ReachesListener(const sockaddr_un& name, socklen_t len, int listener) {
  int c = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (connect(c, reinterpret_cast<const sockaddr*>(&name), len) < 0) return false;
  pollfd p{listener, POLLIN, 0};
  bool ok = poll(&p, 1, 2000) == 1 && accept(listener, nullptr, nullptr) >= 0;
  close(c);
  return ok;
}

[[noreturn]] void NetNsBelowChild(int ready) {
  if (!NewNetNamespaceWithLoopbackUp()) _exit(2);
  {
    std::ofstream ttl("/proc/sys/net/ipv4/ip_default_ttl");
    ttl << "33\n" << std::flush;
    if (!ttl) _exit(2);
  }
  sockaddr_in tcp{};
  tcp.sin_family = AF_INET;
  tcp.sin_port = htons(7777);
  tcp.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  int tl = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (bind(tl, reinterpret_cast<sockaddr*>(&tcp), sizeof tcp) < 0 || listen(tl, 8) < 0) _exit(2);
  socklen_t len;
  sockaddr_un name = BelowName(&len);
  int ul = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (bind(ul, reinterpret_cast<sockaddr*>(&name), len) < 0 || listen(ul, 8) < 0) _exit(2);
  pid_t kid = fork();
  if (kid == 0) {
    int c = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (connect(c, reinterpret_cast<sockaddr*>(&tcp), sizeof tcp) < 0) _exit(2);
    InstallCheckHandler();
    WaitForCheck();
    char b[4] = {};
    bool ok = write(c, "ping", 4) == 4 && read(c, b, 4) == 4 && memcmp(b, "pong", 4) == 0;
    _exit(ok && LoopbackUp() ? 0 : 1);
  }
  int conn = accept(tl, nullptr, nullptr);
  if (conn < 0) _exit(2);
  InstallCheckHandler();
  if (write(ready, "k", 1) != 1) _exit(2);
  WaitForCheck();
  std::ifstream ttl("/proc/sys/net/ipv4/ip_default_ttl");
  int now = 0;
  bool ok = LoopbackUp() && (ttl >> now) && now == 33;
  ok = ok && ReachesListener(name, len, ul);
  int t = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  ok = ok && connect(t, reinterpret_cast<sockaddr*>(&tcp), sizeof tcp) == 0 &&
       accept(tl, nullptr, nullptr) >= 0;
  kill(kid, SIGUSR1);
  char b[4] = {};
  ok = ok && read(conn, b, 4) == 4 && memcmp(b, "ping", 4) == 0 && write(conn, "pong", 4) == 4;
  int st;
  ok = ok && waitpid(kid, &st, 0) == kid && WIFEXITED(st) && WEXITSTATUS(st) == 0;
  _exit(ok ? 0 : 1);
}

}  // namespace

int NetNsBelow() {
  socklen_t len;
  sockaddr_un name = BelowName(&len);
  int ul = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (bind(ul, reinterpret_cast<sockaddr*>(&name), len) < 0 || listen(ul, 8) < 0) return 2;
  int ready[2];
  if (pipe(ready) < 0) return 2;
  pid_t kid = fork();
  if (kid == 0) NetNsBelowChild(ready[1]);
  char c;
  if (read(ready[0], &c, 1) != 1) return 2;
  InstallCheckHandler();
  Ready();
  WaitForCheck();
  EXPECT(ReachesListener(name, len, ul), "the root's abstract name does not reach its listener");
  CheckChildren({kid});
  Report();
}

}  // namespace wl
