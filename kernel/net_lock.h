// The network lock: while a tree with TCP connections is frozen, and until
// its restored copy has taken them over, their packets are dropped (not
// answered with a reset by a kernel that no longer has the socket). One
// nftables table of family inet per dump: two sets of connections (IPv4,
// IPv6) by addresses and ports, both ways, and the rules that drop what
// they match; made and deleted through libnftables, in the network
// namespace the connections are in (a container's own: the host's hooks
// never see its forwarded packets).
#pragma once

#include <string>
#include <utility>
#include <vector>

#include "base/result.h"
#include "base/scoped_fd.h"

namespace crl {

class NetLock {
 public:
  // The table TABLE, made by the first Add in the network namespace NETNS
  // names (none: criu-lite's own).
  explicit NetLock(std::string table, ScopedFd netns = ScopedFd())
      : table_(std::move(table)), netns_(std::move(netns)) {}
  NetLock(const NetLock&) = delete;
  NetLock& operator=(const NetLock&) = delete;
  // Drops the packets of each connection between LOCAL and PEER (sockaddrs
  // as getsockname gives them), both ways: one transaction.
  Status Add(const std::vector<std::pair<std::string, std::string>>& conns);
  bool made() const { return made_; }
  const std::string& table() const { return table_; }
  int netns() const { return netns_.valid() ? netns_.get() : -1; }

 private:
  std::string table_;
  ScopedFd netns_;
  bool made_ = false;
};

// Deletes table TABLE (nothing if it is not there): the lock is lifted.
// NETNS: the network namespace it is in (-1: criu-lite's).
Status Unlock(const std::string& table, int netns = -1);

// Whether table TABLE is here (the dump's lock, on the host it ran on).
bool LockExists(const std::string& table, int netns = -1);

// The nftables tables of the calling thread's network namespace ("inet
// filter"...), criu-lite's own locks left out; an error where nf_tables is
// not there (nor, then, any table).
Result<std::vector<std::string>> NftTables();

// Whether nftables works here (libnftables, and nf_tables in the kernel).
bool NetLockAvailable();

}  // namespace crl
