// Restoring what is not memory inside the puppet: files, signals, timers,
// limits, credentials-adjacent state, mm fields, and the thread's own
// registrations (TID address, robust list, rseq).
#pragma once

#include "base/result.h"
#include "images/criu_lite.pb.h"
#include "restore/cgroup_restore.h"
#include "restore/puppet.h"

namespace crl {

// The namespaces the task is the first of (in the tree) to be in: made
// before it forks, so that its children are born in them: cgroup (after
// CGROUPS has put the task in its cgroups), ipc (with its sysctls) and uts.
// NET_NS: the network namespace restore made for the tree's root (-1 if
// none), which the task enters if it made it.
Status RestoreNamespaces(Puppet& p, const img::TaskCore& core, const CgroupRestore& cgroups,
                         int net_ns);
// The puppet enters the namespace criu-lite's NS (of kind FLAG: CLONE_NEW*)
// names; WHAT names it in errors.
Status EnterNamespace(Puppet& p, int ns, int flag, const char* what);
Status RestoreProcessState(Puppet& p, const img::TaskCore& core);
Status RestoreMmFields(Puppet& p, const img::MmState& mm);
// Dispositions and process-wide pending signals.
Status RestoreSignals(Puppet& p, const img::TaskCore& core);
// Thread I's own state: TID address, robust list, rseq, sigaltstack, pending
// signals, FPU state. (Its signal mask is set last, when no more remote
// syscalls run in it: a handler must not run on the puppeteer's registers.)
Status RestoreThreadState(Puppet& p, size_t i, const img::ThreadCore& th);
// The last steps before the task runs: timers, limits, rlimits.
Status RestoreTimersAndLimits(Puppet& p, const img::TaskCore& core);
// oom_score_adj, loginuid, THP and membarrier state: what belongs to
// the process and needs criu-lite's privileges, before its credentials.
Status RestoreProcessSettings(Puppet& p, const img::TaskCore& core);
// Thread I's scheduling (policy, priority, nice, affinity, I/O priority,
// timer slack).
Status RestoreSched(Puppet& p, size_t i, const img::Sched& s);
// Seccomp: each thread's filters (shared by TSYNC where every thread had the
// same), or strict mode. criu-lite's later remote syscalls bypass them.
Status RestoreSeccomp(Puppet& p, const img::TaskCore& core);
// Credentials, then what a change of credentials resets (dumpable, the
// parent-death signal): the last of each task's state.
Status RestoreCredsLast(Puppet& p, const img::TaskCore& core);

}  // namespace crl
