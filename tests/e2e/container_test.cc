// Containers as runtimes make them (test-containers/container: new PID,
// mount, UTS, IPC, network and cgroup namespaces, pivot_root into a busybox
// root, its own /proc, /sys, /dev, a /tmp tmpfs), checkpointed and restored
// with --root, the workloads inside checking themselves.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

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
// The same, read from /proc/PID/mountinfo, as on Debian's 6.1.
TEST_F(Containers, MountinfoFallbackReadsTheSameTree) {
  ComesBack("container", {"--disable-kernel-feature", "statmount"});
}

// The workloads of the earlier issues, each the init of a container.
class ContainerWorkload : public Containers, public ::testing::WithParamInterface<const char*> {};
TEST_P(ContainerWorkload, ComesBackAndChecksItself) {
  ComesBack(GetParam(), {"--tcp-established"});
}
INSTANTIATE_TEST_SUITE_P(Inside, ContainerWorkload,
                         ::testing::Values("memory", "threads", "tree", "tcp", "pipeline"));

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
  EXPECT_EQ(CheckWorkload(init, dir), "PASS");
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
