// What a task's namespaces hold, read from outside it: criu-lite joins a
// namespace on a thread of its own for the moment of the read (setns works
// per thread for these kinds), never in its main thread.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <string>

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

}  // namespace crl
