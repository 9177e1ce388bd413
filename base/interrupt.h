// Ctrl-C, SIGTERM and SIGHUP ask criu-lite to stop: what it is doing ends
// at the next point where nothing is half-done (never inside a remote
// syscall window), with an error naming the signal, and everything it holds
// is let go the way any failure lets it go (a tree resumed as it was, a
// half-restored one killed). SIGPIPE is ignored: a peer gone is an EPIPE
// error like any other.
#pragma once

#include "base/result.h"

namespace crl {

// Installs the handlers (without SA_RESTART: blocking calls return EINTR).
void CatchStopSignals();
// The stop signal that came, or 0.
int StopSignal();
// An error "interrupted by SIGTERM" once one came; Ok before.
Status CheckStop();

// Fault injection for tests, as CRIU's CRIU_FAULT: with CRIU_LITE_FAULT=NAME
// in the environment, criu-lite kills itself (SIGKILL) when it reaches the
// point called NAME (with NAME@N, the Nth time), to show what it leaves
// behind when killed exactly there.
void FaultPoint(const char* name);

}  // namespace crl
