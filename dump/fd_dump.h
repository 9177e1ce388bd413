// Recording the tree's open files. Every fd is either recorded so that
// restore can reopen it, or the dump fails naming the fd and its kind: never
// a silent drop.
#pragma once

#include <sys/types.h>

#include <set>
#include <vector>

#include "base/result.h"
#include "dump/dump.h"
#include "files/fd_kind.h"
#include "images/criu_lite.pb.h"

namespace crl {

// One process's fds: each claimed by a kind (files/registry.cc), or named
// external (--external), and recorded, or the dump fails naming the fd.
// OPTS: --shell-job, --file-locks (else a lock held through an fd is
// refused), --external.
Status DumpFds(pid_t pid, const DumpOptions& opts, TcpRepairs* tcp, img::Fds* fds);

struct ProcessFds {
  pid_t pid;
  img::Fds* fds;
};

// Tree-wide: each kind settles its fds (a pipe whose both ends are in the
// tree is carried; one whose other end is outside is restore's stdio with
// --shell-job, an error otherwise...) and captures data in flight without
// consuming it; then fds that share one open file description are found
// (kcmp), and each description's signal owner recorded. PROCS: the tree's
// processes, parents first (the root first). TASKS: every thread
// and zombie of the tree. TCP: the dump's connections, locked here.
Status ResolveTreeFds(const std::vector<ProcessFds>& procs, std::set<pid_t> tasks,
                      const DumpOptions& opts, TcpRepairs* tcp, img::Shared* shared);

}  // namespace crl
