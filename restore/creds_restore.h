// A restored thread's credentials: uids, gids, supplementary groups, the five
// capability sets, securebits and no_new_privs. The puppet starts with
// criu-lite's (root); these are set last, by remote syscalls in each thread,
// in the one order in which each step is still allowed by what the previous
// ones left (see creds_restore.cc).
#pragma once

#include <array>

#include "base/result.h"
#include "images/criu_lite.pb.h"
#include "kernel/as_task.h"
#include "kernel/remote_syscalls.h"
#include "restore/puppet.h"

namespace crl {

// Refuses, before any task exists, credentials criu-lite cannot give: a
// capability criu-lite itself lacks (root without CAP_SYS_RESOURCE, say).
Status ValidateCreds(pid_t tid, const img::Creds& c);

// Adds to BATCH (a thread's) the syscalls that give it C; their arguments
// are pushed in SCRATCH, in the caller's frame, which lasts until the run.
Status RestoreCreds(RemoteBatch& batch, RemoteScratch& scratch, const img::Creds& c);

// CALL made by the puppet itself, with C's effective uid, gid and groups
// for the moment, so that what it makes records it (a unix socket its
// maker, SO_PEERCRED): for a task that exists while the files are opened.
// The puppet has criu-lite's credentials again after, whatever happened.
// A socketpair's ends come back as criu-lite's fds.
Result<std::array<int, 2>> StampAs(Puppet& p, const TaskCreds& c, const StampingCall& call);

}  // namespace crl
