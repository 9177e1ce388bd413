// Signals and time: handlers, pending and queued signals, alternate stacks,
// interval and POSIX timers, sleeps and blocking calls across a restore.
#include "test-containers/workload/workload.h"

namespace wl {

// ---- signals -----------------------------------------------------------------
int g_got_values[8];
volatile sig_atomic_t g_got_count = 0;
volatile sig_atomic_t g_usr2 = 0;
void OnQueued(int, siginfo_t* si, void*) {
  int n = g_got_count;
  if (n < 8) {
    g_got_values[n] = si->si_value.sival_int;
    g_got_count = n + 1;
  }
}
void OnUsr2(int, siginfo_t*, void*) { g_usr2 = 1; }

int Signals() {
  struct sigaction sa {};
  sa.sa_sigaction = OnUsr2;
  sa.sa_flags = SA_SIGINFO | SA_RESTART;
  sigemptyset(&sa.sa_mask);
  sigaddset(&sa.sa_mask, SIGWINCH);
  sigaction(SIGUSR2, &sa, nullptr);
  struct sigaction q {};
  q.sa_sigaction = OnQueued;
  q.sa_flags = SA_SIGINFO;
  sigaction(SIGRTMIN + 1, &q, nullptr);
  sigaction(SIGRTMIN + 2, &q, nullptr);
  signal(SIGTERM, SIG_IGN);
  sigset_t block;
  sigemptyset(&block);
  sigaddset(&block, SIGRTMIN + 1);
  sigaddset(&block, SIGRTMIN + 2);
  sigaddset(&block, SIGWINCH);
  sigaddset(&block, SIGCONT);  // a stop signal sent to the task would discard it
  sigprocmask(SIG_BLOCK, &block, nullptr);
  sigqueue(getpid(), SIGRTMIN + 1, sigval{11});  // process-directed, queued in order
  sigqueue(getpid(), SIGRTMIN + 1, sigval{12});
  siginfo_t si{};
  si.si_signo = SIGRTMIN + 2;
  si.si_code = SI_QUEUE;
  si.si_pid = getpid();
  si.si_uid = getuid();
  si.si_value.sival_int = 21;
  syscall(SYS_rt_tgsigqueueinfo, getpid(), gettid(), SIGRTMIN + 2, &si);  // thread-directed
  raise(SIGWINCH);
  kill(getpid(), SIGCONT);
  umask(027);
  rlimit rl{512, 4096};
  setrlimit(RLIMIT_NOFILE, &rl);
  if (chdir(g_dir.c_str()) != 0) return 2;
  personality(ADDR_NO_RANDOMIZE);
  InstallCheckHandler();
  Ready();
  WaitForCheck();

  struct sigaction now {};
  sigaction(SIGUSR2, nullptr, &now);
  EXPECT(now.sa_sigaction == OnUsr2 && (now.sa_flags & SA_SIGINFO) && (now.sa_flags & SA_RESTART) &&
             sigismember(&now.sa_mask, SIGWINCH),
         "SIGUSR2 action differs");
  sigaction(SIGTERM, nullptr, &now);
  EXPECT(now.sa_handler == SIG_IGN, "SIGTERM is no longer ignored");
  sigset_t pending, mask;
  sigpending(&pending);
  sigprocmask(SIG_BLOCK, nullptr, &mask);
  EXPECT(sigismember(&mask, SIGRTMIN + 1) && sigismember(&mask, SIGWINCH), "signal mask differs");
  EXPECT(sigismember(&pending, SIGRTMIN + 1) && sigismember(&pending, SIGRTMIN + 2) &&
             sigismember(&pending, SIGWINCH) && sigismember(&pending, SIGCONT),
         "pending signals lost (SIGCONT %s)", sigismember(&pending, SIGCONT) ? "kept" : "lost");
  sigprocmask(SIG_UNBLOCK, &block, nullptr);
  EXPECT(
      g_got_count == 3 && g_got_values[0] == 11 && g_got_values[1] == 12 && g_got_values[2] == 21,
      "queued values arrived as %d values", int(g_got_count));
  raise(SIGUSR2);
  EXPECT(g_usr2 == 1, "SIGUSR2 handler did not run");
  mode_t m = umask(0);
  EXPECT(m == 027, "umask is %o", m);
  getrlimit(RLIMIT_NOFILE, &rl);
  EXPECT(rl.rlim_cur == 512 && rl.rlim_max == 4096, "RLIMIT_NOFILE is %lu/%lu", rl.rlim_cur,
         rl.rlim_max);
  char cwd[4096];
  EXPECT(getcwd(cwd, sizeof cwd) && g_dir == cwd, "cwd is %s", cwd);
  EXPECT(personality(0xffffffff) == ADDR_NO_RANDOMIZE, "personality lost");
  Report();
}

// ---- altstack ----------------------------------------------------------------
alignas(16) char g_altstack[64 * 1024];
volatile sig_atomic_t g_on_alt = -1;
void OnAlt(int) {
  char here;
  g_on_alt = (&here >= g_altstack && &here < g_altstack + sizeof g_altstack);
}

int Altstack() {
  stack_t ss{};
  ss.ss_sp = g_altstack;
  ss.ss_size = sizeof g_altstack;
  sigaltstack(&ss, nullptr);
  struct sigaction sa {};
  sa.sa_handler = OnAlt;
  sa.sa_flags = SA_ONSTACK;
  sigaction(SIGUSR2, &sa, nullptr);
  InstallCheckHandler();
  Ready();
  WaitForCheck();
  stack_t now{};
  sigaltstack(nullptr, &now);
  EXPECT(
      now.ss_sp == g_altstack && now.ss_size == sizeof g_altstack && !(now.ss_flags & SS_DISABLE),
      "sigaltstack differs");
  raise(SIGUSR2);
  EXPECT(g_on_alt == 1, "handler did not run on the alternate stack (%d)", int(g_on_alt));
  Report();
}

// ---- itimer ------------------------------------------------------------------
volatile sig_atomic_t g_ticks = 0;
void OnAlarm(int) { g_ticks = g_ticks + 1; }

int Itimer() {
  struct sigaction sa {};
  sa.sa_handler = OnAlarm;
  sa.sa_flags = SA_RESTART;
  sigaction(SIGALRM, &sa, nullptr);
  itimerval it{{0, 10000}, {0, 10000}};
  setitimer(ITIMER_REAL, &it, nullptr);
  InstallCheckHandler();
  while (g_ticks < 5) pause();
  Ready();
  WaitForCheck();
  itimerval now;
  getitimer(ITIMER_REAL, &now);
  EXPECT(now.it_interval.tv_sec == 0 && now.it_interval.tv_usec == 10000, "interval is %ld us",
         now.it_interval.tv_usec);
  int before = g_ticks;
  timespec end;
  clock_gettime(CLOCK_MONOTONIC, &end);
  end.tv_sec += 1;
  while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &end, nullptr) == EINTR) {
  }
  EXPECT(g_ticks - before >= 20, "timer fired %d times in 1 s after restore", g_ticks - before);
  Report();
}

// ---- nanosleep ---------------------------------------------------------------
double Now(clockid_t c) {
  timespec t;
  clock_gettime(c, &t);
  return t.tv_sec + t.tv_nsec / 1e9;
}

int Nanosleep(double secs) {
  InstallCheckHandler();
  timespec deadline;
  clock_gettime(CLOCK_MONOTONIC, &deadline);
  double start = deadline.tv_sec + deadline.tv_nsec / 1e9;
  deadline.tv_sec += static_cast<time_t>(secs);
  Ready();
  // An absolute sleep: after restore it must neither wake early nor fail.
  int r;
  while ((r = clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &deadline, nullptr)) == EINTR) {
    if (g_check) break;
  }
  double woke = Now(CLOCK_MONOTONIC);
  EXPECT(g_check || r == 0, "clock_nanosleep returned %d", r);
  EXPECT(g_check || woke >= start + secs - 0.001, "woke %.3f s early", start + secs - woke);
  WriteFile("woke", "1\n");
  // A relative sleep handled as POSIX programs do: EINTR, then sleep again.
  timespec rel{0, 200 * 1000 * 1000};
  double before = Now(CLOCK_MONOTONIC);
  while (nanosleep(&rel, &rel) < 0 && errno == EINTR && !g_check) {
  }
  EXPECT(g_check || Now(CLOCK_MONOTONIC) - before >= 0.199, "relative sleep ended early");
  WaitForCheck();
  Report();
}

// ---- futex -------------------------------------------------------------------
// Blocked in FUTEX_WAIT (no timeout) across the dump: the wait must restart
// after restore, and the SIGUSR1 handler's wake-up must still reach it.
uint32_t g_futex_word = 0;
void OnCheckFutex(int) {
  g_check = 1;
  __atomic_store_n(&g_futex_word, 1, __ATOMIC_SEQ_CST);
}

int Futex() {
  struct sigaction sa {};
  sa.sa_handler = OnCheckFutex;
  sa.sa_flags = SA_RESTART;  // the kernel restarts the wait after the handler
  sigaction(SIGUSR1, &sa, nullptr);
  Ready();
  int waits = 0;
  while (__atomic_load_n(&g_futex_word, __ATOMIC_SEQ_CST) == 0) {
    long r = syscall(SYS_futex, &g_futex_word, FUTEX_WAIT_PRIVATE, 0, nullptr, nullptr, 0);
    waits++;
    EXPECT(r == 0 || errno == EAGAIN || errno == EINTR, "futex wait failed: %s", strerror(errno));
  }
  EXPECT(waits >= 1, "never waited");
  Report();
}

// ---- read --------------------------------------------------------------------
int ReadStdin() {
  InstallCheckHandler();
  Ready();
  char buf[256];
  ssize_t n;
  std::string got;
  // Blocked here during the dump; restore gives it restore's stdin.
  while ((n = read(0, buf, sizeof buf)) != 0) {
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) break;
    got.append(buf, n);
    if (got.find('\n') != std::string::npos) break;
  }
  EXPECT(got == "hello after restore\n", "read '%s' from stdin", got.c_str());
  Report();
}

// ptimers: POSIX timers with a gap in their IDs (timer 1 deleted): a
// periodic one signalling the process with a value, a periodic one
// signalling one thread (SIGEV_THREAD_ID), an unsignalled one far in the
// future (SIGEV_NONE), and a disarmed one.
std::atomic<int> g_pt_process_ticks{0}, g_pt_thread_ticks{0};
std::atomic<pid_t> g_pt_thread_tid{0};
volatile sig_atomic_t g_pt_bad_value = 0;

void OnProcessTimer(int, siginfo_t* si, void*) {
  if (si->si_value.sival_int != 0x5151) g_pt_bad_value = 1;
  g_pt_process_ticks++;
}
void OnThreadTimer(int, siginfo_t*, void*) {
  if (gettid() == g_pt_thread_tid) g_pt_thread_ticks++;
}

void* PtimerThread(void*) {
  sigset_t usr1;
  sigemptyset(&usr1);
  sigaddset(&usr1, SIGUSR1);
  sigaddset(&usr1, SIGRTMIN + 4);
  pthread_sigmask(SIG_BLOCK, &usr1, nullptr);
  g_pt_thread_tid = gettid();
  for (;;) pause();
}

int Ptimers() {
  InstallCheckHandler();
  struct sigaction sa {};
  sa.sa_flags = SA_SIGINFO | SA_RESTART;
  sa.sa_sigaction = OnProcessTimer;
  sigaction(SIGRTMIN + 4, &sa, nullptr);
  sa.sa_sigaction = OnThreadTimer;
  sigaction(SIGRTMIN + 5, &sa, nullptr);
  sigset_t main_mask;  // the thread's timer signal is only the thread's
  sigemptyset(&main_mask);
  sigaddset(&main_mask, SIGRTMIN + 5);
  pthread_t th;
  pthread_create(&th, nullptr, PtimerThread, nullptr);
  pthread_sigmask(SIG_BLOCK, &main_mask, nullptr);
  while (!g_pt_thread_tid) usleep(1000);
  auto make = [](clockid_t clock, int notify, int sig, int value, pid_t tid) {
    sigevent sev{};
    sev.sigev_notify = notify;
    sev.sigev_signo = sig;
    sev.sigev_value.sival_int = value;
    sev._sigev_un._tid = tid;
    timer_t t{};
    if (syscall(SYS_timer_create, clock, &sev, &t) < 0) Fail("timer_create: %m");
    return t;
  };
  timer_t t0 = make(CLOCK_MONOTONIC, SIGEV_SIGNAL, SIGRTMIN + 4, 0x5151, 0);
  timer_t gap = make(CLOCK_MONOTONIC, SIGEV_NONE, 0, 0, 0);
  timer_t t2 =
      make(CLOCK_MONOTONIC, SIGEV_THREAD_ID | SIGEV_SIGNAL, SIGRTMIN + 5, 0, g_pt_thread_tid);
  timer_t t3 = make(CLOCK_REALTIME, SIGEV_NONE, 0, 0, 0);
  timer_t t4 = make(CLOCK_BOOTTIME, SIGEV_SIGNAL, SIGRTMIN + 4, 0x5151, 0);
  syscall(SYS_timer_delete, gap);
  itimerspec every{{0, 20000000}, {0, 20000000}}, far{{0, 0}, {100, 0}};
  syscall(SYS_timer_settime, t0, 0, &every, nullptr);
  syscall(SYS_timer_settime, t2, 0, &every, nullptr);
  syscall(SYS_timer_settime, t3, 0, &far, nullptr);
  while (g_pt_process_ticks < 3 || g_pt_thread_ticks < 3) usleep(5000);
  Ready();
  WaitForCheck();
  int p0 = g_pt_process_ticks, t0ticks = g_pt_thread_ticks;
  for (int i = 0; i < 200 && (g_pt_process_ticks < p0 + 3 || g_pt_thread_ticks < t0ticks + 3); i++)
    usleep(10000);
  EXPECT(g_pt_process_ticks >= p0 + 3, "the process timer stopped (%d ticks)",
         int(g_pt_process_ticks));
  EXPECT(g_pt_thread_ticks >= t0ticks + 3, "the thread's timer stopped (%d ticks)",
         int(g_pt_thread_ticks));
  EXPECT(!g_pt_bad_value, "a timer signal came with another value");
  itimerspec cur{};
  EXPECT(syscall(SYS_timer_gettime, t0, &cur) == 0 && cur.it_interval.tv_nsec == 20000000,
         "timer 0: %m, interval %ld", cur.it_interval.tv_nsec);
  EXPECT(syscall(SYS_timer_gettime, t3, &cur) == 0 && cur.it_value.tv_sec <= 100 &&
             cur.it_value.tv_sec >= 80,
         "timer 3: %m, %ld s left", cur.it_value.tv_sec);
  EXPECT(syscall(SYS_timer_gettime, t4, &cur) == 0 && !cur.it_value.tv_sec && !cur.it_value.tv_nsec,
         "timer 4 is not the disarmed one: %m");
  EXPECT(syscall(SYS_timer_gettime, gap, &cur) < 0 && errno == EINVAL, "the deleted timer is back");
  Report();
}

// refuse --what X: holds one thing criu-lite does not carry, so that a dump
// must refuse it and leave the process as it was; the check verifies the
// thing is still there (the lock still held, the fd still in flight...).

}  // namespace wl
