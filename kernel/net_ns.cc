#include "kernel/net_ns.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <linux/if_addr.h>
#include <linux/rtnetlink.h>
#include <net/if.h>
#include <netlink/addr.h>
#include <netlink/netlink.h>
#include <netlink/route/addr.h>
#include <netlink/route/link.h>
#include <netlink/route/link/veth.h>
#include <netlink/route/neighbour.h>
#include <netlink/route/nexthop.h>
#include <netlink/route/route.h>
#include <netlink/route/rule.h>
#include <netlink/socket.h>
#include <sched.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <filesystem>
#include <memory>
#include <regex>
#include <set>
#include <sstream>
#include <thread>

#include "kernel/namespaces.h"
#include "kernel/net_lock.h"
#include "kernel/proc_parsers.h"

namespace crl {

namespace {

struct SockFree {
  void operator()(nl_sock* s) const { nl_socket_free(s); }
};
struct CacheFree {
  void operator()(nl_cache* c) const { nl_cache_free(c); }
};
struct LinkPut {
  void operator()(rtnl_link* l) const { rtnl_link_put(l); }
};
struct AddrPut {
  void operator()(nl_addr* a) const { nl_addr_put(a); }
};
using Sock = std::unique_ptr<nl_sock, SockFree>;
using Cache = std::unique_ptr<nl_cache, CacheFree>;
using Link = std::unique_ptr<rtnl_link, LinkPut>;
using Addr = std::unique_ptr<nl_addr, AddrPut>;

Error NlError(int err, const std::string& what) {
  return MakeError("%s: %s", what.c_str(), nl_geterror(err));
}

// A route netlink socket of the calling thread's network namespace (the
// one it is in when the socket is made, whatever it joins later).
Result<Sock> Connect() {
  Sock s(nl_socket_alloc());
  if (!s) return MakeError("nl_socket_alloc failed");
  if (int e = nl_connect(s.get(), NETLINK_ROUTE); e < 0) return NlError(e, "rtnetlink");
  return s;
}

Result<Cache> Links(nl_sock* s) {
  nl_cache* c = nullptr;
  if (int e = rtnl_link_alloc_cache(s, AF_UNSPEC, &c); e < 0) return NlError(e, "listing links");
  return Cache(c);
}

std::string Bytes(nl_addr* a) {
  if (!a) return "";
  return std::string(static_cast<const char*>(nl_addr_get_binary_addr(a)), nl_addr_get_len(a));
}

Addr Build(int family, const std::string& bytes, uint32_t prefix) {
  Addr a(nl_addr_build(family, bytes.data(), bytes.size()));
  if (a) nl_addr_set_prefixlen(a.get(), prefix);
  return a;
}

std::string Text(int family, const std::string& bytes) {
  char buf[INET6_ADDRSTRLEN] = "?";
  if (bytes.size() == 4 || bytes.size() == 16) inet_ntop(family, bytes.data(), buf, sizeof buf);
  return buf;
}

// The name of a link by its index, in the cache's namespace ("" if none).
std::string NameOf(nl_cache* links, int index) {
  char buf[IFNAMSIZ] = "";
  return rtnl_link_i2name(links, index, buf, sizeof buf) ? buf : "";
}

// IFA_F_* that an address is made with (the rest the kernel sets itself).
constexpr uint32_t kAddressFlags =
    IFA_F_NODAD | IFA_F_HOMEADDRESS | IFA_F_NOPREFIXROUTE | IFA_F_MANAGETEMPADDR | IFA_F_MCAUTOJOIN;

void ReadLinks(nl_cache* links, NetContents* out) {
  for (nl_object* o = nl_cache_get_first(links); o; o = nl_cache_get_next(o)) {
    auto* l = reinterpret_cast<rtnl_link*>(o);
    NetLink link;
    link.name = rtnl_link_get_name(l) ? rtnl_link_get_name(l) : "?";
    unsigned flags = rtnl_link_get_flags(l);
    link.flags = flags & (IFF_UP | IFF_NOARP);
    link.mtu = rtnl_link_get_mtu(l);
    link.mac = Bytes(rtnl_link_get_addr(l));
    const char* type = rtnl_link_get_type(l);
    if (flags & IFF_LOOPBACK) {
      link.kind = "loopback";
    } else if (type && std::string(type) == "veth") {
      link.kind = "veth";
      int32_t nsid = 0;
      link.peer_outside = rtnl_link_get_link_netnsid(l, &nsid) == 0;
      if (!link.peer_outside) link.peer = NameOf(links, rtnl_link_get_link(l));
    } else {
      out->not_carried.push_back("the link " + link.name + " (" +
                                 (type ? std::string("a ") + type : "of no kind criu-lite knows") +
                                 ")");
      continue;
    }
    if (rtnl_link_get_master(l) > 0)
      out->not_carried.push_back("the link " + link.name + ", part of a bridge or bond");
    out->links.push_back(link);
  }
}

void ReadAddresses(nl_cache* links, nl_cache* addrs, NetContents* out) {
  for (nl_object* o = nl_cache_get_first(addrs); o; o = nl_cache_get_next(o)) {
    auto* a = reinterpret_cast<rtnl_addr*>(o);
    NetAddress addr;
    addr.link = NameOf(links, rtnl_addr_get_ifindex(a));
    addr.family = rtnl_addr_get_family(a);
    addr.local = Bytes(rtnl_addr_get_local(a));
    addr.prefix = rtnl_addr_get_prefixlen(a);
    addr.scope = rtnl_addr_get_scope(a);
    unsigned flags = rtnl_addr_get_flags(a);
    addr.flags = flags & kAddressFlags;
    if (addr.family != AF_INET && addr.family != AF_INET6) continue;
    std::string text = Text(addr.family, addr.local);
    // Loopback's own, and what the kernel (or a router) hands out.
    if (addr.link == "lo" && (text == "127.0.0.1" || text == "::1")) continue;
    if (addr.family == AF_INET6 && (text.rfind("fe80:", 0) == 0 || !(flags & IFA_F_PERMANENT)))
      continue;
    std::string peer = Bytes(rtnl_addr_get_peer(a));
    if (!peer.empty() && peer != addr.local) {
      out->not_carried.push_back("the point-to-point address " + text + " on " + addr.link);
      continue;
    }
    if (rtnl_addr_get_label(a) && addr.family == AF_INET) addr.label = rtnl_addr_get_label(a);
    addr.broadcast = Bytes(rtnl_addr_get_broadcast(a));
    out->addresses.push_back(addr);
  }
}

void ReadRoutes(nl_cache* links, nl_cache* routes, NetContents* out) {
  for (nl_object* o = nl_cache_get_first(routes); o; o = nl_cache_get_next(o)) {
    auto* r = reinterpret_cast<rtnl_route*>(o);
    NetRoute route;
    route.family = rtnl_route_get_family(r);
    route.table = rtnl_route_get_table(r);
    route.protocol = rtnl_route_get_protocol(r);
    route.type = rtnl_route_get_type(r);
    if (route.family != AF_INET && route.family != AF_INET6) continue;
    // The kernel's: for each address (proto kernel), the local table, and
    // IPv6's from router advertisements.
    if (route.table == RT_TABLE_LOCAL || route.protocol == RTPROT_KERNEL ||
        route.protocol == RTPROT_RA || route.type == RTN_MULTICAST)
      continue;
    route.scope = rtnl_route_get_scope(r);
    route.priority = rtnl_route_get_priority(r);
    nl_addr* dst = rtnl_route_get_dst(r);
    route.dst_len = dst ? nl_addr_get_prefixlen(dst) : 0;
    route.dst = route.dst_len ? Bytes(dst) : "";
    route.prefsrc = Bytes(rtnl_route_get_pref_src(r));
    int hops = rtnl_route_get_nnexthops(r);
    if (hops > 1) {
      out->not_carried.push_back(
          "the route to " +
          (route.dst_len ? Text(route.family, route.dst) + "/" + std::to_string(route.dst_len)
                         : std::string("default")) +
          " over several next hops");
      continue;
    }
    if (hops == 1) {
      rtnl_nexthop* nh = rtnl_route_nexthop_n(r, 0);
      route.link = NameOf(links, rtnl_route_nh_get_ifindex(nh));
      route.gateway = Bytes(rtnl_route_nh_get_gateway(nh));
    }
    out->routes.push_back(route);
  }
}

// Policy routing rules beyond the kernel's (IPv4: local, main, default;
// IPv6: local, main).
void ReadRules(nl_sock* s, NetContents* out) {
  nl_cache* c = nullptr;
  if (rtnl_rule_alloc_cache(s, AF_UNSPEC, &c) < 0) return;
  Cache rules(c);
  int v4 = 0, v6 = 0;
  for (nl_object* o = nl_cache_get_first(c); o; o = nl_cache_get_next(o)) {
    int family = rtnl_rule_get_family(reinterpret_cast<rtnl_rule*>(o));
    v4 += family == AF_INET;
    v6 += family == AF_INET6;
  }
  if (v4 > 3 || v6 > 2)
    out->not_carried.push_back(std::to_string(std::max(v4 - 3, 0) + std::max(v6 - 2, 0)) +
                               " policy routing rule(s) of its own");
}

void ReadNeighbours(nl_cache* links, nl_cache* neighbours, NetContents* out) {
  for (nl_object* o = nl_cache_get_first(neighbours); o; o = nl_cache_get_next(o)) {
    auto* n = reinterpret_cast<rtnl_neigh*>(o);
    int family = rtnl_neigh_get_family(n);
    // (A bridge's forwarding entries are AF_BRIDGE: bridges are refused.)
    if (!(rtnl_neigh_get_state(n) & NUD_PERMANENT) || (family != AF_INET && family != AF_INET6))
      continue;
    NetNeighbour entry;
    entry.link = NameOf(links, rtnl_neigh_get_ifindex(n));
    entry.family = family;
    entry.dst = Bytes(rtnl_neigh_get_dst(n));
    entry.lladdr = Bytes(rtnl_neigh_get_lladdr(n));
    out->neighbours.push_back(entry);
  }
}

Status AddNeighbour(nl_sock* s, nl_cache* links, const NetNeighbour& n) {
  std::unique_ptr<rtnl_neigh, void (*)(rtnl_neigh*)> neigh(rtnl_neigh_alloc(), rtnl_neigh_put);
  int index = rtnl_link_name2i(links, n.link.c_str());
  if (index <= 0)
    return MakeError("no link %s for the neighbour %s", n.link.c_str(),
                     Text(n.family, n.dst).c_str());
  rtnl_neigh_set_ifindex(neigh.get(), index);
  rtnl_neigh_set_family(neigh.get(), n.family);
  Addr dst = Build(n.family, n.dst, n.dst.size() * 8);
  rtnl_neigh_set_dst(neigh.get(), dst.get());
  Addr ll(nl_addr_build(AF_LLC, n.lladdr.data(), n.lladdr.size()));
  if (!n.lladdr.empty()) rtnl_neigh_set_lladdr(neigh.get(), ll.get());
  rtnl_neigh_set_state(neigh.get(), NUD_PERMANENT);
  if (int e = rtnl_neigh_add(s, neigh.get(), NLM_F_CREATE); e < 0)
    return NlError(e, "adding the neighbour " + Text(n.family, n.dst) + " on " + n.link);
  return Ok{};
}

// The tables of the legacy iptables (x_tables) PID's namespace has: made
// the first time iptables-legacy touched them there, rules or none.
void ReadLegacyTables(pid_t pid, NetContents* out) {
  for (const char* family : {"ip", "ip6", "arp"}) {
    auto names = ReadFileToString(Format("/proc/%d/net/%s_tables_names", pid, family));
    if (!names.ok()) continue;  // the module is not loaded: no such tables
    std::istringstream in(*names);
    for (std::string name; in >> name;)
      out->not_carried.push_back(
          Format("the legacy %stables table %s (iptables-legacy)", family, name.c_str()));
  }
}

Status SetUp(nl_sock* s, const std::string& name, int master) {
  rtnl_link* raw = nullptr;
  if (int e = rtnl_link_get_kernel(s, 0, name.c_str(), &raw); e < 0)
    return NlError(e, "finding the link " + name);
  Link now(raw), change(rtnl_link_alloc());
  rtnl_link_set_flags(change.get(), IFF_UP);
  if (master > 0) rtnl_link_set_master(change.get(), master);
  if (int e = rtnl_link_change(s, now.get(), change.get(), 0); e < 0)
    return NlError(e, "bringing the link " + name + " up");
  return Ok{};
}

// Makes a veth pair: LINK inside, its other end PEER (inside too, or in
// the namespace OUTER_FD names when OUTSIDE is given).
Status MakeVeth(nl_sock* in, const NetLink& link, const NetLink* peer, const VethOutside* outside,
                int outer_fd) {
  Link l(rtnl_link_veth_alloc());
  if (!l) return MakeError("rtnl_link_veth_alloc failed");
  rtnl_link* p = rtnl_link_veth_get_peer(l.get());
  rtnl_link_set_name(l.get(), link.name.c_str());
  if (link.mtu) rtnl_link_set_mtu(l.get(), link.mtu);
  if (Addr mac = Build(AF_LLC, link.mac, 0); mac && link.mac.size() == 6)
    rtnl_link_set_addr(l.get(), mac.get());
  if (outside) {
    rtnl_link_set_name(p, outside->name.c_str());
    rtnl_link_set_ns_fd(p, outer_fd);
    if (link.mtu) rtnl_link_set_mtu(p, link.mtu);
  } else {
    rtnl_link_set_name(p, peer->name.c_str());
    if (peer->mtu) rtnl_link_set_mtu(p, peer->mtu);
    if (Addr mac = Build(AF_LLC, peer->mac, 0); mac && peer->mac.size() == 6)
      rtnl_link_set_addr(p, mac.get());
  }
  rtnl_link_put(p);  // rtnl_link_veth_get_peer took a reference
  // The other end's name may still be held by the veth of the namespace
  // the dump left to die (the kernel tears namespaces down in the
  // background): a few seconds for it to go.
  for (int i = 0;; i++) {
    int e = rtnl_link_add(in, l.get(), NLM_F_CREATE | NLM_F_EXCL);
    if (e >= 0) return Ok{};
    if (e != -NLE_EXIST || !outside || i == 250)
      return NlError(e, "making the veth " + link.name +
                            (outside ? " (its other end " + outside->name + " outside)"
                                     : " (its other end " + peer->name + ")"));
    usleep(20000);
  }
}

Status AddAddress(nl_sock* s, nl_cache* links, const NetAddress& a) {
  std::unique_ptr<rtnl_addr, void (*)(rtnl_addr*)> addr(rtnl_addr_alloc(), rtnl_addr_put);
  int index = rtnl_link_name2i(links, a.link.c_str());
  if (index <= 0)
    return MakeError("no link %s for the address %s", a.link.c_str(),
                     Text(a.family, a.local).c_str());
  rtnl_addr_set_ifindex(addr.get(), index);
  rtnl_addr_set_family(addr.get(), a.family);
  Addr local = Build(a.family, a.local, a.prefix);
  rtnl_addr_set_local(addr.get(), local.get());
  rtnl_addr_set_prefixlen(addr.get(), a.prefix);
  rtnl_addr_set_scope(addr.get(), a.scope);
  if (!a.label.empty()) rtnl_addr_set_label(addr.get(), a.label.c_str());
  if (!a.broadcast.empty()) {
    Addr b = Build(a.family, a.broadcast, 0);
    rtnl_addr_set_broadcast(addr.get(), b.get());
  }
  // An IPv6 address was unique before; made again it would be tentative
  // (unbindable) until duplicate detection ran.
  rtnl_addr_set_flags(addr.get(), a.flags | (a.family == AF_INET6 ? IFA_F_NODAD : 0));
  if (int e = rtnl_addr_add(s, addr.get(), 0); e < 0)
    return NlError(e, "adding the address " + Text(a.family, a.local) + "/" +
                          std::to_string(a.prefix) + " to " + a.link);
  return Ok{};
}

Status AddRoute(nl_sock* s, nl_cache* links, const NetRoute& r) {
  std::unique_ptr<rtnl_route, void (*)(rtnl_route*)> route(rtnl_route_alloc(), rtnl_route_put);
  rtnl_route_set_family(route.get(), r.family);
  rtnl_route_set_table(route.get(), r.table);
  rtnl_route_set_protocol(route.get(), r.protocol);
  rtnl_route_set_scope(route.get(), r.scope);
  rtnl_route_set_type(route.get(), r.type);
  rtnl_route_set_priority(route.get(), r.priority);
  std::string zeros(r.family == AF_INET ? 4 : 16, '\0');
  Addr dst = Build(r.family, r.dst.empty() ? zeros : r.dst, r.dst_len);
  rtnl_route_set_dst(route.get(), dst.get());
  if (!r.prefsrc.empty()) {
    Addr src = Build(r.family, r.prefsrc, 0);
    rtnl_route_set_pref_src(route.get(), src.get());
  }
  if (!r.link.empty() || !r.gateway.empty()) {
    rtnl_nexthop* nh = rtnl_route_nh_alloc();
    if (!r.link.empty()) {
      int index = rtnl_link_name2i(links, r.link.c_str());
      if (index <= 0) {
        rtnl_route_nh_free(nh);
        return MakeError("no link %s for a route", r.link.c_str());
      }
      rtnl_route_nh_set_ifindex(nh, index);
    }
    if (!r.gateway.empty()) {
      Addr gw = Build(r.family, r.gateway, 0);
      rtnl_route_nh_set_gateway(nh, gw.get());
    }
    rtnl_route_add_nexthop(route.get(), nh);  // the route owns it now
  }
  if (int e = rtnl_route_add(s, route.get(), NLM_F_CREATE | NLM_F_EXCL); e < 0)
    return NlError(e,
                   "adding the route to " +
                       (r.dst.empty() ? std::string("default")
                                      : Text(r.family, r.dst) + "/" + std::to_string(r.dst_len)) +
                       (r.gateway.empty() ? "" : " via " + Text(r.family, r.gateway)));
  return Ok{};
}

// The directories of /proc/sys/net whose files are a namespace's own (not
// bridge's or netfilter's, which are the host's or a module's).
const char* const kSysctlDirs[] = {"core", "ipv4", "ipv6", "unix", "mptcp"};

// A link's directory in a sysctl path ("ipv4/conf/eth0/rp_filter" ->
// the position of "eth0"), or npos.
size_t LinkPart(const std::string& path) {
  for (const char* dir : {"ipv4/conf/", "ipv6/conf/", "ipv4/neigh/", "ipv6/neigh/"})
    if (path.rfind(dir, 0) == 0) return strlen(dir);
  return std::string::npos;
}

// Every readable and writable sysctl of the calling thread's network
// namespace, path under /proc/sys/net -> value.
std::map<std::string, std::string> ReadSysctls() {
  namespace fs = std::filesystem;
  std::map<std::string, std::string> out;
  for (const char* top : kSysctlDirs) {
    std::error_code ec;
    for (fs::recursive_directory_iterator it("/proc/sys/net/" + std::string(top), ec), end;
         !ec && it != end; it.increment(ec)) {
      if (!it->is_regular_file(ec)) continue;
      struct stat st {};
      std::string path = it->path().string();
      if (stat(path.c_str(), &st) < 0 || !(st.st_mode & S_IWUSR) || !(st.st_mode & S_IRUSR))
        continue;
      auto value = ReadFileToString(path);  // some say EIO until set (stable_secret)
      if (!value.ok()) continue;
      while (!value->empty() && value->back() == '\n') value->pop_back();
      out[path.substr(strlen("/proc/sys/net/"))] = *value;
    }
  }
  return out;
}

// Those of SYSCTLS that differ from a new namespace's (FRESH): a link's
// against the new one's default, or its loopback's.
std::map<std::string, std::string> Differing(const std::map<std::string, std::string>& sysctls,
                                             const std::map<std::string, std::string>& fresh) {
  std::map<std::string, std::string> out;
  for (const auto& [path, value] : sysctls) {
    std::string like = path;
    if (size_t at = LinkPart(path); at != std::string::npos && !fresh.count(path)) {
      size_t slash = path.find('/', at);
      if (slash == std::string::npos) continue;
      like = path.substr(0, at) + "default" + path.substr(slash);
    }
    auto it = fresh.find(like);
    if (it == fresh.end() || it->second != value) out[path] = value;
  }
  return out;
}

// Writes the sysctls of SYSCTLS that are (LINKS false) or are not (LINKS
// true) the namespace's own, where they differ from what is there now.
Status WriteSysctls(const std::map<std::string, std::string>& sysctls, bool links) {
  for (const auto& [path, value] : sysctls) {
    size_t at = LinkPart(path);
    bool of_link = at != std::string::npos && path.compare(at, 4, "all/") != 0 &&
                   path.compare(at, 8, "default/") != 0;
    if (of_link != links) continue;
    if (path.find("..") != std::string::npos || path.empty() || path[0] == '/')
      return MakeError("'%s' is not a path under /proc/sys/net", path.c_str());
    std::string full = "/proc/sys/net/" + path;
    auto now = ReadFileToString(full);
    if (now.ok()) {
      while (!now->empty() && now->back() == '\n') now->pop_back();
      if (*now == value) continue;
    }
    TRY(WriteKernelFile(full, value).Context("setting the sysctl net/" + path));
  }
  return Ok{};
}

}  // namespace

Result<NetContents> ReadNetContents(pid_t pid) {
  NetContents out;
  TRY(InNamespaceOf(pid, "net", CLONE_NEWNET, [&]() -> Status {
    Sock s = TRY(Connect());
    Cache links = TRY(Links(s.get()));
    nl_cache* c = nullptr;
    if (int e = rtnl_addr_alloc_cache(s.get(), &c); e < 0) return NlError(e, "listing addresses");
    Cache addrs(c);
    if (int e = rtnl_route_alloc_cache(s.get(), AF_UNSPEC, 0, &c); e < 0)
      return NlError(e, "listing routes");
    Cache routes(c);
    if (int e = rtnl_neigh_alloc_cache(s.get(), &c); e < 0) return NlError(e, "listing neighbours");
    Cache neighbours(c);
    ReadLinks(links.get(), &out);
    ReadAddresses(links.get(), addrs.get(), &out);
    ReadRoutes(links.get(), routes.get(), &out);
    ReadNeighbours(links.get(), neighbours.get(), &out);
    ReadRules(s.get(), &out);
    // Its firewall (nftables, iptables-nft's too): not carried.
    if (auto tables = NftTables(); tables.ok())
      for (const std::string& t : *tables) out.not_carried.push_back("the nftables table " + t);
    out.sysctls = ReadSysctls();
    return Ok{};
  }));
  ReadLegacyTables(pid, &out);
  // What a new namespace here has, to keep only what differs.
  std::map<std::string, std::string> fresh;
  Status made = MakeError("no answer from the thread reading a new network namespace");
  std::thread t([&] {
    made = [&]() -> Status {
      if (unshare(CLONE_NEWNET) < 0) return ErrnoError("unshare(CLONE_NEWNET)");
      fresh = ReadSysctls();
      return Ok{};
    }();
  });
  t.join();
  TRY(made);
  out.sysctls = Differing(out.sysctls, fresh);
  return out;
}

Result<ScopedFd> MakeNetNamespace(const NetContents& contents,
                                  const std::map<std::string, VethOutside>& outside) {
  // Every veth whose other end was outside needs a name for it here.
  for (const NetLink& l : contents.links)
    if (l.kind == "veth" && l.peer_outside && !outside.count(l.name))
      return MakeError(
          "the link %s is a veth whose other end was outside the tree's network namespace: name "
          "that end here with --external veth[%s]:NAME (and @BRIDGE to put it in one)",
          l.name.c_str(), l.name.c_str());
  Result<ScopedFd> out = MakeError("no answer from the thread making a network namespace");
  std::thread t([&]() {
    out = [&]() -> Result<ScopedFd> {
      ScopedFd outer(open("/proc/thread-self/ns/net", O_RDONLY | O_CLOEXEC));
      if (!outer.valid()) return ErrnoError("open(/proc/thread-self/ns/net)");
      Sock host = TRY(Connect());  // stays in criu-lite's namespace
      if (unshare(CLONE_NEWNET) < 0) return ErrnoError("unshare(CLONE_NEWNET)");
      ScopedFd ns(open("/proc/thread-self/ns/net", O_RDONLY | O_CLOEXEC));
      if (!ns.valid()) return ErrnoError("open(/proc/thread-self/ns/net)");
      Sock in = TRY(Connect());
      TRY(WriteSysctls(contents.sysctls, false));
      std::set<std::string> made;
      for (const NetLink& l : contents.links) {
        if (l.kind != "veth" || made.count(l.name)) continue;
        const NetLink* peer = nullptr;
        const VethOutside* o = nullptr;
        if (l.peer_outside) {
          o = &outside.at(l.name);
        } else {
          for (const NetLink& p : contents.links)
            if (p.name == l.peer) peer = &p;
          if (!peer)
            return MakeError("the veth %s has no other end %s", l.name.c_str(), l.peer.c_str());
          made.insert(peer->name);
        }
        TRY(MakeVeth(in.get(), l, peer, o, outer.get()));
        made.insert(l.name);
        if (o && (l.flags & IFF_UP || !o->bridge.empty())) {
          int master = 0;
          if (!o->bridge.empty()) {
            Cache host_links = TRY(Links(host.get()));
            master = rtnl_link_name2i(host_links.get(), o->bridge.c_str());
            if (master <= 0)
              return MakeError("no bridge %s here for the veth %s", o->bridge.c_str(),
                               o->name.c_str());
          }
          TRY(SetUp(host.get(), o->name, master));
        }
      }
      TRY(WriteSysctls(contents.sysctls, true));
      for (const NetLink& l : contents.links)
        if (l.flags & IFF_UP) TRY(SetUp(in.get(), l.name, 0));
      Cache links = TRY(Links(in.get()));
      for (const NetAddress& a : contents.addresses) TRY(AddAddress(in.get(), links.get(), a));
      // A route may need another first (a gateway reached through a route
      // of its own): rounds until none is left or a round makes none.
      std::vector<const NetRoute*> left;
      for (const NetRoute& r : contents.routes) left.push_back(&r);
      while (!left.empty()) {
        std::vector<const NetRoute*> again;
        Status last = Ok{};
        for (const NetRoute* r : left) {
          Status s = AddRoute(in.get(), links.get(), *r);
          if (!s.ok()) {
            again.push_back(r);
            last = s;
          }
        }
        if (again.size() == left.size()) return last.error();
        left = again;
      }
      for (const NetNeighbour& n : contents.neighbours) TRY(AddNeighbour(in.get(), links.get(), n));
      return ns;
    }();
  });
  t.join();
  return out;
}

Result<bool> ParseVethExternal(const std::string& spec, std::map<std::string, VethOutside>* out) {
  static const std::regex re(R"(veth\[([^\]/]+)\]:([^@/\s]+)(@([^/\s]+))?)");
  if (spec.rfind("veth[", 0) != 0) return false;
  std::smatch m;
  if (!std::regex_match(spec, m, re))
    return MakeError("'%s' is not veth[IF]:NAME[@BRIDGE]", spec.c_str());
  for (int i : {1, 2, 4})
    if (m[i].length() >= IFNAMSIZ)
      return MakeError("'%s': %s is longer than a link name can be (%d)", spec.c_str(),
                       m[i].str().c_str(), IFNAMSIZ - 1);
  (*out)[m[1]] = VethOutside{m[2], m[4]};
  return true;
}

}  // namespace crl
