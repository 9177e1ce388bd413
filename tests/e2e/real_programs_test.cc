// Programs nobody here wrote, from Debian's packages, holding the event
// objects criu-lite carries: each is checkpointed while it waits, restored,
// and seen doing its job afterwards.
#include <gtest/gtest.h>
#include <unistd.h>

#include <chrono>
#include <fstream>
#include <thread>

#include "tests/e2e/harness.h"

namespace crl::test {
namespace {

void Append(const std::string& path, const std::string& text) {
  std::ofstream(path, std::ios::app) << text;
}

bool WaitForContent(const std::string& path, const std::string& want, int timeout_ms) {
  for (int waited = 0; waited < timeout_ms; waited += 10) {
    if (ReadFile(path) == want) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  return false;
}

// coreutils' `tail -f` waits for its file to grow with inotify (and a
// timerfd-less sleep between checks when it cannot): after restore it
// still sees a line appended.
TEST(RealPrograms, TailFollowsItsFileAfterRestore) {
  TestDir dir;
  std::string log = dir / "log";
  Append(log, "one\n");
  pid_t pid = StartProgram(dir, {"/usr/bin/tail", "-f", log});
  ASSERT_TRUE(WaitForContent(dir / "out", "one\n", 5000)) << ReadFile(dir / "err");
  SettleTree(pid, 500);
  bool inotify = false;
  for (int fd = 3; fd < 16; fd++) {
    char link[256] = {};
    if (readlink(("/proc/" + std::to_string(pid) + "/fd/" + std::to_string(fd)).c_str(), link,
                 sizeof link - 1) > 0 &&
        std::string(link) == "anon_inode:inotify")
      inotify = true;
  }
  ASSERT_TRUE(inotify) << "tail -f holds no inotify: this test would not test it";
  CmdResult d = RunCriuLite(
      {"dump", "-t", std::to_string(pid), "-D", dir / "img", "-v", "-o", dir / "dump.log"}, {pid});
  ASSERT_TRUE(d.ok()) << d.err;
  CmdResult r = RunCriuLite({"restore", "-D", dir / "img", "-d", "-v", "-o", dir / "restore.log"});
  ASSERT_TRUE(r.ok()) << r.err;
  Append(log, "two\n");
  EXPECT_TRUE(WaitForContent(dir / "out", "one\ntwo\n", 5000))
      << "tail wrote: " << ReadFile(dir / "out");
  KillAndReap(pid);
}

}  // namespace
}  // namespace crl::test
