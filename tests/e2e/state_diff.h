// The state-diff check: what /proc shows about every task of a tree, recorded
// before a dump and again after the restore, and compared. Any difference a
// test does not name as expected fails it: this is how a piece of state that
// restore silently loses is found by a test instead of by a user.
//
// RunCriuLite records a tree before every `dump -t PID -D DIR` and compares
// after every successful detached `restore -D DIR`, so every end-to-end test
// runs through it without asking.
#pragma once

#include <sys/types.h>

#include <map>
#include <string>
#include <vector>

namespace crl::test {

// One task's state as key -> value, keys like "status.CapEff", "maps.7ffd...",
// "fd.3.flags", "thread.2.SigBlk" (threads by their index in the task).
// Identities of anonymous kernel objects (pipes, sockets, shmem, memfds) are
// replaced by labels in order of first appearance over the whole tree, so
// that "these two fds are one pipe" is compared, not the inode numbers.
using TaskRecord = std::map<std::string, std::string>;

struct TreeRecord {
  pid_t root = -1;                    // as the tree sees it (1 for the init of a PID namespace)
  pid_t host_root = -1;               // as the test sees it
  std::map<pid_t, TaskRecord> tasks;  // every process of the tree, zombies too
};

// Waits (up to SETTLE_MS) until no thread of the tree is running, so that a
// signal handler is not caught half-way, then records the tree. A root that
// is the init of a PID namespace the test is not in is recorded from inside
// that namespace, with a /proc of its own: PIDs as the tree sees them, which
// restore keeps (its host PIDs it does not).
TreeRecord RecordTree(pid_t root, int settle_ms = 1000);

// /proc/.../status of a thread as it is while the thread sleeps: two reads
// that agree, the thread not running in either (a thread that was just let
// go shows, for a moment, the mask of the syscall it is re-entering).
std::string QuietStatus(const std::string& path);

// Differences as "PID key: before -> after", ignoring keys that match one of
// ALLOWED (a key prefix, e.g. "status.Seccomp" or "fd.5."; "*SUFFIX" for a
// key's end, e.g. "*.mnt_id"; "root:X" for X in the root task only;
// "children" for a root whose descendants come and go by themselves).
std::vector<std::string> DiffTrees(const TreeRecord& before, const TreeRecord& after,
                                   const std::vector<std::string>& allowed = {});

// A record as text (one "PID\tKEY\tVALUE" line each, escaped) and back: a
// tree in other namespaces is recorded by `e2e_tests --record-tree PID` run
// inside them (the two-host tests), so that it is seen as it sees itself.
std::string SerializeTree(const TreeRecord& tree);
TreeRecord ParseTree(const std::string& text);

// For the test's lifetime, differences under these key prefixes are expected
// (and reported in the log, not failed).
class ExpectStateDiff {
 public:
  explicit ExpectStateDiff(std::vector<std::string> prefixes);
  ~ExpectStateDiff();
  static const std::vector<std::string>& Current();

 private:
  size_t added_;
};

// Records the tree of BEFORE's root again (HOST_ROOT, if not 0: the root
// is that PID now) and fails the test (saying WHAT) on any difference not
// expected (ExpectStateDiff).
void ExpectTreeAsBefore(const TreeRecord& before, const std::string& what, pid_t host_root = 0);

// Used by RunCriuLite.
void RecordBeforeDump(const std::vector<std::string>& args);
void ForgetDump(const std::vector<std::string>& args);
void CompareAfterRestore(const std::vector<std::string>& args);

}  // namespace crl::test
