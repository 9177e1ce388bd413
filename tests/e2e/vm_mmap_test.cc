// process_vm_mmap (linux-patches/patches) and --pages=vm-mmap. On a kernel without
// the syscall (every stock kernel) the tests that need it say SKIPPED and the
// refusal is tested instead; the VM on the kernel linux-patches/build-kernel.sh
// builds runs them all (vm.VmMmapOnPatchedKernel).
#include <gtest/gtest.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <regex>

#include "kernel/kernel_probe.h"
#include "tests/e2e/harness.h"

namespace crl::test {
namespace {

constexpr size_t kPage = 4096;

long PvMmap(pid_t pid, const void* src, size_t len, void* dst, unsigned long flags) {
  return syscall(ProcessVmMmapNr(), pid, src, len, dst, flags);
}

// A child that fills LEN bytes of private anonymous memory with a pattern,
// says where through a pipe and waits to be told what to do: 'w' writes
// over its memory (copy-on-write must keep ours apart), 'q' exits.
struct Holder {
  pid_t pid = -1;
  char* mem = nullptr;
  int to[2] = {-1, -1}, from[2] = {-1, -1};
  explicit Holder(size_t len, bool shared = false) {
    EXPECT_EQ(pipe(to), 0);
    EXPECT_EQ(pipe(from), 0);
    pid = fork();
    if (pid == 0) {
      // A page more, unmapped: nothing of ours may merge after it.
      char* m =
          static_cast<char*>(mmap(nullptr, len + kPage, PROT_READ | PROT_WRITE,
                                  (shared ? MAP_SHARED : MAP_PRIVATE) | MAP_ANONYMOUS, -1, 0));
      munmap(m + len, kPage);
      for (size_t i = 0; i < len; i += kPage)
        snprintf(m + i, 64, "page %zu of the holder", i / kPage);
      if (write(from[1], &m, sizeof m) != sizeof m) _exit(1);
      char c;
      while (read(to[0], &c, 1) == 1) {
        if (c == 'w')
          for (size_t i = 0; i < len; i += kPage) strcpy(m + i, "written after the clone");
        if (write(from[1], &c, 1) != 1 || c == 'q') _exit(0);
      }
      _exit(0);
    }
    EXPECT_EQ(read(from[0], &mem, sizeof mem), static_cast<ssize_t>(sizeof mem));
  }
  void Tell(char c) {
    ASSERT_EQ(write(to[1], &c, 1), 1);
    ASSERT_EQ(read(from[0], &c, 1), 1);
  }
  ~Holder() {
    kill(pid, SIGKILL);
    waitpid(pid, nullptr, 0);
    for (int fd : {to[0], to[1], from[0], from[1]}) close(fd);
  }
};

std::string Rss(const void* at) {
  std::ifstream smaps("/proc/self/smaps");
  std::string line, start = std::to_string(reinterpret_cast<uintptr_t>(at));
  char head[32];
  snprintf(head, sizeof head, "%lx-", reinterpret_cast<unsigned long>(at));
  bool in = false;
  while (std::getline(smaps, line)) {
    if (line.rfind(head, 0) == 0) in = true;
    if (in && line.rfind("Rss:", 0) == 0) return line;
  }
  return "";
}

TEST(ProcessVmMmap, ClonesAnotherProcesssMemoryCopyOnWrite) {
  NEED_PROCESS_VM_MMAP();
  constexpr size_t kLen = 64 * kPage;
  Holder h(kLen);
  long got = PvMmap(h.pid, h.mem, kLen, nullptr, 0);
  ASSERT_GT(got, 0) << strerror(errno);
  char* ours = reinterpret_cast<char*>(got);
  for (size_t i = 0; i < kLen; i += kPage)
    ASSERT_EQ(std::string(ours + i), "page " + std::to_string(i / kPage) + " of the holder");
  // Shared, not copied: the pages are resident here without a fault.
  EXPECT_EQ(Rss(ours), "Rss:                 256 kB");
  // Copy-on-write both ways.
  h.Tell('w');
  EXPECT_EQ(std::string(ours), "page 0 of the holder");
  strcpy(ours + kPage, "ours");
  h.Tell('q');
  EXPECT_EQ(std::string(ours + kPage), "ours");
  EXPECT_EQ(std::string(ours + 2 * kPage), "page 2 of the holder");
  munmap(ours, kLen);
}

TEST(ProcessVmMmap, FixedReplacesAndNoReplaceRefuses) {
  NEED_PROCESS_VM_MMAP();
  constexpr size_t kLen = 16 * kPage;
  Holder h(kLen);
  char* spot =
      static_cast<char*>(mmap(nullptr, kLen, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0));
  errno = 0;
  EXPECT_EQ(PvMmap(h.pid, h.mem, kLen, spot, kPvmmapFixedNoreplace), -1);
  EXPECT_EQ(errno, EEXIST);
  // A range of the source, in the middle of its mapping, onto ours.
  long got = PvMmap(h.pid, h.mem + 4 * kPage, 4 * kPage, spot + kPage, kPvmmapFixed);
  ASSERT_EQ(got, reinterpret_cast<long>(spot + kPage)) << strerror(errno);
  EXPECT_EQ(std::string(spot + kPage), "page 4 of the holder");
  EXPECT_EQ(spot[0], 0);  // the rest of ours is as it was
  strcpy(spot + kPage, "writable, as the holder's mapping");
  munmap(spot, kLen);
}

TEST(ProcessVmMmap, RefusesWhatItDoesNotClone) {
  NEED_PROCESS_VM_MMAP();
  constexpr size_t kLen = 4 * kPage;
  Holder shared(kLen, true);
  errno = 0;
  EXPECT_EQ(PvMmap(shared.pid, shared.mem, kLen, nullptr, 0), -1);
  EXPECT_EQ(errno, EINVAL) << "a shared mapping";
  Holder h(kLen);
  errno = 0;
  EXPECT_EQ(PvMmap(h.pid, h.mem, kLen + kPage, nullptr, 0), -1);
  EXPECT_EQ(errno, EFAULT) << "a range beyond the mapping";
  errno = 0;
  EXPECT_EQ(PvMmap(h.pid, h.mem, kLen, nullptr, 0x80), -1);
  EXPECT_EQ(errno, EINVAL) << "an unknown flag";
  errno = 0;
  EXPECT_EQ(PvMmap(h.pid, h.mem, kLen, nullptr, kPvmmapFixed | kPvmmapFixedNoreplace), -1);
  EXPECT_EQ(errno, EINVAL) << "both fixed flags";
  char* own = static_cast<char*>(
      mmap(nullptr, kLen, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0));
  errno = 0;
  EXPECT_EQ(PvMmap(getpid(), own, kLen, nullptr, 0), -1);
  EXPECT_EQ(errno, EINVAL) << "the caller's own memory";
  munmap(own, kLen);
  pid_t gone = fork();
  if (gone == 0) _exit(0);
  waitpid(gone, nullptr, 0);
  errno = 0;
  EXPECT_EQ(PvMmap(gone, h.mem, kLen, nullptr, 0), -1);
  EXPECT_EQ(errno, ESRCH) << "a process that is gone";
}

TEST(ProcessVmMmap, TakesAPidfdForAHolderOutsideThePidNamespace) {
  NEED_PROCESS_VM_MMAP();
  constexpr size_t kLen = 4 * kPage;
  Holder h(kLen);
  int pidfd = static_cast<int>(syscall(SYS_pidfd_open, h.pid, 0));
  ASSERT_GE(pidfd, 0);
  long got = PvMmap(pidfd, h.mem, kLen, nullptr, kPvmmapPidfd);
  close(pidfd);
  ASSERT_GT(got, 0) << strerror(errno);
  EXPECT_EQ(std::string(reinterpret_cast<char*>(got) + kPage), "page 1 of the holder");
  munmap(reinterpret_cast<void*>(got), kLen);
}

TEST(ProcessVmMmap, CheckSaysWhichNumber) {
  CmdResult c = RunCriuLite({"check"});
  ASSERT_TRUE(c.ok()) << c.err;
  if (HasProcessVmMmap())
    EXPECT_NE(c.out.find("--pages=vm-mmap (syscall " + std::to_string(ProcessVmMmapNr()) + ")"),
              std::string::npos)
        << c.out;
  else
    EXPECT_TRUE(std::regex_search(c.out, std::regex("process_vm_mmap +no"))) << c.out;
}

// Restores with --pages=vm-mmap; the workload checks its memory; the log
// says how many mappings the tasks took.
void VmMmapRoundTrip(const std::string& scenario, const std::vector<std::string>& wl_args,
                     const std::vector<std::string>& dump_args = {}) {
  TestDir dir;
  pid_t pid = StartWorkload(dir, scenario, wl_args);
  std::vector<std::string> dump = {"dump", "-t", std::to_string(pid), "-D", dir / "img"};
  dump.insert(dump.end(), dump_args.begin(), dump_args.end());
  CmdResult d = RunCriuLite(dump, {pid});
  ASSERT_TRUE(d.ok()) << d.err;
  CmdResult r = RunCriuLite(
      {"restore", "-D", dir / "img", "-d", "--pages=vm-mmap", "-v", "-o", dir / "restore.log"});
  ASSERT_TRUE(r.ok()) << r.err;
  std::string log = ReadFile(dir / "restore.log");
  std::smatch m;
  ASSERT_TRUE(std::regex_search(log, m, std::regex("took ([0-9]+) mappings \\(([0-9]+) KiB\\)")))
      << log;
  EXPECT_GT(std::stol(m[1]), 0);
  EXPECT_GT(std::stol(m[2]), 0);
  EXPECT_EQ(CheckWorkload(pid, dir), "PASS");
}

TEST(VmMmap, MemoryComesBack) {
  NEED_PROCESS_VM_MMAP();
  VmMmapRoundTrip("memory", {"--sparse"});
}
TEST(VmMmap, CompressedPagesComeBack) {
  NEED_PROCESS_VM_MMAP();
  VmMmapRoundTrip("memory", {}, {"--compress"});
}
TEST(VmMmap, ATreeWithCopyOnWriteComesBack) {
  NEED_PROCESS_VM_MMAP();
  VmMmapRoundTrip("cow", {"--big-mib", "16"});
}
TEST(VmMmap, HugePagesComeBackHuge) {
  NEED_PROCESS_VM_MMAP();
  VmMmapRoundTrip("thp", {"--big-mib", "16"});
}

TEST(VmMmap, RefusedClearlyWithoutTheSyscall) {
  if (HasProcessVmMmap()) GTEST_SKIP() << "this kernel has process_vm_mmap";
  TestDir dir;
  pid_t pid = StartWorkload(dir, "memory");
  CmdResult d = RunCriuLite({"dump", "-t", std::to_string(pid), "-D", dir / "img"}, {pid});
  ASSERT_TRUE(d.ok()) << d.err;
  CmdResult r = RunCriuLite({"restore", "-D", dir / "img", "-d", "--pages=vm-mmap"});
  EXPECT_EQ(r.exit_code, 1) << r.err;
  EXPECT_NE(r.err.find("--pages=vm-mmap: this kernel has no process_vm_mmap"), std::string::npos)
      << r.err;
  EXPECT_FALSE(Alive(pid)) << "nothing is restored";
}

}  // namespace
}  // namespace crl::test
