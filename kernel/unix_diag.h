// What the kernel knows of unix sockets (NETLINK_SOCK_DIAG, UNIX_DIAG):
// type, state, peer and bound name, keyed by socket inode. /proc shows none
// of the peer links that say which two sockets form a pair.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "base/result.h"

namespace crl {

struct UnixSocketInfo {
  uint64_t ino = 0;
  int type = 0;   // SOCK_STREAM, SOCK_DGRAM, SOCK_SEQPACKET
  int state = 0;  // TCP_ESTABLISHED, TCP_LISTEN, TCP_CLOSE...
  uint64_t peer_ino = 0;
  std::string name;      // bound path (or @abstract), empty if unbound
  uint32_t rqueue = 0;   // bytes (stream) or datagrams waiting to be read; a
                         // listener: connections not accepted yet
  uint32_t wqueue = 0;   // a listener: its backlog
  uint64_t vfs_ino = 0;  // the bound file's inode (0: abstract or unbound)
  uint8_t shutdown = 0;  // RCV_SHUTDOWN (1) | SEND_SHUTDOWN (2)
  // A listener: the sockets whose connections wait to be accept()ed, in
  // queue order. (Such a socket's own peer is the waiting connection's
  // server end, which has no inode: its peer_ino is 0.)
  std::vector<uint64_t> icons;
};

// Every unix socket in criu-lite's network namespace.
Result<std::map<uint64_t, UnixSocketInfo>> ListUnixSockets();

}  // namespace crl
