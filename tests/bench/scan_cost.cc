// The cost of finding written pages, on GIB GiB of populated memory with
// 1% of its pages written since the last pass:
//   PAGEMAP_SCAN (PAGE_IS_WRITTEN + PM_SCAN_WP_MATCHING) over uffd-wp async
//   tracking, as criu-lite does, against reading the whole of
//   /proc/PID/pagemap (8 bytes a page), what a soft-dirty tool must do.
// Prints: GiB, written pages found, scan ms, pagemap read ms, ratio (medians of 5).
#include <fcntl.h>
#include <linux/userfaultfd.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <vector>

#include "kernel/uapi.h"

namespace {

double Ms(std::chrono::steady_clock::time_point a) {
  return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - a).count();
}

double Median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

}  // namespace

int main(int argc, char** argv) {
  long gib = argc > 1 ? atol(argv[1]) : 1;
  size_t len = static_cast<size_t>(gib) << 30, pages = len / 4096;
  char* mem = static_cast<char*>(mmap(nullptr, len, PROT_READ | PROT_WRITE,
                                      MAP_PRIVATE | MAP_ANONYMOUS | MAP_POPULATE, -1, 0));
  if (mem == MAP_FAILED) return perror("mmap"), 1;
  madvise(mem, len, MADV_NOHUGEPAGE);
  for (size_t i = 0; i < pages; i++) mem[i * 4096] = 1;
  int uffd = syscall(SYS_userfaultfd, O_CLOEXEC | O_NONBLOCK);
  uffdio_api api{UFFD_API, UFFD_FEATURE_WP_ASYNC, 0};
  if (uffd < 0 || ioctl(uffd, UFFDIO_API, &api) < 0) return perror("userfaultfd"), 1;
  uffdio_register reg{};
  reg.range = {reinterpret_cast<uint64_t>(mem), len};
  reg.mode = UFFDIO_REGISTER_MODE_WP;
  if (ioctl(uffd, UFFDIO_REGISTER, &reg) < 0) return perror("UFFDIO_REGISTER"), 1;
  uffdio_writeprotect wp{reg.range, UFFDIO_WRITEPROTECT_MODE_WP};
  if (ioctl(uffd, UFFDIO_WRITEPROTECT, &wp) < 0) return perror("UFFDIO_WRITEPROTECT"), 1;
  int pm = open("/proc/self/pagemap", O_RDONLY);
  std::vector<page_region> vec(4096);
  std::vector<uint64_t> entries(65536);
  std::vector<double> scan_ms, read_ms;
  uint64_t found = 0, x = 12345;
  for (int rep = 0; rep < 5; rep++) {
    for (size_t k = 0; k < pages / 100; k++) {  // write 1% of the pages
      x = x * 6364136223846793005ull + 1442695040888963407ull;
      mem[(x >> 20) % pages * 4096] = 2;
    }
    auto t0 = std::chrono::steady_clock::now();
    found = 0;
    for (uint64_t pos = reg.range.start; pos < reg.range.start + len;) {
      pm_scan_arg arg{};
      arg.size = sizeof arg;
      arg.flags = PM_SCAN_WP_MATCHING | PM_SCAN_CHECK_WPASYNC;
      arg.start = pos;
      arg.end = reg.range.start + len;
      arg.vec = reinterpret_cast<uint64_t>(vec.data());
      arg.vec_len = vec.size();
      arg.category_mask = PAGE_IS_WRITTEN;
      arg.return_mask = PAGE_IS_WRITTEN;
      long n = ioctl(pm, PAGEMAP_SCAN, &arg);
      if (n < 0) return perror("PAGEMAP_SCAN"), 1;
      for (long i = 0; i < n; i++) found += (vec[i].end - vec[i].start) / 4096;
      if (arg.walk_end <= pos) break;
      pos = arg.walk_end;
    }
    scan_ms.push_back(Ms(t0));
    t0 = std::chrono::steady_clock::now();
    uint64_t dirty = 0;
    for (size_t p = 0; p < pages; p += entries.size()) {
      size_t n = std::min(entries.size(), pages - p);
      if (pread(pm, entries.data(), n * 8, (reinterpret_cast<uint64_t>(mem) / 4096 + p) * 8) !=
          static_cast<ssize_t>(n * 8))
        return perror("pread pagemap"), 1;
      for (size_t i = 0; i < n; i++) dirty += (entries[i] >> 55) & 1;
    }
    read_ms.push_back(Ms(t0));
    (void)dirty;
  }
  double s = Median(scan_ms), r = Median(read_ms);
  printf(
      "%4ld GiB  %8lu written pages found  PAGEMAP_SCAN %8.2f ms  full pagemap read %8.2f ms  "
      "%6.1fx less\n",
      gib, found, s, r, r / s);
  return 0;
}
