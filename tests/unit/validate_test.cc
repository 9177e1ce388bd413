// The tree's PID-namespace fields, as ValidateTree checks them before
// restore makes any task.
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

}  // namespace
}  // namespace crl
