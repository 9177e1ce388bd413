// A workload that checks itself across a checkpoint/restore.
//
//   workload SCENARIO --dir DIR [options]
//
// It builds the scenario's state, writes DIR/ready, and waits. On SIGUSR1
// (sent by the test after restore) it verifies every piece of that state,
// writes "PASS" or "FAIL: what" to DIR/result and exits 0 or 1. Scenarios:
//   memory    heap, brk, stack, anonymous and file mappings, PROT_NONE data
//             and guard regions (--big-mib N adds an N MiB region; --sparse
//             adds a 64 GiB reservation with 100 touched pages)
//   fpu       known values in ymm0-15 and MXCSR while spinning in a loop
//   files     a file read at an offset, one opened O_APPEND, /dev/null, a
//             directory, O_CLOEXEC and high fd numbers
//   signals   handlers, ignored signals, blocked pending signals (process-
//             and thread-directed, with queued values), umask, rlimit, cwd
//   altstack  a handler that runs on a sigaltstack
//   itimer    an interval timer that keeps firing
//   nanosleep sleeping until an absolute deadline and for a relative time
//   read      blocked in read() on stdin, which restore (--shell-job) provides
//   futex     blocked in FUTEX_WAIT, woken after restore
//   threads   8 threads taking turns under a mutex and condition variable
//   tree      3 levels, sessions, groups, a zombie, a stopped child, COW memory,
//             an orphan reparented to the root (a subreaper) in a group whose
//             leader has exited
//   cow       a parent with --big-mib MiB (256) and 4 children changing 1% each
//   shmem     MAP_SHARED|MAP_ANONYMOUS memory between a parent and a child
//   forker    forks short-lived children all the time, also while seized
//   pipeline  producer | relay | consumer through pipes with data in flight
//   sockets   unix socket pairs with queued messages, an eventfd, a shared offset
//   timerfd   timerfds ticking, due later, expired unread, absolute
//   memfd     a memfd mapped by a parent and (after the fork) its child
//   forest    --procs N processes x --threads T threads x --big-mib M MiB
//   dirtier   keeps writing pages stamped with generations (--rate pages/ms),
//             also dropping pages; for iterative dumps
//   identity  another user with capabilities, securebits, no_new_privs; nice,
//             policy, affinity, slack, ioprio per thread; oom_score_adj, THP
//             off, membarrier, not dumpable; O_NONBLOCK; a parent-death signal
//   ptimers   POSIX timers: signalling the process with a value, one thread,
//             nobody (SIGEV_NONE), disarmed, with a gap in their IDs
//   refuse    --what flock|posix-lock|ofd-lock|lease|scm-rights|shutdown|
//             clone-files|seccomp-notify|uts-namespace|mount-namespace|guard-region|
//             shared-twice|shared-split|droppable:
//             holds one thing criu-lite refuses to dump
//   jobs      a child stopped by SIGTSTP, a zombie in a group whose leader
//             exited, a zombie that led a session
//   seccomp   two seccomp filters, one shared with a thread (TSYNC), one not;
//             --what strict: strict mode, blocked in read()
//   counter   a counter in memory that keeps increasing (for the demo)
//   hold      --big-mib N MiB of pseudo-random data (for the benchmarks)
//   vmas      --procs N thousand mappings (default 50): one region whose pages
//             are read-only and writable in turn, each page its own VMA
//   lazy      forks, mremaps, drops, remaps and read()s into memory that a
//             lazy restore has not placed yet (--big-mib, 64)
//   reaper    init of a test host's PID namespace (test-containers/hosts.sh)
#include <fcntl.h>
#include <grp.h>
#include <linux/capability.h>
#include <linux/filter.h>
#include <linux/futex.h>
#include <linux/magic.h>
#include <linux/membarrier.h>
#include <linux/seccomp.h>
#include <linux/securebits.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <sys/eventfd.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <sys/mount.h>
#include <sys/personality.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/syscall.h>
#include <sys/time.h>
#include <sys/timerfd.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <csignal>
#include <cstdarg>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <fstream>
#include <functional>
#include <string>
#include <vector>

namespace {

std::string g_dir;
volatile sig_atomic_t g_check = 0;
std::string g_failures;

void Fail(const char* fmt, ...) __attribute__((format(printf, 1, 2)));
void Fail(const char* fmt, ...) {
  char buf[512];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(buf, sizeof buf, fmt, ap);
  va_end(ap);
  if (!g_failures.empty()) g_failures += "; ";
  g_failures += buf;
}

#define EXPECT(cond, ...)           \
  do {                              \
    if (!(cond)) Fail(__VA_ARGS__); \
  } while (0)

void WriteFile(const std::string& name, const std::string& text) {
  std::string path = g_dir + "/" + name, tmp = path + ".tmp";
  int fd = open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) _exit(3);
  if (write(fd, text.data(), text.size()) != static_cast<ssize_t>(text.size())) _exit(3);
  close(fd);
  rename(tmp.c_str(), path.c_str());
}

[[noreturn]] void Report() {
  bool ok = g_failures.empty();
  WriteFile("result", ok ? "PASS\n" : "FAIL: " + g_failures + "\n");
  _exit(ok ? 0 : 1);
}

void OnCheck(int) { g_check = 1; }

// Asks each child to check itself (SIGUSR1) and waits for it to exit 0.
void CheckChildren(const std::vector<pid_t>& kids) {
  for (pid_t k : kids) {
    kill(k, SIGUSR1);
    int st;
    EXPECT(waitpid(k, &st, 0) == k && WIFEXITED(st) && WEXITSTATUS(st) == 0, "child %d failed", k);
  }
}

void InstallCheckHandler() {
  struct sigaction sa {};
  sa.sa_handler = OnCheck;
  sigaction(SIGUSR1, &sa, nullptr);  // no SA_RESTART: interrupt sleeps
}

void Ready() { WriteFile("ready", std::to_string(getpid()) + "\n"); }

// Waits for the check signal. Not `while (!g_check) pause();`: a signal
// between the test and the pause() would be lost and the pause() wait for
// ever (a parent signalling its child right after a dump -R found it). The
// signal is blocked while the flag is tested; sigsuspend() unblocks it and
// waits in one step.
void WaitForCheck() {
  sigset_t usr1, old;
  sigemptyset(&usr1);
  sigaddset(&usr1, SIGUSR1);
  sigprocmask(SIG_BLOCK, &usr1, &old);
  sigdelset(&old, SIGUSR1);
  while (!g_check) sigsuspend(&old);
  sigprocmask(SIG_SETMASK, &old, nullptr);
}

std::string ReadProcStat(pid_t pid) {
  FILE* f = fopen(("/proc/" + std::to_string(pid) + "/stat").c_str(), "re");
  if (!f) return "?";
  char buf[1024];
  size_t n = fread(buf, 1, sizeof buf - 1, f);
  fclose(f);
  buf[n] = 0;
  char* p = strrchr(buf, ')');
  return p ? std::string(1, p[2]) : "?";
}

std::string Format2(const char* fmt, ...) __attribute__((format(printf, 1, 2)));
std::string Format2(const char* fmt, ...) {
  char buf[512];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(buf, sizeof buf, fmt, ap);
  va_end(ap);
  return buf;
}

std::string ReadFileOr(const std::string& name) {
  FILE* f = fopen((g_dir + "/" + name).c_str(), "re");
  if (!f) return "";
  char buf[512] = {};
  size_t n = fread(buf, 1, sizeof buf - 1, f);
  fclose(f);
  return std::string(buf, n);
}

uint64_t Mix(uint64_t x) {  // splitmix64: page contents nobody can guess
  x += 0x9e3779b97f4a7c15ull;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
  return x ^ (x >> 31);
}

void Fill(void* p, size_t len, uint64_t seed) {
  auto* w = static_cast<uint64_t*>(p);
  for (size_t i = 0; i < len / 8; i++) w[i] = Mix(seed + i);
}

bool Verify(const void* p, size_t len, uint64_t seed) {
  auto* w = static_cast<const uint64_t*>(p);
  for (size_t i = 0; i < len / 8; i++)
    if (w[i] != Mix(seed + i)) return false;
  return true;
}

// How many pages of [p, p+len) are resident (mincore).
size_t ResidentPages(const void* p, size_t len) {
  std::vector<unsigned char> vec((len + 4095) / 4096);
  if (mincore(const_cast<void*>(p), len, vec.data()) != 0) return SIZE_MAX;
  size_t n = 0;
  for (unsigned char c : vec) n += c & 1;
  return n;
}

// ---- memory ------------------------------------------------------------------
int Memory(long big_mib, bool sparse) {
  const size_t kPage = 4096;
  std::vector<uint64_t> heap(1 << 20);  // 8 MiB on the heap (mmap'd by malloc)
  Fill(heap.data(), heap.size() * 8, 1);
  auto* small = static_cast<uint64_t*>(malloc(4096));  // brk heap
  Fill(small, 4096, 2);
  void* brk_start = sbrk(0);
  if (sbrk(1 << 20) == reinterpret_cast<void*>(-1)) return 2;
  Fill(brk_start, 1 << 20, 3);
  uint64_t stack_data[32768];  // 256 KiB on the stack
  Fill(stack_data, sizeof stack_data, 4);

  // 64 MiB with every other 1 MiB untouched.
  const size_t kAnon = 64 << 20;
  char* anon = static_cast<char*>(
      mmap(nullptr, kAnon, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0));
  // With transparent huge pages "always" (Debian's 6.1 cloud kernel), writing
  // 1 MiB populates the whole 2 MiB huge page: the untouched half would be
  // resident before the dump already.
  madvise(anon, kAnon, MADV_NOHUGEPAGE);
  for (size_t off = 0; off < kAnon; off += 2 << 20) Fill(anon + off, 1 << 20, 5 + off);

  // Data behind PROT_NONE, and a guard page between two writable pages.
  char* hidden = static_cast<char*>(
      mmap(nullptr, 16 * kPage, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0));
  Fill(hidden, 16 * kPage, 6);
  mprotect(hidden, 16 * kPage, PROT_NONE);
  char* guarded = static_cast<char*>(
      mmap(nullptr, 3 * kPage, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0));
  mprotect(guarded + kPage, kPage, PROT_NONE);
  Fill(guarded, kPage, 7);
  Fill(guarded + 2 * kPage, kPage, 8);
  // A read-only anonymous page holding data.
  char* ro = static_cast<char*>(
      mmap(nullptr, kPage, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0));
  Fill(ro, kPage, 9);
  mprotect(ro, kPage, PROT_READ);

  // A private file mapping with some pages changed (COW), and a shared one.
  std::string fpath = g_dir + "/mapped.dat";
  int fd = open(fpath.c_str(), O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  std::vector<uint64_t> fdata(8 * kPage / 8);
  Fill(fdata.data(), 8 * kPage, 10);
  if (write(fd, fdata.data(), 8 * kPage) != static_cast<ssize_t>(8 * kPage)) return 2;
  char* priv =
      static_cast<char*>(mmap(nullptr, 8 * kPage, PROT_READ | PROT_WRITE, MAP_PRIVATE, fd, 0));
  Fill(priv + 2 * kPage, kPage, 11);  // COW copy differs from the file
  char* shared = static_cast<char*>(
      mmap(nullptr, 4 * kPage, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 4 * kPage));
  Fill(shared, kPage, 12);  // written through to the file
  // Read-only now, but from a file opened for writing: it may become writable.
  char* ro_shared = static_cast<char*>(mmap(nullptr, kPage, PROT_READ, MAP_SHARED, fd, 0));
  close(fd);
  // Shared anonymous memory.
  char* shanon = static_cast<char*>(
      mmap(nullptr, 4 * kPage, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0));
  Fill(shanon, 4 * kPage, 13);

  char* bigp = nullptr;
  if (big_mib > 0) {
    bigp = static_cast<char*>(
        mmap(nullptr, big_mib << 20, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0));
    Fill(bigp, big_mib << 20, 14);
  }
  char* sp = nullptr;
  const size_t kSparse = 64ull << 30;
  std::vector<size_t> touched;
  if (sparse) {
    sp = static_cast<char*>(mmap(nullptr, kSparse, PROT_READ | PROT_WRITE,
                                 MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0));
    if (sp == MAP_FAILED) return 2;
    madvise(sp, kSparse, MADV_NOHUGEPAGE);
    for (int i = 0; i < 100; i++) {
      size_t page = Mix(1000 + i) % (kSparse / kPage);
      touched.push_back(page);
      Fill(sp + page * kPage, kPage, 15 + page);
    }
  }

  InstallCheckHandler();
  // What a kernel made resident before the dump (fault-around, huge pages)
  // is its business; the restore must not add to it.
  std::vector<size_t> res_before;
  for (size_t off = 0; off < kAnon; off += 2 << 20)
    res_before.push_back(ResidentPages(anon + off + (1 << 20), 1 << 20));
  Ready();
  WaitForCheck();

  EXPECT(Verify(heap.data(), heap.size() * 8, 1), "malloc'd heap differs");
  EXPECT(Verify(small, 4096, 2), "brk heap (malloc) differs");
  EXPECT(Verify(brk_start, 1 << 20, 3), "sbrk area differs");
  EXPECT(sbrk(0) == static_cast<char*>(brk_start) + (1 << 20), "program break moved");
  EXPECT(sbrk(kPage) != reinterpret_cast<void*>(-1), "cannot grow the heap after restore");
  EXPECT(Verify(stack_data, sizeof stack_data, 4), "stack differs");
  for (size_t off = 0; off < kAnon; off += 2 << 20) {
    EXPECT(Verify(anon + off, 1 << 20, 5 + off), "anonymous mapping differs at +%zu", off);
    size_t res = ResidentPages(anon + off + (1 << 20), 1 << 20);
    size_t before = res_before[off / (2 << 20)];
    EXPECT(res <= before, "%zu untouched pages at +%zu became resident (%zu were before)",
           res - before, off + (1 << 20), before);
  }
  mprotect(hidden, 16 * kPage, PROT_READ);
  EXPECT(Verify(hidden, 16 * kPage, 6), "PROT_NONE data differs");
  EXPECT(Verify(guarded, kPage, 7) && Verify(guarded + 2 * kPage, kPage, 8),
         "pages around the guard differ");
  EXPECT(Verify(ro, kPage, 9), "read-only page differs");
  // Pages not written privately show the file, including what the shared
  // mapping wrote to its page 4.
  EXPECT(Verify(priv, 2 * kPage, 10) && Verify(priv + 2 * kPage, kPage, 11) &&
             Verify(priv + 3 * kPage, kPage, 10 + 3 * kPage / 8) &&
             Verify(priv + 4 * kPage, kPage, 12) &&
             Verify(priv + 5 * kPage, 3 * kPage, 10 + 5 * kPage / 8),
         "private file mapping differs");
  EXPECT(Verify(shared, kPage, 12), "shared file mapping differs");
  EXPECT(mprotect(ro_shared, kPage, PROT_READ | PROT_WRITE) == 0,
         "a read-only shared mapping of a file opened for writing cannot become writable: %m");
  Fill(shared + kPage, kPage, 99);  // must reach the file
  msync(shared, 4 * kPage, MS_SYNC);
  {
    int f = open(fpath.c_str(), O_RDONLY | O_CLOEXEC);
    std::vector<char> b(kPage);
    EXPECT(pread(f, b.data(), kPage, 5 * kPage) == static_cast<ssize_t>(kPage) &&
               Verify(b.data(), kPage, 99),
           "a write to the shared file mapping did not reach the file");
    close(f);
  }
  EXPECT(Verify(shanon, 4 * kPage, 13), "shared anonymous mapping differs");
  if (bigp) EXPECT(Verify(bigp, big_mib << 20, 14), "the %ld MiB region differs", big_mib);
  if (sp) {
    for (size_t page : touched)
      EXPECT(Verify(sp + page * kPage, kPage, 15 + page), "sparse page %zu differs", page);
    size_t res = ResidentPages(sp, kSparse);
    EXPECT(res <= 100, "sparse reservation has %zu pages resident, want at most 100", res);
  }
  // Fresh memory still works.
  void* fresh = mmap(nullptr, kPage, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  EXPECT(fresh != MAP_FAILED, "mmap after restore failed");
  Report();
}

// ---- fpu ---------------------------------------------------------------------
alignas(32) uint8_t g_ymm_in[16 * 32], g_ymm_out[16 * 32];
volatile int g_spin_flag = 0;

void OnCheckSpin(int) { g_spin_flag = 1; }

int Fpu() {
  for (size_t i = 0; i < sizeof g_ymm_in; i++) g_ymm_in[i] = static_cast<uint8_t>(Mix(i));
  struct sigaction sa {};
  sa.sa_handler = OnCheckSpin;
  sigaction(SIGUSR1, &sa, nullptr);
  // Round toward zero, flush-to-zero: a non-default MXCSR to check.
  unsigned mxcsr_in = 0x7f80 | 0x6000 | 0x8000, mxcsr_out = 0;
  std::atomic_thread_fence(std::memory_order_seq_cst);
  Ready();
  // All in one asm block so that the compiler cannot use these registers:
  // load known values, spin until the flag is set, store them back.
  asm volatile(
      "ldmxcsr %[mxin]\n"
      "vmovdqa 0(%[in]), %%ymm0\n vmovdqa 32(%[in]), %%ymm1\n vmovdqa 64(%[in]), %%ymm2\n"
      "vmovdqa 96(%[in]), %%ymm3\n vmovdqa 128(%[in]), %%ymm4\n vmovdqa 160(%[in]), %%ymm5\n"
      "vmovdqa 192(%[in]), %%ymm6\n vmovdqa 224(%[in]), %%ymm7\n vmovdqa 256(%[in]), %%ymm8\n"
      "vmovdqa 288(%[in]), %%ymm9\n vmovdqa 320(%[in]), %%ymm10\n vmovdqa 352(%[in]), %%ymm11\n"
      "vmovdqa 384(%[in]), %%ymm12\n vmovdqa 416(%[in]), %%ymm13\n vmovdqa 448(%[in]), %%ymm14\n"
      "vmovdqa 480(%[in]), %%ymm15\n"
      "1: pause\n cmpl $0, %[flag]\n je 1b\n"
      "vmovdqa %%ymm0, 0(%[out])\n vmovdqa %%ymm1, 32(%[out])\n vmovdqa %%ymm2, 64(%[out])\n"
      "vmovdqa %%ymm3, 96(%[out])\n vmovdqa %%ymm4, 128(%[out])\n vmovdqa %%ymm5, 160(%[out])\n"
      "vmovdqa %%ymm6, 192(%[out])\n vmovdqa %%ymm7, 224(%[out])\n vmovdqa %%ymm8, 256(%[out])\n"
      "vmovdqa %%ymm9, 288(%[out])\n vmovdqa %%ymm10, 320(%[out])\n vmovdqa %%ymm11, 352(%[out])\n"
      "vmovdqa %%ymm12, 384(%[out])\n vmovdqa %%ymm13, 416(%[out])\n vmovdqa %%ymm14, 448(%[out])\n"
      "vmovdqa %%ymm15, 480(%[out])\n"
      "stmxcsr %[mxout]\n"
      "vzeroupper\n"
      : [mxout] "=m"(mxcsr_out)
      : [in] "r"(g_ymm_in), [out] "r"(g_ymm_out), [flag] "m"(g_spin_flag), [mxin] "m"(mxcsr_in)
      : "memory", "xmm0", "xmm1", "xmm2", "xmm3", "xmm4", "xmm5", "xmm6", "xmm7", "xmm8", "xmm9",
        "xmm10", "xmm11", "xmm12", "xmm13", "xmm14", "xmm15");
  for (int r = 0; r < 16; r++)
    EXPECT(memcmp(g_ymm_in + r * 32, g_ymm_out + r * 32, 32) == 0, "ymm%d differs", r);
  EXPECT(mxcsr_out == mxcsr_in, "MXCSR is 0x%x, want 0x%x", mxcsr_out, mxcsr_in);
  Report();
}

// ---- files -------------------------------------------------------------------
int Files() {
  std::string data_path = g_dir + "/input.dat", log_path = g_dir + "/append.log";
  std::string content;
  for (int i = 0; i < 10000; i++) content += static_cast<char>('a' + Mix(i) % 26);
  {
    int f = open(data_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (write(f, content.data(), content.size()) != static_cast<ssize_t>(content.size())) return 2;
    close(f);
    f = open(log_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (write(f, "before\n", 7) != 7) return 2;
    close(f);
  }
  int in = open(data_path.c_str(), O_RDONLY);
  char buf[4096];
  if (read(in, buf, 1234) != 1234) return 2;
  int app = open(log_path.c_str(), O_WRONLY | O_APPEND | O_CLOEXEC);
  int devnull = open("/dev/null", O_RDWR);
  int dir = open(g_dir.c_str(), O_RDONLY | O_DIRECTORY);
  int high = dup2(in, 100) == 100 ? 100 : -1;  // shares the offset with `in`
  int rw = open(data_path.c_str(), O_RDWR | O_NONBLOCK);
  lseek(rw, 5000, SEEK_SET);
  // Names that are not UTF-8 (Latin-1 e-acute): the task's name, the
  // directory it works in, a file it has open and mapped.
  std::string latin_dir = g_dir + "/caf\xe9", latin_file = latin_dir + "/r\xe9sum\xe9.txt";
  const char kLatinComm[] = "service-caf\xe9";
  mkdir(latin_dir.c_str(), 0755);
  int lf = open(latin_file.c_str(), O_RDWR | O_CREAT | O_TRUNC, 0644);
  if (lf < 0 || ftruncate(lf, 4096) < 0 || pwrite(lf, "caf\xe9", 4, 0) != 4) return 2;
  auto* lmap = static_cast<const char*>(mmap(nullptr, 4096, PROT_READ, MAP_SHARED, lf, 0));
  if (lmap == MAP_FAILED || chdir(latin_dir.c_str()) < 0) return 2;
  prctl(PR_SET_NAME, kLatinComm);
  InstallCheckHandler();
  Ready();
  WaitForCheck();

  char comm[17] = {};
  prctl(PR_GET_NAME, comm);
  EXPECT(strcmp(comm, kLatinComm) == 0, "the task's name is '%s'", comm);
  char cwd[4096] = {};
  EXPECT(getcwd(cwd, sizeof cwd) && latin_dir == cwd, "the working directory is '%s'", cwd);
  char link[4096] = {};
  EXPECT(readlink(("/proc/self/fd/" + std::to_string(lf)).c_str(), link, sizeof link - 1) > 0 &&
             latin_file == link,
         "the Latin-1 file is now '%s'", link);
  EXPECT(memcmp(lmap, "caf\xe9", 4) == 0, "the Latin-1 file's mapping differs");

  EXPECT(read(in, buf, 100) == 100 && memcmp(buf, content.data() + 1234, 100) == 0,
         "reading on did not continue at offset 1234");
  EXPECT(lseek(high, 0, SEEK_CUR) >= 1234, "fd 100 lost its offset");
  EXPECT(write(app, "after\n", 6) == 6, "write to the O_APPEND file failed");
  EXPECT((fcntl(app, F_GETFL) & O_APPEND) && (fcntl(app, F_GETFD) & FD_CLOEXEC),
         "O_APPEND file lost O_APPEND or FD_CLOEXEC");
  EXPECT(!(fcntl(in, F_GETFD) & FD_CLOEXEC), "fd %d gained FD_CLOEXEC", in);
  {
    int f = open(log_path.c_str(), O_RDONLY);
    ssize_t n = read(f, buf, sizeof buf);
    EXPECT(n == 13 && memcmp(buf, "before\nafter\n", 13) == 0, "append log holds '%.*s'",
           int(n > 0 ? n : 0), buf);
    close(f);
  }
  EXPECT(write(devnull, "x", 1) == 1, "/dev/null is not writable");
  struct stat st;
  EXPECT(fstat(dir, &st) == 0 && S_ISDIR(st.st_mode), "directory fd lost");
  EXPECT((fcntl(rw, F_GETFL) & O_ACCMODE) == O_RDWR && (fcntl(rw, F_GETFL) & O_NONBLOCK),
         "O_RDWR|O_NONBLOCK fd lost flags");
  EXPECT(lseek(rw, 0, SEEK_CUR) == 5000, "O_RDWR fd offset is %ld", lseek(rw, 0, SEEK_CUR));
  Report();
}

// ---- signals -----------------------------------------------------------------
int g_got_values[8];
volatile sig_atomic_t g_got_count = 0;
volatile sig_atomic_t g_usr2 = 0;
void OnQueued(int, siginfo_t* si, void*) {
  int n = g_got_count;
  if (n < 8) {
    g_got_values[n] = si->si_value.sival_int;
    g_got_count = n + 1;
  }
}
void OnUsr2(int, siginfo_t*, void*) { g_usr2 = 1; }

int Signals() {
  struct sigaction sa {};
  sa.sa_sigaction = OnUsr2;
  sa.sa_flags = SA_SIGINFO | SA_RESTART;
  sigemptyset(&sa.sa_mask);
  sigaddset(&sa.sa_mask, SIGWINCH);
  sigaction(SIGUSR2, &sa, nullptr);
  struct sigaction q {};
  q.sa_sigaction = OnQueued;
  q.sa_flags = SA_SIGINFO;
  sigaction(SIGRTMIN + 1, &q, nullptr);
  sigaction(SIGRTMIN + 2, &q, nullptr);
  signal(SIGTERM, SIG_IGN);
  sigset_t block;
  sigemptyset(&block);
  sigaddset(&block, SIGRTMIN + 1);
  sigaddset(&block, SIGRTMIN + 2);
  sigaddset(&block, SIGWINCH);
  sigprocmask(SIG_BLOCK, &block, nullptr);
  sigqueue(getpid(), SIGRTMIN + 1, sigval{11});  // process-directed, queued in order
  sigqueue(getpid(), SIGRTMIN + 1, sigval{12});
  siginfo_t si{};
  si.si_signo = SIGRTMIN + 2;
  si.si_code = SI_QUEUE;
  si.si_pid = getpid();
  si.si_uid = getuid();
  si.si_value.sival_int = 21;
  syscall(SYS_rt_tgsigqueueinfo, getpid(), gettid(), SIGRTMIN + 2, &si);  // thread-directed
  raise(SIGWINCH);
  umask(027);
  rlimit rl{512, 4096};
  setrlimit(RLIMIT_NOFILE, &rl);
  if (chdir(g_dir.c_str()) != 0) return 2;
  personality(ADDR_NO_RANDOMIZE);
  InstallCheckHandler();
  Ready();
  WaitForCheck();

  struct sigaction now {};
  sigaction(SIGUSR2, nullptr, &now);
  EXPECT(now.sa_sigaction == OnUsr2 && (now.sa_flags & SA_SIGINFO) && (now.sa_flags & SA_RESTART) &&
             sigismember(&now.sa_mask, SIGWINCH),
         "SIGUSR2 action differs");
  sigaction(SIGTERM, nullptr, &now);
  EXPECT(now.sa_handler == SIG_IGN, "SIGTERM is no longer ignored");
  sigset_t pending, mask;
  sigpending(&pending);
  sigprocmask(SIG_BLOCK, nullptr, &mask);
  EXPECT(sigismember(&mask, SIGRTMIN + 1) && sigismember(&mask, SIGWINCH), "signal mask differs");
  EXPECT(sigismember(&pending, SIGRTMIN + 1) && sigismember(&pending, SIGRTMIN + 2) &&
             sigismember(&pending, SIGWINCH),
         "pending signals lost");
  sigprocmask(SIG_UNBLOCK, &block, nullptr);
  EXPECT(
      g_got_count == 3 && g_got_values[0] == 11 && g_got_values[1] == 12 && g_got_values[2] == 21,
      "queued values arrived as %d values", int(g_got_count));
  raise(SIGUSR2);
  EXPECT(g_usr2 == 1, "SIGUSR2 handler did not run");
  mode_t m = umask(0);
  EXPECT(m == 027, "umask is %o", m);
  getrlimit(RLIMIT_NOFILE, &rl);
  EXPECT(rl.rlim_cur == 512 && rl.rlim_max == 4096, "RLIMIT_NOFILE is %lu/%lu", rl.rlim_cur,
         rl.rlim_max);
  char cwd[4096];
  EXPECT(getcwd(cwd, sizeof cwd) && g_dir == cwd, "cwd is %s", cwd);
  EXPECT(personality(0xffffffff) == ADDR_NO_RANDOMIZE, "personality lost");
  Report();
}

// ---- altstack ----------------------------------------------------------------
alignas(16) char g_altstack[64 * 1024];
volatile sig_atomic_t g_on_alt = -1;
void OnAlt(int) {
  char here;
  g_on_alt = (&here >= g_altstack && &here < g_altstack + sizeof g_altstack);
}

int Altstack() {
  stack_t ss{};
  ss.ss_sp = g_altstack;
  ss.ss_size = sizeof g_altstack;
  sigaltstack(&ss, nullptr);
  struct sigaction sa {};
  sa.sa_handler = OnAlt;
  sa.sa_flags = SA_ONSTACK;
  sigaction(SIGUSR2, &sa, nullptr);
  InstallCheckHandler();
  Ready();
  WaitForCheck();
  stack_t now{};
  sigaltstack(nullptr, &now);
  EXPECT(
      now.ss_sp == g_altstack && now.ss_size == sizeof g_altstack && !(now.ss_flags & SS_DISABLE),
      "sigaltstack differs");
  raise(SIGUSR2);
  EXPECT(g_on_alt == 1, "handler did not run on the alternate stack (%d)", int(g_on_alt));
  Report();
}

// ---- itimer ------------------------------------------------------------------
volatile sig_atomic_t g_ticks = 0;
void OnAlarm(int) { g_ticks = g_ticks + 1; }

int Itimer() {
  struct sigaction sa {};
  sa.sa_handler = OnAlarm;
  sa.sa_flags = SA_RESTART;
  sigaction(SIGALRM, &sa, nullptr);
  itimerval it{{0, 10000}, {0, 10000}};
  setitimer(ITIMER_REAL, &it, nullptr);
  InstallCheckHandler();
  while (g_ticks < 5) pause();
  Ready();
  WaitForCheck();
  itimerval now;
  getitimer(ITIMER_REAL, &now);
  EXPECT(now.it_interval.tv_sec == 0 && now.it_interval.tv_usec == 10000, "interval is %ld us",
         now.it_interval.tv_usec);
  int before = g_ticks;
  timespec end;
  clock_gettime(CLOCK_MONOTONIC, &end);
  end.tv_sec += 1;
  while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &end, nullptr) == EINTR) {
  }
  EXPECT(g_ticks - before >= 20, "timer fired %d times in 1 s after restore", g_ticks - before);
  Report();
}

// ---- nanosleep ---------------------------------------------------------------
double Now(clockid_t c) {
  timespec t;
  clock_gettime(c, &t);
  return t.tv_sec + t.tv_nsec / 1e9;
}

int Nanosleep(double secs) {
  InstallCheckHandler();
  timespec deadline;
  clock_gettime(CLOCK_MONOTONIC, &deadline);
  double start = deadline.tv_sec + deadline.tv_nsec / 1e9;
  deadline.tv_sec += static_cast<time_t>(secs);
  Ready();
  // An absolute sleep: after restore it must neither wake early nor fail.
  int r;
  while ((r = clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &deadline, nullptr)) == EINTR) {
    if (g_check) break;
  }
  double woke = Now(CLOCK_MONOTONIC);
  EXPECT(g_check || r == 0, "clock_nanosleep returned %d", r);
  EXPECT(g_check || woke >= start + secs - 0.001, "woke %.3f s early", start + secs - woke);
  WriteFile("woke", "1\n");
  // A relative sleep handled as POSIX programs do: EINTR, then sleep again.
  timespec rel{0, 200 * 1000 * 1000};
  double before = Now(CLOCK_MONOTONIC);
  while (nanosleep(&rel, &rel) < 0 && errno == EINTR && !g_check) {
  }
  EXPECT(g_check || Now(CLOCK_MONOTONIC) - before >= 0.199, "relative sleep ended early");
  WaitForCheck();
  Report();
}

// ---- futex -------------------------------------------------------------------
// Blocked in FUTEX_WAIT (no timeout) across the dump: the wait must restart
// after restore, and the SIGUSR1 handler's wake-up must still reach it.
uint32_t g_futex_word = 0;
void OnCheckFutex(int) {
  g_check = 1;
  __atomic_store_n(&g_futex_word, 1, __ATOMIC_SEQ_CST);
}

int Futex() {
  struct sigaction sa {};
  sa.sa_handler = OnCheckFutex;
  sa.sa_flags = SA_RESTART;  // the kernel restarts the wait after the handler
  sigaction(SIGUSR1, &sa, nullptr);
  Ready();
  int waits = 0;
  while (__atomic_load_n(&g_futex_word, __ATOMIC_SEQ_CST) == 0) {
    long r = syscall(SYS_futex, &g_futex_word, FUTEX_WAIT_PRIVATE, 0, nullptr, nullptr, 0);
    waits++;
    EXPECT(r == 0 || errno == EAGAIN || errno == EINTR, "futex wait failed: %s", strerror(errno));
  }
  EXPECT(waits >= 1, "never waited");
  Report();
}

// ---- read --------------------------------------------------------------------
int ReadStdin() {
  InstallCheckHandler();
  Ready();
  char buf[256];
  ssize_t n;
  std::string got;
  // Blocked here during the dump; restore gives it restore's stdin.
  while ((n = read(0, buf, sizeof buf)) != 0) {
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) break;
    got.append(buf, n);
    if (got.find('\n') != std::string::npos) break;
  }
  EXPECT(got == "hello after restore\n", "read '%s' from stdin", got.c_str());
  Report();
}

// ---- threads -----------------------------------------------------------------
// Eight threads take turns under a mutex and condition variable: thread i may
// increment only when turn % 8 == i. Invariants: sum of counters == turn,
// each thread keeps its TID, and all keep making progress after restore.
constexpr int kThreads = 8;
pthread_mutex_t g_mu = PTHREAD_MUTEX_INITIALIZER;
pthread_cond_t g_cv = PTHREAD_COND_INITIALIZER;
uint64_t g_turn = 0, g_counts[kThreads];
pid_t g_tids[kThreads];
std::atomic<bool> g_stop{false};
std::atomic<int> g_tid_mismatch{-1};

void* TurnTaker(void* arg) {
  int me = static_cast<int>(reinterpret_cast<intptr_t>(arg));
  g_tids[me] = gettid();
  sigset_t all;
  sigfillset(&all);
  pthread_sigmask(SIG_BLOCK, &all, nullptr);  // SIGUSR1 goes to the main thread
  pthread_mutex_lock(&g_mu);
  while (!g_stop) {
    while (g_turn % kThreads != static_cast<uint64_t>(me) && !g_stop)
      pthread_cond_wait(&g_cv, &g_mu);
    if (g_stop) break;
    if (gettid() != g_tids[me]) g_tid_mismatch = me;
    g_counts[me]++;
    g_turn++;
    pthread_cond_broadcast(&g_cv);
  }
  pthread_mutex_unlock(&g_mu);
  return nullptr;
}

int Threads() {
  InstallCheckHandler();
  pthread_t th[kThreads];
  for (int i = 0; i < kThreads; i++)
    pthread_create(&th[i], nullptr, TurnTaker, reinterpret_cast<void*>(static_cast<intptr_t>(i)));
  while (__atomic_load_n(&g_turn, __ATOMIC_SEQ_CST) < 1000) usleep(1000);
  Ready();
  WaitForCheck();
  pthread_mutex_lock(&g_mu);
  uint64_t before = g_turn;
  pthread_mutex_unlock(&g_mu);
  usleep(300000);
  pthread_mutex_lock(&g_mu);
  uint64_t after = g_turn, sum = 0;
  for (uint64_t c : g_counts) sum += c;
  EXPECT(sum == g_turn, "sum of counters %lu != turns %lu", sum, g_turn);
  for (int i = 0; i < kThreads; i++)
    EXPECT(g_counts[i] == g_turn / kThreads + (static_cast<uint64_t>(i) < g_turn % kThreads),
           "thread %d took %lu turns of %lu", i, g_counts[i], g_turn);
  g_stop = true;
  pthread_cond_broadcast(&g_cv);
  pthread_mutex_unlock(&g_mu);
  EXPECT(after > before + 100, "threads made %lu turns in 0.3 s after restore", after - before);
  for (int i = 0; i < kThreads; i++) pthread_join(th[i], nullptr);
  EXPECT(g_tid_mismatch < 0, "thread %d changed TID", g_tid_mismatch.load());
  Report();
}

// ---- tree ----------------------------------------------------------------------
// A 3-level tree with its own sessions and groups, a zombie, a stopped child
// and memory shared copy-on-write. On SIGUSR1 the root checks the tree's
// shape from /proc, reaps the zombie, and asks every other task to verify
// itself; each answers by exiting 0.
struct Shape {
  pid_t pid, ppid, pgid, sid;
};
std::vector<Shape> g_shape;
char* g_cow = nullptr;
const size_t kCow = 8 << 20;

Shape ShapeOf(pid_t pid) {
  FILE* f = fopen(("/proc/" + std::to_string(pid) + "/stat").c_str(), "re");
  Shape s{pid, -1, -1, -1};
  if (!f) return s;
  char buf[1024];
  size_t n = fread(buf, 1, sizeof buf - 1, f);
  fclose(f);
  buf[n] = 0;
  char* p = strrchr(buf, ')');
  char state;
  if (p) sscanf(p + 2, "%c %d %d %d", &state, &s.ppid, &s.pgid, &s.sid);
  return s;
}

// A member of the tree: verifies its memory when told, and its own children.
[[noreturn]] void TreeMember(uint64_t seed, const std::vector<pid_t>& kids) {
  InstallCheckHandler();
  WaitForCheck();
  EXPECT(Verify(g_cow, kCow / 2, 500), "inherited half of the shared buffer differs");
  EXPECT(Verify(g_cow + kCow / 2, 4096, seed), "own page differs");
  for (pid_t k : kids) {
    kill(k, SIGUSR1);
    int st;
    EXPECT(waitpid(k, &st, 0) == k && WIFEXITED(st) && WEXITSTATUS(st) == 0, "child %d failed (%x)",
           k, st);
  }
  if (!g_failures.empty()) {
    WriteFile("fail-" + std::to_string(getpid()), g_failures);
    _exit(1);
  }
  _exit(0);
}

pid_t ForkMember(uint64_t seed, const std::function<std::vector<pid_t>()>& setup) {
  pid_t pid = fork();
  if (pid == 0) {
    Fill(g_cow + kCow / 2, 4096, seed);  // one page of its own
    std::vector<pid_t> kids = setup();
    TreeMember(seed, kids);
  }
  return pid;
}

int Tree() {
  g_cow = static_cast<char*>(
      mmap(nullptr, kCow, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0));
  Fill(g_cow, kCow, 500);
  // A: its own session; its child A1 stays in it.
  pid_t a = ForkMember(501, [] {
    setsid();
    pid_t a1 = ForkMember(502, [] { return std::vector<pid_t>{}; });
    return std::vector<pid_t>{a1};
  });
  // B: its own group in the root's session; B1 joins B's group.
  pid_t b = ForkMember(503, [] {
    setpgid(0, 0);
    pid_t b1 = ForkMember(504, [] { return std::vector<pid_t>{}; });
    return std::vector<pid_t>{b1};
  });
  // Z: a zombie with exit code 7.
  pid_t z = fork();
  if (z == 0) _exit(7);
  // S: stopped.
  pid_t st = ForkMember(505, [] {
    raise(SIGSTOP);
    return std::vector<pid_t>{};
  });
  // O leads its own group, forks G into it, and exits: G is reparented to
  // the root (a subreaper) and stays in a group whose leader is gone.
  prctl(PR_SET_CHILD_SUBREAPER, 1);
  int gpipe[2];
  if (pipe(gpipe) < 0) return 2;
  pid_t o = fork();
  if (o == 0) {
    setpgid(0, 0);
    pid_t g = ForkMember(506, [] { return std::vector<pid_t>{}; });
    if (write(gpipe[1], &g, sizeof g) != sizeof g) _exit(1);
    _exit(0);
  }
  pid_t orphan = -1;
  if (read(gpipe[0], &orphan, sizeof orphan) != sizeof orphan) return 2;
  close(gpipe[0]);
  close(gpipe[1]);
  waitpid(o, nullptr, 0);
  // Wait until the tree has its shape.
  usleep(200000);
  std::vector<pid_t> all = {getpid(), a, b, st, orphan};
  for (pid_t p : {a, b}) {
    std::string kids;
    FILE* f = fopen(
        ("/proc/" + std::to_string(p) + "/task/" + std::to_string(p) + "/children").c_str(), "re");
    char buf[256] = {};
    if (f) {
      if (fgets(buf, sizeof buf, f)) all.push_back(atoi(buf));
      fclose(f);
    }
  }
  for (pid_t p : all) g_shape.push_back(ShapeOf(p));
  InstallCheckHandler();
  Ready();
  WaitForCheck();

  for (const Shape& want : g_shape) {
    Shape got = ShapeOf(want.pid);
    EXPECT(got.ppid == want.ppid || want.pid == getpid(), "PID %d has parent %d, want %d", want.pid,
           got.ppid, want.ppid);
    EXPECT(got.pgid == want.pgid, "PID %d is in group %d, want %d", want.pid, got.pgid, want.pgid);
    EXPECT(got.sid == want.sid, "PID %d is in session %d, want %d", want.pid, got.sid, want.sid);
  }
  EXPECT(Verify(g_cow, kCow, 500), "root's buffer differs");
  int status = 0;
  EXPECT(waitpid(z, &status, WNOHANG) == z && WIFEXITED(status) && WEXITSTATUS(status) == 7,
         "zombie %d: wait status %x", z, status);
  std::string stat = ReadProcStat(st);
  EXPECT(stat == "T", "stopped child is in state %s", stat.c_str());
  kill(st, SIGCONT);
  EXPECT(ShapeOf(orphan).pgid == o, "orphan left its leaderless group %d", o);
  for (pid_t k : {a, b, st, orphan}) {
    kill(k, SIGUSR1);
    EXPECT(waitpid(k, &status, 0) == k && WIFEXITED(status) && WEXITSTATUS(status) == 0,
           "child %d failed (%x)", k, status);
  }
  Report();
}

// ---- cow -----------------------------------------------------------------------
// A parent holding --big-mib MiB forks 4 children that each change 1% of it.
int Cow(long mib) {
  size_t len = static_cast<size_t>(mib) << 20;
  char* mem = static_cast<char*>(
      mmap(nullptr, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0));
  Fill(mem, len, 600);
  std::vector<pid_t> kids;
  for (int i = 0; i < 4; i++) {
    pid_t pid = fork();
    if (pid == 0) {
      Fill(mem + i * (len / 100), len / 100, 700 + i);
      InstallCheckHandler();
      WaitForCheck();
      bool ok = Verify(mem + i * (len / 100), len / 100, 700 + i) &&
                Verify(mem + 4 * (len / 100), len - 4 * (len / 100), 600 + 4 * (len / 100) / 8);
      _exit(ok ? 0 : 1);
    }
    kids.push_back(pid);
  }
  usleep(300000);
  InstallCheckHandler();
  std::string list;
  for (pid_t k : kids) list += std::to_string(k) + " ";
  WriteFile("children", list + "\n");
  Ready();
  WaitForCheck();
  EXPECT(Verify(mem, len, 600), "parent memory differs");
  CheckChildren(kids);
  Report();
}

// ---- shmem ---------------------------------------------------------------------
// Shared anonymous memory between a parent and a child: after restore, a
// write in the child is seen by the parent.
int Shmem() {
  auto* shared = static_cast<volatile uint64_t*>(
      mmap(nullptr, 1 << 20, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0));
  Fill(const_cast<uint64_t*>(shared), 1 << 20, 800);
  pid_t child = fork();
  if (child == 0) {
    InstallCheckHandler();
    WaitForCheck();
    bool ok = Verify(const_cast<uint64_t*>(shared), 1 << 20, 800);
    shared[0] = 0xfeedface;
    _exit(ok ? 0 : 1);
  }
  usleep(100000);
  InstallCheckHandler();
  Ready();
  WaitForCheck();
  kill(child, SIGUSR1);
  int st;
  EXPECT(waitpid(child, &st, 0) == child && WIFEXITED(st) && WEXITSTATUS(st) == 0,
         "child saw different shared memory");
  EXPECT(shared[0] == 0xfeedface, "the child's write is not seen by the parent: not one object");
  Report();
}

// ---- pipeline ------------------------------------------------------------------
// producer -> pipe -> relay -> pipe -> consumer (the root), with data in
// flight in both pipes at the dump. The consumer checks that the sequence
// numbers it receives never skip or repeat, across the restore.
int Pipeline() {
  int p1[2], p2[2];
  if (pipe(p1) < 0 || pipe(p2) < 0) return 2;
  pid_t producer = fork();
  if (producer == 0) {
    close(p1[0]);
    close(p2[0]);
    close(p2[1]);
    for (uint64_t seq = 0;; seq++) {
      if (write(p1[1], &seq, 8) != 8) _exit(g_check ? 0 : 1);
      if (seq % 64 == 0) usleep(1000);
    }
  }
  pid_t relay = fork();
  if (relay == 0) {
    close(p1[1]);
    close(p2[0]);
    uint64_t buf[64];
    for (;;) {
      ssize_t n = read(p1[0], buf, sizeof buf);
      if (n <= 0) _exit(0);
      if (write(p2[1], buf, n) != n) _exit(0);
      usleep(3000);  // slower than the producer: data piles up in p1
    }
  }
  close(p1[0]);
  close(p1[1]);
  close(p2[1]);
  InstallCheckHandler();
  uint64_t expect = 0, got;
  auto consume = [&](int n) {
    for (int i = 0; i < n; i++) {
      ssize_t r = read(p2[0], &got, 8);
      if (r < 0 && errno == EINTR) {
        i--;
        continue;
      }
      if (r != 8) {
        Fail("read %zd bytes", r);
        return;
      }
      if (got != expect) {
        Fail("got record %lu, want %lu", got, expect);
        return;
      }
      expect++;
    }
  };
  consume(1000);
  Ready();
  WaitForCheck();
  consume(5000);
  kill(producer, SIGKILL);
  kill(relay, SIGKILL);
  waitpid(producer, nullptr, 0);
  waitpid(relay, nullptr, 0);
  Report();
}

// ---- sockets -------------------------------------------------------------------
// Unix socket pairs (stream and datagram) with messages queued, an eventfd
// in semaphore mode, and a file whose offset parent and child share.
int Sockets() {
  int st[2], dg[2];
  if (socketpair(AF_UNIX, SOCK_STREAM, 0, st) < 0 || socketpair(AF_UNIX, SOCK_DGRAM, 0, dg) < 0)
    return 2;
  int efd = eventfd(5, EFD_SEMAPHORE | EFD_NONBLOCK);
  std::string fpath = g_dir + "/shared-offset.dat";
  {
    int f = open(fpath.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    for (int i = 0; i < 256; i++) {
      char c = static_cast<char>(i);
      if (write(f, &c, 1) != 1) return 2;
    }
    close(f);
  }
  int shared_fd = open(fpath.c_str(), O_RDONLY);
  char buf[256];
  if (read(shared_fd, buf, 50) != 50) return 2;
  pid_t child = fork();
  if (child == 0) {
    close(st[0]);
    close(dg[0]);
    InstallCheckHandler();
    WaitForCheck();
    ssize_t n = recv(st[1], buf, sizeof buf, MSG_DONTWAIT);
    EXPECT(n == 16 && memcmp(buf, "stream-data-1234", 16) == 0, "stream queue: %zd bytes", n);
    for (int i = 1; i <= 3; i++) {
      n = recv(dg[1], buf, sizeof buf, MSG_DONTWAIT);
      EXPECT(n == i && buf[0] == 'a' + i - 1, "datagram %d: %zd bytes", i, n);
    }
    EXPECT(recv(dg[1], buf, sizeof buf, MSG_DONTWAIT) < 0, "an extra datagram");
    uint64_t v;
    EXPECT(read(efd, &v, 8) == 8 && v == 1, "eventfd semaphore read");
    EXPECT(read(shared_fd, buf, 10) == 10 && buf[0] == 50, "shared file read at %d", buf[0]);
    if (!g_failures.empty()) WriteFile("fail-child", g_failures);
    _exit(g_failures.empty() ? 0 : 1);
  }
  close(st[1]);
  close(dg[1]);
  if (send(st[0], "stream-data-1234", 16, 0) != 16) return 2;
  for (int i = 1; i <= 3; i++) {
    std::string m(i, static_cast<char>('a' + i - 1));
    if (send(dg[0], m.data(), m.size(), 0) != i) return 2;
  }
  usleep(50000);
  InstallCheckHandler();
  Ready();
  WaitForCheck();
  kill(child, SIGUSR1);
  int status;
  EXPECT(waitpid(child, &status, 0) == child && WIFEXITED(status) && WEXITSTATUS(status) == 0,
         "child failed (%x)", status);
  EXPECT(lseek(shared_fd, 0, SEEK_CUR) == 60, "shared offset is %ld, want 60",
         lseek(shared_fd, 0, SEEK_CUR));
  uint64_t v;
  int reads = 0;
  while (read(efd, &v, 8) == 8) reads++;
  EXPECT(reads == 4, "eventfd had %d left, want 4", reads);
  Report();
}

// ---- timerfd -------------------------------------------------------------------
// Four timerfds: one ticking every 20 ms (non-blocking), a one-shot due in
// 1000 s, a one-shot that expired unread (one pending expiration), and an
// absolute CLOCK_REALTIME one due in 500 s. After restore each is as it
// was, less the time the checkpoint took.
int64_t RemainingNs(int tfd) {
  itimerspec its{};
  if (timerfd_gettime(tfd, &its) < 0) return -1;
  return its.it_value.tv_sec * 1000000000ll + its.it_value.tv_nsec;
}

int Timerfd() {
  int ticking = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK);
  int later = timerfd_create(CLOCK_MONOTONIC, 0);
  int expired = timerfd_create(CLOCK_REALTIME, TFD_NONBLOCK);
  int absolute = timerfd_create(CLOCK_REALTIME, 0);
  if (ticking < 0 || later < 0 || expired < 0 || absolute < 0) return 2;
  itimerspec t{{0, 20000000}, {0, 20000000}};
  itimerspec l{{0, 0}, {1000, 0}};
  itimerspec e{{0, 0}, {0, 1000000}};
  timespec now;
  clock_gettime(CLOCK_REALTIME, &now);
  itimerspec a{{0, 0}, {now.tv_sec + 500, now.tv_nsec}};
  if (timerfd_settime(ticking, 0, &t, nullptr) < 0 || timerfd_settime(later, 0, &l, nullptr) < 0 ||
      timerfd_settime(expired, 0, &e, nullptr) < 0 ||
      timerfd_settime(absolute, TFD_TIMER_ABSTIME, &a, nullptr) < 0)
    return 2;
  usleep(20000);  // EXPIRED has expired: one expiration waits to be read
  InstallCheckHandler();
  Ready();
  WaitForCheck();
  EXPECT(fcntl(ticking, F_GETFL) & O_NONBLOCK, "the ticking timerfd lost O_NONBLOCK");
  uint64_t n = 0;
  pollfd p{ticking, POLLIN, 0};
  EXPECT(poll(&p, 1, 1000) == 1 && read(ticking, &n, 8) == 8 && n >= 1,
         "the 20 ms timerfd does not tick (%lu)", n);
  int64_t left = RemainingNs(later);
  EXPECT(left > 900ll * 1000000000 && left <= 1000ll * 1000000000,
         "the 1000 s timerfd has %ld ns left", left);
  n = 0;
  EXPECT(read(expired, &n, 8) == 8 && n == 1, "the expired timerfd reads %lu, want 1", n);
  left = RemainingNs(absolute);
  EXPECT(left > 400ll * 1000000000 && left <= 500ll * 1000000000,
         "the absolute timerfd has %ld ns left", left);
  Report();
}

// ---- memfd ---------------------------------------------------------------------
// A memfd shared by a parent and a child that mapped it after the fork (so
// not inherited), an open fd on it at an offset, and a private mapping of it
// with a page of its own.
int Memfd() {
  const size_t kLen = 1 << 20;
  int fd = memfd_create("crl-test", MFD_CLOEXEC);
  if (fd < 0 || ftruncate(fd, kLen) < 0) return 2;
  auto* parent_map =
      static_cast<uint64_t*>(mmap(nullptr, kLen, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0));
  Fill(parent_map, kLen / 2, 1000);  // the second half stays zero
  auto* priv = static_cast<char*>(mmap(nullptr, kLen, PROT_READ | PROT_WRITE, MAP_PRIVATE, fd, 0));
  Fill(priv + 4096, 4096, 1001);  // a private copy of page 1
  lseek(fd, 100, SEEK_SET);
  // A second, sealed memfd that cannot be executed (mode 0666, F_SEAL_EXEC).
  int sealed =
      memfd_create("crl-sealed", MFD_CLOEXEC | MFD_ALLOW_SEALING | 0x0008U /* NOEXEC_SEAL */);
  if (sealed < 0) sealed = memfd_create("crl-sealed", MFD_CLOEXEC | MFD_ALLOW_SEALING);  // < 6.3
  if (sealed < 0 || ftruncate(sealed, 8192) < 0 || fchmod(sealed, 0640) < 0 ||
      fcntl(sealed, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW) < 0)
    return 2;
  int sealed_seals = fcntl(sealed, F_GET_SEALS);
  pid_t child = fork();
  if (child == 0) {
    auto* mine = static_cast<volatile uint64_t*>(
        mmap(nullptr, kLen, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0));
    InstallCheckHandler();
    WaitForCheck();
    bool ok = Verify(const_cast<uint64_t*>(mine), kLen / 2, 1000);
    mine[kLen / 8 - 1] = 0xabcdef;  // the last word: seen by the parent?
    _exit(ok ? 0 : 1);
  }
  usleep(100000);
  InstallCheckHandler();
  Ready();
  WaitForCheck();
  kill(child, SIGUSR1);
  int st;
  EXPECT(waitpid(child, &st, 0) == child && WIFEXITED(st) && WEXITSTATUS(st) == 0,
         "child saw different memfd contents");
  EXPECT(parent_map[kLen / 8 - 1] == 0xabcdef,
         "the child's write to the memfd is not seen: not one object");
  EXPECT(Verify(parent_map, kLen / 2, 1000), "memfd contents differ");
  EXPECT(Verify(priv, 4096, 1000) && Verify(priv + 4096, 4096, 1001),
         "private memfd mapping differs");
  EXPECT(lseek(fd, 0, SEEK_CUR) == 100, "memfd offset is %ld", lseek(fd, 0, SEEK_CUR));
  uint64_t w = 0;
  EXPECT(pread(fd, &w, 8, kLen - 8) == 8 && w == 0xabcdef, "the fd does not see the mapping");
  EXPECT(fcntl(sealed, F_GET_SEALS) == sealed_seals, "seals 0x%x, not 0x%x",
         fcntl(sealed, F_GET_SEALS), sealed_seals);
  EXPECT(fcntl(fd, F_GET_SEALS) == F_SEAL_SEAL, "an unsealable memfd became sealable");
  EXPECT(ftruncate(sealed, 4096) < 0 && errno == EPERM, "a memfd sealed against shrinking shrank");
  struct stat sst;
  EXPECT(fstat(sealed, &sst) == 0 && (sst.st_mode & 07777) == 0640, "memfd mode 0%o",
         sst.st_mode & 07777);
  Report();
}

// ---- forker --------------------------------------------------------------------
// Forks short-lived children all the time, also while being seized.
int Forker() {
  InstallCheckHandler();
  int forked = 0, reaped = 0, bad = 0;
  auto reap = [&](int flags) {
    int st;
    pid_t r;
    while ((r = waitpid(-1, &st, flags)) > 0) {
      reaped++;
      if (!WIFEXITED(st) || WEXITSTATUS(st) != 3) bad++;
    }
  };
  auto spawn = [&] {
    pid_t c = fork();
    if (c == 0) {
      usleep(20000);
      _exit(3);
    }
    if (c > 0) forked++;
  };
  for (int i = 0; i < 20; i++) spawn();
  Ready();
  while (!g_check) {
    spawn();
    reap(WNOHANG);
    usleep(2000);
  }
  for (int i = 0; i < 10; i++) spawn();
  reap(0);
  EXPECT(bad == 0, "%d children ended badly", bad);
  EXPECT(reaped > 0 && forked > 0, "forked %d, reaped %d", forked, reaped);
  Report();
}

// ---- forest (benchmarks) ---------------------------------------------------------
// --procs N processes (the root and N-1 children) with --threads T threads
// each and --big-mib M MiB of their own memory.
void* Idle(void*) {
  for (;;) pause();
}

int Forest(int procs, int threads, long mib) {
  size_t len = static_cast<size_t>(mib) << 20;
  auto setup = [&](uint64_t seed) {
    void* mem = mmap(nullptr, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    Fill(mem, len, seed);
    for (int t = 1; t < threads; t++) {
      pthread_t th;
      pthread_create(&th, nullptr, Idle, nullptr);
    }
    return mem;
  };
  std::vector<pid_t> kids;
  for (int i = 1; i < procs; i++) {
    pid_t c = fork();
    if (c == 0) {
      void* mem = setup(900 + i);
      InstallCheckHandler();
      WaitForCheck();
      _exit(Verify(mem, len, 900 + i) ? 0 : 1);
    }
    kids.push_back(c);
  }
  void* mem = setup(900);
  InstallCheckHandler();
  usleep(200000 + procs * 10000);
  Ready();
  WaitForCheck();
  EXPECT(Verify(mem, len, 900), "root memory differs");
  CheckChildren(kids);
  Report();
}

// ---- dirtier ------------------------------------------------------------------
// Keeps writing to its memory at a steady rate, each page stamped with its
// index and a generation that only grows; a table (in memory too) says each
// page's newest generation. A restored page from an older pass is stale and
// shows. It also drops pages (MADV_DONTNEED), flips protections, and maps
// and unmaps regions, the ways tracking can break. --big-mib W MiB,
// --rate pages/ms per writer, --threads T writers, --procs N processes.
struct Dirtier {
  char* mem;
  size_t pages;
  std::vector<uint32_t> gen;  // 0: dropped, reads as zeros
  uint64_t rng;
};
std::atomic<bool> g_dirty_stop{false};

void StampPage(char* page, size_t index, uint32_t gen) {
  auto* w = reinterpret_cast<uint64_t*>(page);
  w[0] = index;
  w[1] = gen;
  for (size_t i = 2; i < 4096 / 8; i += 61) w[i] = Mix(index * 1000003 + gen + i);
}

bool PageOk(const char* page, size_t index, uint32_t gen) {
  auto* w = reinterpret_cast<const uint64_t*>(page);
  if (gen == 0) {
    for (size_t i = 0; i < 4096 / 8; i++)
      if (w[i]) return false;
    return true;
  }
  if (w[0] != index || w[1] != gen) return false;
  for (size_t i = 2; i < 4096 / 8; i += 61)
    if (w[i] != Mix(index * 1000003 + gen + i)) return false;
  return true;
}

void DirtyLoop(Dirtier* d, int rate) {
  while (!g_dirty_stop) {
    for (int k = 0; k < rate; k++) {
      d->rng = Mix(d->rng);
      size_t i = d->rng % d->pages;
      if (d->rng % 97 == 0) {
        madvise(d->mem + i * 4096, 4096, MADV_DONTNEED);
        d->gen[i] = 0;
      } else if (d->rng % 89 == 0) {
        mprotect(d->mem + i * 4096, 4096, PROT_READ);  // protections change under tracking
        mprotect(d->mem + i * 4096, 4096, PROT_READ | PROT_WRITE);
      } else {
        StampPage(d->mem + i * 4096, i, ++d->gen[i] ? d->gen[i] : ++d->gen[i]);
      }
    }
    usleep(1000);
  }
}

std::string VerifyDirtier(const Dirtier& d) {
  size_t bad = 0, first = SIZE_MAX;
  for (size_t i = 0; i < d.pages; i++)
    if (!PageOk(d.mem + i * 4096, i, d.gen[i])) {
      bad++;
      if (first == SIZE_MAX) first = i;
    }
  if (!bad) return "";
  auto* w = reinterpret_cast<const uint64_t*>(d.mem + first * 4096);
  return Format2("%zu stale pages; page %zu holds generation %lu, want %u", bad, first, w[1],
                 d.gen[first]);
}

void* DirtyThread(void* arg) {
  auto* pair = static_cast<std::pair<Dirtier*, int>*>(arg);
  DirtyLoop(pair->first, pair->second);
  return nullptr;
}

// One process's share: T writer threads, each with its own slice of pages.
std::string RunDirtier(long mib, int threads, int rate, bool ready, uint64_t seed) {
  size_t pages = (static_cast<size_t>(mib) << 20) / 4096 / threads;
  std::vector<Dirtier> ds(threads);
  for (int t = 0; t < threads; t++) {
    Dirtier& d = ds[t];
    d.pages = pages;
    d.mem = static_cast<char*>(
        mmap(nullptr, pages * 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0));
    d.gen.assign(pages, 1);
    d.rng = seed * 100 + t;
    for (size_t i = 0; i < pages; i++) StampPage(d.mem + i * 4096, i, 1);
  }
  // A region that is mapped, then changes protection and gets unmapped.
  char* extra = static_cast<char*>(
      mmap(nullptr, 64 * 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0));
  Fill(extra, 64 * 4096, seed);
  std::vector<std::pair<Dirtier*, int>> args;
  for (auto& d : ds) args.push_back({&d, rate});
  std::vector<pthread_t> th(threads);
  for (int t = 1; t < threads; t++) pthread_create(&th[t], nullptr, DirtyThread, &args[t]);
  if (ready) Ready();
  DirtyLoop(&ds[0], rate);  // the first writer is this thread, until the check
  for (int t = 1; t < threads; t++) pthread_join(th[t], nullptr);
  std::string err;
  for (auto& d : ds) {
    std::string e = VerifyDirtier(d);
    if (!e.empty() && err.empty()) err = e;
  }
  if (!Verify(extra, 64 * 4096, seed)) err += " extra region differs";
  return err;
}

void OnCheckDirtier(int) {
  g_check = 1;
  g_dirty_stop = true;
}

int DirtierMain(long mib, int threads, int rate, int procs) {
  struct sigaction sa {};
  sa.sa_handler = OnCheckDirtier;
  sigaction(SIGUSR1, &sa, nullptr);
  std::vector<pid_t> kids;
  for (int i = 1; i < procs; i++) {
    pid_t c = fork();
    if (c == 0) {
      std::string e = RunDirtier(mib, threads, rate, false, 77 + i);
      if (!e.empty()) WriteFile("fail-" + std::to_string(getpid()), e);
      _exit(e.empty() ? 0 : 1);
    }
    kids.push_back(c);
  }
  if (!kids.empty()) {
    std::string list;
    for (pid_t k : kids) list += std::to_string(k) + " ";
    WriteFile("children", list + "\n");
  }
  // The root forwards the check to its children once it has stopped too.
  std::string e = RunDirtier(mib, threads, rate, true, 77);
  if (!e.empty()) Fail("%s", e.c_str());
  for (pid_t k : kids) {
    kill(k, SIGUSR1);
    int st;
    EXPECT(waitpid(k, &st, 0) == k && WIFEXITED(st) && WEXITSTATUS(st) == 0, "child %d: %s", k,
           ReadFileOr("fail-" + std::to_string(k)).c_str());
  }
  Report();
}

// ---- hold (benchmarks) ------------------------------------------------------
int Hold(long mib) {
  InstallCheckHandler();
  size_t len = static_cast<size_t>(mib) << 20;
  void* mem = mmap(nullptr, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (mem == MAP_FAILED) return 2;
  Fill(mem, len, 77);
  Ready();
  WaitForCheck();
  EXPECT(Verify(mem, len, 77), "the %ld MiB region differs", mib);
  Report();
}

// ---- vmas (a process with tens of thousands of mappings) ------------------------
int Vmas(long thousands) {
  InstallCheckHandler();
  const size_t kPage = 4096;
  size_t n = static_cast<size_t>(thousands) * 1000, len = n * kPage;
  auto* mem = static_cast<char*>(
      mmap(nullptr, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0));
  if (mem == MAP_FAILED) return 2;
  Fill(mem, len, 55);
  for (size_t i = 0; i < n; i += 2)
    if (mprotect(mem + i * kPage, kPage, PROT_READ) < 0) return 2;  // max_map_count?
  Ready();
  WaitForCheck();
  EXPECT(Verify(mem, len, 55), "the %zu pages differ", n);
  // Each read-only page is still its own read-only mapping.
  std::ifstream in("/proc/self/maps");
  std::string maps((std::istreambuf_iterator<char>(in)), {});
  size_t ro = 0;
  for (size_t at = 0; (at = maps.find(" r--p ", at)) != std::string::npos; at++) ro++;
  EXPECT(ro >= n / 2, "%zu read-only mappings, want %zu", ro, n / 2);
  Report();
}

// ---- lazy (lazy restore) -------------------------------------------------------
// Memory a lazy restore has not placed yet, used in every way that changes
// the layout under the lazy-pages daemon: a fork, an mremap, MADV_DONTNEED,
// a munmap with a new mapping in its place, a read() that makes the kernel
// write into it, and four threads reading at once.
int Lazy(long mib) {
  InstallCheckHandler();
  size_t len = static_cast<size_t>(mib) << 20, part = len / 8;
  auto* mem = static_cast<char*>(
      mmap(nullptr, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0));
  if (mem == MAP_FAILED) return 2;
  Fill(mem, len, 31);
  Ready();
  WaitForCheck();
  auto seed_at = [](size_t off) { return 31 + off / 8; };
  // A child sees all of it as it was at the fork.
  pid_t kid = fork();
  if (kid == 0) _exit(Verify(mem, len, 31) ? 0 : 1);
  // Part 1 moves.
  void* to = mmap(nullptr, part, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  void* moved = mremap(mem + part, part, part, MREMAP_MAYMOVE | MREMAP_FIXED, to);
  EXPECT(moved == to, "mremap: %s", strerror(errno));
  if (moved == to) EXPECT(Verify(moved, part, seed_at(part)), "the moved part differs");
  // Part 2 is dropped: zeros.
  EXPECT(madvise(mem + 2 * part, part, MADV_DONTNEED) == 0, "madvise: %s", strerror(errno));
  for (size_t i = 0; i < part; i += 4096)
    if (mem[2 * part + i] != 0) {
      Fail("a dropped page is not zero");
      break;
    }
  // Part 3 is unmapped and mapped anew: zeros.
  munmap(mem + 3 * part, part);
  void* again = mmap(mem + 3 * part, part, PROT_READ | PROT_WRITE,
                     MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0);
  EXPECT(again == mem + 3 * part, "mmap again: %s", strerror(errno));
  for (size_t i = 0; i < part; i += 4096)
    if (mem[3 * part + i] != 0) {
      Fail("a page mapped anew is not zero");
      break;
    }
  // The kernel writes one page of part 4.
  int p[2];
  char line[4096];
  memset(line, 'k', sizeof line);
  EXPECT(pipe(p) == 0, "pipe");
  EXPECT(write(p[1], line, sizeof line) == sizeof line, "write(pipe)");
  char* target = mem + 4 * part + 8192;
  EXPECT(read(p[0], target, sizeof line) == sizeof line, "read into lazy memory");
  EXPECT(memcmp(target, line, sizeof line) == 0, "read() into lazy memory lost data");
  EXPECT(Verify(mem + 4 * part, 8192, seed_at(4 * part)), "part 4 before the read differs");
  EXPECT(Verify(target + 4096, part - 12288, seed_at(4 * part + 12288)),
         "part 4 after the read differs");
  // Parts 0, 5, 6, 7 read by four threads at once.
  struct Job {
    const char* p;
    size_t len;
    uint64_t seed;
    bool ok;
  } jobs[4] = {{mem, part, 31, false},
               {mem + 5 * part, part, seed_at(5 * part), false},
               {mem + 6 * part, part, seed_at(6 * part), false},
               {mem + 7 * part, part, seed_at(7 * part), false}};
  pthread_t th[4];
  for (int i = 0; i < 4; i++)
    pthread_create(
        &th[i], nullptr,
        [](void* a) -> void* {
          auto* j = static_cast<Job*>(a);
          j->ok = Verify(j->p, j->len, j->seed);
          return nullptr;
        },
        &jobs[i]);
  for (int i = 0; i < 4; i++) {
    pthread_join(th[i], nullptr);
    EXPECT(jobs[i].ok, "part read by thread %d differs", i);
  }
  int st;
  EXPECT(waitpid(kid, &st, 0) == kid && WIFEXITED(st) && WEXITSTATUS(st) == 0,
         "the child forked after restore saw other memory");
  Report();
}

// ---- counter (demo) -------------------------------------------------------------
// identity: who the process is and how it runs. Another user (uid 65534,
// gid 100, groups 4 and 24) that kept some capabilities (permitted,
// effective, inheritable, ambient, a smaller bounding set), with securebits
// and no_new_privs; SCHED_BATCH at nice 7 on the first CPU, timer slack, I/O
// priority; oom_score_adj 400, THP disabled, a membarrier registration, not
// dumpable; a second thread scheduled otherwise (nice 3, the last CPU, its
// own slack) whose capabilities differ; a non-blocking pipe; and a child
// with a parent-death signal.
constexpr uint64_t Cap(int c) { return 1ull << c; }
constexpr uint64_t kIdPermitted = Cap(CAP_NET_BIND_SERVICE) | Cap(CAP_KILL) | Cap(CAP_SYS_NICE);
constexpr int kIdIoprio = (2 << 13) | 6;  // IOPRIO_CLASS_BE, level 6
std::atomic<int> g_id_thread_ready{0};
std::string g_id_thread_failures;

int LastCpu() { return std::max(0L, sysconf(_SC_NPROCESSORS_ONLN) - 1); }

bool OnlyCpu(int cpu) {
  cpu_set_t s;
  sched_getaffinity(0, sizeof s, &s);
  return CPU_COUNT(&s) == 1 && CPU_ISSET(cpu, &s);
}

void PinTo(int cpu) {
  cpu_set_t s;
  CPU_ZERO(&s);
  CPU_SET(cpu, &s);
  sched_setaffinity(0, sizeof s, &s);
}

void CapGet(uint64_t* eff, uint64_t* prm, uint64_t* inh) {
  __user_cap_header_struct h{_LINUX_CAPABILITY_VERSION_3, 0};
  __user_cap_data_struct d[2]{};
  syscall(SYS_capget, &h, d);
  *eff = d[0].effective | (uint64_t{d[1].effective} << 32);
  *prm = d[0].permitted | (uint64_t{d[1].permitted} << 32);
  *inh = d[0].inheritable | (uint64_t{d[1].inheritable} << 32);
}

void* IdentityThread(void*) {
  sigset_t usr1;  // the check signal is for the main thread's pause()
  sigemptyset(&usr1);
  sigaddset(&usr1, SIGUSR1);
  pthread_sigmask(SIG_BLOCK, &usr1, nullptr);
  setpriority(PRIO_PROCESS, 0, 3);
  PinTo(LastCpu());
  prctl(PR_SET_TIMERSLACK, 777000);
  g_id_thread_ready = 1;
  while (!g_check) usleep(20000);
  if (getpriority(PRIO_PROCESS, 0) != 3) g_id_thread_failures += "thread nice; ";
  if (!OnlyCpu(LastCpu())) g_id_thread_failures += "thread affinity; ";
  if (prctl(PR_GET_TIMERSLACK) != 777000) g_id_thread_failures += "thread timer slack; ";
  uid_t r, e, sv;
  getresuid(&r, &e, &sv);
  if (e != 65534) g_id_thread_failures += "thread uid; ";
  return nullptr;
}

int Identity() {
  InstallCheckHandler();
  // The child stays root: the parent, another user by then, cannot signal
  // it, and tells it to check by closing its end of a pipe.
  int go[2];
  if (pipe(go) < 0) return 2;
  pid_t child = fork();
  if (child == 0) {
    close(go[1]);
    prctl(PR_SET_PDEATHSIG, SIGUSR2);  // its default action kills: fired by mistake, it shows
    char c;
    while (read(go[0], &c, 1) > 0 || errno == EINTR) {
    }
    int sig = 0;
    prctl(PR_GET_PDEATHSIG, &sig);
    _exit(sig == SIGUSR2 ? 0 : 1);
  }
  sched_param sp{};
  EXPECT(sched_setscheduler(0, SCHED_BATCH, &sp) == 0, "SCHED_BATCH: %m");
  EXPECT(setpriority(PRIO_PROCESS, 0, 7) == 0, "nice: %m");

  FILE* oom = fopen("/proc/self/oom_score_adj", "we");
  EXPECT(oom && fputs("400", oom) >= 0 && fclose(oom) == 0, "oom_score_adj: %m");
  prctl(PR_SET_TIMERSLACK, 123456);
  EXPECT(syscall(SYS_ioprio_set, 1, 0, kIdIoprio) == 0, "ioprio_set: %m");
  EXPECT(prctl(PR_SET_THP_DISABLE, 1, 0, 0, 0) == 0, "THP disable: %m");
  EXPECT(syscall(SYS_membarrier, MEMBARRIER_CMD_REGISTER_PRIVATE_EXPEDITED, 0, 0) == 0,
         "membarrier register: %m");
  close(go[0]);
  // Advice that a fork and a core dump obey: it must come back.
  const size_t kAdvised = 4 * 4096;
  auto* wipe = static_cast<char*>(
      mmap(nullptr, kAdvised, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0));
  auto* nodump = static_cast<char*>(
      mmap(nullptr, kAdvised, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0));
  memset(wipe, 'w', kAdvised);
  memset(nodump, 'd', kAdvised);
  EXPECT(madvise(wipe, kAdvised, MADV_WIPEONFORK) == 0 &&
             madvise(nodump, kAdvised, MADV_DONTDUMP) == 0 &&
             madvise(nodump, kAdvised, MADV_RANDOM) == 0,
         "madvise: %m");
  int p[2];
  EXPECT(pipe2(p, O_NONBLOCK) == 0 && write(p[1], "abc", 3) == 3, "pipe: %m");
  // Its SIGIO goes to this process as SIGRTMIN+3 (nothing more is written).
  EXPECT(fcntl(p[0], F_SETOWN, getpid()) == 0 && fcntl(p[0], F_SETSIG, SIGRTMIN + 3) == 0 &&
             fcntl(p[0], F_SETFL, O_NONBLOCK | O_ASYNC) == 0,
         "O_ASYNC: %m");
  pthread_t th;
  pthread_create(&th, nullptr, IdentityThread, nullptr);
  while (!g_id_thread_ready) usleep(1000);
  PinTo(0);
  // Becoming another user: the files it writes go to a directory it can write.
  chmod(g_dir.c_str(), 0777);
  EXPECT(prctl(PR_CAPBSET_DROP, CAP_SYS_MODULE) == 0, "bounding set: %m");
  EXPECT(prctl(PR_SET_SECUREBITS, SECBIT_KEEP_CAPS | SECBIT_NOROOT) == 0, "securebits: %m");
  gid_t groups[] = {4, 24};
  EXPECT(setgroups(2, groups) == 0, "setgroups: %m");
  EXPECT(setresgid(100, 100, 100) == 0 && setresuid(65534, 65534, 65534) == 0, "setres*id: %m");
  __user_cap_header_struct h{_LINUX_CAPABILITY_VERSION_3, 0};
  __user_cap_data_struct d[2]{};
  d[0].permitted = kIdPermitted;
  d[0].effective = Cap(CAP_NET_BIND_SERVICE);
  d[0].inheritable = Cap(CAP_NET_BIND_SERVICE);
  EXPECT(syscall(SYS_capset, &h, d) == 0, "capset: %m");
  EXPECT(prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_RAISE, CAP_NET_BIND_SERVICE, 0, 0) == 0,
         "ambient: %m");
  EXPECT(prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) == 0, "no_new_privs: %m");
  EXPECT(prctl(PR_SET_DUMPABLE, 0) == 0, "dumpable: %m");
  if (!g_failures.empty()) Report();
  Ready();
  WaitForCheck();

  int policy = sched_getscheduler(0);
  EXPECT(policy == SCHED_BATCH, "policy %d, not SCHED_BATCH", policy);
  EXPECT(getpriority(PRIO_PROCESS, 0) == 7, "nice %d, not 7", getpriority(PRIO_PROCESS, 0));
  EXPECT(OnlyCpu(0), "not pinned to CPU 0");
  FILE* f = fopen("/proc/self/oom_score_adj", "re");
  int adj_value = 0;
  EXPECT(f && fscanf(f, "%d", &adj_value) == 1 && adj_value == 400, "oom_score_adj %d", adj_value);
  if (f) fclose(f);
  EXPECT(prctl(PR_GET_TIMERSLACK) == 123456, "timer slack %d", prctl(PR_GET_TIMERSLACK));
  EXPECT(syscall(SYS_ioprio_get, 1, 0) == kIdIoprio, "ioprio 0x%lx", syscall(SYS_ioprio_get, 1, 0));
  EXPECT(prctl(PR_GET_THP_DISABLE, 0, 0, 0, 0) == 1, "THP enabled again");
  EXPECT(syscall(SYS_membarrier, MEMBARRIER_CMD_PRIVATE_EXPEDITED, 0, 0) == 0,
         "membarrier registration lost: %m");
  EXPECT(prctl(PR_GET_DUMPABLE) == 0, "dumpable again");
  EXPECT(prctl(PR_GET_NO_NEW_PRIVS, 0, 0, 0, 0) == 1, "no_new_privs lost");
  EXPECT(prctl(PR_GET_SECUREBITS) == (SECBIT_KEEP_CAPS | SECBIT_NOROOT), "securebits 0x%x",
         prctl(PR_GET_SECUREBITS));
  uid_t ru, eu, su;
  gid_t rg, eg, sg;
  getresuid(&ru, &eu, &su);
  getresgid(&rg, &eg, &sg);
  EXPECT(ru == 65534 && eu == 65534 && su == 65534, "uids %u %u %u", ru, eu, su);
  EXPECT(rg == 100 && eg == 100 && sg == 100, "gids %u %u %u", rg, eg, sg);
  gid_t got[8];
  int n = getgroups(8, got);
  EXPECT(n == 2 && got[0] == 4 && got[1] == 24, "%d supplementary groups", n);
  uint64_t eff, prm, inh;
  CapGet(&eff, &prm, &inh);
  EXPECT(
      prm == kIdPermitted && eff == Cap(CAP_NET_BIND_SERVICE) && inh == Cap(CAP_NET_BIND_SERVICE),
      "capabilities eff %lx prm %lx inh %lx", eff, prm, inh);
  EXPECT(prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_IS_SET, CAP_NET_BIND_SERVICE, 0, 0) == 1,
         "ambient capability lost");
  EXPECT(prctl(PR_CAPBSET_READ, CAP_SYS_MODULE) == 0, "CAP_SYS_MODULE back in the bounding set");
  int fl = fcntl(p[0], F_GETFL);
  EXPECT(fl >= 0 && (fl & O_NONBLOCK) && (fl & O_ASYNC), "pipe flags 0%o", fl);
  EXPECT(fcntl(p[0], F_GETOWN) == getpid(), "pipe owner %d", fcntl(p[0], F_GETOWN));
  EXPECT(fcntl(p[0], F_GETSIG) == SIGRTMIN + 3, "pipe signal %d", fcntl(p[0], F_GETSIG));
  char buf[4] = {};
  EXPECT(read(p[0], buf, 4) == 3 && !memcmp(buf, "abc", 3), "pipe data");
  EXPECT(read(p[0], buf, 4) < 0 && errno == EAGAIN, "an empty pipe blocks");
  EXPECT(wipe[0] == 'w' && nodump[0] == 'd', "advised memory lost its contents");
  pid_t wiped = fork();  // MADV_WIPEONFORK: the child sees zeros
  if (wiped == 0) _exit(wipe[0] == 0 && wipe[kAdvised - 1] == 0 && nodump[0] == 'd' ? 0 : 1);
  int ws = 0;
  EXPECT(waitpid(wiped, &ws, 0) == wiped && WIFEXITED(ws) && WEXITSTATUS(ws) == 0,
         "MADV_WIPEONFORK lost: a child saw the parent's data");
  pthread_join(th, nullptr);
  if (!g_id_thread_failures.empty()) Fail("%s", g_id_thread_failures.c_str());
  close(go[1]);
  int st;
  EXPECT(waitpid(child, &st, 0) == child && WIFEXITED(st) && WEXITSTATUS(st) == 0,
         "the child's parent-death signal: status 0x%x", st);
  Report();
}

// ptimers: POSIX timers with a gap in their IDs (timer 1 deleted): a
// periodic one signalling the process with a value, a periodic one
// signalling one thread (SIGEV_THREAD_ID), an unsignalled one far in the
// future (SIGEV_NONE), and a disarmed one.
std::atomic<int> g_pt_process_ticks{0}, g_pt_thread_ticks{0};
std::atomic<pid_t> g_pt_thread_tid{0};
volatile sig_atomic_t g_pt_bad_value = 0;

void OnProcessTimer(int, siginfo_t* si, void*) {
  if (si->si_value.sival_int != 0x5151) g_pt_bad_value = 1;
  g_pt_process_ticks++;
}
void OnThreadTimer(int, siginfo_t*, void*) {
  if (gettid() == g_pt_thread_tid) g_pt_thread_ticks++;
}

void* PtimerThread(void*) {
  sigset_t usr1;
  sigemptyset(&usr1);
  sigaddset(&usr1, SIGUSR1);
  sigaddset(&usr1, SIGRTMIN + 4);
  pthread_sigmask(SIG_BLOCK, &usr1, nullptr);
  g_pt_thread_tid = gettid();
  for (;;) pause();
}

int Ptimers() {
  InstallCheckHandler();
  struct sigaction sa {};
  sa.sa_flags = SA_SIGINFO | SA_RESTART;
  sa.sa_sigaction = OnProcessTimer;
  sigaction(SIGRTMIN + 4, &sa, nullptr);
  sa.sa_sigaction = OnThreadTimer;
  sigaction(SIGRTMIN + 5, &sa, nullptr);
  sigset_t main_mask;  // the thread's timer signal is only the thread's
  sigemptyset(&main_mask);
  sigaddset(&main_mask, SIGRTMIN + 5);
  pthread_t th;
  pthread_create(&th, nullptr, PtimerThread, nullptr);
  pthread_sigmask(SIG_BLOCK, &main_mask, nullptr);
  while (!g_pt_thread_tid) usleep(1000);
  auto make = [](clockid_t clock, int notify, int sig, int value, pid_t tid) {
    sigevent sev{};
    sev.sigev_notify = notify;
    sev.sigev_signo = sig;
    sev.sigev_value.sival_int = value;
    sev._sigev_un._tid = tid;
    timer_t t{};
    if (syscall(SYS_timer_create, clock, &sev, &t) < 0) Fail("timer_create: %m");
    return t;
  };
  timer_t t0 = make(CLOCK_MONOTONIC, SIGEV_SIGNAL, SIGRTMIN + 4, 0x5151, 0);
  timer_t gap = make(CLOCK_MONOTONIC, SIGEV_NONE, 0, 0, 0);
  timer_t t2 =
      make(CLOCK_MONOTONIC, SIGEV_THREAD_ID | SIGEV_SIGNAL, SIGRTMIN + 5, 0, g_pt_thread_tid);
  timer_t t3 = make(CLOCK_REALTIME, SIGEV_NONE, 0, 0, 0);
  timer_t t4 = make(CLOCK_BOOTTIME, SIGEV_SIGNAL, SIGRTMIN + 4, 0x5151, 0);
  syscall(SYS_timer_delete, gap);
  itimerspec every{{0, 20000000}, {0, 20000000}}, far{{0, 0}, {100, 0}};
  syscall(SYS_timer_settime, t0, 0, &every, nullptr);
  syscall(SYS_timer_settime, t2, 0, &every, nullptr);
  syscall(SYS_timer_settime, t3, 0, &far, nullptr);
  while (g_pt_process_ticks < 3 || g_pt_thread_ticks < 3) usleep(5000);
  Ready();
  WaitForCheck();
  int p0 = g_pt_process_ticks, t0ticks = g_pt_thread_ticks;
  for (int i = 0; i < 200 && (g_pt_process_ticks < p0 + 3 || g_pt_thread_ticks < t0ticks + 3); i++)
    usleep(10000);
  EXPECT(g_pt_process_ticks >= p0 + 3, "the process timer stopped (%d ticks)",
         int(g_pt_process_ticks));
  EXPECT(g_pt_thread_ticks >= t0ticks + 3, "the thread's timer stopped (%d ticks)",
         int(g_pt_thread_ticks));
  EXPECT(!g_pt_bad_value, "a timer signal came with another value");
  itimerspec cur{};
  EXPECT(syscall(SYS_timer_gettime, t0, &cur) == 0 && cur.it_interval.tv_nsec == 20000000,
         "timer 0: %m, interval %ld", cur.it_interval.tv_nsec);
  EXPECT(syscall(SYS_timer_gettime, t3, &cur) == 0 && cur.it_value.tv_sec <= 100 &&
             cur.it_value.tv_sec >= 80,
         "timer 3: %m, %ld s left", cur.it_value.tv_sec);
  EXPECT(syscall(SYS_timer_gettime, t4, &cur) == 0 && !cur.it_value.tv_sec && !cur.it_value.tv_nsec,
         "timer 4 is not the disarmed one: %m");
  EXPECT(syscall(SYS_timer_gettime, gap, &cur) < 0 && errno == EINVAL, "the deleted timer is back");
  Report();
}

// refuse --what X: holds one thing criu-lite does not carry, so that a dump
// must refuse it and leave the process as it was; the check verifies the
// thing is still there (the lock still held, the fd still in flight...).
int Refuse(const std::string& what) {
  InstallCheckHandler();
  std::string path = g_dir + "/locked";
  int fd = open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
  if (fd < 0) return 2;
  std::function<void()> check = [] {};
  auto lock_probe = [path](int cmd, short type) {
    // Another description of the file asks whether the lock is still held.
    int other = open(path.c_str(), O_RDWR | O_CLOEXEC);
    struct flock l {};
    l.l_type = type;
    l.l_whence = SEEK_SET;
    bool held = fcntl(other, cmd, &l) == 0 && l.l_type != F_UNLCK;
    close(other);
    return held;
  };
  if (what == "flock") {
    if (flock(fd, LOCK_EX) < 0) return 2;
    check = [path] {
      int other = open(path.c_str(), O_RDWR | O_CLOEXEC);
      EXPECT(flock(other, LOCK_EX | LOCK_NB) < 0 && errno == EWOULDBLOCK, "the flock was lost");
      close(other);
    };
  } else if (what == "posix-lock" || what == "ofd-lock") {
    bool ofd = what == "ofd-lock";
    struct flock l {};
    l.l_type = F_WRLCK;
    l.l_whence = SEEK_SET;
    l.l_len = 10;
    if (fcntl(fd, ofd ? F_OFD_SETLK : F_SETLK, &l) < 0) return 2;
    // A POSIX lock is the process's own: only a child can see it.
    check = [=] {
      if (ofd) {
        EXPECT(lock_probe(F_OFD_GETLK, F_WRLCK), "the OFD lock was lost");
        return;
      }
      pid_t c = fork();
      if (c == 0) _exit(lock_probe(F_GETLK, F_WRLCK) ? 0 : 1);
      int st;
      EXPECT(waitpid(c, &st, 0) == c && WIFEXITED(st) && WEXITSTATUS(st) == 0,
             "the POSIX lock was lost");
    };
  } else if (what == "lease") {
    close(fd);  // a read lease needs the file open for reading only
    int ro = open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fcntl(ro, F_SETLEASE, F_RDLCK) < 0) return 2;
    check = [ro] { EXPECT(fcntl(ro, F_GETLEASE) == F_RDLCK, "the lease was lost"); };
  } else if (what == "scm-rights") {
    int sv[2];
    if (socketpair(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0, sv) < 0) return 2;
    alignas(cmsghdr) char control[CMSG_SPACE(sizeof(int))] = {};
    char byte = 'x';
    iovec iov{&byte, 1};
    msghdr msg{};
    msg.msg_iov = &iov;
    msg.msg_iovlen = 1;
    msg.msg_control = control;
    msg.msg_controllen = sizeof control;
    cmsghdr* c = CMSG_FIRSTHDR(&msg);
    c->cmsg_level = SOL_SOCKET;
    c->cmsg_type = SCM_RIGHTS;
    c->cmsg_len = CMSG_LEN(sizeof(int));
    memcpy(CMSG_DATA(c), &fd, sizeof fd);
    if (sendmsg(sv[0], &msg, 0) != 1) return 2;
    check = [sv] {
      alignas(cmsghdr) char in[CMSG_SPACE(sizeof(int))] = {};
      char b = 0;
      iovec v{&b, 1};
      msghdr m{};
      m.msg_iov = &v;
      m.msg_iovlen = 1;
      m.msg_control = in;
      m.msg_controllen = sizeof in;
      bool got = recvmsg(sv[1], &m, MSG_DONTWAIT) == 1 && CMSG_FIRSTHDR(&m) &&
                 CMSG_FIRSTHDR(&m)->cmsg_type == SCM_RIGHTS;
      EXPECT(got && b == 'x', "the fd in flight was lost");
    };
  } else if (what == "shutdown") {
    int sv[2];
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0) return 2;
    shutdown(sv[0], SHUT_WR);
    check = [sv] {
      char b;
      EXPECT(recv(sv[1], &b, 1, MSG_DONTWAIT) == 0, "the peer's end is no longer shut down");
    };
  } else if (what == "clone-files") {
    pid_t c = syscall(SYS_clone, CLONE_FILES | SIGCHLD, 0, 0, 0, 0);
    if (c == 0) {
      for (;;) pause();
    }
    check = [c] { EXPECT(kill(c, SIGKILL) == 0 && waitpid(c, nullptr, 0) == c, "child gone"); };
  } else if (what == "seccomp-notify") {
    // A filter that hands uname() to a supervisor; the listener stays here.
    sock_filter insns[] = {BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(seccomp_data, nr)),
                           BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, SYS_uname, 0, 1),
                           BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_USER_NOTIF),
                           BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW)};
    sock_fprog prog{4, insns};
    int listener =
        syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, SECCOMP_FILTER_FLAG_NEW_LISTENER, &prog);
    if (listener < 0) return 2;
    check = [] { EXPECT(prctl(PR_GET_SECCOMP) == 2, "the seccomp filter is gone"); };
  } else if (what == "uts-namespace" || what == "mount-namespace") {
    bool uts = what == "uts-namespace";
    if (unshare(uts ? CLONE_NEWUTS : CLONE_NEWNS) < 0) return 2;
    if (uts && sethostname("crl-refused", 11) < 0) return 2;
    std::string mnt = g_dir + "/mnt";  // a tmpfs only this namespace sees
    if (!uts && (mkdir(mnt.c_str(), 0755) < 0 ||
                 mount(nullptr, "/", nullptr, MS_REC | MS_PRIVATE, nullptr) < 0 ||
                 mount("crl", mnt.c_str(), "tmpfs", 0, nullptr) < 0))
      return 2;
    check = [uts, mnt] {
      char host[64] = {};
      gethostname(host, sizeof host);
      if (uts) EXPECT(std::string(host) == "crl-refused", "hostname is %s", host);
      struct statfs fs {};
      if (!uts) EXPECT(statfs(mnt.c_str(), &fs) == 0 && fs.f_type == TMPFS_MAGIC, "no tmpfs");
    };
  } else if (what == "shared-twice") {
    // One shared anonymous object at two addresses of one process.
    auto* a = static_cast<char*>(
        mmap(nullptr, 4096, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0));
    auto* b = static_cast<char*>(mremap(a, 0, 4096, MREMAP_MAYMOVE));
    if (b == MAP_FAILED) return 2;
    a[0] = 'a';
    check = [a, b] {
      b[0] = 'b';
      EXPECT(a[0] == 'b', "the two mappings are no longer one object");
    };
  } else if (what == "shared-split") {
    // As zdtm's maps01: a child keeps the whole shared object, the parent
    // punches a hole in its own mapping of it (two mappings now).
    auto* m = static_cast<char*>(
        mmap(nullptr, 4 * 4096, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0));
    pid_t c = fork();
    if (c == 0) {
      for (;;) pause();
    }
    munmap(m + 4096, 4096);
    m[3 * 4096] = 'p';
    check = [c, m] {
      EXPECT(m[3 * 4096] == 'p', "the shared page changed");
      EXPECT(kill(c, SIGKILL) == 0 && waitpid(c, nullptr, 0) == c, "child gone");
    };
  } else if (what == "droppable") {
    void* d = mmap(nullptr, 4096, PROT_READ | PROT_WRITE, 0x08 /* MAP_DROPPABLE */ | MAP_ANONYMOUS,
                   -1, 0);
    if (d == MAP_FAILED) WriteFile("unsupported", "no MAP_DROPPABLE on this kernel (6.11+)");
    check = [] {};
  } else if (what == "guard-region") {
    auto* p = static_cast<char*>(
        mmap(nullptr, 3 * 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0));
    p[0] = 1;
    if (madvise(p + 4096, 4096, 102 /* MADV_GUARD_INSTALL */) < 0)
      WriteFile("unsupported", "no MADV_GUARD_INSTALL on this kernel (6.13+)");
    check = [] {};
  } else {
    fprintf(stderr, "refuse: unknown --what %s\n", what.c_str());
    return 2;
  }
  Ready();
  WaitForCheck();
  check();
  Report();
}

// jobs: what a parent's waitid() sees of its children: one stopped by
// SIGTSTP (not SIGSTOP), a zombie in a process group whose leader has exited
// (made with CLONE_PARENT by that leader), and a zombie that led a session.
int Jobs() {
  InstallCheckHandler();
  pid_t leader = fork();
  if (leader == 0) {
    setpgid(0, 0);
    pid_t z = syscall(SYS_clone, CLONE_PARENT | SIGCHLD, 0, 0, 0, 0);
    if (z == 0) _exit(7);
    _exit(z > 0 ? 0 : 1);
  }
  int st = 0;
  waitpid(leader, &st, 0);
  if (!WIFEXITED(st) || WEXITSTATUS(st)) return 2;
  pid_t stopped = fork();
  if (stopped == 0) {
    setpgid(0, 0);
    for (;;) pause();
  }
  setpgid(stopped, stopped);
  pid_t session = fork();
  if (session == 0) {
    setsid();
    _exit(3);
  }
  kill(stopped, SIGTSTP);
  siginfo_t si{};
  if (waitid(P_PID, stopped, &si, WSTOPPED | WNOWAIT) < 0 || si.si_status != SIGTSTP) return 2;
  // The zombie of the leader's child: the one exited child left unreaped.
  pid_t zombie = -1;
  for (int i = 0; i < 500 && zombie < 0; i++) {
    siginfo_t w{};
    if (waitid(P_PGID, leader, &w, WEXITED | WNOWAIT | WNOHANG) == 0 && w.si_pid > 0)
      zombie = w.si_pid;
    else
      usleep(10000);
  }
  if (zombie < 0) return 2;
  siginfo_t sw{};
  while (waitid(P_PID, session, &sw, WEXITED | WNOWAIT) < 0 && errno == EINTR) {
  }
  Ready();
  WaitForCheck();
  siginfo_t w{};
  EXPECT(waitid(P_PID, stopped, &w, WSTOPPED | WNOWAIT) == 0 && w.si_code == CLD_STOPPED &&
             w.si_status == SIGTSTP,
         "stopped child: code %d status %d (not stopped by SIGTSTP)", w.si_code, w.si_status);
  EXPECT(waitid(P_PID, zombie, &w, WEXITED | WNOWAIT) == 0 && w.si_status == 7, "zombie: status %d",
         w.si_status);
  EXPECT(getpgid(zombie) == leader, "zombie in group %d, not %d", getpgid(zombie), leader);
  EXPECT(waitid(P_PID, session, &w, WEXITED | WNOWAIT) == 0 && w.si_status == 3,
         "session zombie: status %d", w.si_status);
  EXPECT(getsid(session) == session, "zombie in session %d, not its own", getsid(session));
  kill(stopped, SIGKILL);
  waitpid(stopped, nullptr, 0);
  waitpid(zombie, nullptr, 0);
  waitpid(session, nullptr, 0);
  Report();
}

// seccomp: two filters; the first installed with TSYNC (so the helper thread
// shares it) makes getpgrp() fail with EACCES, the second, the main thread's
// alone and logged, makes getsid() fail with ENOTSUP. --what strict: strict
// mode instead, blocked in read(); the check signal makes it exit(0) (the
// only way out strict mode leaves).
int InstallDenyFilter(long nr, int err, unsigned flags) {
  sock_filter insns[] = {BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(seccomp_data, nr)),
                         BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, static_cast<uint32_t>(nr), 0, 1),
                         BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | static_cast<uint32_t>(err)),
                         BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW)};
  sock_fprog prog{4, insns};
  return syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, flags, &prog);
}

std::atomic<int> g_sc_thread_ready{0};
std::string g_sc_thread_failures;

void* SeccompThread(void*) {
  sigset_t usr1;
  sigemptyset(&usr1);
  sigaddset(&usr1, SIGUSR1);
  pthread_sigmask(SIG_BLOCK, &usr1, nullptr);
  g_sc_thread_ready = 1;
  while (!g_check) usleep(20000);
  if (!(syscall(SYS_getpgrp) < 0 && errno == EACCES)) g_sc_thread_failures += "thread getpgrp; ";
  if (syscall(SYS_getsid, 0) < 0) g_sc_thread_failures += "thread getsid filtered; ";
  return nullptr;
}

int Seccomp(const std::string& what) {
  InstallCheckHandler();
  if (what == "strict") {
    int p[2];
    if (pipe(p) < 0) return 2;
    Ready();
    if (prctl(PR_SET_SECCOMP, SECCOMP_MODE_STRICT) < 0) return 2;
    char c;
    while (!g_check) read(p[0], &c, 1);
    syscall(SYS_exit, 0);
  }
  pthread_t th;
  pthread_create(&th, nullptr, SeccompThread, nullptr);
  while (!g_sc_thread_ready) usleep(1000);
  if (InstallDenyFilter(SYS_getpgrp, EACCES, SECCOMP_FILTER_FLAG_TSYNC) != 0 ||
      InstallDenyFilter(SYS_getsid, ENOTSUP, SECCOMP_FILTER_FLAG_LOG) != 0)
    return 2;
  Ready();
  WaitForCheck();
  EXPECT(prctl(PR_GET_SECCOMP) == 2, "seccomp mode %d", prctl(PR_GET_SECCOMP));
  EXPECT(syscall(SYS_getpgrp) < 0 && errno == EACCES, "getpgrp is no longer filtered");
  EXPECT(syscall(SYS_getsid, 0) < 0 && errno == ENOTSUP, "getsid is no longer filtered");
  pthread_join(th, nullptr);
  if (!g_sc_thread_failures.empty()) Fail("%s", g_sc_thread_failures.c_str());
  Report();
}

int Counter() {
  InstallCheckHandler();
  const size_t kLen = 256 << 20;
  auto* mem = static_cast<uint64_t*>(
      mmap(nullptr, kLen, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0));
  Fill(mem, kLen, 42);
  uint64_t n = 0;
  Ready();
  for (;;) {
    printf("counter %lu, pid %d, memory %s\n", n++, getpid(),
           Verify(mem, kLen, 42) ? "intact" : "CORRUPT");
    fflush(stdout);
    if (g_check) {
      EXPECT(Verify(mem, kLen, 42), "memory corrupt");
      Report();
    }
    sleep(1);
  }
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) {
    fprintf(stderr, "usage: workload SCENARIO --dir DIR [--big-mib N] [--sparse] [--secs S]\n");
    return 2;
  }
  std::string scenario = argv[1];
  long big_mib = 0;
  bool sparse = false;
  double secs = 2;
  std::string what;
  int procs = 50, threads = 4, rate = 64;
  bool procs_set = false, threads_set = false;
  for (int i = 2; i < argc; i++) {
    std::string a = argv[i];
    if (a == "--dir" && i + 1 < argc)
      g_dir = argv[++i];
    else if (a == "--big-mib" && i + 1 < argc)
      big_mib = atol(argv[++i]);
    else if (a == "--sparse")
      sparse = true;
    else if (a == "--secs" && i + 1 < argc)
      secs = atof(argv[++i]);
    else if (a == "--procs" && i + 1 < argc)
      procs = atoi(argv[++i]), procs_set = true;
    else if (a == "--threads" && i + 1 < argc)
      threads = atoi(argv[++i]), threads_set = true;
    else if (a == "--rate" && i + 1 < argc)
      rate = atoi(argv[++i]);
    else if (a == "--what" && i + 1 < argc)
      what = argv[++i];
    else if (a == "--loginuid" && i + 1 < argc) {
      // Only a process itself may set its loginuid.
      FILE* f = fopen("/proc/self/loginuid", "we");
      if (!f || fputs(argv[++i], f) < 0 || fclose(f) != 0) return 2;
    }
  }
  if (g_dir.empty()) g_dir = ".";
  // Whatever the launcher left open (pipes of a test runner, say) is not ours.
  for (int fd = 3; fd < 1024; fd++) close(fd);
  if (scenario == "memory") return Memory(big_mib, sparse);
  if (scenario == "fpu") return Fpu();
  if (scenario == "files") return Files();
  if (scenario == "signals") return Signals();
  if (scenario == "altstack") return Altstack();
  if (scenario == "itimer") return Itimer();
  if (scenario == "nanosleep") return Nanosleep(secs);
  if (scenario == "read") return ReadStdin();
  if (scenario == "futex") return Futex();
  if (scenario == "threads") return Threads();
  if (scenario == "tree") return Tree();
  if (scenario == "cow") return Cow(big_mib > 0 ? big_mib : 256);
  if (scenario == "shmem") return Shmem();
  if (scenario == "forker") return Forker();
  if (scenario == "dirtier")
    return DirtierMain(big_mib > 0 ? big_mib : 64, threads_set ? threads : 1, rate,
                       procs_set ? procs : 1);
  if (scenario == "pipeline") return Pipeline();
  if (scenario == "memfd") return Memfd();
  if (scenario == "sockets") return Sockets();
  if (scenario == "timerfd") return Timerfd();
  if (scenario == "forest") return Forest(procs, threads, big_mib > 0 ? big_mib : 20);
  if (scenario == "counter") return Counter();
  if (scenario == "identity") return Identity();
  if (scenario == "ptimers") return Ptimers();
  if (scenario == "jobs") return Jobs();
  if (scenario == "seccomp") return Seccomp(what);
  if (scenario == "refuse") return Refuse(what);
  if (scenario == "reaper") {
    // PID 1 of a test host's PID namespace: reaps whatever is reparented to it.
    // Without children waitpid() fails at once: look again soon (a process
    // orphaned meanwhile would stay a zombie until then).
    for (;;)
      if (waitpid(-1, nullptr, 0) < 0) usleep(10000);
  }
  if (scenario == "hold") return Hold(big_mib > 0 ? big_mib : 1024);
  if (scenario == "vmas") return Vmas(procs > 0 ? procs : 50);
  if (scenario == "lazy") return Lazy(big_mib > 0 ? big_mib : 64);
  fprintf(stderr, "workload: unknown scenario %s\n", scenario.c_str());
  return 2;
}
