// A workload that checks itself across a checkpoint/restore.
//
//   workload SCENARIO --dir DIR [options]
//
// It builds the scenario's state, writes DIR/ready, and waits. On SIGUSR1
// (sent by the test after restore) it verifies every piece of that state,
// writes "PASS" or "FAIL: what" to DIR/result and exits 0 or 1. Each
// scenario is one row of kScenarios below, its code in the file of its
// group (memory, signals, files, events, tree, identity, refuse). Scenarios:
//   memory    heap, brk, stack, anonymous and file mappings, PROT_NONE data
//             and guard regions (--big-mib N adds an N MiB region; --sparse
//             adds a 64 GiB reservation with 100 touched pages)
//   fpu       known values in ymm0-15 and MXCSR while spinning in a loop
//   files     a file read at an offset, one opened O_APPEND, /dev/null, a
//             directory, O_CLOEXEC and high fd numbers
//   signals   handlers, ignored signals, blocked pending signals (process-
//             and thread-directed, with queued values), umask, rlimit, cwd
//   altstack  a handler that runs on a sigaltstack
//   itimer    an interval timer that keeps firing
//   nanosleep sleeping until an absolute deadline and for a relative time
//   read      blocked in read() on stdin, which restore (--shell-job) provides
//   futex     blocked in FUTEX_WAIT, woken after restore
//   threads   8 threads taking turns under a mutex and condition variable
//   tree      3 levels, sessions, groups, a zombie, a stopped child, COW memory,
//             an orphan reparented to the root (a subreaper) in a group whose
//             leader has exited
//   cow       a parent with --big-mib MiB (256) and 4 children changing 1% each
//   shmem     MAP_SHARED|MAP_ANONYMOUS memory between a parent and a child
//   forker    forks short-lived children all the time, also while seized
//   uts       UTS namespaces: the root's own, a child's own, a grandchild in
//             its parent's, each with its names
//   ipcns     an empty IPC namespace with changed sysctls, and a child in it
//   cgroupns  --what CGROUP_DIR: a cgroup namespace rooted there, the task
//             and its child in a cgroup below the root
//   pidns     the init of a PID namespace (host PID in DIR/init-pid) with
//             groups, a thread, a zombie, a pidfd, a socket pair, and a
//             nested namespace's init with its child
//   timens    a time namespace with its clocks ahead, and a child in it
//   mountns   mount namespaces below the root: a child's with a tmpfs and a
//             file on it mapped, a grandchild's made from it without that
//             tmpfs and with its own, a file there open, its cwd in it; a
//             PID namespace's init with its own /proc in its own
//   netns     a network namespace with loopback up and TCP, UDP and unix
//             sockets made in it (an abstract unix name only it sees)
//   netnsbelow  the same made by a child, with a sysctl changed and an
//             established TCP connection (dump with --tcp-established)
//   container the init of a container (test-containers/container, static
//             build): a file on its /tmp tmpfs open at an offset and mapped
//             shared, a child with its cwd there, a thread, /dev nodes; checks
//             its PID 1, host name, mounts and their kinds and flags
//   ipcobjs   an IPC namespace holding System V message queues (with
//             messages), a semaphore set and a shared memory segment
//   ipcshm    an IPC namespace's System V shared memory attached by the
//             root and its child: inherited, removed while attached,
//             read-only, split by mprotect, its tail unmapped
//   ipcmq     an IPC namespace holding POSIX message queues (with
//             messages of several priorities) and fds on them
//   runaway   --what CGROUP_DIR: lines of processes each forking its successor
//             and exiting, in that cgroup: a fork bomb a walk cannot catch
//   pipeline  producer | relay | consumer through pipes with data in flight
//   sockets   unix socket pairs with queued messages, an eventfd, a shared offset
//   timerfd   timerfds ticking, due later, expired unread, absolute
//   signalfd  signalfds with signals (and a queued value) waiting, and empty
//   epoll     an epoll watching pipes, eventfds, a socket and an epoll, level-
//             and edge-triggered, a fired ONESHOT, a closed and a reused number
//   pidfd     pidfds for a live child (in an epoll), a zombie, a reaped child,
//             itself and a thread
//   inotify   watches on a directory and files, with a freed number, ONESHOT,
//             and an event queued at dump
//   aio       two AIO contexts, one gone round its ring and holding three
//             completions not reaped
//   inet      inet sockets bound, listening (v4, v6, dual-stack, SO_REUSEPORT,
//             MPTCP) and UDP (bound to a device, connected), with options
//   tcp       TCP connections (v4, v6) with both ends in the process and
//             megabytes in flight (--tcp-established)
//   unix      unix sockets on their own: listeners on a path and an abstract
//             name, a datagram socket on a path, an unbound one
//   ghosts    deleted files held open: a log (two fds), a sparse 1 GiB file,
//             one in a removed directory
//   locks     flock, POSIX (also a child's) and OFD locks (--file-locks)
//   pty       a pty pair, the slave a child session's controlling terminal,
//             and a locked pty
//   console   its stdin/out/err a terminal whose master is outside (runc's
//             --console-socket), its controlling terminal, /dev/console
//             bound to it; after restore it writes "pong" and reads "ping"
//   fanotify  a fanotify group with a file mark, an ignored mask and a
//             filesystem mark
//   memfd     a memfd mapped by a parent and (after the fork) its child
//   forest    --procs N processes x --threads T threads x --big-mib M MiB
//   thp       --big-mib M MiB in transparent huge pages (collapsed, not
//             advised), huge again after the restore; --what time: times a
//             memory-bound loop before and after instead (the benchmark)
//   dirtier   keeps writing pages stamped with generations (--rate pages/ms),
//             also dropping pages; for iterative dumps
//   identity  another user with capabilities, securebits, no_new_privs; nice,
//             policy, affinity, slack, ioprio per thread; oom_score_adj, THP
//             off, membarrier, not dumpable; O_NONBLOCK; a parent-death signal
//   ptimers   POSIX timers: signalling the process with a value, one thread,
//             nobody (SIGEV_NONE), disarmed, with a gap in their IDs
//   refuse    --what flock|posix-lock|ofd-lock|lease|scm-rights|shutdown|
//             clone-files|seccomp-notify|uts-joined|ipc-sysv|ipc-mqueue|mqueue-unlinked|mount-namespace|pidns-for-children|pidns-joined|timens-for-children|netns-rule|netns-nft|netns-iptables|guard-region|
//             shared-twice|shared-split|droppable|epoll-closed-target|pidfd-outside|
//             inotify-deleted|aio-in-flight|tcp-established|
//             tcp-pending|tcp-then-owner-outside|packet|netlink-unread|mptcp-established|
//             unix-outside|io-uring|sysv-shm|ghost-big|fanotify-perm:
//             holds one thing criu-lite refuses to dump
//   jobs      a child stopped by SIGTSTP, a zombie in a group whose leader
//             exited, a zombie that led a session
//   seccomp   two seccomp filters, one shared with a thread (TSYNC), one not;
//             --what strict: strict mode, blocked in read()
//   counter   a counter in memory that keeps increasing (for the demo)
//   hold      --big-mib N MiB of pseudo-random data (for the benchmarks)
//   conns     a TCP server on loopback with --procs N connections (100) from
//             clients of the same process, idle (for the benchmarks)
//   vmas      --procs N thousand mappings (default 50): one region whose pages
//             are read-only and writable in turn, each page its own VMA
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <string>

#include "test-containers/workload/workload.h"

namespace wl {
namespace {

// The command line's options, with the defaults each scenario reads them by.
struct Args {
  long big_mib = 0;  // 0: the scenario's own default
  bool sparse = false;
  double secs = 2;
  std::string what;
  int procs = 50, threads = 4, rate = 64;
  bool procs_set = false, threads_set = false;
  long MibOr(long dflt) const { return big_mib > 0 ? big_mib : dflt; }
};

// PID 1 of a test host's PID namespace: reaps whatever is reparented to it.
// Without children waitpid() fails at once: look again soon (a process
// orphaned meanwhile would stay a zombie until then).
int Reaper() {
  for (;;)
    if (waitpid(-1, nullptr, 0) < 0) usleep(10000);
}

struct Scenario {
  const char* name;
  int (*run)(const Args&);
};

const Scenario kScenarios[] = {
    {"memory", [](const Args& a) { return Memory(a.big_mib, a.sparse); }},
    {"fpu", [](const Args&) { return Fpu(); }},
    {"files", [](const Args&) { return Files(); }},
    {"signals", [](const Args&) { return Signals(); }},
    {"altstack", [](const Args&) { return Altstack(); }},
    {"itimer", [](const Args&) { return Itimer(); }},
    {"nanosleep", [](const Args& a) { return Nanosleep(a.secs); }},
    {"read", [](const Args&) { return ReadStdin(); }},
    {"futex", [](const Args&) { return Futex(); }},
    {"threads", [](const Args&) { return Threads(); }},
    {"tree", [](const Args&) { return Tree(); }},
    {"cow", [](const Args& a) { return Cow(a.MibOr(256)); }},
    {"shmem", [](const Args&) { return Shmem(); }},
    {"forker", [](const Args&) { return Forker(); }},
    {"runaway", [](const Args& a) { return Runaway(a.what); }},
    {"uts", [](const Args&) { return Uts(); }},
    {"ipcns", [](const Args&) { return IpcNs(); }},
    {"cgroupns", [](const Args& a) { return CgroupNs(a.what); }},
    {"pidns", [](const Args&) { return PidNs(); }},
    {"timens", [](const Args&) { return TimeNs(); }},
    {"mountns", [](const Args&) { return MountNs(); }},
    {"ipcobjs", [](const Args&) { return IpcObjects(); }},
    {"ipcshm", [](const Args&) { return IpcShm(); }},
    {"ipcmq", [](const Args&) { return IpcMessageQueues(); }},
    {"netns", [](const Args&) { return NetNs(); }},
    {"netnsbelow", [](const Args&) { return NetNsBelow(); }},
    {"container", [](const Args&) { return Container(); }},
    {"dirtier",
     [](const Args& a) {
       return DirtierMain(a.MibOr(64), a.threads_set ? a.threads : 1, a.rate,
                          a.procs_set ? a.procs : 1);
     }},
    {"pipeline", [](const Args&) { return Pipeline(); }},
    {"memfd", [](const Args&) { return Memfd(); }},
    {"sockets", [](const Args&) { return Sockets(); }},
    {"timerfd", [](const Args&) { return Timerfd(); }},
    {"signalfd", [](const Args&) { return Signalfd(); }},
    {"epoll", [](const Args&) { return Epoll(); }},
    {"pidfd", [](const Args&) { return Pidfd(); }},
    {"inotify", [](const Args&) { return Inotify(); }},
    {"aio", [](const Args&) { return Aio(); }},
    {"inet", [](const Args&) { return Inet(); }},
    {"tcp", [](const Args&) { return Tcp(); }},
    {"unix", [](const Args&) { return Unix(); }},
    {"unix-conns", [](const Args&) { return UnixConns(); }},
    {"netlink", [](const Args&) { return Netlink(); }},
    {"ghosts", [](const Args&) { return Ghosts(); }},
    {"locks", [](const Args&) { return Locks(); }},
    {"pty", [](const Args&) { return Pty(); }},
    {"console", [](const Args&) { return Console(); }},
    {"fanotify", [](const Args&) { return Fanotify(); }},
    {"forest", [](const Args& a) { return Forest(a.procs, a.threads, a.MibOr(20)); }},
    {"counter", [](const Args&) { return Counter(); }},
    {"identity", [](const Args&) { return Identity(); }},
    {"ptimers", [](const Args&) { return Ptimers(); }},
    {"jobs", [](const Args&) { return Jobs(); }},
    {"seccomp", [](const Args& a) { return Seccomp(a.what); }},
    {"refuse", [](const Args& a) { return Refuse(a.what); }},
    {"reaper", [](const Args&) { return Reaper(); }},
    {"hold", [](const Args& a) { return Hold(a.MibOr(1024)); }},
    {"thp", [](const Args& a) { return Thp(a.MibOr(256), a.what); }},
    {"vmas", [](const Args& a) { return Vmas(a.procs > 0 ? a.procs : 50); }},
    {"lazy", [](const Args& a) { return Lazy(a.MibOr(64)); }},
    {"conns", [](const Args& a) { return Conns(a.procs_set ? a.procs : 100); }},
};

// Parses the options after the scenario's name; false on a bad one.
bool ParseArgs(int argc, char** argv, Args* a) {
  for (int i = 2; i < argc; i++) {
    std::string o = argv[i];
    bool more = i + 1 < argc;
    if (o == "--dir" && more)
      g_dir = argv[++i];
    else if (o == "--big-mib" && more)
      a->big_mib = atol(argv[++i]);
    else if (o == "--sparse")
      a->sparse = true;
    else if (o == "--secs" && more)
      a->secs = atof(argv[++i]);
    else if (o == "--procs" && more)
      a->procs = atoi(argv[++i]), a->procs_set = true;
    else if (o == "--threads" && more)
      a->threads = atoi(argv[++i]), a->threads_set = true;
    else if (o == "--rate" && more)
      a->rate = atoi(argv[++i]);
    else if (o == "--what" && more)
      a->what = argv[++i];
    else if (o == "--loginuid" && more) {
      // Only a process itself may set its loginuid.
      FILE* f = fopen("/proc/self/loginuid", "we");
      if (!f || fputs(argv[++i], f) < 0 || fclose(f) != 0) return false;
    }
  }
  return true;
}

}  // namespace
}  // namespace wl

int main(int argc, char** argv) {
  if (argc < 2) {
    fprintf(stderr, "usage: workload SCENARIO --dir DIR [--big-mib N] [--sparse] [--secs S]\n");
    return 2;
  }
  wl::Args args;
  if (!wl::ParseArgs(argc, argv, &args)) return 2;
  if (wl::g_dir.empty()) wl::g_dir = ".";
  // Whatever the launcher left open (pipes of a test runner, say) is not ours.
  for (int fd = 3; fd < 1024; fd++) close(fd);
  std::string name = argv[1];
  for (const wl::Scenario& s : wl::kScenarios)
    if (name == s.name) return s.run(args);
  fprintf(stderr, "workload: unknown scenario %s\n", name.c_str());
  return 2;
}
