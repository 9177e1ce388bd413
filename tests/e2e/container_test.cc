// Containers as runtimes make them (test-containers/container: new PID,
// mount, UTS, IPC, network and cgroup namespaces, pivot_root into a busybox
// root, its own /proc, /sys, /dev, a /tmp tmpfs), checkpointed and restored
// with --root, the workloads inside checking themselves.
#include <arpa/inet.h>
#include <fcntl.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/mount.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/vfs.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>

#include "base/scoped_fd.h"
#include "tests/e2e/harness.h"
#include "tests/e2e/state_diff.h"

namespace crl::test {
namespace {

// Kills what a test started, whatever way it ends.
struct Killer {
  std::vector<pid_t> pids;
  ~Killer() {
    for (pid_t p : pids)
      if (p > 0) KillAndReap(p);
  }
};

struct Container {
  pid_t launcher = -1, init = -1;
};

// Starts `workload SCENARIO --dir /check` as the init of a container whose
// /check is DIR (a bind from the host), and waits until it is ready.
Container StartContainer(const TestDir& dir, const std::string& root, const std::string& scenario,
                         const std::vector<std::string>& launcher_args = {}) {
  std::vector<std::string> argv = {
      CONTAINER_BIN,          "--rootfs", root,        "--pidfile", dir / "init-pid", "--bind",
      dir.path() + ":/check", "--stdio",  "/check/out"};
  argv.insert(argv.end(), launcher_args.begin(), launcher_args.end());
  for (const char* a : {"--", "/bin/workload", scenario.c_str(), "--dir", "/check"})
    argv.push_back(a);
  Container c;
  c.launcher = StartProgram(dir, argv);
  if (!WaitForFile(dir / "ready", 30000)) {
    ADD_FAILURE() << "the container never got ready: " << ReadFile(dir / "err")
                  << ReadFile(dir / "out");
    return c;
  }
  c.init = atoi(ReadFile(dir / "init-pid").c_str());
  SettleTree(c.init, 500);
  return c;
}

// Dumps the container whose init is INIT (its /check the caller's mount)
// and restores it on ROOT; the restored init's host PID.
pid_t DumpAndRestore(const TestDir& dir, const std::string& root, pid_t init,
                     const std::vector<std::string>& dump_args = {}) {
  std::vector<std::string> dump = {
      "dump", "-t", std::to_string(init), "-D",         dir / "img",
      "-v",   "-o", dir / "dump.log",     "--external", "mnt[/check]:results"};
  dump.insert(dump.end(), dump_args.begin(), dump_args.end());
  CmdResult d = RunCriuLite(dump);
  EXPECT_TRUE(d.ok()) << d.err;
  if (!d.ok()) return -1;
  EXPECT_FALSE(Alive(init));
  CmdResult r =
      RunCriuLite({"restore", "-D", dir / "img", "-d", "-v", "-o", dir / "restore.log", "--root",
                   root, "--external", "mnt[results]:" + dir.path(), "--pidfile", dir / "pidfile"});
  EXPECT_TRUE(r.ok()) << r.err;
  return r.ok() ? atoi(ReadFile(dir / "pidfile").c_str()) : -1;
}

// A test with a container root in its directory, and what it starts
// killed at its end.
class Containers : public ::testing::Test {
 protected:
  // Starts SCENARIO as the init of a container; its host PID.
  pid_t Start(const std::string& scenario) {
    Container c = StartContainer(dir_, root_, scenario);
    killer_.pids.push_back(c.launcher);
    return c.init;
  }
  // SCENARIO's container dumped (with DUMP_ARGS) and restored; the restored
  // init checks itself.
  void ComesBack(const std::string& scenario, const std::vector<std::string>& dump_args) {
    pid_t init = Start(scenario);
    ASSERT_GT(init, 0);
    pid_t restored = DumpAndRestore(dir_, root_, init, dump_args);
    ASSERT_GT(restored, 0);
    killer_.pids.push_back(restored);
    EXPECT_EQ(CheckWorkload(restored, dir_), "PASS");
  }
  TestDir dir_;
  Killer killer_;
  std::string root_ = MakeContainerRoot(dir_);
};

// The container's init is dumped with its mounts (the tmpfs's files in the
// images), the launcher outside sees it die, and restore puts it back in a
// new container on the same root: PID 1 again, its child PID 2, the same
// mounts with their options, the file on its tmpfs still open at its offset
// (and its inode number) and mapped, its host name. The mount tree read with
// listmount/statmount (6.8+; where the kernel lacks them, the fallback below
// runs in its place).
TEST_F(Containers, ContainerComesBackOnItsRootWithItsMounts) { ComesBack("container", {}); }
// Mount namespaces a container's tasks made inside it (a child's from the
// container's, a grandchild's from the child's), each with mounts of its
// own and without one it took away: made again from the container's as
// restore made it, the files of each task opened in its own.
TEST_F(Containers, MountNamespacesInsideComeBack) { ComesBack("mountns", {}); }
// The same, read from /proc/PID/mountinfo, as on Debian's 6.1.
TEST_F(Containers, MountinfoFallbackReadsTheSameTree) {
  ComesBack("container", {"--disable-kernel-feature", "statmount"});
}

// The root a runtime gives a container is often an overlayfs it mounted
// (an image's layers below, the container's writes above): dumped from it
// and restored with --root naming it again, the init's executable and
// everything it maps come from the overlay, checked by size and time.
TEST_F(Containers, AnOverlayRootTheRuntimeMountedComesBack) {
  std::string merged = dir_ / "merged", upper = dir_ / "upper", work = dir_ / "work";
  for (const std::string& d : {merged, upper, work}) ASSERT_EQ(mkdir(d.c_str(), 0755), 0) << d;
  std::string options = "lowerdir=" + root_ + ",upperdir=" + upper + ",workdir=" + work;
  if (mount("overlay", merged.c_str(), "overlay", 0, options.c_str()) < 0)
    GTEST_SKIP() << "SKIPPED: no overlayfs here: " << strerror(errno);
  struct Unmount {
    std::string at;
    ~Unmount() { umount2(at.c_str(), MNT_DETACH); }
  } unmount{merged};
  // A file of the container's own, only in the upper layer.
  std::ofstream(merged + "/etc-written") << "by the runtime\n";
  Container c = StartContainer(dir_, merged, "container");
  killer_.pids.push_back(c.launcher);
  ASSERT_GT(c.init, 0);
  pid_t restored = DumpAndRestore(dir_, merged, c.init);
  ASSERT_GT(restored, 0);
  killer_.pids.push_back(restored);
  // Its root is the overlay, as the original's was.
  struct statfs fs {};
  EXPECT_EQ(statfs(("/proc/" + std::to_string(restored) + "/root/").c_str(), &fs), 0);
  EXPECT_EQ(fs.f_type, 0x794c7630)
      << "the restored root is not an overlayfs";  // OVERLAYFS_SUPER_MAGIC
  EXPECT_EQ(CheckWorkload(restored, dir_), "PASS");
  EXPECT_EQ(ReadFile(upper + "/etc-written"), "by the runtime\n");
}

// The workloads of the earlier issues, each the init of a container.
class ContainerWorkload : public Containers, public ::testing::WithParamInterface<const char*> {};
TEST_P(ContainerWorkload, ComesBackAndChecksItself) {
  ComesBack(GetParam(), {"--tcp-established"});
}
INSTANTIATE_TEST_SUITE_P(Inside, ContainerWorkload,
                         ::testing::Values("memory", "threads", "tree", "tcp", "pipeline"));

// CMD for bash: /bin/sh may be busybox's (the 6.1 VM), which runs its own
// ip and nsenter applets, not iproute2's and util-linux's.
std::string InBash(const std::string& cmd) {
  std::string quoted;
  for (char c : cmd) quoted += c == '\'' ? std::string("'\\''") : std::string(1, c);
  return "bash -c '" + quoted + "'";
}

// What a shell command prints.
std::string Output(const std::string& cmd) {
  std::string out;
  FILE* f = popen(InBash(cmd).c_str(), "r");
  if (!f) return out;
  char buf[4096];
  for (size_t n; (n = fread(buf, 1, sizeof buf, f)) > 0;) out.append(buf, n);
  pclose(f);
  return out;
}

// LINE sent on FD, and what comes back (up to its newline).
std::string Echo(int fd, const std::string& line) {
  if (write(fd, line.data(), line.size()) != static_cast<ssize_t>(line.size()))
    return "(write failed: " + std::string(strerror(errno)) + ")";
  std::string back;
  char c;
  while (back.size() < line.size() && read(fd, &c, 1) == 1) back += c;
  return back;
}

// A shell command's exit status, its output thrown away.
int Quiet(const std::string& cmd) { return system((InBash(cmd) + " >/dev/null 2>&1").c_str()); }

// A container on a bridge, as runtimes' network plugins put one: a veth
// pair (eth0 inside, 10.98.0.2/24 with a default route and an address of
// its own on loopback; crl-ct0 outside in the bridge crl-ctbr, 10.98.0.1).
// Its init is busybox's nc serving cat on each connection (a server nobody
// here wrote), and a client on the host holds a connection to it.
class BridgedContainer : public Containers {
 protected:
  void SetUp() override {
    Quiet("ip link del crl-ctbr");
    if (Quiet("ip link add crl-ctbr type bridge") != 0)
      GTEST_SKIP() << "SKIPPED: no bridge links here (the bridge module)";
    ASSERT_EQ(Quiet("ip addr add 10.98.0.1/24 dev crl-ctbr && ip link set crl-ctbr up"), 0);
    killer_.pids.push_back(
        StartProgram(dir_, {CONTAINER_BIN, "--rootfs", root_, "--pidfile", dir_ / "init-pid",
                            "--bind", dir_.path() + ":/check", "--stdio", "/check/out", "--veth",
                            "crl-ct0@crl-ctbr:10.98.0.2/24,10.98.0.1", "--", "/bin/busybox", "nc",
                            "-ll", "-p", "7000", "-e", "/bin/cat"}));
    // The launcher writes the file once the veth is made: wait for its
    // number, not for the file (made before its number is in it).
    for (int i = 0; i < 2000 && (init_ = atoi(ReadFile(dir_ / "init-pid").c_str())) <= 0; i++)
      usleep(10000);
    ASSERT_GT(init_, 0) << ReadFile(dir_ / "err");
    ASSERT_EQ(Quiet(InNs(init_) + "ip addr add 10.98.7.7/32 dev lo"), 0);
    ASSERT_EQ(Quiet(InNs(init_) + "ip route add 10.97.0.0/16 via 10.98.0.1 metric 9"), 0);
    ASSERT_EQ(Quiet(InNs(init_) +
                    "ip neigh add 10.98.0.77 lladdr 02:00:00:00:00:77 dev eth0 nud permanent"),
              0);
    ASSERT_EQ(Quiet(InNs(init_) +
                    "ip -6 neigh add fd00::77 lladdr 02:00:00:00:00:78 dev eth0 nud permanent"),
              0);
    for (const auto& [path, value] : kSysctls)
      ASSERT_EQ(Quiet(InNs(init_) + "sh -c 'echo " + value + " >/proc/sys/net/" + path + "'"), 0)
          << path;
    sockaddr_in to{};
    to.sin_family = AF_INET;
    to.sin_port = htons(7000);
    inet_pton(AF_INET, "10.98.0.2", &to.sin_addr);
    for (int i = 0; i < 500; i++) {
      client_.reset(socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
      if (connect(client_.get(), reinterpret_cast<sockaddr*>(&to), sizeof to) == 0) break;
      client_.reset();
      usleep(20000);
    }
    ASSERT_TRUE(client_.valid()) << "nothing listens in the container: " << ReadFile(dir_ / "out");
    timeval tv{20, 0};
    setsockopt(client_.get(), SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    ASSERT_EQ(Echo(client_.get(), "before\n"), "before\n");
    SettleTree(init_, 500);
  }
  void TearDown() override { Quiet("ip link del crl-ctbr; ip link del crl-ct0"); }
  static std::string InNs(pid_t pid) { return "nsenter -t " + std::to_string(pid) + " -n "; }
  // What the container sees of its network (the link's index in the
  // other namespace aside, and whether duplicate address detection of the
  // link-local address the kernel makes is over yet: a moment's state).
  static std::string Network(pid_t pid) {
    std::string sysctls;
    for (const auto& [path, value] : kSysctls)
      sysctls += path + " " + Output(InNs(pid) + "cat /proc/sys/net/" + path);
    return sysctls + Output(InNs(pid) + "ip -o link | sed 's/@if[0-9]*//; s/ qdisc.*link/ link/'") +
           Output(InNs(pid) + "ip -o addr | sed 's/\\\\.*//; s/ tentative//'") +
           Output(InNs(pid) + "ip route") + Output(InNs(pid) + "ip -6 route") +
           Output(InNs(pid) + "ip -4 neigh show nud permanent") +
           Output(InNs(pid) + "ip -6 neigh show nud permanent");
  }
  CmdResult Dump(const std::vector<std::string>& more = {}) {
    std::vector<std::string> args = {"dump",
                                     "-t",
                                     std::to_string(init_),
                                     "-D",
                                     dir_ / "img",
                                     "-v",
                                     "-o",
                                     dir_ / "dump.log",
                                     "--tcp-established",
                                     "--external",
                                     "mnt[/check]:results"};
    args.insert(args.end(), more.begin(), more.end());
    return RunCriuLite(args);
  }
  // The restore of it, with MORE.
  std::vector<std::string> RestoreArgs(const std::vector<std::string>& more) const {
    std::vector<std::string> args = {"restore",
                                     "-D",
                                     dir_ / "img",
                                     "-d",
                                     "-v",
                                     "-o",
                                     dir_ / "restore.log",
                                     "--root",
                                     root_,
                                     "--tcp-established",
                                     "--external",
                                     "mnt[results]:" + dir_.path(),
                                     "--pidfile",
                                     dir_ / "pidfile"};
    args.insert(args.end(), more.begin(), more.end());
    return args;
  }
  // Restores it; the restored init's host PID (-1: restore failed).
  pid_t Restore(const std::vector<std::string>& more) {
    CmdResult r = RunCriuLite(RestoreArgs(more));
    EXPECT_TRUE(r.ok()) << r.err;
    if (!r.ok()) return -1;
    pid_t pid = atoi(ReadFile(dir_ / "pidfile").c_str());
    killer_.pids.push_back(pid);
    return pid;
  }
  pid_t init_ = -1;
  ScopedFd client_;
  // Sysctls of the namespace set unlike a new one's: its own, and one of
  // its link's.
  static inline const std::vector<std::pair<std::string, std::string>> kSysctls = {
      {"ipv4/ip_forward", "1"},
      {"core/somaxconn", "1234"},
      {"ipv4/ip_local_port_range", "20000 30000"},
      {"ipv4/conf/all/rp_filter", "2"},
      {"ipv4/conf/eth0/arp_ignore", "1"}};
};

// Dumped with --tcp-established (the veth goes with the container),
// restored with --external veth[eth0]:crl-ct0@crl-ctbr: the same link,
// addresses, routes, permanent neighbours and sysctls inside, the other end back in the bridge,
// and the client's connection answers as before.
TEST_F(BridgedContainer, ComesBackOnTheBridgeAndKeepsItsClientOnTheHost) {
  std::string before = Network(init_);
  for (const char* seen : {"eth0", "10.98.0.2/24", "10.98.7.7/32", "default via 10.98.0.1",
                           "10.97.0.0/16 via 10.98.0.1 dev eth0 metric 9", "somaxconn 1234",
                           "ip_local_port_range 20000\t30000", "eth0/arp_ignore 1"})
    EXPECT_NE(before.find(seen), std::string::npos) << seen << " not in: " << before;
  CmdResult d = Dump();
  ASSERT_TRUE(d.ok()) << d.err;
  EXPECT_FALSE(Alive(init_));
  pid_t restored = Restore({"--external", "veth[eth0]:crl-ct0@crl-ctbr"});
  ASSERT_GT(restored, 0);
  EXPECT_EQ(Network(restored), before);
  EXPECT_NE(Output("ip -o link show crl-ct0").find("master crl-ctbr"), std::string::npos)
      << Output("ip -o link show crl-ct0");
  EXPECT_EQ(Echo(client_.get(), "after\n"), "after\n");
}

// --empty-ns net (CRIU's, as runc passes it when the runtime makes the
// network itself): the dump records the namespace without its links, and
// restore makes it empty and runs the caller's setup-namespaces script
// (which makes the veth into the root's namespace, CRTOOLS_INIT_PID) before
// the tree's sockets are made in it; the client's connection answers.
TEST_F(BridgedContainer, AnEmptyNetworkNamespaceIsSetUpByTheCaller) {
  CmdResult d = Dump({"--empty-ns", "net"});
  ASSERT_TRUE(d.ok()) << d.err;
  std::ofstream(dir_ / "setup.sh")
      << "#!/bin/bash\n"
      << "[ \"$CRTOOLS_SCRIPT_ACTION\" = setup-namespaces ] || exit 0\n"
      << "echo \"$CRTOOLS_INIT_PID\" >" << (dir_ / "setup.pid") << "\n"
      << "ip link add crl-ct0 type veth peer name eth0 netns $CRTOOLS_INIT_PID &&\n"
      << "ip link set crl-ct0 master crl-ctbr up &&\n"
      << "nsenter -t $CRTOOLS_INIT_PID -n sh -c 'ip addr add 10.98.0.2/24 dev eth0 && "
         "ip link set eth0 up && ip route add default via 10.98.0.1'\n";
  chmod((dir_ / "setup.sh").c_str(), 0755);
  pid_t restored = Restore({"--empty-ns", "net", "--action-script", dir_ / "setup.sh"});
  ASSERT_GT(restored, 0);
  EXPECT_EQ(atoi(ReadFile(dir_ / "setup.pid").c_str()), restored);
  std::string now = Network(restored);
  // What the script made, and nothing the dump saw besides.
  EXPECT_NE(now.find("10.98.0.2/24"), std::string::npos) << now;
  EXPECT_EQ(now.find("10.98.7.7"), std::string::npos) << now;
  EXPECT_EQ(Echo(client_.get(), "after\n"), "after\n");
}

// --external net[INODE]:KEY (what runc and Podman send for a network
// namespace the runtime made, "extRootNetNS"): the dump records none of
// the namespace's contents; restore needs the caller's namespace as
// --inherit-fd fd[N]:KEY (refused by name without it, or with an fd that
// is no network namespace, nothing left running) and puts the tree in it,
// the client's connection answering there.
TEST_F(BridgedContainer, TheCallersNetworkNamespaceIsJoinedFromInheritFd) {
  // The caller's namespace, held by a process (`ip netns` would add mounts,
  // whose IDs the restored mounts are compared on) and set up as a
  // runtime's network plugin would; the link joins the bridge once the
  // container's address is free.
  pid_t holder = StartProgram(dir_, {"/usr/bin/unshare", "-n", "/bin/sleep", "1000"});
  struct Gone {
    pid_t holder;
    ~Gone() {
      KillAndReap(holder);
      Output("ip link del crl-ext0 2>&1");
    }
  } gone{holder};
  std::string ns_path = "/proc/" + std::to_string(holder) + "/ns/net";
  auto link = [](const std::string& p) { return std::filesystem::read_symlink(p).string(); };
  for (int i = 0; i < 500 && link(ns_path) == link("/proc/self/ns/net"); i++) usleep(10000);
  std::string in_ns = "nsenter -t " + std::to_string(holder) + " -n ";
  Output("ip link add crl-ext0 type veth peer name eth0 netns " + std::to_string(holder) + " && " +
         in_ns + "ip addr add 10.98.0.2/24 dev eth0 && " + in_ns + "ip link set eth0 up && " +
         in_ns + "ip link set lo up && " + in_ns + "ip route add default via 10.98.0.1");
  struct stat ns {};
  ASSERT_EQ(stat(("/proc/" + std::to_string(init_) + "/ns/net").c_str(), &ns), 0);
  CmdResult d = Dump({"--external", "net[" + std::to_string(ns.st_ino) + "]:extRootNetNS"});
  ASSERT_TRUE(d.ok()) << d.err;
  EXPECT_FALSE(Alive(init_));
  Output("ip link set crl-ext0 master crl-ctbr up");
  ScopedFd given(open(ns_path.c_str(), O_RDONLY | O_CLOEXEC));
  ASSERT_TRUE(given.valid());
  // Handed in as criu-lite's fd 0 (the harness closes the others).
  std::vector<std::string> args = RestoreArgs({});
  CmdResult none = RunCriuLite(args, {}, given.get());
  EXPECT_FALSE(none.ok());
  EXPECT_NE(none.err.find("give one with --inherit-fd fd[N]:extRootNetNS"), std::string::npos)
      << none.err;
  args.insert(args.end(), {"--inherit-fd", "fd[0]:extRootNetNS"});
  ScopedFd null(open("/dev/null", O_RDONLY | O_CLOEXEC));
  CmdResult bad = RunCriuLite(args, {}, null.get());
  EXPECT_FALSE(bad.ok());
  EXPECT_NE(bad.err.find("fd[0]:extRootNetNS: not a network namespace"), std::string::npos)
      << bad.err;
  EXPECT_FALSE(Alive(init_)) << "a refused restore left the tree running";
  CmdResult r = RunCriuLite(args, {}, given.get());
  ASSERT_TRUE(r.ok()) << r.err;
  pid_t restored = atoi(ReadFile(dir_ / "pidfile").c_str());
  killer_.pids.push_back(restored);
  struct stat now {
  }, want{};
  ASSERT_EQ(stat(("/proc/" + std::to_string(restored) + "/ns/net").c_str(), &now), 0);
  ASSERT_EQ(fstat(given.get(), &want), 0);
  EXPECT_EQ(now.st_ino, want.st_ino) << "the tree is not in the namespace given";
  std::string net = Network(restored);
  EXPECT_NE(net.find("10.98.0.2/24"), std::string::npos) << net;
  EXPECT_EQ(net.find("10.98.7.7"), std::string::npos) << "the dump carried the contents: " << net;
  EXPECT_EQ(Echo(client_.get(), "after\n"), "after\n");
}

// A file the launcher gave the init (its log, on the host's file system)
// is on no mount of the container's: restore could not open it by its
// path. The dump says so, naming the fd and how to hand it over, and the
// container runs on untouched.
TEST_F(Containers, AFileFromOutsideIsRefusedAndTheContainerRunsOn) {
  const TestDir& dir = dir_;
  const std::string& root = root_;
  std::vector<std::string> argv = {CONTAINER_BIN,
                                   "--rootfs",
                                   root,
                                   "--pidfile",
                                   dir / "init-pid",
                                   "--bind",
                                   dir.path() + ":/check",
                                   "--",
                                   "/bin/workload",
                                   "container",
                                   "--dir",
                                   "/check"};
  killer_.pids.push_back(StartProgram(dir, argv));
  ASSERT_TRUE(WaitForFile(dir / "ready", 30000)) << ReadFile(dir / "err");
  pid_t init = atoi(ReadFile(dir / "init-pid").c_str());
  SettleTree(init, 500);
  CmdResult d = RunCriuLite(
      {"dump", "-t", std::to_string(init), "-D", dir / "img", "--external", "mnt[/check]:results"});
  EXPECT_FALSE(d.ok());
  // Its stdin is the host's /dev/null, its stdout the test's file.
  EXPECT_NE(d.err.find("fd 0 of PID " + std::to_string(init) +
                       " is /dev/null, on a mount outside its mount namespace"),
            std::string::npos)
      << d.err;
  EXPECT_NE(d.err.find("--external file["), std::string::npos) << d.err;
  std::string checked = CheckWorkload(init, dir);
  // Killing the launcher at the end would leave a container that did not
  // answer behind.
  if (checked != "PASS") kill(init, SIGKILL);
  EXPECT_EQ(checked, "PASS");
}

// Restore refuses, before anything runs, a container image without
// --root, and an external mount the caller does not give.
TEST_F(Containers, RestoreSaysWhatItNeeds) {
  const TestDir& dir = dir_;
  pid_t init = Start("container");
  ASSERT_GT(init, 0);
  CmdResult d = RunCriuLite({"dump", "-t", std::to_string(init), "-D", dir / "img", "-R",
                             "--external", "mnt[/check]:results"});
  ASSERT_TRUE(d.ok()) << d.err;
  CmdResult r = RunCriuLite({"restore", "-D", dir / "img", "-d"});
  EXPECT_FALSE(r.ok());
  EXPECT_NE(r.err.find("give the directory that is its root with --root"), std::string::npos)
      << r.err;
  r = RunCriuLite({"restore", "-D", dir / "img", "-d", "--root", root_});
  EXPECT_FALSE(r.ok());
  EXPECT_NE(r.err.find("give it with --external mnt[results]:PATH"), std::string::npos) << r.err;
  EXPECT_EQ(CheckWorkload(init, dir), "PASS");
}

}  // namespace
}  // namespace crl::test
