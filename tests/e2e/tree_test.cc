// Process trees, threads, and what processes share.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <linux/sched.h>
#include <sys/file.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <csignal>
#include <fstream>
#include <sstream>
#include <thread>

#include "tests/e2e/harness.h"
#include "tests/e2e/state_diff.h"

namespace crl::test {
namespace {

void DumpRestoreCheck(const std::string& scenario, const std::vector<std::string>& args = {},
                      const std::vector<std::string>& dump_args = {}) {
  TestDir dir;
  pid_t pid = StartWorkload(dir, scenario, args);
  std::vector<std::string> dump = {"dump", "-t", std::to_string(pid), "-D", dir / "img",
                                   "-v",   "-o", dir / "dump.log"};
  dump.insert(dump.end(), dump_args.begin(), dump_args.end());
  CmdResult d = RunCriuLite(dump, {pid});
  ASSERT_TRUE(d.ok()) << d.err;
  CmdResult r = RunCriuLite({"restore", "-D", dir / "img", "-d", "-v", "-o", dir / "restore.log"});
  ASSERT_TRUE(r.ok()) << r.err;
  EXPECT_EQ(CheckWorkload(pid, dir), "PASS");
}

// A dump with -R: the workload checks it is as it was, then the image
// restores and the workload checks itself again.
void DumpLeavingItRunningThenRestore(const std::string& scenario) {
  TestDir dir;
  pid_t pid = StartWorkload(dir, scenario);
  CmdResult d = RunCriuLite({"dump", "-t", std::to_string(pid), "-D", dir / "img", "-R"});
  ASSERT_TRUE(d.ok()) << d.err;
  EXPECT_EQ(CheckWorkload(pid, dir), "PASS");
  CmdResult r = RunCriuLite({"restore", "-D", dir / "img", "-d"});
  ASSERT_TRUE(r.ok()) << r.err;
  EXPECT_EQ(CheckWorkload(pid, dir), "PASS");
}

TEST(Tree, EightThreadsUnderMutexAndCondvar) { DumpRestoreCheck("threads"); }
TEST(Tree, ThreeLevelsSessionsGroupsZombieStopped) { DumpRestoreCheck("tree"); }
TEST(Tree, StopSignalAndZombiesInLeaderlessGroupsAndSessions) { DumpRestoreCheck("jobs"); }
TEST(Tree, SharedAnonymousMemoryIsOneObjectAgain) { DumpRestoreCheck("shmem"); }
TEST(Tree, ForksWhileBeingSeized) {
  // Its short-lived children come and go all the time: those there before
  // the dump and those there after the restore are not the same ones.
  ExpectStateDiff children_come_and_go({"children"});
  // bash blocks SIGCHLD and catches SIGINT while it waits for a child, and
  // undoes both after: the record before the dump and the freeze may catch
  // it on either side (the restore brings back what the freeze saw).
  ExpectStateDiff bash_waits({"root:*.status.SigBlk", "root:*.status.SigCgt"});
  DumpRestoreCheck("forker");
}
TEST(Tree, PipelineWithDataInFlight) { DumpRestoreCheck("pipeline"); }
TEST(Tree, SocketPairsEventfdAndSharedOffsets) { DumpRestoreCheck("sockets"); }
// Timerfds ticking, due later, expired unread and absolute come back with
// their clocks, intervals, time left and pending expirations.
TEST(Tree, TimerfdsKeepTheirTimesAndPendingExpirations) { DumpRestoreCheck("timerfd"); }
TEST(Tree, MemfdMappedByParentAndChildIsOneObject) { DumpRestoreCheck("memfd"); }
// Signalfds read the signals that were waiting for them (a queued value
// too), keep their masks, and read new ones.
TEST(Tree, SignalfdsKeepTheirMasksAndTheSignalsWaiting) { DumpRestoreCheck("signalfd"); }

// An epoll's registrations come back under their numbers (also one whose
// fd was closed and one whose number went to another file), level- and
// edge-triggered, a fired ONESHOT staying fired, a nested epoll.
TEST(Tree, EpollsReportWhatTheyReportedBefore) { DumpRestoreCheck("epoll"); }

// Pidfds name the same tasks: a live child (watched by an epoll), a
// zombie, a reaped child, the process itself, a thread.
TEST(Tree, PidfdsNameTheSameTasks) { DumpRestoreCheck("pidfd"); }
// UTS namespaces made again where a task was the first in one (the root,
// a child), with their names; a grandchild shares its parent's.
TEST(Tree, UtsNamespacesComeBackWithTheirNames) { DumpRestoreCheck("uts"); }
// An empty IPC namespace made again with its sysctls, shared with a child.
TEST(Tree, IpcNamespacesComeBackWithTheirSysctls) { DumpRestoreCheck("ipcns"); }
// A time namespace made again with its clocks' offsets, shared with a child
// (the state-diff check compares timens_offsets too).
TEST(Tree, TimeNamespacesComeBackWithTheirOffsets) { DumpRestoreCheck("timens"); }
// Mount namespaces made below the root (unshare -m in a child, and again
// in its child): each made again from its parent's, with the tmpfs of its
// own and its files, without the mount it took away, its files opened and
// its working directory in it, and the root's namespace untouched.
TEST(Tree, MountNamespacesBelowTheRootComeBack) { DumpRestoreCheck("mountns"); }
// An IPC namespace's System V objects made again with their IDs, keys,
// owners and modes: messages in order with their types, semaphore values,
// shared memory bytes.
TEST(Tree, IpcNamespaceObjectsComeBackWithWhatTheyHold) { DumpRestoreCheck("ipcobjs"); }
// System V shared memory the tree has attached, in its IPC namespace: each
// segment made again with its bytes and attached where it was, with its
// protections; inherited over fork, removed while attached, read-only,
// split, its tail unmapped. Attach counts are as they were.
TEST(Tree, AttachedSystemVSharedMemoryComesBackShared) { DumpRestoreCheck("ipcshm"); }
// A dump that leaves the tree running reads the segments without changing
// them, and the image restores.
TEST(Tree, AttachedSystemVSharedMemoryIsLeftAsItWasByADumpThatLeavesItRunning) {
  DumpLeavingItRunningThenRestore("ipcshm");
}
// An IPC namespace's POSIX message queues made again with their sizes,
// owners and modes, their messages in the order they are received, under
// limits lowered since; the fds on them open the same queues with their
// access modes and flags.
TEST(Tree, PosixMessageQueuesComeBackWithTheirMessagesInOrder) { DumpRestoreCheck("ipcmq"); }
// Reading a queue takes its messages; a dump that leaves the tree running
// has put them back as they were.
TEST(Tree, PosixMessageQueuesAreLeftAsTheyWereByADumpThatLeavesThemRunning) {
  DumpLeavingItRunningThenRestore("ipcmq");
}
// A network namespace the root made (loopback only) comes back, and the
// tree's sockets are made in it: its listeners on 127.0.0.1:7777 and the
// abstract name "crl-netns" take connections there, and the host cannot
// reach that name.
TEST(Tree, NetworkNamespaceComesBackWithItsSocketsInIt) {
  TestDir dir;
  pid_t pid = StartWorkload(dir, "netns");
  CmdResult d = RunCriuLite(
      {"dump", "-t", std::to_string(pid), "-D", dir / "img", "-v", "-o", dir / "dump.log"}, {pid});
  ASSERT_TRUE(d.ok()) << d.err;
  CmdResult r = RunCriuLite({"restore", "-D", dir / "img", "-d", "-v", "-o", dir / "restore.log"});
  ASSERT_TRUE(r.ok()) << r.err;
  int s = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_un a{};
  a.sun_family = AF_UNIX;
  memcpy(a.sun_path, "\0crl-netns", 10);
  EXPECT_NE(connect(s, reinterpret_cast<sockaddr*>(&a), offsetof(sockaddr_un, sun_path) + 10), 0)
      << "the tree's abstract name is reachable from the host's network namespace";
  close(s);
  EXPECT_EQ(CheckWorkload(pid, dir), "PASS");
}

// A network namespace a child made (unshare -n) comes back, not the
// root's: its loopback, its changed ip_default_ttl, its listeners and the
// TCP connection its child made (--tcp-established), while the same
// abstract name in the root's namespace (criu-lite's) still reaches the
// root's listener.
TEST(Tree, NetworkNamespaceBelowTheRootComesBackWithItsSockets) {
  DumpRestoreCheck("netnsbelow", {}, {"--tcp-established"});
}

// The same tree dumped with --empty-ns net: restore makes the namespace
// empty, the caller's setup-namespaces script brings loopback up, and the
// tree's sockets are made in it once the root exists. The listener the root
// made is made by the root again (its PID is taken by then): the child's
// connection names it as its peer (SO_PEERCRED), the accepted end the child,
// and nothing is "made as a new PID".
TEST(Tree, AnEmptyNetworkNamespaceGetsTheSocketsWithTheirMakers) {
  TestDir dir;
  pid_t pid = StartWorkload(dir, "netns");
  CmdResult d = RunCriuLite({"dump", "-t", std::to_string(pid), "-D", dir / "img", "--empty-ns",
                             "net", "-v", "-o", dir / "dump.log"},
                            {pid});
  ASSERT_TRUE(d.ok()) << d.err;
  std::ofstream(dir / "setup.sh") << "#!/bin/sh\n"
                                  << "[ \"$CRTOOLS_SCRIPT_ACTION\" = setup-namespaces ] || exit 0\n"
                                  << "nsenter -t $CRTOOLS_INIT_PID -n ip link set lo up\n";
  chmod((dir / "setup.sh").c_str(), 0755);
  CmdResult r = RunCriuLite({"restore", "-D", dir / "img", "-d", "-v", "-o", dir / "restore.log",
                             "--empty-ns", "net", "--action-script", dir / "setup.sh"});
  ASSERT_TRUE(r.ok()) << r.err;
  std::string log = ReadFile(dir / "restore.log");
  EXPECT_EQ(log.find("made as a new PID"), std::string::npos) << log;
  EXPECT_EQ(CheckWorkload(pid, dir), "PASS");
}

// The init of a PID namespace, as `unshare -pf` or a container runtime
// makes it: restored as the init of a new one, every task with its PIDs
// there (a nested namespace's too), and a new host PID for the init, which
// --pidfile gives. The state-diff check records the tree from inside.
TEST(Tree, PidNamespaceInitComesBackWithEveryPidInside) {
  TestDir dir;
  pid_t outer = StartWorkload(dir, "pidns");
  pid_t init = atoi(ReadFile(dir / "init-pid").c_str());
  ASSERT_GT(init, 0);
  CmdResult d = RunCriuLite(
      {"dump", "-t", std::to_string(init), "-D", dir / "img", "-v", "-o", dir / "dump.log"});
  ASSERT_TRUE(d.ok()) << d.err;
  EXPECT_FALSE(Alive(init));
  CmdResult r = RunCriuLite({"restore", "-D", dir / "img", "-d", "-v", "-o", dir / "restore.log",
                             "--pidfile", dir / "pidfile"});
  ASSERT_TRUE(r.ok()) << r.err;
  pid_t restored = atoi(ReadFile(dir / "pidfile").c_str());
  ASSERT_GT(restored, 0);
  std::string status = ReadFile("/proc/" + std::to_string(restored) + "/status");
  EXPECT_NE(status.find("NSpid:\t" + std::to_string(restored) + "\t1\n"), std::string::npos)
      << status;
  EXPECT_EQ(CheckWorkload(restored, dir), "PASS");
  KillAndReap(outer);
}

// AIO contexts come back at their addresses with their sizes, head and
// tail, and the completions not reaped yet; they take new requests.
TEST(Tree, AioContextsKeepTheirRingsAndCompletions) { DumpRestoreCheck("aio"); }

// Inet sockets not connected over TCP keep their addresses, backlogs and
// options; the listeners serve new clients, UDP passes datagrams.
TEST(Tree, InetSocketsListenAndBindAsBefore) { DumpRestoreCheck("inet"); }

// Unix sockets bound to a path or an abstract name, listening or not, come
// back with their names, modes and backlogs, and serve new clients.
TEST(Tree, UnixSocketsOnTheirOwnKeepTheirNames) { DumpRestoreCheck("unix"); }
// Unix connections with both ends in the tree: one accepted from a
// listener (its server end keeps the listener's name), one waiting to be
// accepted, a socketpair, a socket whose peer was closed, a listener whose
// file was deleted. Each end keeps its data and who made its peer
// (SO_PEERCRED, SO_PEERGROUPS: a client running as nobody).
TEST(Tree, UnixConnectionsKeepTheirPeersAndCredentials) { DumpRestoreCheck("unix-conns"); }
// --action-script (CRIU's): the script runs at each point with
// CRTOOLS_SCRIPT_ACTION and CRTOOLS_INIT_PID; a failing post-dump fails the
// dump and the tree runs on; a failing pre-restore fails the restore before
// anything is made.
TEST(Tree, ActionScriptsRunAtEachPointAndAFailureStops) {
  TestDir dir;
  std::string log = dir / "actions", script = dir / "script.sh";
  std::ofstream(script) << "#!/bin/sh\necho \"$CRTOOLS_SCRIPT_ACTION $CRTOOLS_INIT_PID\" >>" << log
                        << "\n[ \"$CRTOOLS_SCRIPT_ACTION\" != \"$FAIL_AT\" ]\n";
  chmod(script.c_str(), 0755);
  pid_t pid = StartWorkload(dir, "memory");
  std::string p = std::to_string(pid);
  setenv("FAIL_AT", "post-dump", 1);
  CmdResult failed = RunCriuLite({"dump", "-t", p, "-D", dir / "img", "--action-script", script});
  EXPECT_FALSE(failed.ok());
  EXPECT_NE(failed.err.find("failed at post-dump"), std::string::npos) << failed.err;
  EXPECT_TRUE(Alive(pid)) << "a failing post-dump script killed the tree";
  EXPECT_EQ(ReadFile(log), "pre-dump " + p + "\npost-dump " + p + "\n");
  setenv("FAIL_AT", "none", 1);
  unlink(log.c_str());
  CmdResult d = RunCriuLite({"dump", "-t", p, "-D", dir / "img", "--action-script", script}, {pid});
  ASSERT_TRUE(d.ok()) << d.err;
  setenv("FAIL_AT", "pre-restore", 1);
  CmdResult no = RunCriuLite({"restore", "-D", dir / "img", "-d", "--action-script", script});
  EXPECT_FALSE(no.ok());
  EXPECT_FALSE(Alive(pid)) << "a failing pre-restore script let a restore through";
  setenv("FAIL_AT", "none", 1);
  CmdResult r = RunCriuLite({"restore", "-D", dir / "img", "-d", "--action-script", script});
  unsetenv("FAIL_AT");
  ASSERT_TRUE(r.ok()) << r.err;
  EXPECT_EQ(ReadFile(log), "pre-dump " + p + "\npost-dump " + p + "\npre-restore " + p +
                               "\npre-restore " + p + "\nsetup-namespaces " + p +
                               "\npost-setup-namespaces " + p + "\npost-restore " + p +
                               "\nnetwork-unlock " + p + "\npost-resume " + p + "\n");
  EXPECT_EQ(CheckWorkload(pid, dir), "PASS");
}
// Netlink sockets (route with groups past 32 and options, uevent, generic
// used and unused) keep their ports, groups and options; the kernel answers
// them after restore.
TEST(Tree, NetlinkSocketsKeepTheirPortsAndGroups) { DumpRestoreCheck("netlink"); }
// A unix stream socket connected to a process outside the tree is refused,
// naming its inode; with --ext-unix-sk it is dumped as external, restore
// wants it from --inherit-fd fd[N]:socket:[INO] (as CRIU's), and the
// restored process talks to the socket handed in.
TEST(Tree, ExtUnixSkHandsAConnectionOutsideBackThroughInheritFd) {
  TestDir dir;
  pid_t pid = StartWorkload(dir, "refuse", {"--what", "unix-outside"});
  CmdResult refused = RunCriuLite({"dump", "-t", std::to_string(pid), "-D", dir / "img"});
  ASSERT_FALSE(refused.ok());
  size_t at = refused.err.find("socket:[");
  ASSERT_NE(at, std::string::npos) << refused.err;
  std::string key = refused.err.substr(at, refused.err.find(']', at) + 1 - at);
  CmdResult d = RunCriuLite({"dump", "-t", std::to_string(pid), "-D", dir / "img", "-x"}, {pid});
  ASSERT_TRUE(d.ok()) << d.err;
  CmdResult without = RunCriuLite({"restore", "-D", dir / "img", "-d"});
  EXPECT_FALSE(without.ok());
  EXPECT_NE(without.err.find("--inherit-fd fd[N]:" + key), std::string::npos) << without.err;
  int sv[2];
  ASSERT_EQ(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
  std::thread peer([fd = sv[1]] {
    char buf[2];
    if (read(fd, buf, 2) == 2) {
      EXPECT_EQ(write(fd, "ok", 2), 2);
    }
  });
  CmdResult r =
      RunCriuLite({"restore", "-D", dir / "img", "-d", "--inherit-fd", "fd[0]:" + key}, {}, sv[0]);
  close(sv[0]);
  EXPECT_TRUE(r.ok()) << r.err;
  if (r.ok()) {
    EXPECT_EQ(CheckWorkload(pid, dir), "PASS");
  }
  shutdown(sv[1], SHUT_RDWR);
  peer.join();
  close(sv[1]);
}

// TCP connections with both ends in the tree and megabytes in flight come
// back with TCP_REPAIR (--tcp-established): every byte arrives, in order.
TEST(Tree, TcpConnectionsWithDataInFlight) {
  if (!KernelHas("network lock"))
    GTEST_SKIP() << "SKIPPED: no nf_tables here for the network lock (criu-lite check)";
  DumpRestoreCheck("tcp", {}, {"--tcp-established"});
}
// Left running (-R), the connections leave repair mode and the lock is
// lifted: the data in flight arrives as if nothing happened.
TEST(Tree, LeaveRunningLetsTcpConnectionsGo) {
  if (!KernelHas("network lock"))
    GTEST_SKIP() << "SKIPPED: no nf_tables here for the network lock (criu-lite check)";
  TestDir dir;
  pid_t pid = StartWorkload(dir, "tcp");
  CmdResult d = RunCriuLite(
      {"dump", "-t", std::to_string(pid), "-D", dir / "img", "-R", "--tcp-established"});
  ASSERT_TRUE(d.ok()) << d.err;
  EXPECT_EQ(CheckWorkload(pid, dir), "PASS");
}

// Inotify watches come back with their numbers (also after a freed one),
// masks and ONESHOT, and see what happens after restore; the events
// queued at dump are not carried.
TEST(Tree, InotifyWatchesSeeWhatHappensAfterRestore) { DumpRestoreCheck("inotify"); }
// A fanotify group keeps its flags and marks (a file's, an ignored mask, a
// filesystem's) and reports a write to the marked file after restore.
TEST(Tree, FanotifyMarksSeeWhatHappensAfterRestore) { DumpRestoreCheck("fanotify"); }

// Deleted files come back with their bytes (a sparse one sparse), offsets
// and flags, one file for two fds, also from a removed directory.
TEST(Tree, DeletedFilesKeepTheirBytes) { DumpRestoreCheck("ghosts"); }
// A pty pair inside the tree keeps its number, termios, window size, packet
// mode and lock, and stays the controlling terminal of its session: a line
// and a ^C typed on the master reach the child.
TEST(Tree, PtyPairsAndTheirSessionsControllingTerminal) { DumpRestoreCheck("pty"); }

// With --file-locks, flock, POSIX and OFD locks are held again before the
// tree runs, by the same owners, over the same ranges.
TEST(Tree, FileLocksAreHeldAgain) {
  TestDir dir;
  pid_t pid = StartWorkload(dir, "locks");
  CmdResult d =
      RunCriuLite({"dump", "-t", std::to_string(pid), "-D", dir / "img", "--file-locks"}, {pid});
  ASSERT_TRUE(d.ok()) << d.err;
  CmdResult r = RunCriuLite({"restore", "-D", dir / "img", "-d", "--file-locks"});
  ASSERT_TRUE(r.ok()) << r.err;
  EXPECT_EQ(CheckWorkload(pid, dir), "PASS");
}
// A lock taken by another process between the dump and the restore: the
// restore fails, naming it, and leaves nothing behind.
TEST(Tree, FileLockTakenMeanwhileFailsTheRestore) {
  TestDir dir;
  pid_t pid = StartWorkload(dir, "refuse", {"--what", "flock"});
  CmdResult d =
      RunCriuLite({"dump", "-t", std::to_string(pid), "-D", dir / "img", "--file-locks"}, {pid});
  ASSERT_TRUE(d.ok()) << d.err;
  int thief = open((dir / "locked").c_str(), O_RDWR);
  ASSERT_EQ(flock(thief, LOCK_SH), 0);
  CmdResult r = RunCriuLite({"restore", "-D", dir / "img", "-d"});
  EXPECT_FALSE(r.ok());
  EXPECT_NE(r.err.find("taking back its write flock"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("another process holds it now"), std::string::npos) << r.err;
  EXPECT_FALSE(Alive(pid)) << "a failed restore left its process";
  close(thief);
}
// ... and one over the default --ghost-limit is carried with a higher one.
TEST(Tree, GhostLimitRaisesTheLimit) {
  TestDir dir;
  pid_t pid = StartWorkload(dir, "refuse", {"--what", "ghost-big"});
  CmdResult d = RunCriuLite(
      {"dump", "-t", std::to_string(pid), "-D", dir / "img", "--ghost-limit", "3M"}, {pid});
  ASSERT_TRUE(d.ok()) << d.err;
  CmdResult r = RunCriuLite({"restore", "-D", dir / "img", "-d"});
  ASSERT_TRUE(r.ok()) << r.err;
  EXPECT_EQ(CheckWorkload(pid, dir), "PASS");
}

// A dump that leaves the tree running must not consume what is in flight.
TEST(Tree, LeaveRunningConsumesNothingInFlight) {
  // The AIO ring's completions are neither reaped nor moved.
  for (const char* scenario : {"pipeline", "sockets", "aio"}) {
    TestDir dir;
    pid_t pid = StartWorkload(dir, scenario);
    CmdResult d = RunCriuLite({"dump", "-t", std::to_string(pid), "-D", dir / "img", "-R"});
    ASSERT_TRUE(d.ok()) << scenario << ": " << d.err;
    EXPECT_EQ(CheckWorkload(pid, dir), "PASS") << scenario;
  }
}
TEST(Tree, TenProcessesWithFourThreadsEach) {
  DumpRestoreCheck("forest", {"--procs", "10", "--threads", "4", "--big-mib", "4"});
}

TEST(Tree, RestoreSiblingMakesTheCallerTheParent) {
  TestDir dir;
  pid_t pid = StartWorkload(dir, "tree");
  ASSERT_TRUE(RunCriuLite({"dump", "-t", std::to_string(pid), "-D", dir / "img"}, {pid}).ok());
  CmdResult r =
      RunCriuLite({"restore", "-D", dir / "img", "--restore-sibling", "--pidfile", dir / "pid"});
  ASSERT_TRUE(r.ok()) << r.err;
  std::string stat = ReadFile("/proc/" + std::to_string(pid) + "/stat");
  int ppid = -1;
  sscanf(stat.c_str() + stat.rfind(')') + 4, "%d", &ppid);
  EXPECT_EQ(ppid, getpid()) << "the restored root is not criu-lite's sibling";
  EXPECT_EQ(CheckWorkload(pid, dir), "PASS");
}

long PssKb(pid_t pid) {
  std::istringstream in(ReadFile("/proc/" + std::to_string(pid) + "/smaps_rollup"));
  std::string line;
  while (std::getline(in, line))
    if (line.rfind("Pss:", 0) == 0) return std::stol(line.substr(4));
  return -1;
}

// The PIDs the cow workload wrote to DIR/children.
std::vector<pid_t> ChildrenOf(const TestDir& dir) {
  std::vector<pid_t> kids;
  std::istringstream in(ReadFile(dir / "children"));
  for (pid_t k; in >> k;) kids.push_back(k);
  return kids;
}

long TreePss(pid_t root, const std::vector<pid_t>& kids) {
  long sum = PssKb(root);
  for (pid_t k : kids) sum += PssKb(k);
  return sum;
}

TEST(Tree, CopyOnWritePagesStaySharedAfterRestore) {
  TestDir dir;
  pid_t pid = StartWorkload(dir, "cow", {"--big-mib", "256"});
  std::vector<pid_t> kids = ChildrenOf(dir);
  ASSERT_EQ(kids.size(), 4u);
  long before = TreePss(pid, kids);
  CmdResult d = RunCriuLite({"dump", "-t", std::to_string(pid), "-D", dir / "img"}, {pid});
  ASSERT_TRUE(d.ok()) << d.err;
  CmdResult r = RunCriuLite({"restore", "-D", dir / "img", "-d"});
  ASSERT_TRUE(r.ok()) << r.err;
  long after = TreePss(pid, kids);
  fprintf(stderr, "tree PSS: %ld kB before dump, %ld kB after restore\n", before, after);
  EXPECT_LT(after, before * 11 / 10) << "copy-on-write pages were duplicated";
  EXPECT_EQ(CheckWorkload(pid, dir), "PASS");
}

TEST(Tree, LeaveRunningKeepsCopyOnWriteShared) {
  TestDir dir;
  pid_t pid = StartWorkload(dir, "cow", {"--big-mib", "64"});
  std::vector<pid_t> kids = ChildrenOf(dir);
  long before = TreePss(pid, kids);
  CmdResult d = RunCriuLite({"dump", "-t", std::to_string(pid), "-D", dir / "img", "-R"});
  ASSERT_TRUE(d.ok()) << d.err;
  long after = TreePss(pid, kids);
  EXPECT_LT(after, before * 11 / 10) << "the dump unshared pages of the running tree";
  EXPECT_EQ(CheckWorkload(pid, dir), "PASS");
}

// Creates a process that holds PID (clone3 set_tid) until killed.
pid_t OccupyPid(pid_t pid) {
  clone_args args{};
  args.exit_signal = SIGCHLD;
  args.set_tid = reinterpret_cast<uint64_t>(&pid);
  args.set_tid_size = 1;
  long r = syscall(SYS_clone3, &args, sizeof args);
  if (r == 0) {
    pause();
    _exit(0);
  }
  return static_cast<pid_t>(r);
}

TEST(Tree, ATakenPidFailsTheWholeRestoreCleanly) {
  TestDir dir;
  pid_t pid = StartWorkload(dir, "cow", {"--big-mib", "8"});
  std::vector<pid_t> kids = ChildrenOf(dir);
  std::vector<pid_t> reap = kids;
  reap.push_back(pid);
  ASSERT_TRUE(RunCriuLite({"dump", "-t", std::to_string(pid), "-D", dir / "img"}, reap).ok());
  pid_t squatter = OccupyPid(kids[2]);
  ASSERT_EQ(squatter, kids[2]);
  CmdResult r = RunCriuLite({"restore", "-D", dir / "img", "-d"});
  EXPECT_NE(r.exit_code, 0);
  EXPECT_NE(r.err.find("PID " + std::to_string(kids[2]) + " is already in use"), std::string::npos)
      << r.err;
  EXPECT_FALSE(Alive(pid)) << "half-restored root left behind";
  for (pid_t k : kids) {
    if (k == kids[2]) continue;
    EXPECT_FALSE(Alive(k)) << "half-restored child " << k << " left behind";
  }
  KillAndReap(squatter);
  CmdResult again = RunCriuLite({"restore", "-D", dir / "img", "-d"});
  ASSERT_TRUE(again.ok()) << again.err;
  EXPECT_EQ(CheckWorkload(pid, dir), "PASS");
}

}  // namespace
}  // namespace crl::test

namespace crl::test {
namespace {

// A program nobody here wrote: Debian's bash running a loop that starts
// sleep(1) again and again and appends to a file. Dumped, restored, it goes
// on counting from where it was (its sleep children come and go).
TEST(RealPrograms, BashLoopWithSleepChildren) {
  TestDir dir;
  std::string log = dir / "ticks";
  pid_t pid = fork();
  if (pid == 0) {
    int null = open("/dev/null", O_RDWR);
    dup2(null, 0);
    dup2(null, 1);
    dup2(null, 2);
    for (int fd = 3; fd < 1024; fd++) close(fd);
    execl("/bin/bash", "bash", "-c",
          ("n=0; while :; do n=$((n+1)); echo $n >>" + log + "; sleep 0.05; done").c_str(),
          nullptr);
    _exit(127);
  }
  dir.Own(pid);
  auto ticks = [&] {
    std::string text = ReadFile(log);
    return static_cast<long>(std::count(text.begin(), text.end(), '\n'));
  };
  for (int i = 0; i < 200 && ticks() < 5; i++) usleep(10000);
  ASSERT_GE(ticks(), 5) << "bash never ran its loop";
  ExpectStateDiff children_come_and_go({"children"});
  // bash blocks SIGCHLD and catches SIGINT while it waits for a child, and
  // undoes both after: the record before the dump and the freeze may catch
  // it on either side (the restore brings back what the freeze saw).
  ExpectStateDiff bash_waits({"root:*.status.SigBlk", "root:*.status.SigCgt"});
  // `echo $n >>LOG` is a builtin: bash keeps its stdout on fd 10 and has LOG
  // on fd 1 while it runs, and either record may land in it (the 6.1 VM
  // caught fd 10 open after the restore).
  ExpectStateDiff bash_redirects({"root:fd.1", "root:fd.10"});
  CmdResult d = RunCriuLite({"dump", "-t", std::to_string(pid), "-D", dir / "img"}, {pid});
  ASSERT_TRUE(d.ok()) << d.err;
  long at_dump = ticks();
  std::string last = ReadFile(log);
  CmdResult r = RunCriuLite({"restore", "-D", dir / "img", "-d"});
  ASSERT_TRUE(r.ok()) << r.err;
  for (int i = 0; i < 300 && ticks() < at_dump + 5; i++) usleep(10000);
  EXPECT_GE(ticks(), at_dump + 5) << "the restored bash does not go on";
  std::string after = ReadFile(log);
  EXPECT_EQ(after.compare(0, last.size(), last), 0);
  // It counts on from its own variable, restored with its memory.
  std::istringstream lines(after);
  long prev = 0, n = 0;
  bool in_order = true;
  while (lines >> n) in_order &= n == prev + 1, prev = n;
  EXPECT_TRUE(in_order) << after;
  KillAndReap(pid);
}

}  // namespace
}  // namespace crl::test
