// What a task's namespaces hold, read from outside it: criu-lite joins a
// namespace on a thread of its own for the moment of the read (setns works
// per thread for these kinds), never in its main thread.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "base/result.h"

namespace crl {

// The inode of PID's namespace of TYPE ("uts", "ipc"...): 0 where the kernel
// lacks that kind.
uint64_t NamespaceId(pid_t pid, const char* type);

struct UtsNames {
  std::string hostname, domainname;
};
// The host and domain names of PID's UTS namespace.
Result<UtsNames> ReadUtsNames(pid_t pid);

// /proc/PID/cgroup as PID sees it: read from inside its cgroup namespace,
// where paths are relative to the namespace's root.
Result<std::string> ReadCgroupsInNamespace(pid_t pid);

// An IPC namespace: the objects in it (System V shared memory, semaphore
// sets and message queues, from /proc/sysvipc; POSIX message queues, from
// an mqueue file system mounted for the moment in a mount namespace of the
// reading thread's own), each as "KIND KEY/NAME", and its sysctls
// (kernel/shmmax, fs/mqueue/msg_max...: path under /proc/sys -> value).
struct IpcNamespace {
  std::vector<std::string> objects;
  std::map<std::string, std::string> sysctls;
};
Result<IpcNamespace> ReadIpcNamespace(pid_t pid);
// Writes SYSCTLS into PID's IPC namespace (each only where it differs).
Status WriteIpcSysctls(pid_t pid, const std::map<std::string, std::string>& sysctls);

// A time namespace's offsets of CLOCK_MONOTONIC and CLOCK_BOOTTIME from the
// host's clocks, in nanoseconds.
struct TimeOffsets {
  int64_t monotonic_ns = 0, boottime_ns = 0;
};
// Those of the namespace PID's children are made in (time_for_children).
Result<TimeOffsets> ReadTimeOffsets(pid_t pid);
// Sets them, for a namespace no task has entered yet.
Status WriteTimeOffsets(pid_t pid, const TimeOffsets& offsets);

}  // namespace crl
