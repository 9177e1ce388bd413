// This machine's floors for the checkpoint/restore benchmark:
//   floors write DIR MIB   time to write MIB MiB from memory to a file in DIR
//                          (what a dump cannot beat)
//   floors read DIR MIB    time to fill MIB MiB of fresh anonymous memory from
//                          that file (what a restore cannot beat)
// Prints the seconds taken.
#include <fcntl.h>
#include <sys/mman.h>
#include <unistd.h>

#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>

int main(int argc, char** argv) {
  if (argc != 4) {
    fprintf(stderr, "usage: floors write|read DIR MIB\n");
    return 2;
  }
  std::string mode = argv[1], path = std::string(argv[2]) + "/floor.dat";
  size_t len = static_cast<size_t>(atol(argv[3])) << 20;
  const size_t kChunk = 4 << 20;  // criu-lite writes 4 MiB batches too
  if (mode == "write") {
    auto* mem = static_cast<uint64_t*>(
        mmap(nullptr, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0));
    uint64_t x = 88172645463325252ull;
    for (size_t i = 0; i < len / 8; i++) {
      x ^= x << 13, x ^= x >> 7, x ^= x << 17;
      mem[i] = x;
    }
    auto t0 = std::chrono::steady_clock::now();
    int fd = open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
    for (size_t off = 0; off < len; off += kChunk)
      if (write(fd, reinterpret_cast<char*>(mem) + off, kChunk) != static_cast<ssize_t>(kChunk))
        return 1;
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
