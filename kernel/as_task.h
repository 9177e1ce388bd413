// Calls that stamp their caller on what they make: a unix socket's listen(),
// connect() and socketpair() record the caller's PID, effective uid and gid
// and groups as the credentials the other end reads (SO_PEERCRED,
// SO_PEERGROUPS). Restore makes them in a short-lived child that has the
// recorded PID (clone3 set_tid: before the tree exists, its PIDs are free)
// and credentials, sharing criu-lite's fd table, so that what it makes is
// criu-lite's.
#pragma once

#include <sys/types.h>

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

// Runs OP in such a child with CREDS; OP returns 0, or -1 with errno set,
// and may fill OUT (fds it made, say), which comes back. WHAT names the
// call in errors. A PID in use is ErrorCode::kPidInUse.
Result<std::array<int, 2>> AsTask(const TaskCreds& creds, const char* what,
                                  const std::function<int(std::array<int, 2>& out)>& op);

}  // namespace crl
