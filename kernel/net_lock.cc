#include "kernel/net_lock.h"

#include <arpa/inet.h>
#include <linux/netlink.h>
#include <netinet/in.h>
#include <nftables/libnftables.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstring>

namespace crl {
namespace {

// Runs nft commands CMDS; the error names WHAT.
Status Nft(const std::string& cmds, const char* what) {
  // libnftables exits the process when it cannot open its netlink socket
  // (a kernel without nfnetlink): try that first.
  int nl = socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_NETFILTER);
  if (nl < 0) return ErrnoError("%s: this kernel has no nf_tables netlink", what);
  close(nl);
  nft_ctx* ctx = nft_ctx_new(NFT_CTX_DEFAULT);
  if (!ctx) return MakeError("%s: libnftables could not start", what);
  nft_ctx_buffer_output(ctx);
  nft_ctx_buffer_error(ctx);
  int r = nft_run_cmd_from_buffer(ctx, cmds.c_str());
  std::string err = nft_ctx_get_error_buffer(ctx);
  nft_ctx_free(ctx);
  if (r != 0) {
    while (!err.empty() && err.back() == '\n') err.pop_back();
    size_t nl = err.find('\n');
    return MakeError("%s: nft: %s", what, err.substr(0, nl).c_str());
  }
  return Ok{};
}

// "ip saddr 1.2.3.4 tcp sport 80" for one end of a connection (SRC: the
// packet's source), IPv4-mapped IPv6 addresses as IPv4.
std::string Match(const std::string& sa, bool src) {
  char host[INET6_ADDRSTRLEN] = "";
  const char* dir = src ? "saddr" : "daddr";
  const char* port_dir = src ? "sport" : "dport";
  auto* s = reinterpret_cast<const sockaddr*>(sa.data());
  if (s->sa_family == AF_INET6) {
    auto* a = reinterpret_cast<const sockaddr_in6*>(s);
    if (IN6_IS_ADDR_V4MAPPED(&a->sin6_addr)) {
      inet_ntop(AF_INET, &a->sin6_addr.s6_addr[12], host, sizeof host);
      return Format("ip %s %s tcp %s %u", dir, host, port_dir, ntohs(a->sin6_port));
    }
    inet_ntop(AF_INET6, &a->sin6_addr, host, sizeof host);
    return Format("ip6 %s %s tcp %s %u", dir, host, port_dir, ntohs(a->sin6_port));
  }
  auto* a = reinterpret_cast<const sockaddr_in*>(s);
  inet_ntop(AF_INET, &a->sin_addr, host, sizeof host);
  return Format("ip %s %s tcp %s %u", dir, host, port_dir, ntohs(a->sin_port));
}

}  // namespace

Status NetLock::Add(const std::vector<std::pair<std::string, std::string>>& conns) {
  std::string cmds;
  if (!made_)
    cmds = Format(
        "add table inet %s\n"
        "add chain inet %s in { type filter hook input priority -150; policy accept; }\n"
        "add chain inet %s out { type filter hook output priority -150; policy accept; }\n",
        table_.c_str(), table_.c_str(), table_.c_str());
  // Packets from the peer to the socket, and from the socket to the peer.
  for (const auto& [local, peer] : conns) {
    cmds += Format("add rule inet %s in %s %s drop\n", table_.c_str(), Match(peer, true).c_str(),
                   Match(local, false).c_str());
    cmds += Format("add rule inet %s out %s %s drop\n", table_.c_str(), Match(local, true).c_str(),
                   Match(peer, false).c_str());
  }
  TRY(Nft(cmds, "locking TCP connections"));
  made_ = true;
  return Ok{};
}

Status Unlock(const std::string& table) {
  if (table.empty()) return Ok{};
  // "destroy" (nft 1.0.8) is not in Debian 12's: add the table first, so
  // that deleting it cannot fail for its absence.
  return Nft(Format("add table inet %s\ndelete table inet %s\n", table.c_str(), table.c_str()),
             "lifting the network lock");
}

bool LockExists(const std::string& table) {
  return Nft(Format("list table inet %s\n", table.c_str()), "looking for the lock").ok();
}

bool NetLockAvailable() {
  std::string probe = Format("criu_lite_probe_%d", getpid());
  return Nft(Format("add table inet %s\ndelete table inet %s\n", probe.c_str(), probe.c_str()),
             "probe")
      .ok();
}

}  // namespace crl
