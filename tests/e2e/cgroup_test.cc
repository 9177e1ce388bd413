// Cgroups: a tree comes back into its cgroups with their settings under
// CRIU's --manage-cgroups modes, and --freeze-cgroup stops a tree that a walk
// of /proc cannot catch. Each test makes its cgroups below the test's own
// (in every hierarchy mounted here: v1 and cgroup2 on the development
// machines, cgroup2 alone in the 6.1 VM) and removes them, whatever fails.
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <fstream>
#include <map>
#include <sstream>

#include "kernel/cgroups.h"
#include "tests/e2e/harness.h"
#include "tests/e2e/state_diff.h"

namespace crl::test {
namespace {

std::string Trim(std::string s) {
  while (!s.empty() && (s.back() == '\n' || s.back() == ' ')) s.pop_back();
  return s;
}

bool Write(const std::string& path, const std::string& value) {
  std::ofstream f(path);
  f << value << std::flush;
  return static_cast<bool>(f);
}

// One cgroup of ours in one hierarchy, and the settings given to it.
struct OurCgroup {
  std::string dir;
  bool v2 = false;
  std::string controllers;  // as in /proc/PID/cgroup
  std::map<std::string, std::string> settings;
};

// The test's own cgroup directory in each hierarchy mounted here.
std::vector<OurCgroup> OwnCgroups() {
  std::vector<CgroupMount> mounts = ParseCgroupMounts(ReadFile("/proc/self/mountinfo"));
  std::vector<OurCgroup> out;
  std::istringstream in(ReadFile("/proc/self/cgroup"));
  for (std::string line; std::getline(in, line);) {
    auto dir = CgroupDir(mounts, line);
    auto l = ParseCgroupLine(line);
    if (!dir.ok() || !l.ok()) continue;
    out.push_back({*dir, l->v2, l->controllers, {}});
  }
  return out;
}

// The test's own cgroup2 directory, or "" without a cgroup2 hierarchy.
std::string OwnCgroup2() {
  for (const OurCgroup& c : OwnCgroups())
    if (c.v2) return c.dir;
  return "";
}

bool Has(const std::string& controllers, const std::string& c) {
  return ("," + controllers + ",").find("," + c + ",") != std::string::npos;
}

// Cgroups named NAME below the test's own, in each hierarchy whose
// controllers have a setting this test knows, with those settings; removed
// (deepest first) when it goes.
class Cgroups {
 public:
  explicit Cgroups(const std::string& name) {
    for (OurCgroup c : OwnCgroups()) {
      std::string parent = c.dir;
      c.dir += "/" + name;
      if (c.v2) {
        c.settings["cgroup.max.descendants"] = "5";
        // Controllers enabled below our own cgroup where that is allowed
        // (the root of the 6.1 VM's cgroup2).
        std::string can = ReadFile(parent + "/cgroup.controllers");
        for (const char* ctl : {"memory", "pids"})
          if (can.find(ctl) != std::string::npos)
            Write(parent + "/cgroup.subtree_control", std::string("+") + ctl);
        std::string on = ReadFile(parent + "/cgroup.subtree_control");
        if (on.find("memory") != std::string::npos) c.settings["memory.max"] = "536870912";
        if (on.find("pids") != std::string::npos) c.settings["pids.max"] = "77";
      } else if (Has(c.controllers, "pids")) {
        c.settings["pids.max"] = "77";
      } else if (Has(c.controllers, "cpu")) {
        c.settings["cpu.cfs_quota_us"] = "50000";
        c.settings["cpu.shares"] = "512";
      } else if (Has(c.controllers, "memory")) {
        c.settings["memory.limit_in_bytes"] = "536870912";
      } else if (Has(c.controllers, "cpuset")) {
        c.settings["cpuset.cpus"] = "0";
        c.settings["cpuset.mems"] = "0";
      } else {
        continue;
      }
      groups_.push_back(c);
    }
  }
  ~Cgroups() { Remove(); }

  // Made again with their settings (what the test starts from).
  ::testing::AssertionResult Make() const {
    for (const OurCgroup& c : groups_) {
      if (mkdir(c.dir.c_str(), 0755) < 0 && errno != EEXIST)
        return ::testing::AssertionFailure() << "mkdir " << c.dir << ": " << strerror(errno);
      if (Has(c.controllers, "cpuset"))
        for (const char* f : {"cpuset.cpus", "cpuset.mems"})
          Write(c.dir + "/" + f, Trim(ReadFile(c.dir + "/../" + f)));
      for (const auto& [k, v] : c.settings)
        if (!Write(c.dir + "/" + k, v))
          return ::testing::AssertionFailure() << "cannot set " << c.dir << "/" << k;
    }
    return ::testing::AssertionSuccess();
  }
  void Remove() const {
    for (auto it = groups_.rbegin(); it != groups_.rend(); ++it) rmdir(it->dir.c_str());
  }
  // Moves PID (a process, all its threads) into each of them.
  ::testing::AssertionResult Enter(pid_t pid) const {
    for (const OurCgroup& c : groups_)
      if (!Write(c.dir + "/cgroup.procs", std::to_string(pid)))
        return ::testing::AssertionFailure() << "cannot move " << pid << " into " << c.dir;
    return ::testing::AssertionSuccess();
  }
  // Every difference between the settings given and those the cgroups have
  // (or that a cgroup is missing), and PIDs not in each of them.
  std::string Differences(const std::vector<pid_t>& pids) const {
    std::string out;
    for (const OurCgroup& c : groups_) {
      if (access(c.dir.c_str(), F_OK) != 0) {
        out += c.dir + " is missing; ";
        continue;
      }
      for (const auto& [k, v] : c.settings) {
        std::string now = Trim(ReadFile(c.dir + "/" + k));
        if (now != v) out += c.dir + "/" + k + " is " + now + ", not " + v + "; ";
      }
      std::string procs = "\n" + ReadFile(c.dir + "/cgroup.procs");
      for (pid_t p : pids)
        if (procs.find("\n" + std::to_string(p) + "\n") == std::string::npos)
          out += "PID " + std::to_string(p) + " is not in " + c.dir + "; ";
    }
    return out;
  }
  const std::vector<OurCgroup>& groups() const { return groups_; }

 private:
  std::vector<OurCgroup> groups_;
};

std::vector<pid_t> LiveTree(pid_t root) {
  std::vector<pid_t> out;
  for (pid_t p : TreePids(root))
    if (TaskState(p) != 'Z') out.push_back(p);
  return out;
}

// A pipeline of three processes in cgroups of its own, each with settings,
// is dumped; its cgroups are removed; restore (soft, the default) makes them
// again with their settings and puts every process back into them.
TEST(Cgroups, ATreeComesBackIntoItsCgroupsWithTheirSettings) {
  Cgroups cg("crl-e2e-" + std::to_string(getpid()));
  if (cg.groups().empty()) GTEST_SKIP() << "SKIPPED: no cgroup hierarchy here";
  ASSERT_TRUE(cg.Make());
  TestDir dir;
  pid_t pid = StartWorkload(dir, "pipeline");
  std::vector<pid_t> pids = LiveTree(pid);
  for (pid_t p : pids) ASSERT_TRUE(cg.Enter(p));
  ASSERT_EQ(cg.Differences(pids), "");
  CmdResult d = RunCriuLite(
      {"dump", "-t", std::to_string(pid), "-D", dir / "img", "-o", dir / "dump.log", "-v"}, {pid});
  ASSERT_TRUE(d.ok()) << d.err;
  cg.Remove();
  for (const OurCgroup& c : cg.groups()) ASSERT_NE(access(c.dir.c_str(), F_OK), 0) << c.dir;
  CmdResult r = RunCriuLite({"restore", "-D", dir / "img", "-d", "-o", dir / "restore.log", "-v"});
  ASSERT_TRUE(r.ok()) << r.err;
  EXPECT_EQ(cg.Differences(LiveTree(pid)), "") << ReadFile(dir / "restore.log");
  EXPECT_EQ(CheckWorkload(pid, dir), "PASS");
}

// CRIU's modes, on one cgroup2 setting (cgroup.max.descendants, which every
// cgroup2 cgroup has): strict refuses a cgroup that exists, soft leaves an
// existing cgroup's settings as they are, full writes them back, ignore
// leaves the process in criu-lite's cgroup, props refuses a missing cgroup;
// and a failed restore removes the cgroup it made.
TEST(Cgroups, ManageCgroupsModesAsCrius) {
  std::string v2 = OwnCgroup2();
  if (v2.empty()) GTEST_SKIP() << "SKIPPED: no cgroup2 hierarchy mounted here";
  std::string x = v2 + "/crl-e2e-modes-" + std::to_string(getpid());
  std::string max = x + "/cgroup.max.descendants";
  struct Cleanup {
    std::string dir;
    ~Cleanup() { rmdir(dir.c_str()); }
  } cleanup{x};
  ASSERT_EQ(mkdir(x.c_str(), 0755), 0) << x;
  ASSERT_TRUE(Write(max, "5"));
  TestDir dir;
  pid_t pid = StartWorkload(dir, "memory");
  ASSERT_TRUE(Write(x + "/cgroup.procs", std::to_string(pid)));
  CmdResult d = RunCriuLite({"dump", "-t", std::to_string(pid), "-D", dir / "img"}, {pid});
  ASSERT_TRUE(d.ok()) << d.err;
  ASSERT_TRUE(Write(max, "9"));
  auto restore = [&](const std::string& mode, std::vector<std::string> more = {}) {
    std::vector<std::string> args = {"restore", "-D", dir / "img", "-d"};
    if (!mode.empty()) args.push_back("--manage-cgroups=" + mode);
    args.insert(args.end(), more.begin(), more.end());
    return RunCriuLite(args);
  };
  auto inside = [&] {
    return ("\n" + ReadFile(x + "/cgroup.procs")).find("\n" + std::to_string(pid) + "\n") !=
           std::string::npos;
  };

  CmdResult strict = restore("strict");
  EXPECT_FALSE(strict.ok());
  EXPECT_NE(strict.err.find("exists already"), std::string::npos) << strict.err;
  EXPECT_FALSE(Alive(pid)) << "a refused restore made the process";
  EXPECT_EQ(Trim(ReadFile(max)), "9");

  CmdResult soft = restore("");
  ASSERT_TRUE(soft.ok()) << soft.err;
  EXPECT_TRUE(inside());
  EXPECT_EQ(Trim(ReadFile(max)), "9") << "soft changed the settings of a cgroup it did not make";
  KillAndReap(pid);

  CmdResult full = restore("full");
  ASSERT_TRUE(full.ok()) << full.err;
  EXPECT_TRUE(inside());
  EXPECT_EQ(Trim(ReadFile(max)), "5") << "full did not write the settings back";
  KillAndReap(pid);

  {
    ExpectStateDiff stays_in_ours({"proc.cgroup"});
    CmdResult ignore = restore("ignore");
    ASSERT_TRUE(ignore.ok()) << ignore.err;
    EXPECT_FALSE(inside()) << "ignore moved the process into its cgroup";
    EXPECT_EQ(ReadFile("/proc/" + std::to_string(pid) + "/cgroup"), ReadFile("/proc/self/cgroup"));
    KillAndReap(pid);
  }

  ASSERT_EQ(rmdir(x.c_str()), 0);
  CmdResult props = restore("props");
  EXPECT_FALSE(props.ok());
  EXPECT_NE(props.err.find("does not exist"), std::string::npos) << props.err;
  EXPECT_NE(access(x.c_str(), F_OK), 0) << "props made the cgroup";

  std::ofstream(dir / "fail.sh") << "#!/bin/sh\n[ \"$CRTOOLS_SCRIPT_ACTION\" != post-restore ]\n";
  chmod((dir / "fail.sh").c_str(), 0755);
  CmdResult failed = restore("", {"--action-script", dir / "fail.sh"});
  EXPECT_FALSE(failed.ok());
  EXPECT_FALSE(Alive(pid)) << "a failed restore left the process";
  EXPECT_NE(access(x.c_str(), F_OK), 0) << "a failed restore left the cgroup it made";

  CmdResult again = restore("");
  ASSERT_TRUE(again.ok()) << again.err;
  EXPECT_TRUE(inside());
  EXPECT_EQ(Trim(ReadFile(max)), "5") << "soft did not give the cgroup it made its settings";
  EXPECT_EQ(CheckWorkload(pid, dir), "PASS");
}

// --cgroup-root cgroup2:/NEW: a tree in a cgroup2 cgroup of its own (the
// root in X, a child in X/sub) comes back below NEW instead (NEW, NEW/sub),
// made by restore; a cgroup outside the root's cannot be placed, and says
// so.
TEST(Cgroups, CgroupRootPutsTheTreeBelowANewRoot) {
  std::string v2 = OwnCgroup2();
  if (v2.empty()) GTEST_SKIP() << "SKIPPED: no cgroup2 hierarchy mounted here";
  std::string tag = std::to_string(getpid());
  std::string x = v2 + "/crl-e2e-reroot-" + tag, moved = v2 + "/crl-e2e-rerooted-" + tag;
  struct Cleanup {
    std::vector<std::string> dirs;
    ~Cleanup() {
      for (const std::string& d : dirs) rmdir(d.c_str());
    }
  } cleanup{{moved + "/sub", moved, x + "/sub", x}};
  ASSERT_EQ(mkdir(x.c_str(), 0755), 0) << x;
  ASSERT_EQ(mkdir((x + "/sub").c_str(), 0755), 0);
  TestDir dir;
  pid_t pid = StartWorkload(dir, "pipeline");
  std::vector<pid_t> pids = LiveTree(pid);
  ASSERT_GE(pids.size(), 2u);
  ASSERT_TRUE(Write(x + "/cgroup.procs", std::to_string(pid)));
  for (size_t i = 1; i < pids.size(); i++)
    ASSERT_TRUE(Write(x + "/sub/cgroup.procs", std::to_string(pids[i])));
  CmdResult d = RunCriuLite({"dump", "-t", std::to_string(pid), "-D", dir / "img"}, {pid});
  ASSERT_TRUE(d.ok()) << d.err;
  // Where the test's own cgroup2 cgroup is, as /proc/PID/cgroup names it.
  std::string own_path;
  std::istringstream in(ReadFile("/proc/self/cgroup"));
  for (std::string line; std::getline(in, line);)
    if (line.rfind("0::", 0) == 0) own_path = line.substr(3);
  std::string new_root = (own_path == "/" ? "" : own_path) + "/crl-e2e-rerooted-" + tag;
  CmdResult bad = RunCriuLite({"restore", "-D", dir / "img", "-d", "--cgroup-root", "cgroup2"});
  EXPECT_FALSE(bad.ok());
  EXPECT_NE(bad.err.find("not [CONTROLLER:]/PATH"), std::string::npos) << bad.err;
  ExpectStateDiff elsewhere({"proc.cgroup"});
  CmdResult r =
      RunCriuLite({"restore", "-D", dir / "img", "-d", "--cgroup-root", "cgroup2:" + new_root});
  ASSERT_TRUE(r.ok()) << r.err;
  auto in_cgroup = [](pid_t p, const std::string& path) {
    return ("\n" + ReadFile("/proc/" + std::to_string(p) + "/cgroup"))
               .find("\n0::" + path + "\n") != std::string::npos;
  };
  EXPECT_TRUE(in_cgroup(pid, new_root)) << ReadFile("/proc/" + std::to_string(pid) + "/cgroup");
  for (size_t i = 1; i < pids.size(); i++) EXPECT_TRUE(in_cgroup(pids[i], new_root + "/sub"));
  EXPECT_EQ(ReadFile(x + "/cgroup.procs"), "") << "the old cgroup still has the root";
  EXPECT_EQ(CheckWorkload(pid, dir), "PASS");
}

// A process and its child in a cgroup namespace rooted at a cgroup2 cgroup
// of their own, in a cgroup below it: they come back in a namespace with
// the same root (remade by restore, like the cgroups) and see their
// cgroups as before.
TEST(Cgroups, ACgroupNamespaceComesBackWithItsRoot) {
  std::string v2 = OwnCgroup2();
  if (v2.empty()) GTEST_SKIP() << "SKIPPED: no cgroup2 hierarchy mounted here";
  std::string root = v2 + "/crl-e2e-ns-" + std::to_string(getpid());
  struct Cleanup {  // after TestDir has killed the workload: it may take a moment
    std::string dir;
    ~Cleanup() {
      for (int i = 0; i < 200 && access(dir.c_str(), F_OK) == 0; i++) {
        rmdir((dir + "/sub").c_str());
        if (rmdir(dir.c_str()) < 0) usleep(10000);
      }
    }
  } cleanup{root};
  ASSERT_EQ(mkdir(root.c_str(), 0755), 0) << root;
  TestDir dir;
  pid_t pid = StartWorkload(dir, "cgroupns", {"--what", root});
  CmdResult d = RunCriuLite({"dump", "-t", std::to_string(pid), "-D", dir / "img"}, {pid});
  ASSERT_TRUE(d.ok()) << d.err;
  for (int i = 0; i < 100 && (rmdir((root + "/sub").c_str()) < 0 || rmdir(root.c_str()) < 0); i++)
    usleep(10000);  // the killed tree gone from them: restore makes them again
  ASSERT_NE(access(root.c_str(), F_OK), 0);
  CmdResult r = RunCriuLite({"restore", "-D", dir / "img", "-d"});
  ASSERT_TRUE(r.ok()) << r.err;
  EXPECT_EQ(CheckWorkload(pid, dir), "PASS");
}

// A cgroup of the test's own to freeze: cgroup2's, or the v1 freezer's
// (F empty if this machine has no such hierarchy). Whatever is left in it is
// killed and the cgroup removed after the test.
class FreezeCgroup : public ::testing::TestWithParam<std::string> {
 protected:
  void SetUp() override {
    bool v2 = GetParam() == "cgroup2";
    for (const OurCgroup& c : OwnCgroups())
      if (v2 == c.v2 && (v2 || Has(c.controllers, "freezer")))
        f = c.dir + "/crl-e2e-freeze-" + std::to_string(getpid());
    if (f.empty()) return;
    state = f + (v2 ? "/cgroup.freeze" : "/freezer.state");
    thawed = v2 ? "0" : "THAWED";
    ASSERT_EQ(mkdir(f.c_str(), 0755), 0) << f;
  }
  // Frozen while its tasks are killed: a line of the runaway tree cannot
  // fork away from a kill of the PIDs read a moment before.
  void TearDown() override {
    if (f.empty()) return;
    bool v2 = GetParam() == "cgroup2";
    for (int i = 0; i < 200 && rmdir(f.c_str()) < 0 && errno == EBUSY; i++) {
      Write(state, v2 ? "1" : "FROZEN");
      std::istringstream in(ReadFile(f + "/cgroup.procs"));
      for (pid_t p; in >> p;) kill(p, SIGKILL);
      Write(state, thawed);
      usleep(10000);
    }
  }
  std::string f, state, thawed;
};

// Lines of processes that each fork their successor and exit (a fork bomb a
// walk of /proc cannot catch) are dumped with --freeze-cgroup and come back
// running. A process in the cgroup that is not of the tree is refused by
// name, and everything runs on, thawed and untraced.
TEST_P(FreezeCgroup, StopsARunawayTree) {
  if (f.empty()) GTEST_SKIP() << "SKIPPED: no " << GetParam() << " hierarchy here";
  TestDir dir;
  pid_t pid = StartWorkload(dir, "runaway", {"--what", f});
  usleep(100000);  // the lines run
  {
    ExpectStateDiff members_come_and_go({"children"});
    CmdResult d = RunCriuLite({"dump", "-t", std::to_string(pid), "-D", dir / "img", "-o",
                               dir / "dump.log", "-v", "--freeze-cgroup", f},
                              {pid});
    ASSERT_TRUE(d.ok()) << d.err;
    EXPECT_EQ(Trim(ReadFile(state)), thawed);
    CmdResult r = RunCriuLite({"restore", "-D", dir / "img", "-d"});
    ASSERT_TRUE(r.ok()) << r.err;
  }
  EXPECT_NE(("\n" + ReadFile(f + "/cgroup.procs")).find("\n" + std::to_string(pid) + "\n"),
            std::string::npos)
      << "the restored root is not in its cgroup";

  // A process of the cgroup outside the tree.
  TestDir other_dir;
  pid_t other = StartWorkload(other_dir, "memory");
  ASSERT_TRUE(Write(f + "/cgroup.procs", std::to_string(other)));
  CmdResult refused = RunCriuLite(
      {"dump", "-t", std::to_string(pid), "-D", dir / "img2", "-R", "--freeze-cgroup", f});
  EXPECT_FALSE(refused.ok());
  EXPECT_NE(refused.err.find("PID " + std::to_string(other) + " (workload) is in cgroup"),
            std::string::npos)
      << refused.err;
  EXPECT_EQ(Trim(ReadFile(state)), thawed) << "the cgroup was left frozen";
  for (pid_t p : {pid, other}) EXPECT_EQ(TracerPid(p), 0) << p << " is left traced";
  EXPECT_EQ(CheckWorkload(other, other_dir), "PASS");
  EXPECT_EQ(CheckWorkload(pid, dir), "PASS");
}

// A tree with a child stopped by SIGSTOP (and a zombie, sessions, groups),
// the whole of it in the cgroup: under the v1 freezer an attach of the
// stopped child would wait for a wake-up the frozen child never gets (runc
// gives its freezer cgroup, and a container may hold a stopped process).
// The dump attaches it after the thaw, and the tree comes back as it was.
TEST_P(FreezeCgroup, AStoppedTaskInTheCgroupIsDumped) {
  if (f.empty()) GTEST_SKIP() << "SKIPPED: no " << GetParam() << " hierarchy here";
  TestDir dir;
  pid_t pid = StartWorkload(dir, "tree");
  for (pid_t p : TreePids(pid)) ASSERT_TRUE(Write(f + "/cgroup.procs", std::to_string(p))) << p;
  CmdResult d = RunCriuLite({"dump", "-t", std::to_string(pid), "-D", dir / "img", "-o",
                             dir / "dump.log", "-v", "--freeze-cgroup", f},
                            {pid});
  ASSERT_TRUE(d.ok()) << d.err;
  EXPECT_EQ(Trim(ReadFile(state)), thawed);
  CmdResult r = RunCriuLite({"restore", "-D", dir / "img", "-d"});
  ASSERT_TRUE(r.ok()) << r.err;
  EXPECT_EQ(CheckWorkload(pid, dir), "PASS");
}

// criu-lite killed with the cgroup frozen and every task attached: its
// guard thaws the cgroup, the kernel lets the tasks go, and they run on.
TEST_P(FreezeCgroup, KilledWhileFrozenLeavesItThawed) {
  if (f.empty()) GTEST_SKIP() << "SKIPPED: no " << GetParam() << " hierarchy here";
  TestDir dir;
  pid_t pid = StartWorkload(dir, "runaway", {"--what", f});
  CmdResult r = RunCriuLiteInterrupted(
      {"dump", "-t", std::to_string(pid), "-D", dir / "img", "--freeze-cgroup", f}, 30000000,
      SIGKILL, {"CRIU_LITE_FAULT=dump-cgroup-frozen"});
  ASSERT_EQ(r.exit_code, 128 + SIGKILL) << "the fault point was not reached: " << r.err;
  std::string now;
  for (int i = 0; i < 200 && (now = Trim(ReadFile(state))) != thawed; i++) usleep(10000);
  EXPECT_EQ(now, thawed) << "the cgroup was left frozen";
  for (int i = 0; i < 200 && TracerPid(pid) != 0; i++) usleep(10000);
  EXPECT_EQ(TracerPid(pid), 0);
  EXPECT_EQ(CheckWorkload(pid, dir), "PASS");
}

INSTANTIATE_TEST_SUITE_P(Cgroups, FreezeCgroup, ::testing::Values("cgroup2", "freezer"),
                         [](const auto& info) { return info.param; });

}  // namespace
}  // namespace crl::test
