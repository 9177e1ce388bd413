#include "kernel/net_lock.h"

#include <arpa/inet.h>
#include <linux/netlink.h>
#include <netinet/in.h>
#include <nftables/libnftables.h>
#include <sched.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstring>
#include <sstream>

#include "kernel/namespaces.h"

namespace crl {
namespace {

// Runs nft commands CMDS; the error names WHAT. OUTPUT (if given) gets
// what they print.
Status NftHere(const std::string& cmds, const char* what, std::string* output = nullptr) {
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
  if (output) *output = nft_ctx_get_output_buffer(ctx);
  nft_ctx_free(ctx);
  if (r != 0) {
    while (!err.empty() && err.back() == '\n') err.pop_back();
    size_t nl = err.find('\n');
    return MakeError("%s: nft: %s", what, err.substr(0, nl).c_str());
  }
  return Ok{};
}

// The same in the network namespace NETNS names (-1: criu-lite's), from a
// thread that joins it: libnftables's netlink socket is of the namespace
// it is made in.
Status Nft(const std::string& cmds, const char* what, int netns = -1) {
  if (netns < 0) return NftHere(cmds, what);
  return InNamespaceFd(netns, CLONE_NEWNET, [&] { return NftHere(cmds, what); });
}

// One end of a connection as a set element's half ("1.2.3.4 . 80"), and
// whether it is IPv6 (IPv4-mapped IPv6 addresses count as IPv4).
std::pair<std::string, bool> End(const std::string& sa) {
  char host[INET6_ADDRSTRLEN] = "";
  auto* s = reinterpret_cast<const sockaddr*>(sa.data());
  if (s->sa_family == AF_INET6) {
    auto* a = reinterpret_cast<const sockaddr_in6*>(s);
    bool v4 = IN6_IS_ADDR_V4MAPPED(&a->sin6_addr);
    if (v4)
      inet_ntop(AF_INET, &a->sin6_addr.s6_addr[12], host, sizeof host);
    else
      inet_ntop(AF_INET6, &a->sin6_addr, host, sizeof host);
    return {Format("%s . %u", host, ntohs(a->sin6_port)), !v4};
  }
  auto* a = reinterpret_cast<const sockaddr_in*>(s);
  inet_ntop(AF_INET, &a->sin_addr, host, sizeof host);
  return {Format("%s . %u", host, ntohs(a->sin_port)), false};
}

}  // namespace

Status NetLock::Add(const std::vector<std::pair<std::string, std::string>>& conns) {
  const char* t = table_.c_str();
  // Two sets of (source, source port, destination, destination port), one
  // per family, and four fixed rules: the cost of a lock grows with its
  // elements, not with rules nftables would parse one by one.
  std::string cmds = Format(
      "add table inet %s\n"
      "add set inet %s v4 { type ipv4_addr . inet_service . ipv4_addr . inet_service; }\n"
      "add set inet %s v6 { type ipv6_addr . inet_service . ipv6_addr . inet_service; }\n",
      t, t, t);
  if (!made_)
    for (const char* chain : {"in", "out"})
      cmds += Format(
          "add chain inet %s %s { type filter hook %s priority -150; policy accept; }\n"
          "add rule inet %s %s ip saddr . tcp sport . ip daddr . tcp dport @v4 drop\n"
          "add rule inet %s %s ip6 saddr . tcp sport . ip6 daddr . tcp dport @v6 drop\n",
          t, chain, chain[0] == 'i' ? "input" : "output", t, chain, t, chain);
  // Packets from the peer to the socket, and from the socket to the peer.
  std::string v4, v6;
  for (const auto& [local, peer] : conns) {
    auto [l, six] = End(local);
    std::string p = End(peer).first;
    std::string& set = six ? v6 : v4;
    set += Format("%s%s . %s, %s . %s", set.empty() ? "" : ", ", p.c_str(), l.c_str(), l.c_str(),
                  p.c_str());
  }
  if (!v4.empty()) cmds += Format("add element inet %s v4 { %s }\n", t, v4.c_str());
  if (!v6.empty()) cmds += Format("add element inet %s v6 { %s }\n", t, v6.c_str());
  TRY(Nft(cmds, "locking TCP connections", netns()));
  made_ = true;
  return Ok{};
}

Status Unlock(const std::string& table, int netns) {
  if (table.empty()) return Ok{};
  // "destroy" (nft 1.0.8) is not in Debian 12's: add the table first, so
  // that deleting it cannot fail for its absence.
  return Nft(Format("add table inet %s\ndelete table inet %s\n", table.c_str(), table.c_str()),
             "lifting the network lock", netns);
}

bool LockExists(const std::string& table, int netns) {
  return Nft(Format("list table inet %s\n", table.c_str()), "looking for the lock", netns).ok();
}

Result<std::vector<std::string>> NftTables() {
  std::string out;
  TRY(NftHere("list tables\n", "listing nftables tables", &out));
  std::vector<std::string> tables;
  std::istringstream in(out);
  for (std::string line; std::getline(in, line);) {
    if (line.rfind("table ", 0) != 0) continue;
    std::string t = line.substr(6);
    if (t.find("criu_lite_") == std::string::npos) tables.push_back(t);
  }
  return tables;
}

bool NetLockAvailable() {
  std::string probe = Format("criu_lite_probe_%d", getpid());
  return Nft(Format("add table inet %s\ndelete table inet %s\n", probe.c_str(), probe.c_str()),
             "probe")
      .ok();
}

}  // namespace crl
