#include "kernel/cgroups.h"

#include <gtest/gtest.h>

#include "restore/cgroup_restore.h"

namespace crl {
namespace {

const char* kHybrid =
    "31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755\n"
    "32 31 0:29 / /sys/fs/cgroup/cpu,cpuacct rw,relatime - cgroup cgroup rw,cpu,cpuacct\n"
    "35 31 0:32 /ctr /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,xattr,memory\n"
    "40 31 0:37 / /sys/fs/cgroup/systemd rw,relatime - cgroup cgroup rw,name=systemd\n"
    "41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw,nsdelegate\n";

TEST(ParseCgroupMounts, FindsEveryHierarchy) {
  auto m = ParseCgroupMounts(kHybrid);
  ASSERT_EQ(m.size(), 4u);
  EXPECT_EQ(m[0].controllers, (std::vector<std::string>{"cpu", "cpuacct"}));
  EXPECT_EQ(m[1].controllers, (std::vector<std::string>{"memory"}));
  EXPECT_EQ(m[1].root, "/ctr");
  EXPECT_EQ(m[2].controllers, (std::vector<std::string>{"name=systemd"}));
  EXPECT_TRUE(m[3].v2);
  EXPECT_TRUE(m[3].controllers.empty());
}

TEST(CgroupDir, MapsLinesToDirectories) {
  auto m = ParseCgroupMounts(kHybrid);
  EXPECT_EQ(*CgroupDir(m, "3:cpuacct,cpu:/a/b"), "/sys/fs/cgroup/cpu,cpuacct/a/b");
  EXPECT_EQ(*CgroupDir(m, "1:name=systemd:/"), "/sys/fs/cgroup/systemd");
  EXPECT_EQ(*CgroupDir(m, "0::/x:y"), "/sys/fs/cgroup/unified/x:y");
  // The memory mount shows only /ctr and what is below it.
  EXPECT_EQ(*CgroupDir(m, "4:memory:/ctr/job"), "/sys/fs/cgroup/memory/job");
  EXPECT_FALSE(CgroupDir(m, "4:memory:/other").ok());
  auto missing = CgroupDir(m, "7:pids:/");
  ASSERT_FALSE(missing.ok());
  EXPECT_NE(missing.error().message.find("'pids'"), std::string::npos);
  EXPECT_FALSE(CgroupDir(m, "garbage").ok());
}

}  // namespace
}  // namespace crl

namespace crl {
namespace {

TEST(ParseCgroupLine, SplitsControllersAndPath) {
  auto v1 = ParseCgroupLine("4:cpu,cpuacct:/a/b:c");
  ASSERT_TRUE(v1.ok());
  EXPECT_EQ(v1->controllers, "cpu,cpuacct");
  EXPECT_EQ(v1->path, "/a/b:c");  // a path may hold ':'
  EXPECT_FALSE(v1->v2);
  auto v2 = ParseCgroupLine("0::/");
  ASSERT_TRUE(v2.ok());
  EXPECT_TRUE(v2->v2);
  EXPECT_EQ(v2->path, "/");
  EXPECT_FALSE(ParseCgroupLine("4:memory").ok());
  EXPECT_FALSE(ParseCgroupLine("4:memory:relative").ok());
}

TEST(CgroupSettingNames, CpusetFirstAndOnlyTheControllersGiven) {
  using V = std::vector<std::string>;
  EXPECT_EQ(CgroupSettingNames({"memory", "cpuset"}, false),
            (V{"cpuset.cpus", "cpuset.mems", "memory.limit_in_bytes", "memory.soft_limit_in_bytes",
               "memory.swappiness"}));
  EXPECT_EQ(CgroupSettingNames({"freezer"}, false), V{});
  EXPECT_EQ(CgroupSettingNames({"name=systemd"}, false), V{});
  EXPECT_EQ(CgroupSettingNames({}, true), (V{"cgroup.max.descendants", "cgroup.max.depth"}));
  EXPECT_EQ(CgroupSettingNames({"pids", "cpu"}, true),
            (V{"cgroup.max.descendants", "cgroup.max.depth", "cpu.weight", "cpu.max", "pids.max"}));
}

TEST(CgroupNamespaceRoots, FullPathsLessWhatTheTaskSeesInside) {
  using V = std::vector<std::string>;
  auto roots = CgroupNamespaceRoots("4:memory:/a/b\n1:cpu:/x\n0::/ctr/sub\n",
                                    "4:memory:/b\n1:cpu:/\n0::/sub\n");
  ASSERT_TRUE(roots.ok()) << roots.error().message;
  EXPECT_EQ(*roots, (V{"4:memory:/a", "1:cpu:/x", "0::/ctr"}));
  auto at_top = CgroupNamespaceRoots("0::/sub\n", "0::/sub\n");
  ASSERT_TRUE(at_top.ok());
  EXPECT_EQ(*at_top, V{"0::/"});
  // Moved above its namespace's root: not carried.
  EXPECT_FALSE(CgroupNamespaceRoots("0::/a\n", "0::/../a\n").ok());
  EXPECT_FALSE(CgroupNamespaceRoots("0::/a\n", "4:memory:/\n").ok());
}

}  // namespace
}  // namespace crl

namespace crl {
namespace {

// --cgroup-root: the root task was in /ct/a (cgroup2) and /ct (memory);
// its tree's cgroups below those go below the new roots.
TEST(CgroupReroot, MovesTheTreesCgroupsBelowTheNewRoots) {
  auto r = CgroupReroot::Make({"/new", "memory:/mem/x/"}, {"0::/ct/a", "4:memory:/ct"});
  ASSERT_TRUE(r.ok()) << r.error().message;
  EXPECT_EQ(*r->Path("", "/ct/a"), "/new");
  EXPECT_EQ(*r->Path("", "/ct/a/b/c"), "/new/b/c");
  EXPECT_EQ(*r->Path("memory", "/ct/w"), "/mem/x/w");
  EXPECT_EQ(*r->Line("4:memory:/ct"), "4:memory:/mem/x");
  EXPECT_EQ(*r->Line("0::/ct/a/b"), "0::/new/b");
}

TEST(CgroupReroot, NamesTheCgroupsItCannotPlace) {
  auto r = CgroupReroot::Make({"/new"}, {"0::/ct/a", "5:cpu,cpuacct:/"});
  ASSERT_TRUE(r.ok());
  auto outside = r->Path("", "/ct/ab");  // a sibling whose name starts the same
  ASSERT_FALSE(outside.ok());
  EXPECT_NE(outside.error().message.find("not below the root task's cgroup /ct/a"),
            std::string::npos);
  EXPECT_EQ(*r->Path("cpu,cpuacct", "/"), "/new");  // from a hierarchy's root
  EXPECT_EQ(*r->Path("cpu,cpuacct", "/s/t"), "/new/s/t");
  EXPECT_FALSE(r->Path("memory", "/m").ok());  // the root was in none
  EXPECT_FALSE(CgroupReroot::Make({"new"}, {}).ok());
  EXPECT_FALSE(CgroupReroot::Make({"/a/../b"}, {}).ok());
}

TEST(CgroupReroot, AControllerSpecWinsOverTheDefault) {
  auto r = CgroupReroot::Make({"/def", "cpuacct:/acct"}, {"5:cpu,cpuacct:/c", "0::/c"});
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(*r->Path("cpu,cpuacct", "/c/d"), "/acct/d");
  EXPECT_EQ(*r->Path("", "/c/d"), "/def/d");
  auto none = CgroupReroot::Make({"memory:/m"}, {"0::/c"});
  EXPECT_EQ(*none->Path("", "/c/d"), "/c/d");  // no spec for cgroup2: left as it is
  auto v2 = CgroupReroot::Make({"cgroup2:/u"}, {"0::/c", "4:memory:/c"});
  EXPECT_EQ(*v2->Path("", "/c/d"), "/u/d");
  EXPECT_EQ(*v2->Path("memory", "/c/d"), "/c/d");
}

}  // namespace
}  // namespace crl
