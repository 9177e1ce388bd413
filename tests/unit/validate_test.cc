// The tree's PID-namespace fields, as ValidateTree checks them before
// restore makes any task; a task's mounts and message queues, as
// ValidateCore does.
#include "images/validate.h"

#include <gtest/gtest.h>

namespace crl {
namespace {

img::TreeEntry* Add(img::Inventory* inv, int pid, int ppid, std::vector<int> ns_pids,
                    std::vector<int> ns_tids) {
  img::TreeEntry* e = inv->add_tree();
  e->set_pid(pid);
  e->set_ppid(ppid);
  e->add_tids(pid);
  for (int p : ns_pids) e->add_ns_pids(p);
  for (int t : ns_tids) e->add_ns_tids(t);
  return e;
}

// The init of a namespace (1 there), a child in it, and the init of a
// nested one with its child: PIDs at every level below criu-lite's.
img::Inventory Container() {
  img::Inventory inv;
  inv.set_root_pid(100);
  Add(&inv, 100, 1, {1}, {1});
  Add(&inv, 101, 100, {2}, {2});
  Add(&inv, 102, 100, {3, 1}, {3, 1});
  Add(&inv, 103, 102, {4, 2}, {4, 2});
  return inv;
}

TEST(ValidateTree, AcceptsNestedPidNamespaces) {
  Status s = ValidateTree(Container());
  EXPECT_TRUE(s.ok()) << s.error().message;
}

TEST(ValidateTree, RefusesAnInitThatIsNotPidOne) {
  img::Inventory inv = Container();
  inv.mutable_tree(2)->set_ns_pids(1, 5);
  inv.mutable_tree(2)->set_ns_tids(1, 5);
  EXPECT_FALSE(ValidateTree(inv).ok());
}

TEST(ValidateTree, RefusesATaskTwoNamespacesBelowItsParent) {
  img::Inventory inv;
  inv.set_root_pid(100);
  Add(&inv, 100, 1, {}, {});
  Add(&inv, 101, 100, {7, 1}, {7, 1});
  Status s = ValidateTree(inv);
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.error().message.find("2 PID namespaces deep"), std::string::npos)
      << s.error().message;
}

TEST(ValidateTree, RefusesThreadIdsThatDoNotMatchTheLevels) {
  img::Inventory inv = Container();
  inv.mutable_tree(3)->add_ns_tids(9);
  EXPECT_FALSE(ValidateTree(inv).ok());
  img::Inventory flat;
  flat.set_root_pid(100);
  Add(&flat, 100, 1, {}, {1});  // a thread ID in a namespace it is not in
  EXPECT_FALSE(ValidateTree(flat).ok());
}

// A container's mount namespace as the dump records it.
img::TaskCore WithMounts() {
  img::TaskCore core;
  core.add_threads();
  img::MountNamespace* ns = core.mutable_mnt();
  auto add = [&](uint64_t id, const char* at, img::Mount::How how, const char* fstype,
                 const char* root) {
    img::Mount* m = ns->add_mounts();
    m->set_id(id);
    m->set_mountpoint(at);
    m->set_how(how);
    m->set_fstype(fstype);
    m->set_root(root);
    return m;
  };
  add(1, "/", img::Mount::ROOT, "ext4", "/srv/ct/rootfs");
  add(2, "/proc", img::Mount::NEW, "proc", "/");
  add(3, "/tmp", img::Mount::NEW, "tmpfs", "/")->set_tmpfs_tar("tar");
  add(4, "/etc/data", img::Mount::BIND, "tmpfs", "/sub")->set_bind_of(3);
  add(5, "/check", img::Mount::EXTERNAL, "ext4", "/home/x")->set_external_key("results");
  return core;
}

TEST(ValidateMounts, AcceptsAContainersMounts) {
  Status s = ValidateCore(WithMounts());
  EXPECT_TRUE(s.ok()) << s.error().message;
}

TEST(ValidateMounts, RefusesAPathThatClimbsOutOfTheRoot) {
  img::TaskCore core = WithMounts();
  core.mutable_mnt()->mutable_mounts(1)->set_mountpoint("/proc/../../etc");
  EXPECT_FALSE(ValidateCore(core).ok());
  core = WithMounts();
  core.mutable_mnt()->mutable_mounts(3)->set_root("/sub/../..");
  EXPECT_FALSE(ValidateCore(core).ok());
}

TEST(ValidateMounts, RefusesAFileSystemRestoreDoesNotMakeAnew) {
  img::TaskCore core = WithMounts();
  core.mutable_mnt()->mutable_mounts(1)->set_fstype("ext4");
  Status s = ValidateCore(core);
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.error().message.find("a new mount of ext4"), std::string::npos) << s.error().message;
}

TEST(ValidateMounts, RefusesABindOfALaterOrUnrelatedMount) {
  img::TaskCore core = WithMounts();
  core.mutable_mnt()->mutable_mounts(3)->set_bind_of(5);
  EXPECT_FALSE(ValidateCore(core).ok());
  core = WithMounts();
  core.mutable_mnt()->mutable_mounts(3)->set_bind_of(2);  // /sub is not below proc's root
  core.mutable_mnt()->mutable_mounts(1)->set_root("/only");
  EXPECT_FALSE(ValidateCore(core).ok());
}

TEST(ValidateMounts, RefusesARootThatIsNotFirstAndFilesOnNoTmpfs) {
  img::TaskCore core = WithMounts();
  core.mutable_mnt()->mutable_mounts(0)->set_how(img::Mount::NEW);
  EXPECT_FALSE(ValidateCore(core).ok());
  core = WithMounts();
  core.mutable_mnt()->mutable_mounts(1)->set_tmpfs_tar("x");
  EXPECT_FALSE(ValidateCore(core).ok());
}

// An IPC namespace's POSIX message queue as the dump records it.
img::TaskCore WithQueue() {
  img::TaskCore core;
  core.add_threads();
  img::PosixQueue* q = core.mutable_ipc()->add_posix_queues();
  q->set_name("jobs");
  q->set_mode(0640);
  q->set_max_messages(2);
  q->set_message_size(8);
  img::PosixMessage* m = q->add_messages();
  m->set_priority(5);
  m->set_data(std::string("a\0b", 3));
  return core;
}

TEST(ValidateIpc, AcceptsAQueueWithItsMessages) {
  Status s = ValidateCore(WithQueue());
  EXPECT_TRUE(s.ok()) << s.error().message;
}

TEST(ValidateIpc, RefusesAQueueTheKernelCouldNotHold) {
  for (const char* name : {"", "a/b", ".", ".."}) {
    img::TaskCore core = WithQueue();
    core.mutable_ipc()->mutable_posix_queues(0)->set_name(name);
    EXPECT_FALSE(ValidateCore(core).ok()) << "name '" << name << "'";
  }
  img::TaskCore core = WithQueue();
  core.mutable_ipc()->mutable_posix_queues(0)->mutable_messages(0)->set_data("123456789");
  EXPECT_FALSE(ValidateCore(core).ok()) << "a message over mq_msgsize";
  core = WithQueue();
  core.mutable_ipc()->mutable_posix_queues(0)->mutable_messages(0)->set_priority(32768);
  EXPECT_FALSE(ValidateCore(core).ok()) << "a priority of MQ_PRIO_MAX";
  core = WithQueue();
  for (int i = 0; i < 2; i++) core.mutable_ipc()->mutable_posix_queues(0)->add_messages();
  EXPECT_FALSE(ValidateCore(core).ok()) << "more messages than mq_maxmsg";
  core = WithQueue();
  core.mutable_ipc()->mutable_posix_queues(0)->set_max_messages(0);
  EXPECT_FALSE(ValidateCore(core).ok()) << "mq_maxmsg 0";
}

// Huge-page ranges: restore writes a byte at each one's start, so a range
// must lie in private anonymous memory, whole 2 MiB pages.
img::MmState WithHugeRange(uint64_t start, uint64_t end, img::Vma::Kind kind) {
  img::MmState mm;
  img::Vma* v = mm.add_vmas();
  v->set_start(0x7f0000000000);
  v->set_end(0x7f0000800000);
  v->set_kind(kind);
  v->set_prot(3);
  img::PageRange* r = mm.add_huge();
  r->set_start(start);
  r->set_end(end);
  return mm;
}

TEST(ValidateMm, AcceptsHugePagesInPrivateAnonymousMemory) {
  Status s = ValidateMm(WithHugeRange(0x7f0000200000, 0x7f0000600000, img::Vma::ANON_PRIVATE));
  EXPECT_TRUE(s.ok()) << s.error().message;
}

TEST(ValidateMm, RefusesHugePagesElsewhere) {
  for (auto [start, end, kind] :
       {std::tuple{0x7f0000200000ul, 0x7f0000600000ul, img::Vma::FILE_SHARED},
        std::tuple{0x7f0000201000ul, 0x7f0000600000ul, img::Vma::ANON_PRIVATE},
        std::tuple{0x7f0000600000ul, 0x7f0000a00000ul, img::Vma::ANON_PRIVATE},
        std::tuple{0x7f0000600000ul, 0x7f0000600000ul, img::Vma::ANON_PRIVATE}}) {
    Status s = ValidateMm(WithHugeRange(start, end, kind));
    ASSERT_FALSE(s.ok()) << std::hex << start << "-" << end;
    EXPECT_NE(s.error().message.find("huge-page range"), std::string::npos) << s.error().message;
  }
}

}  // namespace
}  // namespace crl
