// Netlink sockets, as programs keep them open: a route socket listening to
// link and address changes, a uevent socket, a generic netlink socket. Each
// is made again with its protocol, port id (the address the kernel answers
// to), the multicast groups it listens to (NETLINK_LIST_MEMBERSHIPS: all of
// them, also those past 32), the peer it is connected to and the options
// that differ from a new socket's (NETLINK_EXT_ACK, NETLINK_NO_ENOBUFS,
// buffer sizes...). Messages waiting in it cannot be put back (only the
// kernel sends them): a socket holding some is refused, unless it listens
// to groups, whose notifications the kernel may drop anyway (ENOBUFS): the
// dump then says that those waiting are dropped.
#include <linux/netlink.h>
#include <linux/sock_diag.h>
#include <sys/socket.h>

#include <vector>

#include "base/log.h"
#include "files/fd_kind.h"
#include "files/sock_opt.h"
#include "kernel/task_fd.h"

namespace crl {
namespace {

constexpr OptName kOpts[] = {
    {SOL_NETLINK, NETLINK_PKTINFO},
    {SOL_NETLINK, NETLINK_BROADCAST_ERROR},
    {SOL_NETLINK, NETLINK_NO_ENOBUFS},
    {SOL_NETLINK, NETLINK_LISTEN_ALL_NSID},
    {SOL_NETLINK, NETLINK_CAP_ACK},
    {SOL_NETLINK, NETLINK_EXT_ACK},
    {SOL_NETLINK, NETLINK_GET_STRICT_CHK},
    {SOL_SOCKET, SO_RCVBUF},
    {SOL_SOCKET, SO_SNDBUF},
    {SOL_SOCKET, SO_PASSCRED},
    {SOL_SOCKET, SO_RCVTIMEO},
    {SOL_SOCKET, SO_SNDTIMEO},
};

Result<int> IntOpt(int fd, int level, int name, const char* what) {
  int v = 0;
  socklen_t len = sizeof v;
  if (getsockopt(fd, level, name, &v, &len) < 0) return ErrnoError("getsockopt(%s)", what);
  return v;
}

// The multicast groups SOCK listens to, numbered from 1.
Result<std::vector<uint32_t>> Groups(int sock) {
  std::vector<uint32_t> mask(64);
  socklen_t len = mask.size() * sizeof(uint32_t);
  if (getsockopt(sock, SOL_NETLINK, NETLINK_LIST_MEMBERSHIPS, mask.data(), &len) < 0)
    return ErrnoError("getsockopt(NETLINK_LIST_MEMBERSHIPS)");
  if (len > mask.size() * sizeof(uint32_t)) {
    mask.resize(len / sizeof(uint32_t));
    if (getsockopt(sock, SOL_NETLINK, NETLINK_LIST_MEMBERSHIPS, mask.data(), &len) < 0)
      return ErrnoError("getsockopt(NETLINK_LIST_MEMBERSHIPS)");
  }
  std::vector<uint32_t> groups;
  for (size_t i = 0; i < len / sizeof(uint32_t); i++)
    for (int b = 0; b < 32; b++)
      if (mask[i] & (1u << b)) groups.push_back(i * 32 + b + 1);
  return groups;
}

class NetlinkSocket : public FdKind {
 public:
  img::Fd::KindCase arm() const override { return img::Fd::kNetlinkSocket; }
  const char* name() const override { return "netlink socket"; }
  bool Claims(const FdSeen& s) const override { return s.sock_proto == "NETLINK"; }

  Status Collect(const FdSeen& s, img::Fd* out) const override {
    std::string what = Format("PID %d fd %d (a netlink socket)", s.pid, s.fd);
    ScopedFd fd = TRY(TakeFd(s.pid, s.fd));
    int sock = fd.get();
    img::NetlinkSocketFd* nl = out->mutable_netlink_socket();
    nl->set_type(TRY(IntOpt(sock, SOL_SOCKET, SO_TYPE, "SO_TYPE")));
    nl->set_protocol(TRY(IntOpt(sock, SOL_SOCKET, SO_PROTOCOL, "SO_PROTOCOL")));
    sockaddr_nl local{}, peer{};
    socklen_t len = sizeof local;
    if (getsockname(sock, reinterpret_cast<sockaddr*>(&local), &len) < 0)
      return ErrnoError("getsockname of %s", what.c_str());
    nl->set_portid(local.nl_pid);
    for (uint32_t g : TRY(Groups(sock).Context(what))) nl->add_groups(g);
    len = sizeof peer;
    if (getpeername(sock, reinterpret_cast<sockaddr*>(&peer), &len) == 0 &&
        (peer.nl_pid || peer.nl_groups))
      nl->set_peer(std::string(reinterpret_cast<const char*>(&peer), sizeof peer));
    uint32_t mem[SK_MEMINFO_VARS] = {};
    len = sizeof mem;
    if (getsockopt(sock, SOL_SOCKET, SO_MEMINFO, mem, &len) == 0 && mem[SK_MEMINFO_RMEM_ALLOC]) {
      if (nl->groups().empty())
        return MakeError(
            "%s of protocol %d has messages waiting to be read (the kernel's answers): they "
            "cannot be put back",
            what.c_str(), nl->protocol());
      LOG_WARN("%s of protocol %d: the notifications waiting in it are dropped", what.c_str(),
               nl->protocol());
    }
    ScopedFd fresh(socket(AF_NETLINK, nl->type(), nl->protocol()));
    if (!fresh.valid())
      return ErrnoError("%s: socket(AF_NETLINK, %d, %d)", what.c_str(), nl->type(), nl->protocol());
    for (OptName o : kOpts) AddIfDiffers(sock, fresh.get(), o, nl->mutable_opts());
    return Ok{};
  }

  Result<ScopedFd> Open(const img::Fd& f, OpenFiles&) const override {
    const img::NetlinkSocketFd& nl = f.netlink_socket();
    ScopedFd sock(socket(AF_NETLINK, nl.type() | SOCK_CLOEXEC, nl.protocol()));
    if (!sock.valid())
      return ErrnoError("socket(AF_NETLINK, %d, %d) of fd %d", nl.type(), nl.protocol(), f.fd());
    int fd = sock.get();
    for (const img::SockOpt& o : nl.opts()) TRY(SetOpt(fd, o, f.fd()));
    sockaddr_nl local{};
    local.nl_family = AF_NETLINK;
    local.nl_pid = nl.portid();
    for (uint32_t g : nl.groups())
      if (g <= 32) local.nl_groups |= 1u << (g - 1);
    if ((local.nl_pid || local.nl_groups) &&
        bind(fd, reinterpret_cast<sockaddr*>(&local), sizeof local) < 0)
      return ErrnoError("bind(netlink port %u) of fd %d", nl.portid(), f.fd());
    for (uint32_t g : nl.groups())
      if (g > 32 && setsockopt(fd, SOL_NETLINK, NETLINK_ADD_MEMBERSHIP, &g, sizeof g) < 0)
        return ErrnoError("NETLINK_ADD_MEMBERSHIP %u of fd %d", g, f.fd());
    if (!nl.peer().empty() &&
        connect(fd, reinterpret_cast<const sockaddr*>(nl.peer().data()), nl.peer().size()) < 0)
      return ErrnoError("connect(netlink) of fd %d", f.fd());
    return sock;
  }
};

}  // namespace

const FdKind& NetlinkSocketKind() {
  static const NetlinkSocket k;
  return k;
}

}  // namespace crl
