#include "kernel/aio_ring.h"

#include <linux/aio_abi.h>
#include <poll.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <string>

#include "kernel/ptrace_task.h"

namespace crl {

Status CheckAioRing(const AioRingHeader& h, uint64_t len) {
  uint64_t nr = (len - sizeof(AioRingHeader)) / kAioEventBytes;
  if (h.magic != kAioRingMagic || h.compat_features != 1 || h.incompat_features != 0 ||
      h.header_length != sizeof(AioRingHeader) || h.nr != nr || h.head >= h.nr || h.tail >= h.nr)
    return MakeError(
        "its header is not the kernel's (magic 0x%x, features %u/%u, %u events in %lu bytes, "
        "head %u, tail %u): the process wrote over it",
        h.magic, h.compat_features, h.incompat_features, h.nr, len, h.head, h.tail);
  return Ok{};
}

Result<std::vector<int>> ReadCpuList(const char* name) {
  // "0-3,8-11"
  std::string path = std::string("/sys/devices/system/cpu/") + name;
  std::ifstream in(path);
  std::string list;
  if (!std::getline(in, list)) return MakeError("cannot read %s", path.c_str());
  std::vector<int> cpus;
  for (size_t p = 0; p < list.size();) {
    size_t comma = list.find(',', p);
    if (comma == std::string::npos) comma = list.size();
    int lo = 0, hi = -1;
    int n = sscanf(list.substr(p, comma - p).c_str(), "%d-%d", &lo, &hi);
    if (n < 1) return MakeError("%s: cannot parse '%s'", path.c_str(), list.c_str());
    for (int c = lo; c <= (n == 2 ? hi : lo); c++) cpus.push_back(c);
    p = comma + 1;
  }
  return cpus;
}

Result<AioPolls> AioPolls::Make(RemoteSyscalls& rs, RemotePtr scratch, uint64_t ctx, int fd) {
  iocb cb{};
  cb.aio_lio_opcode = IOCB_CMD_POLL;
  cb.aio_fildes = fd;
  cb.aio_buf = POLLIN;
  cb.aio_data = 0x63726c2d61696f;  // "crl-aio", for whoever reads a stray one
  TRY(WriteRemote(rs.tid(), scratch, &cb, sizeof cb));
  // Every pointer names the same iocb: the kernel copies it at submission.
  uint64_t ptrs[(kAioScratchBytes - sizeof cb) / sizeof(uint64_t)];
  std::fill(std::begin(ptrs), std::end(ptrs), scratch.addr());
  TRY(WriteRemote(rs.tid(), scratch + sizeof cb, ptrs, sizeof ptrs));
  return AioPolls(rs, scratch, ctx);
}

Result<uint32_t> AioPolls::Submit(uint32_t n) {
  constexpr uint32_t kBatch = (kAioScratchBytes - sizeof(iocb)) / sizeof(uint64_t);
  uint32_t done = 0;
  while (done < n) {
    uint32_t want = std::min(kBatch, n - done);
    int64_t r = TRY(rs_->Syscall(SYS_io_submit, ctx_, want, scratch_ + sizeof(iocb)));
    if (r == -EAGAIN) break;
    if (r < 0)
      return MakeError("io_submit in PID %d: %s", rs_->tid(), strerror(static_cast<int>(-r)));
    done += static_cast<uint32_t>(r);
    if (static_cast<uint32_t>(r) < want) break;
  }
  return done;
}

Status AdvanceAioRing(RemoteSyscalls& rs, RemotePtr scratch, uint64_t ctx, int ready_fd, uint32_t n,
                      uint32_t keep) {
  AioPolls polls = TRY(AioPolls::Make(rs, scratch, ctx, ready_fd));
  RemotePtr header(ctx);
  int stalled = 0;
  while (n > 0) {
    uint32_t got = TRY(polls.Submit(n));
    AioRingHeader h = TRY(ReadRemote(rs.tid(), header.As<AioRingHeader>()));
    // Reap all but KEEP: the next io_submit that finds no free slot counts
    // the reaped ones free again.
    uint32_t in_ring = AioEventsInRing(h.head, h.tail, h.nr);
    uint32_t head = (h.tail + h.nr - std::min(keep, in_ring)) % h.nr;
    TRY(WriteRemote(rs.tid(), header + offsetof(AioRingHeader, head), &head, sizeof head));
    n -= got;
    stalled = got ? 0 : stalled + 1;
    if (stalled > 2)
      return MakeError("the AIO context at 0x%lx of PID %d takes no more requests", ctx, rs.tid());
  }
  return Ok{};
}

}  // namespace crl
