// Process trees and threads: sessions, groups, zombies, stopped children,
// forking while seized, many processes.
#include "test-containers/workload/workload.h"

namespace wl {

// ---- threads -----------------------------------------------------------------
// Eight threads take turns under a mutex and condition variable: thread i may
// increment only when turn % 8 == i. Invariants: sum of counters == turn,
// each thread keeps its TID, and all keep making progress after restore.
constexpr int kThreads = 8;
pthread_mutex_t g_mu = PTHREAD_MUTEX_INITIALIZER;
pthread_cond_t g_cv = PTHREAD_COND_INITIALIZER;
uint64_t g_turn = 0, g_counts[kThreads];
pid_t g_tids[kThreads];
std::atomic<bool> g_stop{false};
std::atomic<int> g_tid_mismatch{-1};

void* TurnTaker(void* arg) {
  int me = static_cast<int>(reinterpret_cast<intptr_t>(arg));
  g_tids[me] = gettid();
  sigset_t all;
  sigfillset(&all);
  pthread_sigmask(SIG_BLOCK, &all, nullptr);  // SIGUSR1 goes to the main thread
  pthread_mutex_lock(&g_mu);
  while (!g_stop) {
    while (g_turn % kThreads != static_cast<uint64_t>(me) && !g_stop)
      pthread_cond_wait(&g_cv, &g_mu);
    if (g_stop) break;
    if (gettid() != g_tids[me]) g_tid_mismatch = me;
    g_counts[me]++;
    g_turn++;
    pthread_cond_broadcast(&g_cv);
  }
  pthread_mutex_unlock(&g_mu);
  return nullptr;
}

int Threads() {
  InstallCheckHandler();
  pthread_t th[kThreads];
  for (int i = 0; i < kThreads; i++)
    pthread_create(&th[i], nullptr, TurnTaker, reinterpret_cast<void*>(static_cast<intptr_t>(i)));
  while (__atomic_load_n(&g_turn, __ATOMIC_SEQ_CST) < 1000) usleep(1000);
  Ready();
  WaitForCheck();
  pthread_mutex_lock(&g_mu);
  uint64_t before = g_turn, after = before;
  pthread_mutex_unlock(&g_mu);
  // Turns go on after restore: 100 more, however slow the machine (a
  // deadlock makes none; 10 s is the bound, not a speed).
  for (int i = 0; i < 1000 && after <= before + 100; i++) {
    usleep(10000);
    pthread_mutex_lock(&g_mu);
    after = g_turn;
    pthread_mutex_unlock(&g_mu);
  }
  pthread_mutex_lock(&g_mu);
  uint64_t sum = 0;
  for (uint64_t c : g_counts) sum += c;
  EXPECT(sum == g_turn, "sum of counters %lu != turns %lu", sum, g_turn);
  for (int i = 0; i < kThreads; i++)
    EXPECT(g_counts[i] == g_turn / kThreads + (static_cast<uint64_t>(i) < g_turn % kThreads),
           "thread %d took %lu turns of %lu", i, g_counts[i], g_turn);
  g_stop = true;
  pthread_cond_broadcast(&g_cv);
  pthread_mutex_unlock(&g_mu);
  EXPECT(after > before + 100, "threads made %lu turns in 10 s after restore", after - before);
  for (int i = 0; i < kThreads; i++) pthread_join(th[i], nullptr);
  EXPECT(g_tid_mismatch < 0, "thread %d changed TID", g_tid_mismatch.load());
  Report();
}

// ---- tree ----------------------------------------------------------------------
// A 3-level tree with its own sessions and groups, a zombie, a stopped child
// and memory shared copy-on-write. On SIGUSR1 the root checks the tree's
// shape from /proc, reaps the zombie, and asks every other task to verify
// itself; each answers by exiting 0.
struct Shape {
  pid_t pid, ppid, pgid, sid;
};
std::vector<Shape> g_shape;
char* g_cow = nullptr;
const size_t kCow = 8 << 20;

// Whether PID has a handler for SIG (/proc/PID/status, SigCgt).
bool CatchesSignal(pid_t pid, int sig) {
  FILE* f = fopen(("/proc/" + std::to_string(pid) + "/status").c_str(), "re");
  if (!f) return false;
  char line[256];
  unsigned long long caught = 0;
  while (fgets(line, sizeof line, f))
    if (sscanf(line, "SigCgt: %llx", &caught) == 1) break;
  fclose(f);
  return caught & (1ull << (sig - 1));
}

Shape ShapeOf(pid_t pid) {
  FILE* f = fopen(("/proc/" + std::to_string(pid) + "/stat").c_str(), "re");
  Shape s{pid, -1, -1, -1};
  if (!f) return s;
  char buf[1024];
  size_t n = fread(buf, 1, sizeof buf - 1, f);
  fclose(f);
  buf[n] = 0;
  char* p = strrchr(buf, ')');
  char state;
  if (p) sscanf(p + 2, "%c %d %d %d", &state, &s.ppid, &s.pgid, &s.sid);
  return s;
}

// A member of the tree: verifies its memory when told, and its own children.
[[noreturn]] void TreeMember(uint64_t seed, const std::vector<pid_t>& kids) {
  WaitForCheck();
  EXPECT(Verify(g_cow, kCow / 2, 500), "inherited half of the shared buffer differs");
  EXPECT(Verify(g_cow + kCow / 2, 4096, seed), "own page differs");
  for (pid_t k : kids) {
    kill(k, SIGUSR1);
    int st;
    EXPECT(waitpid(k, &st, 0) == k && WIFEXITED(st) && WEXITSTATUS(st) == 0, "child %d failed (%x)",
           k, st);
  }
  if (!g_failures.empty()) {
    WriteFile("fail-" + std::to_string(getpid()), g_failures);
    _exit(1);
  }
  _exit(0);
}

pid_t ForkMember(uint64_t seed, const std::function<std::vector<pid_t>()>& setup) {
  pid_t pid = fork();
  if (pid == 0) {
    Fill(g_cow + kCow / 2, 4096, seed);  // one page of its own
    // Before its setup: the stopped member stops in it.
    InstallCheckHandler();
    std::vector<pid_t> kids = setup();
    TreeMember(seed, kids);
  }
  return pid;
}

int Tree() {
  g_cow = static_cast<char*>(
      mmap(nullptr, kCow, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0));
  Fill(g_cow, kCow, 500);
  // A: its own session; its child A1 stays in it.
  pid_t a = ForkMember(501, [] {
    setsid();
    pid_t a1 = ForkMember(502, [] { return std::vector<pid_t>{}; });
    return std::vector<pid_t>{a1};
  });
  // B: its own group in the root's session; B1 joins B's group.
  pid_t b = ForkMember(503, [] {
    setpgid(0, 0);
    pid_t b1 = ForkMember(504, [] { return std::vector<pid_t>{}; });
    return std::vector<pid_t>{b1};
  });
  // Z: a zombie with exit code 7.
  pid_t z = fork();
  if (z == 0) _exit(7);
  // S: stopped.
  pid_t st = ForkMember(505, [] {
    raise(SIGSTOP);
    return std::vector<pid_t>{};
  });
  // O leads its own group, forks G into it, and exits: G is reparented to
  // the root (a subreaper) and stays in a group whose leader is gone.
  prctl(PR_SET_CHILD_SUBREAPER, 1);
  int gpipe[2];
  if (pipe(gpipe) < 0) return 2;
  pid_t o = fork();
  if (o == 0) {
    setpgid(0, 0);
    pid_t g = ForkMember(506, [] { return std::vector<pid_t>{}; });
    if (write(gpipe[1], &g, sizeof g) != sizeof g) _exit(1);
    _exit(0);
  }
  pid_t orphan = -1;
  if (read(gpipe[0], &orphan, sizeof orphan) != sizeof orphan) return 2;
  close(gpipe[0]);
  close(gpipe[1]);
  waitpid(o, nullptr, 0);
  // Wait until the tree has its shape.
  usleep(200000);
  std::vector<pid_t> all = {getpid(), a, b, st, orphan};
  for (pid_t p : {a, b}) {
    std::string kids;
    FILE* f = fopen(
        ("/proc/" + std::to_string(p) + "/task/" + std::to_string(p) + "/children").c_str(), "re");
    char buf[256] = {};
    if (f) {
      if (fgets(buf, sizeof buf, f)) all.push_back(atoi(buf));
      fclose(f);
    }
  }
  for (pid_t p : all) g_shape.push_back(ShapeOf(p));
  InstallCheckHandler();
  // Every member catches the check signal before the tree says it is
  // ready: dumped before, a slow one would come back without its handler
  // and die of the signal (the sleep above did not suffice under emulation).
  for (pid_t p : all)
    for (int i = 0; i < 2000 && !CatchesSignal(p, SIGUSR1); i++) usleep(5000);
  Ready();
  WaitForCheck();

  for (const Shape& want : g_shape) {
    Shape got = ShapeOf(want.pid);
    EXPECT(got.ppid == want.ppid || want.pid == getpid(), "PID %d has parent %d, want %d", want.pid,
           got.ppid, want.ppid);
    EXPECT(got.pgid == want.pgid, "PID %d is in group %d, want %d", want.pid, got.pgid, want.pgid);
    EXPECT(got.sid == want.sid, "PID %d is in session %d, want %d", want.pid, got.sid, want.sid);
  }
  EXPECT(Verify(g_cow, kCow, 500), "root's buffer differs");
  int status = 0;
  EXPECT(waitpid(z, &status, WNOHANG) == z && WIFEXITED(status) && WEXITSTATUS(status) == 7,
         "zombie %d: wait status %x", z, status);
  std::string stat = ReadProcStat(st);
  EXPECT(stat == "T", "stopped child is in state %s", stat.c_str());
  kill(st, SIGCONT);
  EXPECT(ShapeOf(orphan).pgid == o, "orphan left its leaderless group %d", o);
  for (pid_t k : {a, b, st, orphan}) {
    kill(k, SIGUSR1);
    EXPECT(waitpid(k, &status, 0) == k && WIFEXITED(status) && WEXITSTATUS(status) == 0,
           "child %d failed (%x)", k, status);
  }
  Report();
}

// ---- forker --------------------------------------------------------------------
// Forks short-lived children all the time, also while being seized.
int Forker() {
  InstallCheckHandler();
  int forked = 0, reaped = 0, bad = 0;
  auto reap = [&](int flags) {
    int st;
    pid_t r;
    while ((r = waitpid(-1, &st, flags)) > 0) {
      reaped++;
      if (!WIFEXITED(st) || WEXITSTATUS(st) != 3) bad++;
    }
  };
  auto spawn = [&] {
    pid_t c = fork();
    if (c == 0) {
      usleep(20000);
      _exit(3);
    }
    if (c > 0) forked++;
  };
  for (int i = 0; i < 20; i++) spawn();
  Ready();
  while (!g_check) {
    spawn();
    reap(WNOHANG);
    usleep(2000);
  }
  for (int i = 0; i < 10; i++) spawn();
  reap(0);
  EXPECT(bad == 0, "%d children ended badly", bad);
  EXPECT(reaped > 0 && forked > 0, "forked %d, reaped %d", forked, reaped);
  Report();
}

// ---- runaway ---------------------------------------------------------------------
// --what DIR: joins the cgroup at DIR first. Four lines of processes that
// run away: each member forks its successor and exits at once, so that every
// PID seen is soon gone and a walk of /proc never finds the tree still. The
// root, a subreaper, reaps them all. At the check the lines must still be
// running (the count of forks, in shared memory, grows), then they stop and
// every member must have exited 0.
int Runaway(const std::string& cgroup) {
  if (!cgroup.empty()) {
    std::ofstream(cgroup + "/cgroup.procs") << getpid() << std::flush;
    std::ifstream in("/proc/self/cgroup");
    std::string all((std::istreambuf_iterator<char>(in)), {});
    std::string leaf = cgroup.substr(cgroup.rfind('/'));
    if (all.find(leaf + "\n") == std::string::npos) {
      fprintf(stderr, "could not join %s\n", cgroup.c_str());
      return 1;
    }
  }
  InstallCheckHandler();
  prctl(PR_SET_CHILD_SUBREAPER, 1);
  struct Shared {
    std::atomic<long> forks;
    std::atomic<int> stop;
  };
  auto* sh = static_cast<Shared*>(
      mmap(nullptr, 4096, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0));
  pid_t root = getpid();
  for (int i = 0; i < 4; i++)
    if (fork() == 0) {
      for (;;) {
        // (A line never outlives its root: killed, it stops them all.)
        if (sh->stop || kill(root, 0) < 0) _exit(0);
        pid_t c = fork();
        if (c > 0) _exit(0);  // the successor goes on
        if (c < 0) usleep(1000);
        sh->forks++;
      }
    }
  int bad = 0;
  auto reap = [&](int flags) {
    int st;
    pid_t r;
    while ((r = waitpid(-1, &st, flags)) > 0)
      if (!WIFEXITED(st) || WEXITSTATUS(st) != 0) bad++;
  };
  Ready();
  while (!g_check) {
    reap(WNOHANG);
    usleep(1000);
  }
  // The lines run on: 100 more forks, however slow the machine (10 s is
  // the bound, not a speed).
  long before = sh->forks, after = before;
  for (int i = 0; i < 1000 && after <= before + 100; i++) {
    reap(WNOHANG);
    usleep(10000);
    after = sh->forks;
  }
  sh->stop = 1;
  reap(0);  // ECHILD once no line is left
  EXPECT(after > before + 100, "the lines stopped running: %ld forks, then %ld in 10 s", before,
         after);
  EXPECT(bad == 0, "%d members ended badly", bad);
  Report();
}

// ---- forest (benchmarks) ---------------------------------------------------------
// --procs N processes (the root and N-1 children) with --threads T threads
// each and --big-mib M MiB of their own memory.
void* Idle(void*) {
  for (;;) pause();
}

int Forest(int procs, int threads, long mib) {
  size_t len = static_cast<size_t>(mib) << 20;
  auto setup = [&](uint64_t seed) {
    void* mem = mmap(nullptr, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    Fill(mem, len, seed);
    for (int t = 1; t < threads; t++) {
      pthread_t th;
      pthread_create(&th, nullptr, Idle, nullptr);
    }
    return mem;
  };
  std::vector<pid_t> kids;
  for (int i = 1; i < procs; i++) {
    pid_t c = fork();
    if (c == 0) {
      void* mem = setup(900 + i);
      InstallCheckHandler();
      WaitForCheck();
      _exit(Verify(mem, len, 900 + i) ? 0 : 1);
    }
    kids.push_back(c);
  }
  void* mem = setup(900);
  InstallCheckHandler();
  usleep(200000 + procs * 10000);
  Ready();
  WaitForCheck();
  EXPECT(Verify(mem, len, 900), "root memory differs");
  CheckChildren(kids);
  Report();
}

int Jobs() {
  InstallCheckHandler();
  pid_t leader = fork();
  if (leader == 0) {
    setpgid(0, 0);
    pid_t z = syscall(SYS_clone, CLONE_PARENT | SIGCHLD, 0, 0, 0, 0);
    if (z == 0) _exit(7);
    _exit(z > 0 ? 0 : 1);
  }
  int st = 0;
  waitpid(leader, &st, 0);
  if (!WIFEXITED(st) || WEXITSTATUS(st)) return 2;
  pid_t stopped = fork();
  if (stopped == 0) {
    setpgid(0, 0);
    for (;;) pause();
  }
  setpgid(stopped, stopped);
  pid_t session = fork();
  if (session == 0) {
    setsid();
    _exit(3);
  }
  kill(stopped, SIGTSTP);
  siginfo_t si{};
  if (waitid(P_PID, stopped, &si, WSTOPPED | WNOWAIT) < 0 || si.si_status != SIGTSTP) return 2;
  // The zombie of the leader's child: the one exited child left unreaped.
  pid_t zombie = -1;
  for (int i = 0; i < 500 && zombie < 0; i++) {
    siginfo_t w{};
    if (waitid(P_PGID, leader, &w, WEXITED | WNOWAIT | WNOHANG) == 0 && w.si_pid > 0)
      zombie = w.si_pid;
    else
      usleep(10000);
  }
  if (zombie < 0) return 2;
  siginfo_t sw{};
  while (waitid(P_PID, session, &sw, WEXITED | WNOWAIT) < 0 && errno == EINTR) {
  }
  Ready();
  WaitForCheck();
  siginfo_t w{};
  EXPECT(waitid(P_PID, stopped, &w, WSTOPPED | WNOWAIT) == 0 && w.si_code == CLD_STOPPED &&
             w.si_status == SIGTSTP,
         "stopped child: code %d status %d (not stopped by SIGTSTP)", w.si_code, w.si_status);
  EXPECT(waitid(P_PID, zombie, &w, WEXITED | WNOWAIT) == 0 && w.si_status == 7, "zombie: status %d",
         w.si_status);
  EXPECT(getpgid(zombie) == leader, "zombie in group %d, not %d", getpgid(zombie), leader);
  EXPECT(waitid(P_PID, session, &w, WEXITED | WNOWAIT) == 0 && w.si_status == 3,
         "session zombie: status %d", w.si_status);
  EXPECT(getsid(session) == session, "zombie in session %d, not its own", getsid(session));
  kill(stopped, SIGKILL);
  waitpid(stopped, nullptr, 0);
  waitpid(zombie, nullptr, 0);
  waitpid(session, nullptr, 0);
  Report();
}

// seccomp: two filters; the first installed with TSYNC (so the helper thread
// shares it) makes getpgrp() fail with EACCES, the second, the main thread's
// alone and logged, makes getsid() fail with ENOTSUP. --what strict: strict
// mode instead, blocked in read(); the check signal makes it exit(0) (the
// only way out strict mode leaves).

// ---- counter (demo) -------------------------------------------------------------
int Counter() {
  InstallCheckHandler();
  const size_t kLen = 256 << 20;
  auto* mem = static_cast<uint64_t*>(
      mmap(nullptr, kLen, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0));
  Fill(mem, kLen, 42);
  uint64_t n = 0;
  Ready();
  for (;;) {
    printf("counter %lu, pid %d, memory %s\n", n++, getpid(),
           Verify(mem, kLen, 42) ? "intact" : "CORRUPT");
    fflush(stdout);
    if (g_check) {
      EXPECT(Verify(mem, kLen, 42), "memory corrupt");
      Report();
    }
    sleep(1);
  }
}

}  // namespace wl
