// Memory: its kinds of mapping, COW between processes, shared anonymous
// memory, pages written all the time (pre-copy), large and lazy memory.
#include "test-containers/workload/workload.h"

namespace wl {

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

// ---- thp: memory in transparent huge pages, and how fast it is read ---------------
// --big-mib M MiB, 2 MiB aligned, filled, then collapsed into huge pages
// (MADV_COLLAPSE, as khugepaged would, with no MADV_HUGEPAGE on the mapping:
// a fault there gives small pages). It writes how much of the region is in
// huge pages to DIR/huge-before and, at the check, DIR/huge-after. The check
// fails if the region's bytes differ, or if less of it is in huge pages than
// before. --what time (the benchmark): no such check; instead it times a
// memory-bound loop (dependent random reads, each likely a TLB miss with
// small pages) before Ready and after the check, into DIR/loop-before and
// DIR/loop-after.
namespace {

// KiB of [P, P+LEN) in huge pages: AnonHugePages of the smaps entry at P.
long HugeKib(const void* p) {
  FILE* f = fopen("/proc/self/smaps", "re");
  if (!f) return -1;
  char line[512];
  bool in = false;
  long kib = -1;
  while (fgets(line, sizeof line, f)) {
    unsigned long start, end;
    if (sscanf(line, "%lx-%lx ", &start, &end) == 2) {  // an entry's first line
      in = start == reinterpret_cast<uintptr_t>(p);
      continue;
    }
    if (in && sscanf(line, "AnonHugePages: %ld kB", &kib) == 1) break;
  }
  fclose(f);
  return kib;
}

volatile uint64_t g_loop_sum;  // so that the loop is not optimized away

double OneLoop(const uint64_t* words, size_t n) {
  auto t0 = std::chrono::steady_clock::now();
  // Each read's address depends on the word read before: the reads wait on
  // one another, as a pointer chase does, so each one's TLB miss counts.
  uint64_t x = 1, sum = 0;
  for (int i = 0; i < 2000000; i++) {
    x = x * 6364136223846793005ull + 1442695040888963407ull + (sum & 1);
    sum += words[(x >> 17) % n];
  }
  double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  g_loop_sum = sum;
  return s;
}

// The best of five: the machine's other work only ever adds.
double LoopSeconds(const uint64_t* words, size_t n) {
  double best = 1e9;
  for (int i = 0; i < 5; i++) best = std::min(best, OneLoop(words, n));
  return best;
}

}  // namespace

int Thp(long mib, const std::string& what) {
  constexpr size_t kHuge = 2 << 20;
  size_t len = static_cast<size_t>(mib) << 20;
  auto* raw = static_cast<char*>(
      mmap(nullptr, len + kHuge, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0));
  if (raw == MAP_FAILED) return 2;
  char* mem =
      reinterpret_cast<char*>((reinterpret_cast<uintptr_t>(raw) + kHuge - 1) & ~(kHuge - 1));
  // Its own mapping, so that smaps shows the region alone.
  if (mem > raw) munmap(raw, mem - raw);
  munmap(mem + len, raw + kHuge - mem);
  Fill(mem, len, 55);
  if (madvise(mem, len, 25 /* MADV_COLLAPSE */) != 0) {
    WriteFile("skip", Format2("MADV_COLLAPSE: %s", strerror(errno)));
    return 3;
  }
  bool time = what == "time";
  auto* words = reinterpret_cast<uint64_t*>(mem);
  long before = HugeKib(mem);
  WriteFile("huge-before", std::to_string(before));
  if (time) WriteFile("loop-before", Format2("%.3f", LoopSeconds(words, len / 8)));
  InstallCheckHandler();
  Ready();
  WaitForCheck();
  long after = HugeKib(mem);
  WriteFile("huge-after", std::to_string(after));
  if (time) WriteFile("loop-after", Format2("%.3f", LoopSeconds(words, len / 8)));
  EXPECT(Verify(mem, len, 55), "the %ld MiB region differs", mib);
  if (!time)
    EXPECT(after >= before, "%ld KiB of the region in huge pages, %ld before", after, before);
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

}  // namespace wl
