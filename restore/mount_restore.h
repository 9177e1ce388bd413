// The root's mount namespace made again, by the root itself (a puppet), so
// that each file system made anew belongs to the namespaces it is already
// in (proc to its PID namespace, sysfs to its network namespace, mqueue to
// its IPC namespace, cgroup2 to its cgroup namespace).
#pragma once

#include <map>
#include <string>

#include "base/result.h"
#include "base/scoped_fd.h"
#include "images/criu_lite.pb.h"
#include "restore/puppet.h"

namespace crl {

// P unshares a mount namespace (its mounts slaves of criu-lite's, so that
// nothing it mounts is seen outside), binds ROOT onto itself, makes every
// mount of NS below it in order (parents first, each with its options,
// attributes and propagation; a tmpfs with its files; EXTERNAL: key ->
// path for the caller's), and pivots into ROOT, leaving nothing of
// criu-lite's mounts in it.
//
// A bind of a pty's slave (runc's /dev/console) needs the slave to exist:
// the pair is made in its devpts first, its master left in PTYS by index for
// the files' restore (files/pty.cc).
Status MakeMountNamespace(Puppet& p, const img::MountNamespace& ns, const std::string& root,
                          const std::map<std::string, std::string>& external,
                          std::map<int, ScopedFd>* ptys);

}  // namespace crl
