// runc (Debian's, a runtime nobody here wrote) with criu-lite as its criu:
// `runc --criu criu-lite checkpoint` and `restore` drive `criu-lite swrk`
// over CRIU's RPC exactly as they drive CRIU. The container is what `runc
// spec` makes (new PID, mount, IPC, UTS and network namespaces, runc's
// mounts, masked and read-only paths, cgroup v1 or v2 as the host has them,
// its default capabilities) on a busybox root, its stdio on pipes as
// containerd and Podman give it, a bind of the test's directory at /check
// (an external mount for the checkpoint), and the workload of the earlier
// issues as its init, checking itself after restore. Or its stdio on a
// terminal whose master runc hands to a console socket of the test's.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <poll.h>
#include <signal.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstring>
#include <fstream>
#include <string>
#include <vector>

#include "tests/e2e/harness.h"

namespace crl::test {
namespace {

const char* kRunc = "/usr/sbin/runc";

// The OCI configuration `runc spec` writes, with ARGS as the process, ROOT
// as the root, and DIR bound at /check; with TERMINAL, the process's stdio
// is a terminal (runc then wants a --console-socket).
std::string Config(const std::string& root, const std::string& dir,
                   const std::vector<std::string>& args, bool terminal = false) {
  std::string argv;
  for (const std::string& a : args) argv += (argv.empty() ? "\"" : ", \"") + a + "\"";
  const char* caps = R"(["CAP_AUDIT_WRITE", "CAP_KILL", "CAP_NET_BIND_SERVICE"])";
  return std::string(R"({
  "ociVersion": "1.0.2-dev",
  "process": {
    "terminal": )" + std::string(terminal ? "true" : "false") +
                     R"(,
    "user": {"uid": 0, "gid": 0},
    "args": [)") +
         argv + R"(],
    "env": ["PATH=/bin", "TERM=xterm"],
    "cwd": "/",
    "capabilities": {"bounding": )" +
         caps + R"(, "effective": )" + caps + R"(, "permitted": )" + caps + R"(, "ambient": )" +
         caps + R"(},
    "rlimits": [{"type": "RLIMIT_NOFILE", "hard": 1024, "soft": 1024}],
    "noNewPrivileges": true
  },
  "root": {"path": ")" +
         root + R"(", "readonly": false},
  "hostname": "runc",
  "mounts": [
    {"destination": "/proc", "type": "proc", "source": "proc"},
    {"destination": "/dev", "type": "tmpfs", "source": "tmpfs",
     "options": ["nosuid", "strictatime", "mode=755", "size=65536k"]},
    {"destination": "/dev/pts", "type": "devpts", "source": "devpts",
     "options": ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"]},
    {"destination": "/dev/shm", "type": "tmpfs", "source": "shm",
     "options": ["nosuid", "noexec", "nodev", "mode=1777", "size=65536k"]},
    {"destination": "/dev/mqueue", "type": "mqueue", "source": "mqueue",
     "options": ["nosuid", "noexec", "nodev"]},
    {"destination": "/sys", "type": "sysfs", "source": "sysfs",
     "options": ["nosuid", "noexec", "nodev", "ro"]},
    {"destination": "/sys/fs/cgroup", "type": "cgroup", "source": "cgroup",
     "options": ["nosuid", "noexec", "nodev", "relatime", "ro"]},
    {"destination": "/check", "type": "bind", "source": ")" +
         dir + R"(", "options": ["rbind", "rw"]}
  ],
  "linux": {
    "resources": {"devices": [{"allow": false, "access": "rwm"}]},
    "namespaces": [{"type": "pid"}, {"type": "network"}, {"type": "ipc"}, {"type": "uts"},
                   {"type": "mount"}],
    "maskedPaths": ["/proc/acpi", "/proc/asound", "/proc/kcore", "/proc/keys",
                    "/proc/latency_stats", "/proc/timer_list", "/proc/timer_stats",
                    "/proc/sched_debug", "/sys/firmware", "/proc/scsi"],
    "readonlyPaths": ["/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger"]
  }
}
)";
}

// A console socket, as `runc --console-socket` wants: runc connects and
// passes the master of the container's terminal (SCM_RIGHTS), at run and
// again (CRIU's orphan-pts-master notification) at restore.
class ConsoleSocket {
 public:
  explicit ConsoleSocket(const std::string& path) : path_(path) {
    fd_ = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_un a{};
    a.sun_family = AF_UNIX;
    strncpy(a.sun_path, path.c_str(), sizeof a.sun_path - 1);
    EXPECT_EQ(bind(fd_, reinterpret_cast<sockaddr*>(&a), sizeof a), 0) << strerror(errno);
    EXPECT_EQ(listen(fd_, 4), 0);
  }
  ~ConsoleSocket() { close(fd_); }
  const std::string& path() const { return path_; }

  // The master passed by the next connection runc made (it connected and
  // sent before it exited), or -1.
  int TakeMaster() {
    pollfd p{fd_, POLLIN, 0};
    if (poll(&p, 1, 10000) != 1) return -1;
    int conn = accept4(fd_, nullptr, nullptr, SOCK_CLOEXEC);
    if (conn < 0) return -1;
    char buf[4096];
    iovec iov{buf, sizeof buf};
    alignas(cmsghdr) char control[CMSG_SPACE(sizeof(int))] = {};
    msghdr msg{};
    msg.msg_iov = &iov;
    msg.msg_iovlen = 1;
    msg.msg_control = control;
    msg.msg_controllen = sizeof control;
    int master = -1;
    if (recvmsg(conn, &msg, MSG_CMSG_CLOEXEC) >= 0)
      for (cmsghdr* c = CMSG_FIRSTHDR(&msg); c; c = CMSG_NXTHDR(&msg, c))
        if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_RIGHTS)
          memcpy(&master, CMSG_DATA(c), sizeof master);
    close(conn);
    return master;
  }

 private:
  std::string path_;
  int fd_;
};

// What master MASTER reads within TIMEOUT_MS, until it has WANT.
std::string ReadUntil(int master, const std::string& want, int timeout_ms = 10000) {
  std::string got;
  for (int waited = 0; got.find(want) == std::string::npos && waited < timeout_ms; waited += 100) {
    pollfd p{master, POLLIN, 0};
    if (poll(&p, 1, 100) != 1) continue;
    char buf[512];
    ssize_t n = read(master, buf, sizeof buf);
    if (n <= 0) break;
    got.append(buf, n);
  }
  return got;
}

// One container under a runc state directory of the test's own.
class Runc : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_EQ(access(kRunc, X_OK), 0)
        << kRunc << " is missing: scripts/install-deps.sh installs it";
    root_ = MakeContainerRoot(dir_);
    mkdir((dir_ / "bundle").c_str(), 0755);
    id_ = "crl-" + std::to_string(getpid());
  }
  void TearDown() override {
    RunRunc({"kill", id_, "KILL"});
    RunRunc({"delete", "-f", id_});
    for (int fd : stdin_) close(fd);
    for (int fd : masters_) close(fd);
    for (pid_t p : readers_) KillAndReap(p);
  }

  // `runc --root STATE --criu criu-lite ARGS...` with stdio on fresh pipes
  // (PIPES: the output read into DIR/out by a cat of ours, stdin held open),
  // as a runtime gives them, else /dev/null; its exit status, its log (its
  // errors) in err_.
  int RunRunc(const std::vector<std::string>& args, bool pipes = false) {
    std::string log = dir_ / "runc.log";
    unlink(log.c_str());
    std::vector<std::string> argv = {kRunc, "--log", log, "--root", dir_ / "state"};
    if (!criu_on_path_) {
      argv.push_back("--criu");
      argv.push_back(CRIU_LITE_BIN);
    }
    argv.insert(argv.end(), args.begin(), args.end());
    int in[2] = {-1, -1}, out[2] = {-1, -1};
    if (pipes) {
      EXPECT_EQ(pipe2(in, O_CLOEXEC), 0);
      EXPECT_EQ(pipe2(out, O_CLOEXEC), 0);
      readers_.push_back(StartProgram(dir_, {"/bin/cat"}, out[0]));
      close(out[0]);
    }
    pid_t pid = fork();
    if (pid == 0) {
      int null = open("/dev/null", O_RDWR);
      dup2(pipes ? in[0] : null, 0);
      dup2(pipes ? out[1] : null, 1);
      dup2(pipes ? out[1] : null, 2);
      // runc's own default: `criu` found on PATH.
      if (criu_on_path_)
        setenv("PATH", (dir_.path() + "/bin:/usr/sbin:/usr/bin:/sbin:/bin").c_str(), 1);
      std::vector<char*> a;
      for (std::string& s : argv) a.push_back(s.data());
      a.push_back(nullptr);
      execv(a[0], a.data());
      _exit(127);
    }
    if (pipes) {
      close(in[0]);
      close(out[1]);
      stdin_.push_back(in[1]);  // the container's stdin stays a live pipe
    }
    int status = 0;
    waitpid(pid, &status, 0);
    err_ = ReadFile(log);
    return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  }

  // The workload SCENARIO as the container's init (on a terminal whose
  // master goes to the socket at CONSOLE, if given); its host PID.
  pid_t Start(const std::string& scenario, const std::string& console = "") {
    std::ofstream(dir_ / "bundle/config.json") << Config(
        root_, dir_.path(), {"/bin/workload", scenario, "--dir", "/check"}, !console.empty());
    std::vector<std::string> run = {"run", "-d", "--bundle", dir_ / "bundle", id_};
    if (!console.empty()) run.insert(run.begin() + 1, {"--console-socket", console});
    if (RootIsRamfs()) run.insert(run.begin() + 1, "--no-pivot");
    EXPECT_EQ(RunRunc(run, true), 0) << err_;
    EXPECT_TRUE(WaitForFile(dir_ / "ready", 30000)) << ReadFile(dir_ / "out");
    unlink((dir_ / "ready").c_str());
    pid_t pid = InitPid();
    SettleTree(pid, 500);
    return pid;
  }

  // The container's init as `runc state` says, or -1.
  pid_t InitPid() {
    std::vector<std::string> argv = {kRunc, "--root", dir_ / "state", "state", id_};
    std::string cmd;
    for (const std::string& a : argv) cmd += a + " ";
    FILE* f = popen((cmd + "2>/dev/null").c_str(), "r");
    std::string out;
    char buf[4096];
    for (size_t n; (n = fread(buf, 1, sizeof buf, f)) > 0;) out.append(buf, n);
    pclose(f);
    size_t p = out.find("\"pid\": ");
    return p == std::string::npos ? -1 : atoi(out.c_str() + p + 7);
  }

  int Checkpoint(const std::vector<std::string>& extra, const std::string& images = "img") {
    std::vector<std::string> args = {"checkpoint", "--image-path", dir_ / images, "--work-path",
                                     dir_ / "work"};
    args.insert(args.end(), extra.begin(), extra.end());
    args.push_back(id_);
    return RunRunc(args);
  }
  int Restore(const std::vector<std::string>& extra = {}) {
    std::vector<std::string> args = {"restore",      "-d",         "--bundle",    dir_ / "bundle",
                                     "--image-path", dir_ / "img", "--work-path", dir_ / "work"};
    if (RootIsRamfs()) args.push_back("--no-pivot");
    args.insert(args.end(), extra.begin(), extra.end());
    args.push_back(id_);
    return RunRunc(args, true);
  }

  // Installed as `criu` (the link `cmake --install --component criu`
  // makes) first on runc's PATH, instead of runc's --criu.
  void CriuOnPath() {
    mkdir((dir_ / "bin").c_str(), 0755);
    ASSERT_EQ(symlink(CRIU_LITE_BIN, (dir_ / "bin/criu").c_str()), 0);
    criu_on_path_ = true;
  }

  TestDir dir_;
  bool criu_on_path_ = false;
  std::string root_, id_, err_;
  std::vector<pid_t> readers_;
  std::vector<int> stdin_;
  std::vector<int> masters_;  // terminals' masters from a console socket
};

// runc checkpoint, with criu-lite as the `criu` on its PATH: the container
// is gone, its images and dump.log where runc said; runc restore -d: the
// same container runs again (its init PID 1 inside, a new host PID) and
// checks itself: a tree of processes with sessions, groups, a zombie and a
// stopped child (runc gives its freezer cgroup to freeze for the dump).
TEST_F(Runc, CheckpointThenRestoreATreeWithStdioOnPipes) {
  CriuOnPath();
  pid_t pid = Start("tree");
  ASSERT_GT(pid, 0);
  ASSERT_EQ(Checkpoint({}), 0) << err_ << ReadFile(dir_ / "work/dump.log");
  EXPECT_FALSE(Alive(pid));
  EXPECT_EQ(InitPid(), -1) << "runc still knows the checkpointed container";
  EXPECT_TRUE((access((dir_ / "work/dump.log").c_str(), F_OK) == 0));
  EXPECT_TRUE((access((dir_ / "img/inventory.img").c_str(), F_OK) == 0));
  ASSERT_EQ(Restore(), 0) << err_ << ReadFile(dir_ / "work/restore.log");
  pid_t restored = InitPid();
  ASSERT_GT(restored, 0);
  EXPECT_NE(ReadFile("/proc/" + std::to_string(restored) + "/status")
                .find("NSpid:\t" + std::to_string(restored) + "\t1\n"),
            std::string::npos)
      << "the restored init is not PID 1 in its namespace";
  // runc exec joins the restored namespaces.
  EXPECT_EQ(RunRunc({"exec", id_, "/bin/sh", "-c",
                     "test -d /check && test \"$(cat /proc/1/comm)\" = workload"}),
            0)
      << err_;
  EXPECT_EQ(CheckWorkload(restored, dir_), "PASS");
}

// --leave-running: the container runs on and checks itself, then the
// images restore it once it is gone (threads under a mutex and condition
// variable: a workload whose check changes no file the images hold).
TEST_F(Runc, CheckpointLeavingItRunningThenRestore) {
  pid_t pid = Start("threads");
  ASSERT_GT(pid, 0);
  ASSERT_EQ(Checkpoint({"--leave-running"}), 0) << err_ << ReadFile(dir_ / "work/dump.log");
  EXPECT_EQ(InitPid(), pid);
  EXPECT_EQ(CheckWorkload(pid, dir_), "PASS");
  RunRunc({"delete", "-f", id_});
  ASSERT_EQ(Restore(), 0) << err_ << ReadFile(dir_ / "work/restore.log");
  EXPECT_EQ(CheckWorkload(InitPid(), dir_), "PASS");
}

// --pre-dump, then checkpoint --parent-path: the final images are a link
// of the chain (only what was written since is in them) and restore.
TEST_F(Runc, PreDumpThenCheckpointWithItsParent) {
  pid_t pid = Start("memory");
  ASSERT_GT(pid, 0);
  ASSERT_EQ(Checkpoint({"--pre-dump"}, "pre"), 0) << err_ << ReadFile(dir_ / "work/dump.log");
  EXPECT_EQ(InitPid(), pid);
  ASSERT_EQ(Checkpoint({"--parent-path", "../pre"}), 0) << err_ << ReadFile(dir_ / "work/dump.log");
  char link[64] = {};
  EXPECT_GT(readlink((dir_ / "img/parent").c_str(), link, sizeof link - 1), 0);
  ASSERT_EQ(Restore(), 0) << err_ << ReadFile(dir_ / "work/restore.log");
  EXPECT_EQ(CheckWorkload(InitPid(), dir_), "PASS");
}

// A terminal (runc run with --console-socket, as Podman's conmon and
// containerd give one to `-t` containers): its master is the caller's, so
// runc's checkpoint sends orphan_pts_master; restore makes the pty again in
// the container's devpts (before /dev/console is bound to it) and hands its
// new master over the RPC socket, which runc passes to the console socket.
// The restored init finds the same terminal in the same state, and a line
// typed at the new master reaches it and its answer comes back.
TEST_F(Runc, ATerminalOnTheConsoleSocketComesBack) {
  ConsoleSocket console(dir_ / "console.sock");
  pid_t pid = Start("console", console.path());
  ASSERT_GT(pid, 0);
  int before = console.TakeMaster();
  ASSERT_GE(before, 0) << "runc passed no master to the console socket";
  masters_.push_back(before);
  ASSERT_EQ(Checkpoint({}), 0) << err_ << ReadFile(dir_ / "work/dump.log");
  EXPECT_FALSE(Alive(pid));
  ASSERT_EQ(Restore({"--console-socket", console.path()}), 0)
      << err_ << ReadFile(dir_ / "work/restore.log");
  int master = console.TakeMaster();
  ASSERT_GE(master, 0) << "no master came to the console socket at restore";
  masters_.push_back(master);
  int index = -1;
  EXPECT_EQ(ioctl(master, TIOCGPTN, &index), 0);
  EXPECT_EQ(index, 0) << "the new master is not the container's pty 0";
  ASSERT_EQ(write(master, "ping\n", 5), 5);
  EXPECT_EQ(CheckWorkload(InitPid(), dir_), "PASS");
  EXPECT_NE(ReadUntil(master, "pong").find("pong"), std::string::npos);
}

// --tcp-established: the workload's connections (IPv4 and IPv6 over the
// container's loopback, data in flight both ways) come back established.
TEST_F(Runc, TcpConnectionsComeBackWithTcpEstablished) {
  pid_t pid = Start("tcp");
  ASSERT_GT(pid, 0);
  ASSERT_EQ(Checkpoint({"--tcp-established"}), 0) << err_ << ReadFile(dir_ / "work/dump.log");
  ASSERT_EQ(Restore({"--tcp-established"}), 0) << err_ << ReadFile(dir_ / "work/restore.log");
  EXPECT_EQ(CheckWorkload(InitPid(), dir_), "PASS");
}

}  // namespace
}  // namespace crl::test
