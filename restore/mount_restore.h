// The root's mount namespace made again, by the root itself (a puppet), so
// that each file system made anew belongs to the namespaces it is already
// in (proc to its PID namespace, sysfs to its network namespace, mqueue to
// its IPC namespace, cgroup2 to its cgroup namespace).
#pragma once

#include <map>
#include <set>
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

// A mount namespace a task below the tree's root made (NS.nested): made
// before the tree by a helper puppet, so that the files of the tasks in it
// can be opened in it; entered by its task.
//
// The mounts of NS its task must make itself, once in the namespaces it
// has and the helper has not: new instances of proc where it is in another
// PID namespace than the helper (OWN_PID), mqueue in another IPC namespace,
// cgroup2 in another cgroup namespace, and every mount below or bound from
// one of them.
std::set<uint64_t> TaskMadeMounts(const img::MountNamespace& ns, bool own_pid, bool own_ipc,
                                  bool own_cgroup);
// HELPER, in the namespace NS was copied from (it has entered it),
// unshares one and turns the copy into NS: of the copies of the parent's
// mounts, those NS kept get their attributes and propagation (a copy still
// a peer of its original stays one), the others go (after, so that their
// going does not propagate to the parent's); NS's own mounts are made, but
// those of LATER (TaskMadeMounts).
Status MakeNestedMountNamespace(Puppet& helper, const img::MountNamespace& ns,
                                const std::set<uint64_t>& later,
                                const std::map<std::string, std::string>& external,
                                std::map<int, ScopedFd>* ptys);
// P, the task, in the namespace made for it: makes the mounts of LATER, and
// checks its mounts are NS's (by point and kind; below a mount still a peer
// of the parent's, what came from there since the dump is allowed).
Status FinishNestedMountNamespace(Puppet& p, const img::MountNamespace& ns,
                                  const std::set<uint64_t>& later,
                                  const std::map<std::string, std::string>& external);

}  // namespace crl
