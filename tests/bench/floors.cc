// This machine's floors for the checkpoint/restore benchmark:
//   floors write DIR MIB   time to write MIB MiB from memory to a file in DIR
//                          (what a dump cannot beat)
//   floors read DIR MIB    time to fill MIB MiB of fresh anonymous memory from
//                          that file (what a restore cannot beat)
//   floors splice DIR MIB  the same written with vmsplice into a pipe and
//                          splice from it into the file: no copy through a
//                          buffer of the writer's (CRIU's way; the lower floor)
//   floors copy DIR MIB    time to copy MIB MiB from memory to memory already
//                          touched (memory bandwidth; DIR unused)
//   floors touch DIR MIB   time to write one byte to each page of MIB MiB of
//                          fresh anonymous memory (the kernel's page faults and
//                          zeroing, which every restore pays; DIR unused)
// Prints the seconds taken.
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/uio.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>

int main(int argc, char** argv) {
  if (argc != 4) {
    fprintf(stderr, "usage: floors write|read DIR MIB\n");
    return 2;
  }
  std::string mode = argv[1], path = std::string(argv[2]) + "/floor.dat";
  size_t len = static_cast<size_t>(atol(argv[3])) << 20;
  const size_t kChunk = 4 << 20;  // criu-lite writes 4 MiB batches too
  if (mode == "copy" || mode == "touch") {
    auto* from = static_cast<char*>(
        mmap(nullptr, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0));
    auto* to = static_cast<char*>(
        mmap(nullptr, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0));
    if (from == MAP_FAILED || to == MAP_FAILED) return 1;
    auto t0 = std::chrono::steady_clock::now();
    if (mode == "touch") {
      for (size_t off = 0; off < len; off += 4096) to[off] = 1;
    } else {
      memset(from, 7, len);
      memset(to, 0, len);
      t0 = std::chrono::steady_clock::now();
      memcpy(to, from, len);
    }
    printf("%.4f\n", std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
    return to[len - 4096] == 0;
  }
  if (mode == "write" || mode == "splice") {
    auto* mem = static_cast<uint64_t*>(
        mmap(nullptr, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0));
    uint64_t x = 88172645463325252ull;
    for (size_t i = 0; i < len / 8; i++) {
      x ^= x << 13, x ^= x >> 7, x ^= x << 17;
      mem[i] = x;
    }
    auto t0 = std::chrono::steady_clock::now();
    int fd = open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
    if (mode == "write") {
      for (size_t off = 0; off < len; off += kChunk)
        if (write(fd, reinterpret_cast<char*>(mem) + off, kChunk) != static_cast<ssize_t>(kChunk))
          return 1;
    } else {
      int p[2];
      if (pipe(p) < 0) return 1;
      fcntl(p[1], F_SETPIPE_SZ, 1 << 20);  // pipe-max-size, without CAP_SYS_RESOURCE
      size_t piece = static_cast<size_t>(fcntl(p[1], F_GETPIPE_SZ));
      for (size_t off = 0; off < len; off += piece) {
        iovec iov{reinterpret_cast<char*>(mem) + off, std::min(piece, len - off)};
        ssize_t n = vmsplice(p[1], &iov, 1, 0);
        if (n <= 0) return 1;
        while (n > 0) {
          ssize_t m = splice(p[0], nullptr, fd, nullptr, n, SPLICE_F_MOVE);
          if (m <= 0) return 1;
          n -= m;
        }
      }
    }
    close(fd);
    printf("%.4f\n", std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
    return 0;
  }
  auto t0 = std::chrono::steady_clock::now();
  char* mem = static_cast<char*>(
      mmap(nullptr, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0));
  int fd = open(path.c_str(), O_RDONLY);
  size_t done = 0;
  while (done < len) {
    ssize_t n = read(fd, mem + done, len - done);
    if (n <= 0) return 1;
    done += n;
  }
  close(fd);
  printf("%.4f\n", std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
  unlink(path.c_str());
  return 0;
}
