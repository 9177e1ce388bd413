// /proc/PID/mountinfo parsed, and mounts put in the order restore makes them.
#include "kernel/mounts.h"

#include <gtest/gtest.h>
#include <sys/mount.h>

namespace crl {
namespace {

// As a container launched by test-containers/container shows it, with
// propagation tags, an escaped space, and an over-mount listed out of order.
const char kMountinfo[] =
    "64 42 254:0 /tmp/ct/rootfs / rw,relatime shared:5 - ext4 /dev/vda rw,discard\n"
    "65 64 0:40 / /proc rw,nosuid,nodev,noexec,relatime - proc proc rw\n"
    "66 64 0:41 / /sys ro,nosuid,nodev,noexec,relatime master:3 - sysfs sysfs ro\n"
    "72 64 0:45 / /my\\040tmp rw,nosuid,nodev,noatime unbindable - tmpfs tmpfs "
    "rw,size=64k,mode=1777\n"
    "80 72 0:46 / /my\\040tmp rw - tmpfs tmpfs rw\n"
    "67 66 0:38 / /sys/fs/cgroup rw,nosuid,nodev,noexec - cgroup2 cgroup2 rw,nsdelegate\n";

TEST(ParseMountinfo, ReadsEveryField) {
  auto r = ParseMountinfo(kMountinfo);
  ASSERT_TRUE(r.ok()) << r.error().message;
  ASSERT_EQ(r->size(), 6u);
  const MountEntry& root = (*r)[0];
  EXPECT_EQ(root.id, 64u);
  EXPECT_EQ(root.parent_id, 42u);
  EXPECT_EQ(root.root, "/tmp/ct/rootfs");
  EXPECT_EQ(root.mountpoint, "/");
  EXPECT_EQ(root.fstype, "ext4");
  EXPECT_EQ(root.options, "discard");
  EXPECT_EQ(root.propagation, static_cast<uint32_t>(MS_SHARED));
  EXPECT_EQ(root.peer_group, 5u);
  EXPECT_EQ(root.dev_major, 254u);
  const MountEntry& sys = (*r)[2];
  EXPECT_EQ(sys.attr,
            uint64_t(MOUNT_ATTR_RDONLY | MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV | MOUNT_ATTR_NOEXEC));
  EXPECT_TRUE(sys.sb_readonly);
  EXPECT_EQ(sys.master, 3u);
  EXPECT_EQ(sys.propagation, static_cast<uint32_t>(MS_SLAVE));
  const MountEntry& tmp = (*r)[3];
  EXPECT_EQ(tmp.mountpoint, "/my tmp");
  EXPECT_EQ(tmp.options, "size=64k,mode=1777");
  EXPECT_EQ(tmp.attr, uint64_t(MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV | MOUNT_ATTR_NOATIME));
  EXPECT_EQ(tmp.propagation, static_cast<uint32_t>(MS_UNBINDABLE));
  // Neither relatime nor noatime: strictatime.
  EXPECT_EQ((*r)[4].attr, uint64_t(MOUNT_ATTR_STRICTATIME));
}

TEST(ParseMountinfo, RefusesAMalformedLine) {
  EXPECT_FALSE(ParseMountinfo("64 42 254:0 / /\n").ok());
  EXPECT_FALSE(ParseMountinfo("x y z - ext4 /dev/vda rw\n").ok());
}

TEST(MountTreeOrder, ParentsFirstAndOverMountsAfterWhatTheyCover) {
  auto order = MountTreeOrder(*ParseMountinfo(kMountinfo));
  ASSERT_TRUE(order.ok()) << order.error().message;
  std::vector<uint64_t> ids;
  for (const MountEntry& m : *order) ids.push_back(m.id);
  EXPECT_EQ(ids, (std::vector<uint64_t>{64, 65, 66, 67, 72, 80}));
}

// mountinfo's IDs are the lowest free ones: runc's /dev/console, bound from
// /dev/pts/0 after /dev/pts was mounted, has the lower ID; the order of the
// lines is the order of mounting. statmount's IDs are that order themselves.
TEST(MountTreeOrder, MountinfoSiblingsInTheirLinesOrder) {
  const char text[] =
      "64 42 254:0 / / rw - ext4 /dev/vda rw\n"
      "69 64 0:41 / /dev rw - tmpfs tmpfs rw\n"
      "70 69 0:42 / /dev/pts rw - devpts devpts rw\n"
      "45 69 0:42 /0 /dev/console rw - devpts devpts rw\n";
  auto lines = MountTreeOrder(*ParseMountinfo(text));
  auto by_id = MountTreeOrder(*ParseMountinfo(text), true);
  ASSERT_TRUE(lines.ok() && by_id.ok());
  std::vector<uint64_t> ids;
  for (const MountEntry& m : *lines) ids.push_back(m.id);
  EXPECT_EQ(ids, (std::vector<uint64_t>{64, 69, 70, 45}));
  ids.clear();
  for (const MountEntry& m : *by_id) ids.push_back(m.id);
  EXPECT_EQ(ids, (std::vector<uint64_t>{64, 69, 45, 70}));
}

TEST(MountTreeOrder, RefusesTwoRoots) {
  std::vector<MountEntry> two(2);
  two[0].id = 1;
  two[0].parent_id = 9;
  two[1].id = 2;
  two[1].parent_id = 8;
  EXPECT_FALSE(MountTreeOrder(two).ok());
}

}  // namespace
}  // namespace crl
