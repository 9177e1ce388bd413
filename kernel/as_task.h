// Calls that stamp their caller on what they make: a unix socket's listen(),
// connect() and socketpair() record the caller's PID, effective uid and gid
// and groups as the credentials the other end reads (SO_PEERCRED,
// SO_PEERGROUPS). Restore makes them in a short-lived child that has the
// recorded PID (clone3 set_tid: before the tree exists, its PIDs are free)
// and credentials, sharing criu-lite's fd table, so that what it makes is
// criu-lite's.
#pragma once

#include <sys/socket.h>
#include <sys/types.h>
#include <sys/un.h>

#include <array>
#include <cstdint>
#include <functional>
#include <vector>

#include "base/result.h"

namespace crl {

struct TaskCreds {
  pid_t pid = 0;  // 0: any PID
  uint32_t uid = 0, gid = 0;
  std::vector<uint32_t> groups;
};

// One of those calls, as data: run in the child AsTask makes, or by a task
// of the tree in remote syscalls where that task exists already.
struct StampingCall {
  enum Kind { kListen, kConnect, kSocketpair };
  Kind kind = kSocketpair;
  int fd = -1;         // kListen, kConnect: criu-lite's socket
  int backlog = 0;     // kListen
  sockaddr_un addr{};  // kConnect
  socklen_t addr_len = 0;
  int type = 0;  // kSocketpair: SOCK_STREAM, ... (made close-on-exec)

  static StampingCall Listen(int fd, int backlog);
  static StampingCall Connect(int fd, const sockaddr_un& addr, socklen_t len);
  static StampingCall Socketpair(int type);
  // "listen()", "connect()", "socketpair()".
  const char* what() const;
  // The call here: 0, or -1 with errno set; a socketpair's ends in OUT.
  int Run(std::array<int, 2>& out) const;
};

// Runs OP in such a child with CREDS; OP returns 0, or -1 with errno set,
// and may fill OUT (fds it made, say), which comes back. WHAT names the
// call in errors. A PID in use is ErrorCode::kPidInUse.
Result<std::array<int, 2>> AsTask(const TaskCreds& creds, const char* what,
                                  const std::function<int(std::array<int, 2>& out)>& op);
// The same, the child made in the PID namespace PID_NS names (a
// descendant of criu-lite's; CREDS.pid: its PID there): the calling thread
// joins it for its children for the moment of the clone.
Result<std::array<int, 2>> AsTaskInPidNamespace(
    int pid_ns, const TaskCreds& creds, const char* what,
    const std::function<int(std::array<int, 2>& out)>& op);

}  // namespace crl
