// A network namespace's links, addresses and routes, read and made again
// over rtnetlink (libnl-route-3), from a thread of criu-lite's that has
// joined the namespace.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "base/result.h"
#include "base/scoped_fd.h"

namespace crl {

// A link: loopback or one end of a veth pair. PEER names the other end
// when it is in the same namespace; PEER_OUTSIDE says it is in another one
// (a container's link to its host), whose name the caller gives at restore.
struct NetLink {
  std::string name;
  std::string kind;    // "loopback", "veth"
  uint32_t flags = 0;  // IFF_UP...
  uint32_t mtu = 0;
  std::string mac;  // its bytes
  std::string peer;
  bool peer_outside = false;
};

// An address the namespace's user put there: not loopback's own
// 127.0.0.1 and ::1, nor an IPv6 link-local one the kernel makes from the
// link's MAC when it comes up, nor one SLAAC hands out.
struct NetAddress {
  std::string link;
  int family = 0;     // AF_INET, AF_INET6
  std::string local;  // its bytes (4 or 16)
  uint32_t prefix = 0;
  std::string label, broadcast;
  uint32_t scope = 0, flags = 0;
};

// A route the namespace's user made: not one the kernel makes for an
// address (proto kernel, or in the local table). One next hop.
struct NetRoute {
  int family = 0;
  uint32_t table = 0, protocol = 0, scope = 0, type = 0, priority = 0;
  std::string dst;  // its bytes; empty: the default route
  uint32_t dst_len = 0;
  std::string gateway, link, prefsrc;
};

// A neighbour entry the namespace's user made permanent (ip neigh add ...
// nud permanent); those the kernel learns come again by themselves.
struct NetNeighbour {
  std::string link;
  int family = 0;
  std::string dst, lladdr;  // their bytes
};

struct NetContents {
  std::vector<NetLink> links;
  std::vector<NetAddress> addresses;
  std::vector<NetRoute> routes;
  std::vector<NetNeighbour> neighbours;
  // Its sysctls that differ from a new namespace's here (path under
  // /proc/sys/net -> value). A link's own (ipv4/conf/eth0/...) are those
  // that differ from what a new link gets (.../conf/default/...).
  std::map<std::string, std::string> sysctls;
  // What it holds that restore would not make again, named ("the link
  // br0 (a bridge)", "2 policy routing rules"...).
  std::vector<std::string> not_carried;
};
// What PID's network namespace holds.
Result<NetContents> ReadNetContents(pid_t pid);

// Where the other end of a veth whose peer was outside goes: its name in
// criu-lite's network namespace, and the bridge it joins there (none: "").
struct VethOutside {
  std::string name, bridge;
};
// A new network namespace holding CONTENTS, held by the fd; each veth
// whose peer is outside gets its other end from OUTSIDE (by the link's
// name inside) in criu-lite's own namespace, up if the inside end is.
Result<ScopedFd> MakeNetNamespace(const NetContents& contents,
                                  const std::map<std::string, VethOutside>& outside);

// "veth[IF]:NAME[@BRIDGE]" (CRIU's --external form): IF -> {NAME, BRIDGE}
// added to OUT; false if SPEC is not of that form.
Result<bool> ParseVethExternal(const std::string& spec, std::map<std::string, VethOutside>* out);

}  // namespace crl
