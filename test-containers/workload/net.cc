// The network side of a process: inet sockets.
#include <arpa/inet.h>
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
