// Programs nobody here wrote, from Debian's packages, holding the event
// objects criu-lite carries: each is checkpointed while it waits, restored,
// and seen doing its job afterwards.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <chrono>
#include <csignal>
#include <cstdio>
#include <fstream>
#include <map>
#include <thread>

#include "tests/e2e/harness.h"
#include "tests/e2e/state_diff.h"

namespace crl::test {
namespace {

void Append(const std::string& path, const std::string& text) {
  std::ofstream(path, std::ios::app) << text;
}

bool WaitForContent(const std::string& path, const std::string& want, int timeout_ms) {
  for (int waited = 0; waited < timeout_ms; waited += 10) {
    if (ReadFile(path) == want) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  return false;
}

// coreutils' `tail -f` waits for its file to grow with inotify (and a
// timerfd-less sleep between checks when it cannot): after restore it
// still sees a line appended.
TEST(RealPrograms, TailFollowsItsFileAfterRestore) {
  TestDir dir;
  std::string log = dir / "log";
  Append(log, "one\n");
  pid_t pid = StartProgram(dir, {"/usr/bin/tail", "-f", log});
  ASSERT_TRUE(WaitForContent(dir / "out", "one\n", 5000)) << ReadFile(dir / "err");
  SettleTree(pid, 500);
  bool inotify = false;
  for (int fd = 3; fd < 16; fd++) {
    char link[256] = {};
    if (readlink(("/proc/" + std::to_string(pid) + "/fd/" + std::to_string(fd)).c_str(), link,
                 sizeof link - 1) > 0 &&
        std::string(link) == "anon_inode:inotify")
      inotify = true;
  }
  ASSERT_TRUE(inotify) << "tail -f holds no inotify: this test would not test it";
  CmdResult d = RunCriuLite(
      {"dump", "-t", std::to_string(pid), "-D", dir / "img", "-v", "-o", dir / "dump.log"}, {pid});
  ASSERT_TRUE(d.ok()) << d.err;
  CmdResult r = RunCriuLite({"restore", "-D", dir / "img", "-d", "-v", "-o", dir / "restore.log"});
  ASSERT_TRUE(r.ok()) << r.err;
  Append(log, "two\n");
  EXPECT_TRUE(WaitForContent(dir / "out", "one\ntwo\n", 5000))
      << "tail wrote: " << ReadFile(dir / "out");
  KillAndReap(pid);
}

// Each of a process's fds as /proc shows it: what it names and its flags.
std::map<int, std::string> FdsOf(pid_t pid) {
  std::map<int, std::string> fds;
  std::string base = "/proc/" + std::to_string(pid);
  for (int fd = 0; fd < 64; fd++) {
    char link[256] = {};
    if (readlink((base + "/fd/" + std::to_string(fd)).c_str(), link, sizeof link - 1) <= 0)
      continue;
    std::string info = ReadFile(base + "/fdinfo/" + std::to_string(fd));
    size_t at = info.find("flags:");
    fds[fd] = std::string(link) + " " + info.substr(at, info.find('\n', at) - at);
  }
  return fds;
}

// A shell leaves tail no stdin (its file takes fd 0) and fds at numbers of
// their own (4, 6 in append mode, 9), so that the numbers the kernel gives restore as it hands
// the files over are other fds' numbers: each comes back at its own, with
// its own flags, and tail still follows its file.
TEST(RealPrograms, FdsGivenAtOtherFdsNumbersComeBackAtTheirOwn) {
  TestDir dir;
  std::string log = dir / "log";
  Append(log, "one\n");
  std::string script = "exec 0<&- 4>" + dir / "four" + " 9</dev/zero 6>>" + dir / "six" +
                       "; exec /usr/bin/tail -f " + log;
  pid_t pid = StartProgram(dir, {"/bin/sh", "-c", script});
  ASSERT_TRUE(WaitForContent(dir / "out", "one\n", 5000)) << ReadFile(dir / "err");
  SettleTree(pid, 500);
  std::map<int, std::string> before = FdsOf(pid);
  // Without a stdin, tail's own file takes fd 0.
  ASSERT_EQ(before[0].find("/dev/null"), std::string::npos) << "the shell left tail its stdin";
  ASSERT_EQ(before.count(4) + before.count(6) + before.count(9), 3u);
  CmdResult d = RunCriuLite(
      {"dump", "-t", std::to_string(pid), "-D", dir / "img", "-v", "-o", dir / "dump.log"}, {pid});
  ASSERT_TRUE(d.ok()) << d.err;
  CmdResult r = RunCriuLite({"restore", "-D", dir / "img", "-d", "-v", "-o", dir / "restore.log"});
  ASSERT_TRUE(r.ok()) << r.err;
  std::map<int, std::string> after = FdsOf(pid);
  for (auto& [fd, what] : before) {
    // A pipe or an inotify is made again: its own inode, the same kind.
    std::string kind = what.substr(0, what.find('['));
    ASSERT_TRUE(after.count(fd)) << "fd " << fd << " (" << what << ") is missing";
    EXPECT_EQ(after[fd].substr(0, after[fd].find('[')), kind) << "fd " << fd;
    EXPECT_EQ(after[fd].substr(after[fd].find("flags:")), what.substr(what.find("flags:")))
        << "fd " << fd;
  }
  EXPECT_EQ(after.size(), before.size());
  Append(log, "two\n");
  EXPECT_TRUE(WaitForContent(dir / "out", "one\ntwo\n", 5000))
      << "tail wrote: " << ReadFile(dir / "out");
  KillAndReap(pid);
}

// util-linux's `unshare -m` under a shell, as a service gets a private
// /tmp: the shell (in criu-lite's mount namespace) waits for sleep, which is
// in a mount namespace of its own with a tmpfs holding a file. After
// restore, sleep's namespace has the tmpfs and its file again, criu-lite's
// has no such mount, and the shell still waits for the same sleep.
TEST(RealPrograms, UnshareMountNamespaceUnderAShellComesBack) {
  TestDir dir;
  std::string m = dir / "private";
  ASSERT_EQ(mkdir(m.c_str(), 0755), 0);
  std::string script = "unshare -m --propagation private sh -c 'mount -t tmpfs -o size=1m crl " +
                       m + " && echo kept > " + m + "/file && echo > " + dir / "ready" +
                       " && exec sleep 1000'; echo waited $? > " + dir / "waited";
  pid_t sh = StartProgram(dir, {"/bin/sh", "-c", script});
  ASSERT_TRUE(WaitForFile(dir / "ready", 5000)) << ReadFile(dir / "err");
  SettleTree(sh, 500);
  std::string s = std::to_string(sh);
  pid_t sleeper = atoi(ReadFile("/proc/" + s + "/task/" + s + "/children").c_str());
  ASSERT_GT(sleeper, 0);
  std::string in_ns = "/proc/" + std::to_string(sleeper) + "/root" + m + "/file";
  ASSERT_EQ(ReadFile(in_ns), "kept\n");
  CmdResult d =
      RunCriuLite({"dump", "-t", s, "-D", dir / "img", "-v", "-o", dir / "dump.log"}, {sh});
  ASSERT_TRUE(d.ok()) << d.err;
  CmdResult r = RunCriuLite({"restore", "-D", dir / "img", "-d", "-v", "-o", dir / "restore.log"});
  ASSERT_TRUE(r.ok()) << r.err;
  EXPECT_EQ(ReadFile(in_ns), "kept\n");
  struct stat at {
  }, above{};
  EXPECT_TRUE(stat(m.c_str(), &at) == 0 && stat(dir.path().c_str(), &above) == 0 &&
              at.st_dev == above.st_dev)
      << m << " is a mount point outside sleep's namespace";
  std::string ns = "/proc/" + std::to_string(sleeper) + "/ns/mnt";
  char theirs[64] = {}, mine[64] = {};
  EXPECT_TRUE(readlink(ns.c_str(), theirs, sizeof theirs - 1) > 0 &&
              readlink("/proc/self/ns/mnt", mine, sizeof mine - 1) > 0 &&
              std::string(theirs) != mine);
  kill(sleeper, SIGTERM);
  EXPECT_TRUE(WaitForContent(dir / "waited", "waited 143\n", 5000)) << ReadFile(dir / "waited");
  KillAndReap(sh);
}

// Python's asyncio (Debian's python3): an event loop on epoll, its self-pipe
// socket pair, a signal handler that wakes it, and a timer that keeps
// writing a count into a file it holds open (pwrite at 0: the file's fd and
// offset are the same whenever the state-diff looks, which a file opened
// for each count is not). After restore the count goes on and SIGUSR1 still
// reaches the loop.
TEST(RealPrograms, PythonAsyncioLoopRunsOn) {
  if (access("/usr/bin/python3", X_OK) != 0) GTEST_SKIP() << "SKIPPED: no /usr/bin/python3 here";
  TestDir dir;
  std::string script = dir / "loop.py", count = dir / "count";
  std::ofstream(script) << R"(import asyncio, os, signal, sys
async def main():
    loop = asyncio.get_running_loop()
    done = asyncio.Event()
    loop.add_signal_handler(signal.SIGUSR1, done.set)
    fd = os.open(sys.argv[1], os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    n = 0
    while not done.is_set():
        n += 1
        os.pwrite(fd, b"%08d" % n, 0)
        try:
            await asyncio.wait_for(done.wait(), 0.02)
        except asyncio.TimeoutError:
            pass
    os.pwrite(fd, b"usr1 after %d" % n, 0)
asyncio.run(main())
)";
  pid_t pid = StartProgram(dir, {"/usr/bin/python3", script, count});
  auto value = [&] { return atoi(ReadFile(count).c_str()); };
  // Bounds, not speeds: Python starts slowly in an emulated VM on a busy host.
  for (int i = 0; i < 6000 && value() < 5; i++)
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  ASSERT_GE(value(), 5) << ReadFile(dir / "err");
  CmdResult d = RunCriuLite(
      {"dump", "-t", std::to_string(pid), "-D", dir / "img", "-v", "-o", dir / "dump.log"}, {pid});
  ASSERT_TRUE(d.ok()) << d.err;
  int at_dump = value();
  CmdResult r = RunCriuLite({"restore", "-D", dir / "img", "-d", "-v", "-o", dir / "restore.log"});
  ASSERT_TRUE(r.ok()) << r.err;
  for (int i = 0; i < 6000 && value() < at_dump + 5; i++)
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  EXPECT_GE(value(), at_dump + 5) << "the loop stopped counting: " << ReadFile(dir / "err");
  kill(pid, SIGUSR1);
  bool woke = false;
  for (int i = 0; i < 6000 && !woke; i++) {
    woke = ReadFile(count).rfind("usr1 after", 0) == 0;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  EXPECT_TRUE(woke) << "SIGUSR1 did not reach the loop: " << ReadFile(count) << " "
                    << ReadFile(dir / "err");
  KillAndReap(pid);
}

// A program logging to a datagram socket outside the tree, as to syslog's
// /dev/log (here the test's own): after restore its socket is connected to
// the same name again and its next message arrives.
TEST(RealPrograms, DatagramSocketConnectedToALogSocketOutside) {
  if (access("/usr/bin/python3", X_OK) != 0) GTEST_SKIP() << "SKIPPED: no /usr/bin/python3 here";
  TestDir dir;
  std::string log = dir / "log.sock";
  int sink = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  sockaddr_un a{};
  a.sun_family = AF_UNIX;
  snprintf(a.sun_path, sizeof a.sun_path, "%s", log.c_str());
  ASSERT_EQ(bind(sink, reinterpret_cast<sockaddr*>(&a), sizeof a), 0);
  std::ofstream(dir / "logger.py") << R"(import signal, socket, sys
signal.pthread_sigmask(signal.SIG_BLOCK, [signal.SIGUSR1])
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.connect(sys.argv[1])
s.send(b"before")
signal.sigwait([signal.SIGUSR1])
s.send(b"after")
)";
  pid_t pid = StartProgram(dir, {"/usr/bin/python3", dir / "logger.py", log});
  auto next = [&] {
    pollfd p{sink, POLLIN, 0};
    char buf[16] = {};
    return poll(&p, 1, 5000) == 1 && recv(sink, buf, sizeof buf - 1, 0) > 0 ? std::string(buf)
                                                                            : std::string();
  };
  ASSERT_EQ(next(), "before") << ReadFile(dir / "err");
  SettleTree(pid, 500);
  CmdResult d = RunCriuLite(
      {"dump", "-t", std::to_string(pid), "-D", dir / "img", "-v", "-o", dir / "dump.log"}, {pid});
  ASSERT_TRUE(d.ok()) << d.err;
  CmdResult r = RunCriuLite({"restore", "-D", dir / "img", "-d", "-v", "-o", dir / "restore.log"});
  ASSERT_TRUE(r.ok()) << r.err;
  kill(pid, SIGUSR1);
  EXPECT_EQ(next(), "after") << ReadFile(dir / "err");
  KillAndReap(pid);
  close(sink);
}

// `cat` reading a pipe whose writer is the test (outside the tree), stopped
// with bytes in flight in it, as a process a supervisor or a shell pipeline
// started; then dumped, and the test's end closed. Returns cat's PID and
// the pipe's name ("pipe:[INO]").
pid_t DumpedCatFromOurPipe(const TestDir& dir, std::string* name) {
  int p[2];
  EXPECT_EQ(pipe2(p, O_CLOEXEC), 0);
  pid_t pid = StartProgram(dir, {"/usr/bin/cat"}, p[0]);
  close(p[0]);
  EXPECT_EQ(write(p[1], "before\n", 7), 7);
  EXPECT_TRUE(WaitForContent(dir / "out", "before\n", 5000));
  SettleTree(pid, 500);
  kill(pid, SIGSTOP);
  while (TaskState(pid) != 'T') std::this_thread::sleep_for(std::chrono::milliseconds(1));
  EXPECT_EQ(write(p[1], "in flight\n", 10), 10);
  char link[64] = {};
  readlink(("/proc/" + std::to_string(pid) + "/fd/0").c_str(), link, sizeof link - 1);
  *name = link;
  CmdResult d = RunCriuLite({"dump", "-t", std::to_string(pid), "-D", dir / "img"}, {pid});
  EXPECT_TRUE(d.ok()) << d.err;
  close(p[1]);
  return pid;
}

// By default the restored cat reads a new pipe: the bytes that were in
// flight, then end of file once restore (which holds the other end) exits.
TEST(OutsidePipes, ANewPipeByDefaultWithTheBytesInFlight) {
  TestDir dir;
  std::string name;
  pid_t pid = DumpedCatFromOurPipe(dir, &name);
  CmdResult r = RunCriuLite({"restore", "-D", dir / "img", "-d"});
  ASSERT_TRUE(r.ok()) << r.err;
  EXPECT_NE(r.err.find(name + " had its other end outside the tree"), std::string::npos) << r.err;
  kill(pid, SIGCONT);
  EXPECT_TRUE(WaitForContent(dir / "out", "before\nin flight\n", 5000)) << ReadFile(dir / "out");
  for (int i = 0; i < 500 && Alive(pid); i++)
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  EXPECT_FALSE(Alive(pid)) << "cat did not see the end of its new pipe";
}

// With --inherit-fd fd[0]:pipe:[INO] it reads the pipe the caller hands in,
// as it is: the bytes that were in flight at dump stay the business of the
// pipe they were in (as with CRIU), and what the caller writes now comes.
TEST(OutsidePipes, InheritFdJoinsThePipeTheCallerHandsIn) {
  TestDir dir;
  std::string name;
  pid_t pid = DumpedCatFromOurPipe(dir, &name);
  int q[2];
  ASSERT_EQ(pipe2(q, O_CLOEXEC), 0);
  CmdResult r =
      RunCriuLite({"restore", "-D", dir / "img", "-d", "--inherit-fd", "fd[0]:" + name}, {}, q[0]);
  close(q[0]);
  ASSERT_TRUE(r.ok()) << r.err;
  EXPECT_EQ(r.err.find("outside the tree"), std::string::npos) << r.err;
  kill(pid, SIGCONT);
  ASSERT_EQ(write(q[1], "after\n", 6), 6);
  EXPECT_TRUE(WaitForContent(dir / "out", "before\nafter\n", 5000))
      << "cat wrote: " << ReadFile(dir / "out");
  EXPECT_TRUE(Alive(pid));
  close(q[1]);
  KillAndReap(pid);
}

// --external file[MNT_ID:INODE], as a runtime names a container's log: the
// restore needs an --inherit-fd for it, and the restored process then
// writes to the file handed in.
TEST(OutsidePipes, ExternalFileComesFromInheritFd) {
  // Its stdout and stderr are the file handed in now, by design.
  ExpectStateDiff handed_in({"fd.1", "fd.2"});
  TestDir dir;
  pid_t pid = StartWorkload(dir, "counter");
  std::string fdinfo = ReadFile("/proc/" + std::to_string(pid) + "/fdinfo/1");
  unsigned mnt_id = 0;
  sscanf(fdinfo.c_str() + fdinfo.find("mnt_id:"), "mnt_id: %u", &mnt_id);
  struct stat st {};
  ASSERT_EQ(stat((dir / "out").c_str(), &st), 0);
  char key[64];
  snprintf(key, sizeof key, "file[%x:%lx]", mnt_id, (unsigned long)st.st_ino);
  CmdResult d =
      RunCriuLite({"dump", "-t", std::to_string(pid), "-D", dir / "img", "--external", key}, {pid});
  ASSERT_TRUE(d.ok()) << d.err;
  CmdResult without = RunCriuLite({"restore", "-D", dir / "img", "-d"});
  EXPECT_FALSE(without.ok());
  EXPECT_NE(without.err.find(std::string("restore with --inherit-fd fd[N]:") + key),
            std::string::npos)
      << without.err;
  int out2 = open((dir / "out2").c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
  CmdResult r = RunCriuLite(
      {"restore", "-D", dir / "img", "-d", "--inherit-fd", std::string("fd[0]:") + key}, {}, out2);
  close(out2);
  ASSERT_TRUE(r.ok()) << r.err;
  bool wrote = false;
  for (int i = 0; i < 300 && !wrote; i++) {
    wrote = ReadFile(dir / "out2").find("counter") != std::string::npos;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  EXPECT_TRUE(wrote) << "the restored process does not write to the file handed in";
  EXPECT_EQ(CheckWorkload(pid, dir), "PASS");
}

// A bad --inherit-fd is refused in one line, before anything is made.
TEST(OutsidePipes, BadInheritFdIsRefused) {
  TestDir dir;
  CmdResult a = RunCriuLite({"restore", "-D", dir.path(), "--inherit-fd", "pipe:[1]"});
  EXPECT_NE(a.err.find("not fd[N]:RESOURCE"), std::string::npos) << a.err;
  CmdResult b = RunCriuLite({"restore", "-D", dir.path(), "--inherit-fd", "fd[900]:pipe:[1]"});
  EXPECT_NE(b.err.find("fd 900 is not open"), std::string::npos) << b.err;
  CmdResult c = RunCriuLite({"dump", "-t", "1", "-D", dir.path(), "--external", "tty[zz]"});
  EXPECT_NE(c.err.find("not tty[RDEV:DEV], file[MNT_ID:INODE], unix[INODE], mnt[MOUNTPOINT]:KEY "
                       "or net[INODE]:KEY"),
            std::string::npos)
      << c.err;
}

}  // namespace
}  // namespace crl::test
