// The honesty rule's other half: what criu-lite cannot carry, the dump
// refuses, by name, and the tree runs on exactly as it was.
#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <csignal>

#include "tests/e2e/harness.h"
#include "tests/e2e/state_diff.h"

namespace crl::test {
namespace {

std::string StatusLine(pid_t pid, const std::string& key) {
  std::string s = QuietStatus("/proc/" + std::to_string(pid) + "/status");
  size_t p = s.find("\n" + key + ":");
  return p == std::string::npos ? "" : s.substr(p + 1, s.find('\n', p + 1) - p - 1);
}

// A refused dump leaves the process running, not traced, with the signal
// mask it had; its own check then finds everything still in place.
void ExpectRefusedAndUntouched(pid_t pid, const TestDir& dir, const std::string& why,
                               bool self_check = true,
                               const std::vector<std::string>& dump_args = {}) {
  std::string mask = StatusLine(pid, "SigBlk");
  TreeRecord before = RecordTree(pid, 500);
  std::vector<std::string> dump = {"dump", "-t", std::to_string(pid), "-D", dir / "img"};
  dump.insert(dump.end(), dump_args.begin(), dump_args.end());
  CmdResult d = RunCriuLite(dump, {pid});
  EXPECT_FALSE(d.ok()) << "the dump should have been refused";
  EXPECT_NE(d.err.find(why), std::string::npos) << d.err;
  EXPECT_EQ(std::count(d.err.begin(), d.err.end(), '\n'), 1) << "not one line: " << d.err;
  ASSERT_TRUE(Alive(pid));
  EXPECT_NE(TaskState(pid), 't') << "left stopped";
  EXPECT_EQ(TracerPid(pid), 0) << "left traced";
  EXPECT_EQ(StatusLine(pid, "SigBlk"), mask) << "its signal mask changed";
  EXPECT_NE(access((dir / "img/inventory.img").c_str(), F_OK), 0) << "a refused dump left images";
  ExpectTreeAsBefore(before, "the tree after a refused dump differs from the tree before it");
  if (self_check) {
    EXPECT_EQ(CheckWorkload(pid, dir), "PASS");
  } else {
    KillAndReap(pid);
  }
}

struct Case {
  std::string what, why;
  std::vector<std::string> dump_args = {};
};
void PrintTo(const Case& c, std::ostream* os) { *os << c.what; }

class Refused : public ::testing::TestWithParam<Case> {};
TEST_P(Refused, NamedAndTheTreeRunsOn) {
  TestDir dir;
  pid_t pid = StartWorkload(dir, "refuse", {"--what", GetParam().what});
  if (access((dir / "unsupported").c_str(), F_OK) == 0) {
    KillAndReap(pid);
    GTEST_SKIP() << "SKIPPED: " << ReadFile(dir / "unsupported");
  }
  const std::vector<std::string>& args = GetParam().dump_args;
  if (std::find(args.begin(), args.end(), "--tcp-established") != args.end() &&
      GetParam().what != "mptcp-established" && !KernelHas("network lock")) {
    KillAndReap(pid);
    GTEST_SKIP() << "SKIPPED: no nf_tables here for the network lock (criu-lite check)";
  }
  ExpectRefusedAndUntouched(pid, dir, GetParam().why, true, args);
  // Nor is a network lock left (a connection locked before the refusal).
  FILE* nft = popen("nft list tables 2>&1", "r");
  char line[256];
  std::string tables;
  while (nft && fgets(line, sizeof line, nft)) tables += line;
  if (nft) pclose(nft);
  EXPECT_EQ(tables.find("criu_lite_"), std::string::npos) << tables;
}
INSTANTIATE_TEST_SUITE_P(
    Workload, Refused,
    ::testing::Values(
        Case{"flock", "holds a file lock through fd"},
        Case{"posix-lock", "holds a file lock through fd"},
        Case{"ofd-lock", "holds a file lock through fd"}, Case{"lease", "LEASE"},
        Case{"scm-rights", "in flight in it (SCM_RIGHTS)"}, Case{"shutdown", "shut down"},
        Case{"clone-files", "shares its fd table (CLONE_FILES)"},
        Case{"seccomp-notify", "(SECCOMP_RET_USER_NOTIF)"},
        Case{"uts-joined", "joined the uts namespace of PID"},
        Case{"ipc-sysv", "from its byte 4096: a part of an attachment (the rest unmapped)"},
        Case{"ipc-mqueue", "POSIX message queue /crl (a process waits to be notified by it"},
        Case{"mqueue-unlinked", "no longer holds by that name"},
        Case{"mount-namespace", "which is neither made anew nor a bind of another of its mounts"},
        Case{"pidns-for-children", "made a PID namespace for its children"},
        Case{"pidns-joined", "but not in its tree (it joined the namespace with setns"},
        Case{"timens-for-children", "made a time namespace for its children"},
        Case{"netns-rule", "network namespace holding 1 policy routing rule(s) of its own"},
        Case{"netns-nft", "network namespace holding the nftables table inet crl_test"},
        Case{"netns-iptables", "the legacy iptables table filter (iptables-legacy)"},
        Case{"guard-region", "guard regions (MADV_GUARD_INSTALL)"},
        Case{"shared-twice", "map the same shared anonymous memory"},
        Case{"shared-split", "map the same shared anonymous memory"},
        Case{"droppable", "MAP_DROPPABLE"},
        Case{"epoll-closed-target", "a process outside the tree does"},
        Case{"pidfd-outside", "is a pidfd for PID"}, Case{"inotify-deleted", "a deleted file"},
        Case{"aio-in-flight", "1 request(s) in flight"}, Case{"io-uring", "io_uring"},
        Case{"tcp-established", "established connections are carried with --tcp-established"},
        Case{"tcp-pending", "with 1 connection(s) not accept()ed yet"},
        // Refused after its connection was locked and repaired: let go.
        Case{"tcp-then-owner-outside",
             "sends its signals to 1, outside the tree",
             {"--tcp-established"}},
        Case{"packet", "is a PACKET socket"},
        Case{"netlink-unread", "has messages waiting to be read (the kernel's answers)"},
        Case{"unix-outside", "connected outside the tree (to "},
        Case{"mptcp-established", "TCP_REPAIR does not apply to MPTCP", {"--tcp-established"}},
        Case{"sysv-shm", "of criu-lite's own IPC namespace: it outlives the tree there"},
        Case{"ghost-big", "more than --ghost-limit (1048576 bytes)"},
        Case{"fanotify-perm", "a fanotify group of a permission class"}),
    [](const auto& info) {
      std::string n = info.param.what;
      std::replace(n.begin(), n.end(), '-', '_');
      return n;
    });

// The issue's own example: the init of a new PID namespace, and the
// unshare(1) that made it (whose children go into that namespace).
TEST(RefusedNamespace, InitOfAPidNamespace) {
  TestDir dir;
  pid_t unshare = fork();
  if (unshare == 0) {
    execlp("unshare", "unshare", "-pf", "--mount-proc", "sleep", "1000", nullptr);
    _exit(127);
  }
  pid_t init = -1;
  for (int i = 0; i < 500 && init <= 0; i++) {
    usleep(10000);
    std::string kids = ReadFile("/proc/" + std::to_string(unshare) + "/task/" +
                                std::to_string(unshare) + "/children");
    init = atoi(kids.c_str());
  }
  ASSERT_GT(init, 0) << "unshare made no child";
  for (int i = 0; i < 500 && ReadFile("/proc/" + std::to_string(init) + "/comm") != "sleep\n"; i++)
    usleep(10000);
  CmdResult d = RunCriuLite({"dump", "-t", std::to_string(init), "-D", dir / "img"});
  EXPECT_FALSE(d.ok());
  // The PID namespace is carried; --mount-proc's mount namespace, a copy of
  // the host's with its disks and cgroup v1 hierarchies, is not (it is no
  // container: each of those mounts would have to be given as external).
  EXPECT_NE(d.err.find("which is neither made anew nor a bind of another of its mounts"),
            std::string::npos)
      << d.err;
  EXPECT_TRUE(Alive(init));
  EXPECT_EQ(TracerPid(init), 0);
  CmdResult d2 = RunCriuLite({"dump", "-t", std::to_string(unshare), "-D", dir / "img2"});
  EXPECT_FALSE(d2.ok());
  EXPECT_NE(d2.err.find("made a PID namespace for its children"), std::string::npos) << d2.err;
  EXPECT_TRUE(Alive(unshare));
  EXPECT_EQ(TracerPid(unshare), 0);
  KillAndReap(unshare);
  kill(init, SIGKILL);
}

}  // namespace
}  // namespace crl::test

namespace crl::test {
namespace {

// A dump that fails into a directory that holds a checkpoint leaves that
// checkpoint whole: it still restores (the second dump is refused after its
// first images were written).
TEST(RefusedDump, LeavesTheCheckpointInItsDirectory) {
  TestDir dir;
  pid_t first = StartWorkload(dir, "signals");
  CmdResult d = RunCriuLite({"dump", "-t", std::to_string(first), "-D", dir / "img"}, {first});
  ASSERT_TRUE(d.ok()) << d.err;
  TestDir other;
  pid_t refused = StartWorkload(other, "refuse", {"--what", "shutdown"});
  CmdResult d2 = RunCriuLite({"dump", "-t", std::to_string(refused), "-D", dir / "img"}, {refused});
  EXPECT_FALSE(d2.ok());
  EXPECT_EQ(CheckWorkload(refused, other), "PASS");
  CmdResult ls = RunCriuLite({"show", dir / "img/inventory.img"});
  EXPECT_TRUE(ls.ok()) << "the first checkpoint's inventory is gone: " << ls.err;
  CmdResult r = RunCriuLite({"restore", "-D", dir / "img", "-d"});
  ASSERT_TRUE(r.ok()) << r.err;
  EXPECT_EQ(CheckWorkload(first, dir), "PASS");
}

}  // namespace
}  // namespace crl::test
