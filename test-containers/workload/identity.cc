// Identity: users, capabilities, securebits, scheduling, seccomp filters.
#include "test-containers/workload/workload.h"

namespace wl {

// ---- identity ------------------------------------------------------------------
// identity: who the process is and how it runs. Another user (uid 65534,
// gid 100, groups 4 and 24) that kept some capabilities (permitted,
// effective, inheritable, ambient, a smaller bounding set), with securebits
// and no_new_privs; SCHED_BATCH at nice 7 on the first CPU, timer slack, I/O
// priority; oom_score_adj 400, THP disabled, a membarrier registration, not
// dumpable; a second thread scheduled otherwise (nice 3, the last CPU, its
// own slack) whose capabilities differ; a non-blocking pipe; and a child
// with a parent-death signal.
constexpr uint64_t Cap(int c) { return 1ull << c; }
constexpr uint64_t kIdPermitted = Cap(CAP_NET_BIND_SERVICE) | Cap(CAP_KILL) | Cap(CAP_SYS_NICE);
constexpr int kIdIoprio = (2 << 13) | 6;  // IOPRIO_CLASS_BE, level 6
std::atomic<int> g_id_thread_ready{0};
std::string g_id_thread_failures;

int LastCpu() { return std::max(0L, sysconf(_SC_NPROCESSORS_ONLN) - 1); }

bool OnlyCpu(int cpu) {
  cpu_set_t s;
  sched_getaffinity(0, sizeof s, &s);
  return CPU_COUNT(&s) == 1 && CPU_ISSET(cpu, &s);
}

void PinTo(int cpu) {
  cpu_set_t s;
  CPU_ZERO(&s);
  CPU_SET(cpu, &s);
  sched_setaffinity(0, sizeof s, &s);
}

void CapGet(uint64_t* eff, uint64_t* prm, uint64_t* inh) {
  __user_cap_header_struct h{_LINUX_CAPABILITY_VERSION_3, 0};
  __user_cap_data_struct d[2]{};
  syscall(SYS_capget, &h, d);
  *eff = d[0].effective | (uint64_t{d[1].effective} << 32);
  *prm = d[0].permitted | (uint64_t{d[1].permitted} << 32);
  *inh = d[0].inheritable | (uint64_t{d[1].inheritable} << 32);
}

void* IdentityThread(void*) {
  sigset_t usr1;  // the check signal is for the main thread's pause()
  sigemptyset(&usr1);
  sigaddset(&usr1, SIGUSR1);
  pthread_sigmask(SIG_BLOCK, &usr1, nullptr);
  setpriority(PRIO_PROCESS, 0, 3);
  PinTo(LastCpu());
  prctl(PR_SET_TIMERSLACK, 777000);
  g_id_thread_ready = 1;
  while (!g_check) usleep(20000);
  if (getpriority(PRIO_PROCESS, 0) != 3) g_id_thread_failures += "thread nice; ";
  if (!OnlyCpu(LastCpu())) g_id_thread_failures += "thread affinity; ";
  if (prctl(PR_GET_TIMERSLACK) != 777000) g_id_thread_failures += "thread timer slack; ";
  uid_t r, e, sv;
  getresuid(&r, &e, &sv);
  if (e != 65534) g_id_thread_failures += "thread uid; ";
  return nullptr;
}

int Identity() {
  InstallCheckHandler();
  // The child stays root: the parent, another user by then, cannot signal
  // it, and tells it to check by closing its end of a pipe.
  int go[2];
  if (pipe(go) < 0) return 2;
  pid_t child = fork();
  if (child == 0) {
    close(go[1]);
    prctl(PR_SET_PDEATHSIG, SIGUSR2);  // its default action kills: fired by mistake, it shows
    char c;
    while (read(go[0], &c, 1) > 0 || errno == EINTR) {
    }
    int sig = 0;
    prctl(PR_GET_PDEATHSIG, &sig);
    _exit(sig == SIGUSR2 ? 0 : 1);
  }
  sched_param sp{};
  EXPECT(sched_setscheduler(0, SCHED_BATCH, &sp) == 0, "SCHED_BATCH: %m");
  EXPECT(setpriority(PRIO_PROCESS, 0, 7) == 0, "nice: %m");

  FILE* oom = fopen("/proc/self/oom_score_adj", "we");
  EXPECT(oom && fputs("400", oom) >= 0 && fclose(oom) == 0, "oom_score_adj: %m");
  prctl(PR_SET_TIMERSLACK, 123456);
  EXPECT(syscall(SYS_ioprio_set, 1, 0, kIdIoprio) == 0, "ioprio_set: %m");
  EXPECT(prctl(PR_SET_THP_DISABLE, 1, 0, 0, 0) == 0, "THP disable: %m");
  EXPECT(syscall(SYS_membarrier, MEMBARRIER_CMD_REGISTER_PRIVATE_EXPEDITED, 0, 0) == 0,
         "membarrier register: %m");
  close(go[0]);
  // Advice that a fork and a core dump obey: it must come back.
  const size_t kAdvised = 4 * 4096;
  auto* wipe = static_cast<char*>(
      mmap(nullptr, kAdvised, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0));
  auto* nodump = static_cast<char*>(
      mmap(nullptr, kAdvised, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0));
  memset(wipe, 'w', kAdvised);
  memset(nodump, 'd', kAdvised);
  EXPECT(madvise(wipe, kAdvised, MADV_WIPEONFORK) == 0 &&
             madvise(nodump, kAdvised, MADV_DONTDUMP) == 0 &&
             madvise(nodump, kAdvised, MADV_RANDOM) == 0,
         "madvise: %m");
  int p[2];
  EXPECT(pipe2(p, O_NONBLOCK) == 0 && write(p[1], "abc", 3) == 3, "pipe: %m");
  // Its SIGIO goes to this process as SIGRTMIN+3 (nothing more is written).
  EXPECT(fcntl(p[0], F_SETOWN, getpid()) == 0 && fcntl(p[0], F_SETSIG, SIGRTMIN + 3) == 0 &&
             fcntl(p[0], F_SETFL, O_NONBLOCK | O_ASYNC) == 0,
         "O_ASYNC: %m");
  pthread_t th;
  pthread_create(&th, nullptr, IdentityThread, nullptr);
  while (!g_id_thread_ready) usleep(1000);
  PinTo(0);
  // Becoming another user: the files it writes go to a directory it can write.
  chmod(g_dir.c_str(), 0777);
  EXPECT(prctl(PR_CAPBSET_DROP, CAP_SYS_MODULE) == 0, "bounding set: %m");
  EXPECT(prctl(PR_SET_SECUREBITS, SECBIT_KEEP_CAPS | SECBIT_NOROOT) == 0, "securebits: %m");
  gid_t groups[] = {4, 24};
  EXPECT(setgroups(2, groups) == 0, "setgroups: %m");
  EXPECT(setresgid(100, 100, 100) == 0 && setresuid(65534, 65534, 65534) == 0, "setres*id: %m");
  __user_cap_header_struct h{_LINUX_CAPABILITY_VERSION_3, 0};
  __user_cap_data_struct d[2]{};
  d[0].permitted = kIdPermitted;
  d[0].effective = Cap(CAP_NET_BIND_SERVICE);
  d[0].inheritable = Cap(CAP_NET_BIND_SERVICE);
  EXPECT(syscall(SYS_capset, &h, d) == 0, "capset: %m");
  EXPECT(prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_RAISE, CAP_NET_BIND_SERVICE, 0, 0) == 0,
         "ambient: %m");
  EXPECT(prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) == 0, "no_new_privs: %m");
  EXPECT(prctl(PR_SET_DUMPABLE, 0) == 0, "dumpable: %m");
  if (!g_failures.empty()) Report();
  Ready();
  WaitForCheck();

  int policy = sched_getscheduler(0);
  EXPECT(policy == SCHED_BATCH, "policy %d, not SCHED_BATCH", policy);
  EXPECT(getpriority(PRIO_PROCESS, 0) == 7, "nice %d, not 7", getpriority(PRIO_PROCESS, 0));
  EXPECT(OnlyCpu(0), "not pinned to CPU 0");
  FILE* f = fopen("/proc/self/oom_score_adj", "re");
  int adj_value = 0;
  EXPECT(f && fscanf(f, "%d", &adj_value) == 1 && adj_value == 400, "oom_score_adj %d", adj_value);
  if (f) fclose(f);
  EXPECT(prctl(PR_GET_TIMERSLACK) == 123456, "timer slack %d", prctl(PR_GET_TIMERSLACK));
  EXPECT(syscall(SYS_ioprio_get, 1, 0) == kIdIoprio, "ioprio 0x%lx", syscall(SYS_ioprio_get, 1, 0));
  EXPECT(prctl(PR_GET_THP_DISABLE, 0, 0, 0, 0) == 1, "THP enabled again");
  EXPECT(syscall(SYS_membarrier, MEMBARRIER_CMD_PRIVATE_EXPEDITED, 0, 0) == 0,
         "membarrier registration lost: %m");
  EXPECT(prctl(PR_GET_DUMPABLE) == 0, "dumpable again");
  EXPECT(prctl(PR_GET_NO_NEW_PRIVS, 0, 0, 0, 0) == 1, "no_new_privs lost");
  EXPECT(prctl(PR_GET_SECUREBITS) == (SECBIT_KEEP_CAPS | SECBIT_NOROOT), "securebits 0x%x",
         prctl(PR_GET_SECUREBITS));
  uid_t ru, eu, su;
  gid_t rg, eg, sg;
  getresuid(&ru, &eu, &su);
  getresgid(&rg, &eg, &sg);
  EXPECT(ru == 65534 && eu == 65534 && su == 65534, "uids %u %u %u", ru, eu, su);
  EXPECT(rg == 100 && eg == 100 && sg == 100, "gids %u %u %u", rg, eg, sg);
  gid_t got[8];
  int n = getgroups(8, got);
  EXPECT(n == 2 && got[0] == 4 && got[1] == 24, "%d supplementary groups", n);
  uint64_t eff, prm, inh;
  CapGet(&eff, &prm, &inh);
  EXPECT(
      prm == kIdPermitted && eff == Cap(CAP_NET_BIND_SERVICE) && inh == Cap(CAP_NET_BIND_SERVICE),
      "capabilities eff %lx prm %lx inh %lx", eff, prm, inh);
  EXPECT(prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_IS_SET, CAP_NET_BIND_SERVICE, 0, 0) == 1,
         "ambient capability lost");
  EXPECT(prctl(PR_CAPBSET_READ, CAP_SYS_MODULE) == 0, "CAP_SYS_MODULE back in the bounding set");
  int fl = fcntl(p[0], F_GETFL);
  EXPECT(fl >= 0 && (fl & O_NONBLOCK) && (fl & O_ASYNC), "pipe flags 0%o", fl);
  EXPECT(fcntl(p[0], F_GETOWN) == getpid(), "pipe owner %d", fcntl(p[0], F_GETOWN));
  EXPECT(fcntl(p[0], F_GETSIG) == SIGRTMIN + 3, "pipe signal %d", fcntl(p[0], F_GETSIG));
  char buf[4] = {};
  EXPECT(read(p[0], buf, 4) == 3 && !memcmp(buf, "abc", 3), "pipe data");
  EXPECT(read(p[0], buf, 4) < 0 && errno == EAGAIN, "an empty pipe blocks");
  EXPECT(wipe[0] == 'w' && nodump[0] == 'd', "advised memory lost its contents");
  pid_t wiped = fork();  // MADV_WIPEONFORK: the child sees zeros
  if (wiped == 0) _exit(wipe[0] == 0 && wipe[kAdvised - 1] == 0 && nodump[0] == 'd' ? 0 : 1);
  int ws = 0;
  EXPECT(waitpid(wiped, &ws, 0) == wiped && WIFEXITED(ws) && WEXITSTATUS(ws) == 0,
         "MADV_WIPEONFORK lost: a child saw the parent's data");
  pthread_join(th, nullptr);
  if (!g_id_thread_failures.empty()) Fail("%s", g_id_thread_failures.c_str());
  close(go[1]);
  int st;
  EXPECT(waitpid(child, &st, 0) == child && WIFEXITED(st) && WEXITSTATUS(st) == 0,
         "the child's parent-death signal: status 0x%x", st);
  Report();
}

int InstallDenyFilter(long nr, int err, unsigned flags) {
  sock_filter insns[] = {BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(seccomp_data, nr)),
                         BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, static_cast<uint32_t>(nr), 0, 1),
                         BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | static_cast<uint32_t>(err)),
                         BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW)};
  sock_fprog prog{4, insns};
  return syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, flags, &prog);
}

std::atomic<int> g_sc_thread_ready{0};
std::string g_sc_thread_failures;

void* SeccompThread(void*) {
  sigset_t usr1;
  sigemptyset(&usr1);
  sigaddset(&usr1, SIGUSR1);
  pthread_sigmask(SIG_BLOCK, &usr1, nullptr);
  g_sc_thread_ready = 1;
  while (!g_check) usleep(20000);
  if (!(syscall(SYS_getpgrp) < 0 && errno == EACCES)) g_sc_thread_failures += "thread getpgrp; ";
  if (syscall(SYS_getsid, 0) < 0) g_sc_thread_failures += "thread getsid filtered; ";
  return nullptr;
}

int Seccomp(const std::string& what) {
  InstallCheckHandler();
  if (what == "strict") {
    int p[2];
    if (pipe(p) < 0) return 2;
    Ready();
    if (prctl(PR_SET_SECCOMP, SECCOMP_MODE_STRICT) < 0) return 2;
    char c;
    while (!g_check) read(p[0], &c, 1);
    syscall(SYS_exit, 0);
  }
  pthread_t th;
  pthread_create(&th, nullptr, SeccompThread, nullptr);
  while (!g_sc_thread_ready) usleep(1000);
  if (InstallDenyFilter(SYS_getpgrp, EACCES, SECCOMP_FILTER_FLAG_TSYNC) != 0 ||
      InstallDenyFilter(SYS_getsid, ENOTSUP, SECCOMP_FILTER_FLAG_LOG) != 0)
    return 2;
  Ready();
  WaitForCheck();
  EXPECT(prctl(PR_GET_SECCOMP) == 2, "seccomp mode %d", prctl(PR_GET_SECCOMP));
  EXPECT(syscall(SYS_getpgrp) < 0 && errno == EACCES, "getpgrp is no longer filtered");
  EXPECT(syscall(SYS_getsid, 0) < 0 && errno == ENOTSUP, "getsid is no longer filtered");
  pthread_join(th, nullptr);
  if (!g_sc_thread_failures.empty()) Fail("%s", g_sc_thread_failures.c_str());
  Report();
}

}  // namespace wl

namespace wl {

// ---- uts ------------------------------------------------------------------------
// The root in a UTS namespace of its own (hostname crl-uts, domain crl.test);
// a child in another one it made (crl-uts-child), and the child's child in
// its parent's. Each checks the names it sees, and that it shares its
// namespace with its parent or not, as it did.
namespace {

bool NamesAre(const char* host, const char* domain) {
  utsname u{};
  uname(&u);
  return std::string(u.nodename) == host && std::string(u.domainname) == domain;
}

ino_t UtsOf(pid_t pid) {
  struct stat st {};
  stat(("/proc/" + std::to_string(pid) + "/ns/uts").c_str(), &st);
  return st.st_ino;
}

}  // namespace

int Uts() {
  if (unshare(CLONE_NEWUTS) < 0 || sethostname("crl-uts", 7) < 0 ||
      setdomainname("crl.test", 8) < 0)
    return 2;
  int ready[2], below[2];  // child -> root; grandchild -> child
  if (pipe(ready) < 0 || pipe(below) < 0) return 2;
  pid_t kid = fork();
  if (kid == 0) {
    if (unshare(CLONE_NEWUTS) < 0 || sethostname("crl-uts-child", 13) < 0) _exit(2);
    pid_t grandkid = fork();
    if (grandkid == 0) {
      InstallCheckHandler();
      (void)!write(below[1], "g", 1);
      WaitForCheck();
      _exit(NamesAre("crl-uts-child", "crl.test") && UtsOf(getpid()) == UtsOf(getppid()) ? 0 : 1);
    }
    InstallCheckHandler();
    char c;
    if (read(below[0], &c, 1) != 1) _exit(2);
    (void)!write(ready[1], "k", 1);
    WaitForCheck();
    bool ok = NamesAre("crl-uts-child", "crl.test") && UtsOf(getpid()) != UtsOf(getppid());
    kill(grandkid, SIGUSR1);
    int st;
    ok = ok && waitpid(grandkid, &st, 0) == grandkid && WIFEXITED(st) && WEXITSTATUS(st) == 0;
    _exit(ok ? 0 : 1);
  }
  InstallCheckHandler();
  // Both descendants made: the grandchild told the child, which tells us.
  char c;
  if (read(ready[0], &c, 1) != 1) return 2;
  Ready();
  WaitForCheck();
  EXPECT(NamesAre("crl-uts", "crl.test"), "the root's uts names changed");
  CheckChildren({kid});
  Report();
}

}  // namespace wl

namespace wl {

// ---- cgroupns ---------------------------------------------------------------------
// --what DIR (a cgroup2 cgroup): joins it, unshares a cgroup namespace there
// (its root), moves into DIR/sub, and forks a child. Each checks that it
// sees its cgroups as it did: "0::/sub", and "/" in the v1 hierarchies.
int CgroupNs(const std::string& dir) {
  std::string sub = dir + "/sub";
  if (mkdir(sub.c_str(), 0755) < 0 && errno != EEXIST) return 2;
  std::ofstream(dir + "/cgroup.procs") << getpid() << std::flush;
  if (unshare(CLONE_NEWCGROUP) < 0) return 2;
  std::ofstream(sub + "/cgroup.procs") << getpid() << std::flush;
  auto view = [] {
    std::ifstream in("/proc/self/cgroup");
    return std::string((std::istreambuf_iterator<char>(in)), {});
  };
  std::string before = view();
  if (before.find("0::/sub\n") == std::string::npos) {
    fprintf(stderr, "not in /sub of the namespace: %s", before.c_str());
    return 2;
  }
  pid_t kid = fork();
  if (kid == 0) {
    InstallCheckHandler();
    WaitForCheck();
    _exit(view() == before ? 0 : 1);
  }
  InstallCheckHandler();
  Ready();
  WaitForCheck();
  std::string after = view();
  EXPECT(after == before, "the cgroups seen changed: %s -> %s", before.c_str(), after.c_str());
  CheckChildren({kid});
  Report();
}

}  // namespace wl

namespace wl {

// ---- ipcns --------------------------------------------------------------------------
// An IPC namespace of its own, empty, with two sysctls changed (one System V,
// one of POSIX message queues), and a child in it. Each checks the values
// and that the child shares the namespace.
namespace {

std::string Sysctl(const char* name) {
  std::ifstream in(std::string("/proc/sys/") + name);
  std::string v;
  std::getline(in, v);
  return v;
}

ino_t IpcOf(pid_t pid) {
  struct stat st {};
  stat(("/proc/" + std::to_string(pid) + "/ns/ipc").c_str(), &st);
  return st.st_ino;
}

bool IpcAsSet() {
  return Sysctl("kernel/msgmax") == "12345" && Sysctl("fs/mqueue/msg_max") == "20";
}

}  // namespace

int IpcNs() {
  if (unshare(CLONE_NEWIPC) < 0) return 2;
  std::ofstream("/proc/sys/kernel/msgmax") << "12345" << std::flush;
  std::ofstream("/proc/sys/fs/mqueue/msg_max") << "20" << std::flush;
  if (!IpcAsSet()) return 2;
  pid_t kid = fork();
  if (kid == 0) {
    InstallCheckHandler();
    WaitForCheck();
    _exit(IpcAsSet() && IpcOf(getpid()) == IpcOf(getppid()) ? 0 : 1);
  }
  InstallCheckHandler();
  Ready();
  WaitForCheck();
  EXPECT(IpcAsSet(), "msgmax %s, mqueue msg_max %s", Sysctl("kernel/msgmax").c_str(),
         Sysctl("fs/mqueue/msg_max").c_str());
  CheckChildren({kid});
  Report();
}

}  // namespace wl

namespace wl {

// ---- pidns ---------------------------------------------------------------------
// The workload makes the init of a PID namespace (its host PID in
// DIR/init-pid) and waits for it: the tree to dump is the init's. The init
// leads a session of its own and has, each checking the PIDs it sees
// through syscalls (the namespace has no /proc of its own):
//   A  its own group, a second thread, the other end of a socket pair the
//      init made, a socket pair of its own, and a pidfd the init holds for
//      it, through which it is asked to check itself. SO_PEERCRED names the
//      init (PID 1) and A as the pairs' makers, before the dump and after
//      the restore (made again as them in the namespace);
//   B  in A's group;
//   Z  a zombie that exited with 7, which the init reaps after restore;
//   N  the init of a nested namespace (PID 1 there), with a child (PID 2).
std::atomic<pid_t> g_pidns_thread{0};

pid_t PeerPid(int sock) {
  ucred c{};
  socklen_t len = sizeof c;
  return getsockopt(sock, SOL_SOCKET, SO_PEERCRED, &c, &len) == 0 && c.uid == 0 ? c.pid : -1;
}

[[noreturn]] void PidNsA(int sock, int ready) {
  setpgid(0, 0);
  pid_t me = getpid();
  std::thread([] {
    g_pidns_thread = static_cast<pid_t>(syscall(SYS_gettid));
    for (;;) pause();
  }).detach();
  while (!g_pidns_thread) usleep(1000);
  pid_t thread = g_pidns_thread;
  int own[2];  // made by A itself
  if (PeerPid(sock) != 1 || socketpair(AF_UNIX, SOCK_STREAM, 0, own) < 0 || PeerPid(own[0]) != me)
    _exit(2);
  InstallCheckHandler();
  (void)!write(ready, "a", 1);
  WaitForCheck();
  bool ok = getpid() == me && getppid() == 1 && getpgid(0) == me && getsid(0) == 1 &&
            g_pidns_thread == thread && syscall(SYS_tgkill, me, thread, 0) == 0 &&
            PeerPid(sock) == 1 && PeerPid(own[1]) == me;
  _exit(ok ? 0 : 1);
}

[[noreturn]] void PidNsNested(int ready) {
  // PID 1 of the nested namespace; its child is 2 there.
  int below[2];
  if (pipe(below) < 0) _exit(2);
  pid_t kid = fork();
  if (kid == 0) {
    InstallCheckHandler();
    (void)!write(below[1], "k", 1);
    WaitForCheck();
    _exit(getpid() == 2 && getppid() == 1 ? 0 : 1);
  }
  char c;
  if (read(below[0], &c, 1) != 1) _exit(2);
  InstallCheckHandler();
  (void)!write(ready, "n", 1);
  WaitForCheck();
  bool ok = getpid() == 1 && kid == 2 && kill(kid, 0) == 0;
  kill(kid, SIGUSR1);
  int st;
  ok = ok && waitpid(kid, &st, 0) == kid && WIFEXITED(st) && WEXITSTATUS(st) == 0;
  _exit(ok ? 0 : 1);
}

[[noreturn]] void PidNsInit() {
  setsid();
  int sp[2], ready[2];
  if (socketpair(AF_UNIX, SOCK_STREAM, 0, sp) < 0 || pipe(ready) < 0) _exit(2);
  // One at a time, so that PIDs are handed out in a known order.
  char c;
  pid_t a = fork();
  if (a == 0) PidNsA(sp[1], ready[1]);
  if (read(ready[0], &c, 1) != 1) _exit(2);
  pid_t b = fork();
  if (b == 0) {
    setpgid(0, a);
    InstallCheckHandler();
    (void)!write(ready[1], "b", 1);
    WaitForCheck();
    _exit(getppid() == 1 && getpgid(0) == a && getsid(0) == 1 ? 0 : 1);
  }
  if (read(ready[0], &c, 1) != 1) _exit(2);
  pid_t z = fork();
  if (z == 0) _exit(7);
  pid_t n =
      static_cast<pid_t>(syscall(SYS_clone, CLONE_NEWPID | SIGCHLD, nullptr, nullptr, nullptr, 0));
  if (n == 0) PidNsNested(ready[1]);
  if (read(ready[0], &c, 1) != 1) _exit(2);
  siginfo_t si{};
  while (waitid(P_PID, z, &si, WEXITED | WNOWAIT) < 0 && errno == EINTR) {
  }
  int pidfd = static_cast<int>(syscall(SYS_pidfd_open, a, 0));
  pid_t me = getpid();
  InstallCheckHandler();
  Ready();
  WaitForCheck();
  EXPECT(me == 1 && getpid() == 1 && getsid(0) == 1, "the init is %d (session %d)", getpid(),
         getsid(0));
  EXPECT(a == 2 && b == 4 && z == 5 && n == 6, "children %d %d %d %d, not 2 4 5 6", a, b, z, n);
  EXPECT(PeerPid(sp[0]) == 1, "SO_PEERCRED names PID %d, not the init that made the pair",
         PeerPid(sp[0]));
  int st = 0;
  EXPECT(waitpid(z, &st, WNOHANG) == z && WIFEXITED(st) && WEXITSTATUS(st) == 7,
         "zombie %d is not there to reap with 7", z);
  EXPECT(pidfd >= 0 && syscall(SYS_pidfd_send_signal, pidfd, SIGUSR1, nullptr, 0) == 0,
         "the pidfd does not reach %d", a);
  EXPECT(waitpid(a, &st, 0) == a && WIFEXITED(st) && WEXITSTATUS(st) == 0, "child %d failed", a);
  CheckChildren({b, n});
  Report();
}

int PidNs() {
  pid_t init =
      static_cast<pid_t>(syscall(SYS_clone, CLONE_NEWPID | SIGCHLD, nullptr, nullptr, nullptr, 0));
  if (init < 0) return 2;
  if (init == 0) PidNsInit();
  WriteFile("init-pid", std::to_string(init) + "\n");
  int st;
  while (waitpid(init, &st, 0) < 0 && errno == EINTR) {
  }
  for (;;) pause();
}

}  // namespace wl

namespace wl {

// ---- timens --------------------------------------------------------------------
// A time namespace of the workload's own, its monotonic clock 100000 s and
// its boot-time clock 200000 s ahead of the host's, entered by the root and
// shared by a child: each checks its clocks are still that far ahead.
bool ClocksAhead() {
  timespec mono{}, boot{};
  clock_gettime(CLOCK_MONOTONIC, &mono);
  clock_gettime(CLOCK_BOOTTIME, &boot);
  // The host's boot time is at least its monotonic time.
  return mono.tv_sec >= 100000 && boot.tv_sec - mono.tv_sec >= 100000 - 1;
}

int TimeNs() {
  if (unshare(CLONE_NEWTIME) < 0) return 2;
  {
    std::ofstream off("/proc/self/timens_offsets");
    off << "monotonic 100000 0\nboottime 200000 0\n" << std::flush;
    if (!off) return 2;
  }
  int ns = open("/proc/self/ns/time_for_children", O_RDONLY | O_CLOEXEC);
  if (ns < 0 || setns(ns, CLONE_NEWTIME) < 0 || close(ns) < 0 || !ClocksAhead()) return 2;
  int ready[2];
  if (pipe(ready) < 0) return 2;
  pid_t kid = fork();
  if (kid == 0) {
    InstallCheckHandler();
    (void)!write(ready[1], "k", 1);
    WaitForCheck();
    _exit(ClocksAhead() ? 0 : 1);
  }
  char c;
  if (read(ready[0], &c, 1) != 1) return 2;
  InstallCheckHandler();
  Ready();
  WaitForCheck();
  EXPECT(ClocksAhead(), "the clocks are not 100000 s and 200000 s ahead any more");
  CheckChildren({kid});
  Report();
}

}  // namespace wl

namespace wl {

// ---- ipcobjs -------------------------------------------------------------------
// An IPC namespace holding System V objects, made so that their IDs are not
// the first ones: a message queue (key 0x5eed, another user's, mode 0640)
// with three messages of two types, an empty private queue, a semaphore set
// of three with values 1, 5 and 32767, and a 3-page shared memory segment
// filled with a pattern, not attached. The root and a child each check the
// same IDs hold the same things (the check reads the messages away).
struct IpcObjs {
  int queue = -1, empty = -1, sems = -1, shm = -1;
};
struct IpcMsg {
  long type;
  char text[64];
};
union SemArg {
  int val;
  semid_ds* buf;
  unsigned short* array;
};
const std::pair<long, const char*> kIpcMessages[] = {{2, "first"}, {1, "second"}, {2, "third"}};

bool IpcObjsAsMade(const IpcObjs& o, bool take_messages) {
  msqid_ds q{};
  if (msgctl(o.queue, IPC_STAT, &q) < 0 || q.msg_qnum != 3 || q.msg_perm.__key != 0x5eed ||
      q.msg_perm.uid != 65534 || (q.msg_perm.mode & 0777) != 0640)
    return false;
  msqid_ds e{};
  if (msgctl(o.empty, IPC_STAT, &e) < 0 || e.msg_qnum != 0 || e.msg_perm.__key != IPC_PRIVATE)
    return false;
  IpcMsg m{};
  for (const auto& [type, text] : kIpcMessages) {
    ssize_t n = take_messages ? msgrcv(o.queue, &m, sizeof m.text, 0, IPC_NOWAIT)
                              : static_cast<ssize_t>(strlen(text));
    if (take_messages &&
        (n != static_cast<ssize_t>(strlen(text)) || m.type != type || memcmp(m.text, text, n) != 0))
      return false;
  }
  unsigned short vals[3] = {};
  SemArg arg{};
  arg.array = vals;
  if (semctl(o.sems, 0, GETALL, arg) < 0 || vals[0] != 1 || vals[1] != 5 || vals[2] != 32767)
    return false;
  auto* p = static_cast<const uint64_t*>(shmat(o.shm, nullptr, SHM_RDONLY));
  if (p == reinterpret_cast<void*>(-1)) return false;
  bool same = true;
  for (size_t i = 0; i < 3 * 4096 / 8; i++) same &= p[i] == Mix(i);
  shmdt(p);
  return same;
}

int IpcObjects() {
  if (unshare(CLONE_NEWIPC) < 0) return 2;
  IpcObjs o;
  int skipped = msgget(IPC_PRIVATE, IPC_CREAT | 0600);  // IDs after a removed one
  msgctl(skipped, IPC_RMID, nullptr);
  o.queue = msgget(0x5eed, IPC_CREAT | 0640);
  o.empty = msgget(IPC_PRIVATE, IPC_CREAT | 0600);
  o.sems = semget(IPC_PRIVATE, 3, IPC_CREAT | 0600);
  o.shm = shmget(0x5eee, 3 * 4096, IPC_CREAT | 0600);
  if (o.queue < 0 || o.empty < 0 || o.sems < 0 || o.shm < 0) return 2;
  for (const auto& [type, text] : kIpcMessages) {
    IpcMsg m{};
    m.type = type;
    memcpy(m.text, text, strlen(text));
    if (msgsnd(o.queue, &m, strlen(text), 0) < 0) return 2;
  }
  msqid_ds q{};
  msgctl(o.queue, IPC_STAT, &q);
  q.msg_perm.uid = 65534;
  if (msgctl(o.queue, IPC_SET, &q) < 0) return 2;
  unsigned short vals[3] = {1, 5, 32767};
  SemArg arg{};
  arg.array = vals;
  if (semctl(o.sems, 0, SETALL, arg) < 0) return 2;
  auto* p = static_cast<uint64_t*>(shmat(o.shm, nullptr, 0));
  if (p == reinterpret_cast<void*>(-1)) return 2;
  for (size_t i = 0; i < 3 * 4096 / 8; i++) p[i] = Mix(i);
  shmdt(p);
  if (!IpcObjsAsMade(o, false)) return 2;
  pid_t kid = fork();
  if (kid == 0) {
    InstallCheckHandler();
    WaitForCheck();
    _exit(IpcObjsAsMade(o, false) && IpcOf(getpid()) == IpcOf(getppid()) ? 0 : 1);
  }
  InstallCheckHandler();
  Ready();
  WaitForCheck();
  CheckChildren({kid});
  EXPECT(IpcObjsAsMade(o, true), "the namespace's System V objects changed");
  Report();
}

}  // namespace wl

namespace wl {

// ---- ipcmq ----------------------------------------------------------------------
// An IPC namespace holding POSIX message queues: /crl (20 messages of at
// most 64 bytes, another user's, mode 0640) with six messages of four
// priorities, one of them holding NULs, made while fs/mqueue/msg_max was 20
// and kept after it was lowered to 10 (restore has to raise it for the
// moment); an empty /idle. The root holds /crl read-write and /idle
// write-only and non-blocking; a child shares those descriptions. Each
// checks its fds name the namespace's queues with their sizes and flags; the
// root then reads the messages in the order the kernel gives them.
namespace {

const std::pair<unsigned, std::string> kQueued[] = {{1, "low-1"}, {5, "high-1"},
                                                    {1, "low-2"}, {5, "high-2"},
                                                    {0, "zero"},  {3, std::string("a\0b", 3)}};
// Highest priority first, oldest first within one.
const int kReceiveOrder[] = {1, 3, 5, 0, 2, 4};

struct Queues {
  int rw = -1, idle = -1;
};

bool QueuesAsMade(const Queues& q) {
  mq_attr a{}, i{};
  struct stat st {
  }, named{};
  int again = mq_open("/crl", O_RDONLY | O_CLOEXEC);
  bool same = again >= 0 && fstat(q.rw, &st) == 0 && fstat(again, &named) == 0 &&
              st.st_ino == named.st_ino && st.st_dev == named.st_dev;
  if (again >= 0) close(again);
  return same && mq_getattr(q.rw, &a) == 0 && a.mq_maxmsg == 20 && a.mq_msgsize == 64 &&
         a.mq_curmsgs == 6 && a.mq_flags == 0 && (st.st_mode & 07777) == 0640 &&
         st.st_uid == 65534 && st.st_gid == 65534 && mq_getattr(q.idle, &i) == 0 &&
         i.mq_curmsgs == 0 && i.mq_flags == O_NONBLOCK &&
         (fcntl(q.idle, F_GETFL) & O_ACCMODE) == O_WRONLY && Sysctl("fs/mqueue/msg_max") == "10";
}

bool MessagesInOrder(const Queues& q) {
  char buf[64];
  for (int k : kReceiveOrder) {
    unsigned prio = 0;
    timespec now{};
    clock_gettime(CLOCK_REALTIME, &now);
    ssize_t n = mq_timedreceive(q.rw, buf, sizeof buf, &prio, &now);
    if (n < 0 || prio != kQueued[k].first ||
        std::string(buf, static_cast<size_t>(n)) != kQueued[k].second)
      return false;
  }
  return true;
}

}  // namespace

int IpcMessageQueues() {
  if (unshare(CLONE_NEWIPC) < 0) return 2;
  std::ofstream("/proc/sys/fs/mqueue/msg_max") << "20" << std::flush;
  mq_attr a{};
  a.mq_maxmsg = 20;
  a.mq_msgsize = 64;
  Queues q;
  q.rw = mq_open("/crl", O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600, &a);
  q.idle = mq_open("/idle", O_WRONLY | O_CREAT | O_EXCL | O_NONBLOCK | O_CLOEXEC, 0600, nullptr);
  if (q.rw < 0 || q.idle < 0 || fchmod(q.rw, 0640) < 0 || fchown(q.rw, 65534, 65534) < 0) return 2;
  for (const auto& [prio, text] : kQueued)
    if (mq_send(q.rw, text.data(), text.size(), prio) < 0) return 2;
  std::ofstream("/proc/sys/fs/mqueue/msg_max") << "10" << std::flush;
  if (!QueuesAsMade(q)) return 2;
  pid_t kid = fork();
  if (kid == 0) {
    InstallCheckHandler();
    WaitForCheck();
    _exit(QueuesAsMade(q) && IpcOf(getpid()) == IpcOf(getppid()) ? 0 : 1);
  }
  InstallCheckHandler();
  Ready();
  WaitForCheck();
  CheckChildren({kid});
  EXPECT(QueuesAsMade(q), "the namespace's message queues or the fds on them changed");
  EXPECT(MessagesInOrder(q), "the queued messages changed (or their order)");
  Report();
}

}  // namespace wl

namespace wl {

// ---- ipcshm ---------------------------------------------------------------------
// System V shared memory attached in an IPC namespace of the workload's own:
//   A  key 0x5ea1, 5 pages, attached by the root and inherited by its child
//      over fork (a byte one writes the other reads), as are D and E;
//   B  3 pages attached by the root (the child detached it) and removed
//      (IPC_RMID): it exists (key 0, SHM_DEST) until the root detaches it,
//      then is gone;
//   C  2 pages the child attached read-only (it cannot be made writable);
//   D  4 pages whose second page the root made read-only (three pieces);
//   E  4 pages whose last page the root unmapped.
// Each holds its pattern; every segment's attach count is what it was.
namespace {

struct Shm {
  int id = -1;
  uint64_t* at = nullptr;
  size_t pages = 0;
};

Shm MakeShm(key_t key, size_t pages, uint64_t seed) {
  Shm s;
  s.pages = pages;
  s.id = shmget(key, pages * 4096, IPC_CREAT | 0600);
  if (s.id < 0) return s;
  void* at = shmat(s.id, nullptr, 0);
  if (at == reinterpret_cast<void*>(-1)) return s;
  s.at = static_cast<uint64_t*>(at);
  for (size_t i = 0; i < pages * 512; i++) s.at[i] = Mix(seed + i);
  return s;
}

bool Holds(const uint64_t* at, size_t pages, uint64_t seed) {
  for (size_t i = 0; i < pages * 512; i++)
    if (at[i] != Mix(seed + i)) return false;
  return true;
}

long Attaches(int id) {
  shmid_ds ds{};
  return shmctl(id, IPC_STAT, &ds) == 0 ? static_cast<long>(ds.shm_nattch) : -1;
}

// The permissions /proc/self/maps shows for the mapping holding ADDR, or "".
std::string PermsAt(const void* addr) {
  std::string maps;
  if (FILE* f = fopen("/proc/self/maps", "re")) {
    char buf[4096];
    for (size_t n; (n = fread(buf, 1, sizeof buf, f)) > 0;) maps.append(buf, n);
    fclose(f);
  }
  auto a = reinterpret_cast<uintptr_t>(addr);
  size_t pos = 0;
  while (pos < maps.size()) {
    size_t eol = maps.find('\n', pos);
    std::string line = maps.substr(pos, eol - pos);
    pos = eol == std::string::npos ? maps.size() : eol + 1;
    uintptr_t s = 0, e = 0;
    char perms[8] = {};
    if (sscanf(line.c_str(), "%lx-%lx %7s", &s, &e, perms) == 3 && s <= a && a < e) return perms;
  }
  return "";
}

}  // namespace

int IpcShm() {
  if (unshare(CLONE_NEWIPC) < 0) return 2;
  Shm a = MakeShm(0x5ea1, 5, 100), b = MakeShm(IPC_PRIVATE, 3, 200),
      c = MakeShm(IPC_PRIVATE, 2, 300), d = MakeShm(IPC_PRIVATE, 4, 400),
      e = MakeShm(IPC_PRIVATE, 4, 500);
  for (const Shm* s : {&a, &b, &c, &d, &e})
    if (!s->at) return 2;
  shmdt(c.at);  // the child's, read-only
  if (shmctl(b.id, IPC_RMID, nullptr) < 0) return 2;
  auto* d1 = reinterpret_cast<char*>(d.at) + 4096;
  if (mprotect(d1, 4096, PROT_READ) < 0) return 2;
  if (munmap(reinterpret_cast<char*>(e.at) + 3 * 4096, 4096) < 0) return 2;
  int sync[2];
  if (pipe(sync) < 0) return 2;
  pid_t kid = fork();
  if (kid == 0) {
    shmdt(b.at);  // inherited: B is the root's alone
    auto* ro = static_cast<uint64_t*>(shmat(c.id, nullptr, SHM_RDONLY));
    if (ro == reinterpret_cast<void*>(-1) || write(sync[1], "k", 1) != 1) _exit(2);
    InstallCheckHandler();
    WaitForCheck();
    bool ok = Holds(ro, 2, 300) && mprotect(ro, 4096, PROT_READ | PROT_WRITE) < 0 &&
              errno == EACCES && PermsAt(ro) == "r--s";
    // The root wrote into A after the restore, before it signalled.
    ok = ok && a.at[0] == 0xabcdef;
    for (size_t i = 1; ok && i < 5 * 512; i++) ok = a.at[i] == Mix(100 + i);
    _exit(ok ? 0 : 1);
  }
  char k;
  if (read(sync[0], &k, 1) != 1) return 2;
  const long before[] = {Attaches(a.id), Attaches(b.id), Attaches(c.id), Attaches(d.id),
                         Attaches(e.id)};
  InstallCheckHandler();
  Ready();
  WaitForCheck();
  const long now[] = {Attaches(a.id), Attaches(b.id), Attaches(c.id), Attaches(d.id),
                      Attaches(e.id)};
  for (int i = 0; i < 5; i++)
    EXPECT(now[i] == before[i], "segment %c is attached %ld times, %ld before", 'A' + i, now[i],
           before[i]);
  EXPECT(Holds(a.at, 5, 100), "segment A differs");
  EXPECT(Holds(b.at, 3, 200), "segment B differs");
  EXPECT(Holds(d.at, 4, 400), "segment D differs");
  EXPECT(Holds(e.at, 3, 500), "segment E differs");
  EXPECT(PermsAt(d.at) == "rw-s" && PermsAt(d1) == "r--s" && PermsAt(d1 + 4096) == "rw-s",
         "segment D's pieces are %s %s %s", PermsAt(d.at).c_str(), PermsAt(d1).c_str(),
         PermsAt(d1 + 4096).c_str());
  EXPECT(PermsAt(reinterpret_cast<char*>(e.at) + 3 * 4096).empty(),
         "segment E's unmapped tail is mapped");
  shmid_ds ds{};
  EXPECT(shmctl(b.id, IPC_STAT, &ds) == 0 && (ds.shm_perm.mode & SHM_DEST) &&
             ds.shm_perm.__key == IPC_PRIVATE,
         "segment B is not the removed one still attached");
  shmdt(b.at);
  EXPECT(shmctl(b.id, IPC_STAT, &ds) < 0 && errno == EINVAL,
         "segment B outlived its last attachment");
  a.at[0] = 0xabcdef;
  CheckChildren({kid});
  Report();
}

}  // namespace wl

namespace wl {

// ---- mountns --------------------------------------------------------------------
// Mount namespaces below the tree's root. The child makes one (its mounts
// private, as unshare -m leaves them), mounts a nodev tmpfs at DIR/outer,
// and keeps a file there open and mapped shared; the grandchild makes one
// of its own from the child's, takes DIR/outer away, mounts a nosuid tmpfs
// at DIR/inner, keeps a file there open at an offset and works in that
// directory. Each checks it sees its own mounts and not the others'; the
// root sees neither. A second child is the init of a PID namespace with a
// mount namespace and its own /proc (unshare -fpm --mount-proc).
namespace {

dev_t DevOf(const std::string& path) {
  struct stat st {};
  return stat(path.c_str(), &st) == 0 ? st.st_dev : 0;
}
bool IsMountPoint(const std::string& path) { return DevOf(path) != DevOf(path + "/.."); }
ino_t MountNsOf(pid_t pid) {
  struct stat st {};
  return stat(("/proc/" + std::to_string(pid) + "/ns/mnt").c_str(), &st) == 0 ? st.st_ino : 0;
}
bool HasFlag(const std::string& path, unsigned long flag) {
  struct statvfs vfs {};
  return statvfs(path.c_str(), &vfs) == 0 && (vfs.f_flag & flag);
}

constexpr size_t kOuterBytes = 3 * 4096;
constexpr char kNotes[] = "the inner namespace's notes";

[[noreturn]] void MountNsGrandchild(const std::string& outer, const std::string& inner, int ready) {
  if (unshare(CLONE_NEWNS) < 0 || umount2(outer.c_str(), MNT_DETACH) < 0 ||
      mount("crl-inner", inner.c_str(), "tmpfs", MS_NOSUID, "size=1m,mode=0750") < 0)
    _exit(2);
  int notes = open((inner + "/notes").c_str(), O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0640);
  if (notes < 0 || write(notes, kNotes, sizeof kNotes - 1) != sizeof kNotes - 1 ||
      lseek(notes, 4, SEEK_SET) != 4 || chdir(inner.c_str()) < 0)
    _exit(2);
  InstallCheckHandler();
  if (write(ready, "g", 1) != 1) _exit(2);
  WaitForCheck();
  char cwd[4096] = {}, rest[64] = {};
  bool ok = getcwd(cwd, sizeof cwd) && inner == cwd;
  ok = ok && IsMountPoint(inner) && HasFlag(inner, ST_NOSUID) && !IsMountPoint(outer);
  ok = ok && read(notes, rest, sizeof rest - 1) == sizeof kNotes - 1 - 4 &&
       strcmp(rest, kNotes + 4) == 0;
  // By its path, relative to the working directory.
  std::ifstream again("notes");
  std::string text((std::istreambuf_iterator<char>(again)), std::istreambuf_iterator<char>());
  ok = ok && text == kNotes;
  ok = ok && MountNsOf(getpid()) != MountNsOf(getppid());
  _exit(ok ? 0 : 1);
}

// The init of a PID namespace with a mount namespace of its own, as
// unshare --fork --pid --mount-proc makes them: its /proc its namespace's.
[[noreturn]] void MountNsProcInit(int ready) {
  if (mount(nullptr, "/", nullptr, MS_REC | MS_PRIVATE, nullptr) < 0 ||
      mount("proc", "/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, nullptr) < 0)
    _exit(2);
  InstallCheckHandler();
  if (write(ready, "p", 1) != 1) _exit(2);
  WaitForCheck();
  char self[16] = {};
  bool ok = getpid() == 1 && readlink("/proc/self", self, sizeof self - 1) > 0 &&
            strcmp(self, "1") == 0 && HasFlag("/proc", ST_NOEXEC);
  _exit(ok ? 0 : 1);
}

}  // namespace

int MountNs() {
  std::string outer = g_dir + "/outer", inner = g_dir + "/inner";
  if (mkdir(outer.c_str(), 0755) < 0 || mkdir(inner.c_str(), 0755) < 0) return 2;
  int ready[2];
  if (pipe(ready) < 0) return 2;
  pid_t kid = fork();
  if (kid == 0) {
    if (unshare(CLONE_NEWNS) < 0 ||
        mount(nullptr, "/", nullptr, MS_REC | MS_PRIVATE, nullptr) < 0 ||
        mount("crl-outer", outer.c_str(), "tmpfs", MS_NODEV, "size=1m,mode=0755") < 0)
      _exit(2);
    int data = open((outer + "/data").c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    if (data < 0 || ftruncate(data, kOuterBytes) < 0) _exit(2);
    auto* map = static_cast<uint8_t*>(
        mmap(nullptr, kOuterBytes, PROT_READ | PROT_WRITE, MAP_SHARED, data, 0));
    if (map == MAP_FAILED) _exit(2);
    Fill(map, kOuterBytes, 41);
    int below[2];
    if (pipe(below) < 0) _exit(2);
    pid_t grandkid = fork();
    if (grandkid == 0) {
      // On the mount it takes away: refused at dump, as restore could not
      // reach the file by its path in its namespace.
      close(data);
      munmap(map, kOuterBytes);
      MountNsGrandchild(outer, inner, below[1]);
    }
    InstallCheckHandler();
    char c;
    if (read(below[0], &c, 1) != 1 || write(ready[1], "k", 1) != 1) _exit(2);
    WaitForCheck();
    bool ok = IsMountPoint(outer) && HasFlag(outer, ST_NODEV) && !IsMountPoint(inner);
    ok = ok && Verify(map, kOuterBytes, 41);
    map[100] = 0x7e;
    uint8_t b = 0;
    ok = ok && pread(data, &b, 1, 100) == 1 && b == 0x7e;  // still the file's pages
    ok = ok && MountNsOf(getpid()) != MountNsOf(getppid());
    kill(grandkid, SIGUSR1);
    int st;
    ok = ok && waitpid(grandkid, &st, 0) == grandkid && WIFEXITED(st) && WEXITSTATUS(st) == 0;
    _exit(ok ? 0 : 1);
  }
  pid_t init = static_cast<pid_t>(
      syscall(SYS_clone, CLONE_NEWPID | CLONE_NEWNS | SIGCHLD, nullptr, nullptr, nullptr, 0));
  if (init < 0) return 2;
  if (init == 0) MountNsProcInit(ready[1]);
  InstallCheckHandler();
  char c;
  if (read(ready[0], &c, 1) != 1 || read(ready[0], &c, 1) != 1) return 2;
  std::string self = std::to_string(getpid());
  Ready();
  WaitForCheck();
  EXPECT(!IsMountPoint(outer) && !IsMountPoint(inner),
         "the root sees a mount of the namespaces below it");
  char link[16] = {};
  EXPECT(readlink("/proc/self", link, sizeof link - 1) > 0 && self == link,
         "the root's /proc/self is %s, not %s", link, self.c_str());
  CheckChildren({kid, init});
  Report();
}

}  // namespace wl
