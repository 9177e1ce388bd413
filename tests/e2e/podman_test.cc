// Podman (Debian's, a runtime nobody here wrote) with criu-lite installed
// as the `criu` first on its PATH: Podman checks its version over CRIU's
// RPC, runc drives `criu swrk`, and the container moves as a file with
// `podman container checkpoint --export` and `restore --import`. The image
// is made from a local root file system (`podman import`, no registry); the
// container has Podman's network namespace (made and configured by Podman,
// the external namespace runtimes name "extRootNetNS"), the test's
// directory bound at /check, and the workload of the earlier issues as its
// init, checking itself after restore. root here lacks CAP_SYS_RESOURCE:
// the limits are given so that runc need not raise them.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <string>
#include <vector>

#include "tests/e2e/harness.h"

namespace crl::test {
namespace {

const char* kPodman = "/usr/bin/podman";

class Podman : public ::testing::Test {
 protected:
  void SetUp() override {
    if (access(kPodman, X_OK) != 0) {
      if (RootIsRamfs()) GTEST_SKIP() << "SKIPPED: podman is not in the 6.1 VM's image";
      FAIL() << kPodman << " is missing: scripts/install-deps.sh installs it";
    }
    mkdir((dir_ / "bin").c_str(), 0755);
    ASSERT_EQ(symlink(CRIU_LITE_BIN, (dir_ / "bin/criu").c_str()), 0);
    std::string root = MakeContainerRoot(dir_);
    image_ = "localhost/criu-lite-test-" + std::to_string(getpid());
    name_ = "crl-" + std::to_string(getpid());
    std::string import = "tar -C " + root + " -c . | " + kPodman + " import - " + image_ + " > " +
                         dir_ / "import.log" + " 2>&1";
    ASSERT_EQ(system(import.c_str()), 0) << ReadFile(dir_ / "import.log");
  }
  void TearDown() override {
    if (image_.empty()) return;
    RunPodman({"rm", "-f", "-t", "0", name_});
    RunPodman({"rmi", "-f", image_});
  }

  // `podman ARGS...` with criu-lite as `criu` first on PATH; its exit
  // status, its stdout in out_, its stderr in err_.
  int RunPodman(const std::vector<std::string>& args) {
    std::string out = dir_ / "podman.out", err = dir_ / "podman.err";
    pid_t pid = fork();
    if (pid == 0) {
      int null = open("/dev/null", O_RDONLY);
      int o = open(out.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
      int e = open(err.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
      dup2(null, 0);
      dup2(o, 1);
      dup2(e, 2);
      setenv("PATH", (dir_.path() + "/bin:/usr/sbin:/usr/bin:/sbin:/bin").c_str(), 1);
      std::vector<std::string> argv = {kPodman};
      argv.insert(argv.end(), args.begin(), args.end());
      std::vector<char*> a;
      for (std::string& s : argv) a.push_back(s.data());
      a.push_back(nullptr);
      execv(a[0], a.data());
      _exit(127);
    }
    int status = 0;
    waitpid(pid, &status, 0);
    out_ = ReadFile(out);
    err_ = ReadFile(err);
    return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  }

  // The workload SCENARIO as the container's init under runc (with
  // TERMINAL, on a terminal conmon holds: `podman run -t`); its host PID.
  pid_t Start(const std::string& scenario, bool terminal = false) {
    std::vector<std::string> run = {"run",       "-d",
                                    "--runtime", "runc",
                                    "--ulimit",  "nofile=1024:1024",
                                    "--ulimit",  "nproc=4096:4096",
                                    "--name",    name_,
                                    "-v",        dir_.path() + ":/check",
                                    image_,      "/bin/workload",
                                    scenario,    "--dir",
                                    "/check"};
    if (terminal) run.insert(run.begin() + 1, "-t");
    EXPECT_EQ(RunPodman(run), 0) << err_;
    EXPECT_TRUE(WaitForFile(dir_ / "ready", 30000)) << ReadFile(dir_ / "out");
    unlink((dir_ / "ready").c_str());
    pid_t pid = InitPid();
    SettleTree(pid, 500);
    return pid;
  }

  // The container's init as `podman inspect` says, or -1.
  pid_t InitPid() {
    if (RunPodman({"inspect", "--format", "{{.State.Pid}}", name_}) != 0) return -1;
    int pid = atoi(out_.c_str());
    return pid > 0 ? pid : -1;
  }

  // Whether PID's network namespace has Podman's interface (eth0): the one
  // Podman made and configured, not an empty one.
  bool InPodmansNetwork(pid_t pid) {
    return ReadFile("/proc/" + std::to_string(pid) + "/net/dev").find("eth0:") != std::string::npos;
  }

  TestDir dir_;
  std::string image_, name_, out_, err_;
};

// checkpoint --export FILE.tar.zst: the container is gone, FILE holds the
// images, and Podman prints CRIU's figures (the stats files criu-lite
// writes in CRIU's format); the container removed, restore --import FILE
// makes it again
// from the file alone: its init is PID 1 in its namespace, in Podman's
// network, and the tree (sessions, groups, a zombie, a stopped child)
// checks itself.
TEST_F(Podman, CheckpointExportThenRestoreImport) {
  pid_t pid = Start("tree");
  ASSERT_GT(pid, 0);
  ASSERT_TRUE(InPodmansNetwork(pid));
  std::string file = dir_ / "checkpoint.tar.zst";
  ASSERT_EQ(RunPodman({"container", "checkpoint", "--print-stats", "--export", file, name_}), 0)
      << err_;
  EXPECT_FALSE(Alive(pid));
  // CRIU's stats-dump, which Podman packs and prints, is in the work
  // directory: no error on the way.
  EXPECT_EQ(err_.find("level=error"), std::string::npos) << err_;
  EXPECT_NE(out_.find("\"frozen_time\": "), std::string::npos) << out_;
  struct stat st {};
  ASSERT_EQ(stat(file.c_str(), &st), 0);
  EXPECT_GT(st.st_size, 0);
  ASSERT_EQ(RunPodman({"rm", "-f", name_}), 0) << err_;
  ASSERT_EQ(RunPodman({"container", "restore", "--print-stats", "--import", file}), 0) << err_;
  EXPECT_EQ(err_.find("level=error"), std::string::npos) << err_;
  EXPECT_NE(out_.find("\"restore_time\": "), std::string::npos) << out_;
  pid_t restored = InitPid();
  ASSERT_GT(restored, 0);
  EXPECT_NE(ReadFile("/proc/" + std::to_string(restored) + "/status")
                .find("NSpid:\t" + std::to_string(restored) + "\t1\n"),
            std::string::npos)
      << "the restored init is not PID 1 in its namespace";
  EXPECT_TRUE(InPodmansNetwork(restored)) << "the tree is not in the network Podman made";
  EXPECT_EQ(CheckWorkload(restored, dir_), "PASS");
}

// `podman run -t`: conmon holds the terminal's master; the checkpoint
// carries the slave as an orphan, and at restore the new master goes
// through runc's console socket to conmon: the init is on the container's
// pty 0 again, and checks itself.
TEST_F(Podman, ATerminalContainerComesBack) {
  pid_t pid = Start("threads", true);
  ASSERT_GT(pid, 0);
  std::string file = dir_ / "checkpoint.tar.zst";
  ASSERT_EQ(RunPodman({"container", "checkpoint", "--export", file, name_}), 0) << err_;
  EXPECT_FALSE(Alive(pid));
  ASSERT_EQ(RunPodman({"rm", "-f", name_}), 0) << err_;
  ASSERT_EQ(RunPodman({"container", "restore", "--import", file}), 0) << err_;
  pid_t restored = InitPid();
  ASSERT_GT(restored, 0);
  char link[64] = {};
  EXPECT_GT(
      readlink(("/proc/" + std::to_string(restored) + "/fd/0").c_str(), link, sizeof link - 1), 0);
  EXPECT_STREQ(link, "/dev/pts/0");
  EXPECT_EQ(CheckWorkload(restored, dir_), "PASS");
}

// checkpoint --leave-running: the container runs on, untraced; stopped,
// restore brings it back in place from that checkpoint, and it checks
// itself.
TEST_F(Podman, CheckpointLeavingItRunningThenRestoreInPlace) {
  pid_t pid = Start("threads");
  ASSERT_GT(pid, 0);
  ASSERT_EQ(RunPodman({"container", "checkpoint", "--leave-running", name_}), 0) << err_;
  EXPECT_EQ(InitPid(), pid);
  EXPECT_EQ(TracerPid(pid), 0);
  EXPECT_NE(TaskState(pid), 't');
  ASSERT_EQ(RunPodman({"stop", "-t", "0", name_}), 0) << err_;
  EXPECT_FALSE(Alive(pid));
  ASSERT_EQ(RunPodman({"container", "restore", name_}), 0) << err_;
  pid_t restored = InitPid();
  ASSERT_GT(restored, 0);
  EXPECT_TRUE(InPodmansNetwork(restored));
  EXPECT_EQ(CheckWorkload(restored, dir_), "PASS");
}

}  // namespace
}  // namespace crl::test
