#include "base/interrupt.h"

#include <atomic>
#include <csignal>
#include <cstdlib>
#include <cstring>

#include "base/log.h"

namespace crl {
namespace {

volatile sig_atomic_t g_stop_signal = 0;

void OnStopSignal(int sig) {
  if (!g_stop_signal) g_stop_signal = sig;
}

}  // namespace

void CatchStopSignals() {
  struct sigaction sa {};
  sa.sa_handler = OnStopSignal;
  sigemptyset(&sa.sa_mask);
  for (int sig : {SIGINT, SIGTERM, SIGHUP}) sigaction(sig, &sa, nullptr);
  // SIGALRM only interrupts a bounded wait (WaitForTask's timer).
  struct sigaction alarm {};
  alarm.sa_handler = [](int) {};
  sigemptyset(&alarm.sa_mask);
  sigaction(SIGALRM, &alarm, nullptr);
  signal(SIGPIPE, SIG_IGN);
}

int StopSignal() { return g_stop_signal; }

Status CheckStop() {
  int sig = g_stop_signal;
  if (!sig) return Ok{};
  return MakeError("interrupted by SIG%s", sigabbrev_np(sig));
}

void FaultPoint(const char* name) {
  static const char* want = getenv("CRIU_LITE_FAULT");
  if (!want) return;
  // NAME, or NAME@N: the Nth time NAME is reached.
  static std::atomic<long> reached{0};
  const char* at = strchr(want, '@');
  size_t len = at ? static_cast<size_t>(at - want) : strlen(want);
  if (strlen(name) != len || strncmp(want, name, len) != 0) return;
  if (++reached < (at ? atol(at + 1) : 1)) return;
  LOG_WARN("CRIU_LITE_FAULT=%s: killing criu-lite here", name);
  raise(SIGKILL);
}

}  // namespace crl
