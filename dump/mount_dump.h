// A mount namespace a task of the tree made: each mount recorded with how
// restore makes it again (a new instance, a bind of another of its mounts,
// the caller's, the root --root names, or, below the tree's root, the copy
// of its parent's namespace's mount that unshare made), a tmpfs with its
// files.
#pragma once

#include <sys/types.h>

#include <map>
#include <string>

#include "base/result.h"
#include "images/criu_lite.pb.h"

namespace crl {

// EXTERNAL: mountpoint -> key (--external mnt[MOUNTPOINT]:KEY). A mount
// that is none of these is refused, named with its task.
// EXTERNAL: the caller's mounts (mount point -> key), each of which must be
// there; MAYBE_EXTERNAL: the same where there is such a mount (CRIU's RPC
// ext_mnt, which runtimes fill with every device node and masked path).
// PARENT: the task's parent, where the namespace was made below the tree's
// root (0: by the root).
Status CollectMountNamespace(pid_t pid, pid_t parent, uint64_t ns_id,
                             const std::map<std::string, std::string>& external,
                             const std::map<std::string, std::string>& maybe_external,
                             img::MountNamespace* out);

}  // namespace crl
