// Restoring what is not memory inside the puppet: files, signals, timers,
// limits, credentials-adjacent state, mm fields, and the thread's own
// registrations (TID address, robust list, rseq).
#pragma once

#include "images/criu_lite.pb.h"
#include "kernel/result.h"
#include "restore/puppet.h"

namespace crl {

// Closes everything criu-lite had open in the puppet except KEEP_FD and, for
// --shell-job, the stdio the task inherits.
Status CloseInheritedFds(Puppet& p, int keep_fd, const img::Fds& fds);
Status RestoreFds(Puppet& p, const img::Fds& fds);
Status RestoreProcessState(Puppet& p, const img::TaskCore& core);
Status RestoreMmFields(Puppet& p, const img::MmState& mm);
Status RestoreSignals(Puppet& p, const img::TaskCore& core);
// The last steps before the task runs: timers, limits, rlimits.
Status RestoreTimersAndLimits(Puppet& p, const img::TaskCore& core);

}  // namespace crl
