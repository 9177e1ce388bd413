// The ring of an AIO context (io_setup): its layout, and the requests
// criu-lite runs through it inside a task, which dump and restore share.
//
// An AIO context is known to its process by the address of its ring, a
// shared "[aio]" mapping the kernel writes completions into (at TAIL) and the
// process reaps from (at HEAD, which it may move itself). The kernel counts
// free slots separately from the ring, in a global counter and per-CPU
// stashes moved in batches, so that the ring never overflows: criu-lite
// keeps that count true whenever it moves HEAD (see AdvanceAioRing).
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <vector>

#include "base/result.h"
#include "kernel/remote_syscalls.h"

namespace crl {

// struct aio_ring of fs/aio.c, the first 32 bytes of the mapping; io_events
// (32 bytes each) follow it, NR of them, filling the mapping's pages.
struct AioRingHeader {
  uint32_t id;  // the context's slot in its process's table
  uint32_t nr;
  uint32_t head;
  uint32_t tail;
  uint32_t magic;
  uint32_t compat_features;
  uint32_t incompat_features;
  uint32_t header_length;
};
static_assert(sizeof(AioRingHeader) == 32);
constexpr uint32_t kAioRingMagic = 0xa10a10a1;
constexpr size_t kAioEventBytes = 32;

inline uint32_t AioEventsInRing(uint32_t head, uint32_t tail, uint32_t nr) {
  return (tail + nr - head % nr) % nr;
}

// Byte offset in the mapping of event slot I.
inline size_t AioEventOffset(uint32_t i) { return sizeof(AioRingHeader) + i * kAioEventBytes; }

// The header as the kernel would have made it for a ring of LEN bytes: what
// a dump checks before it trusts one (the process can write to it).
Status CheckAioRing(const AioRingHeader& h, uint64_t len);

// The CPUs of a list in /sys/devices/system/cpu ("possible": every CPU the
// kernel may ever run, whose number sizes rings and slot batches; "online").
Result<std::vector<int>> ReadCpuList(const char* name);

// Scratch the requests below need in the task: one iocb and the pointers
// io_submit takes.
constexpr size_t kAioScratchBytes = 256;

// Poll requests (IOCB_CMD_POLL, POLLIN) on FD of the task, submitted through
// context CTX in batches; their completion events carry `obj` == iocb().
class AioPolls {
 public:
  static Result<AioPolls> Make(RemoteSyscalls& rs, RemotePtr scratch, uint64_t ctx, int fd);
  // Submits up to N; returns how many the kernel took: fewer than N (0 at
  // the first) once the context has no free slot.
  Result<uint32_t> Submit(uint32_t n);
  uint64_t iocb_addr() const { return scratch_.addr(); }

 private:
  AioPolls(RemoteSyscalls& rs, RemotePtr scratch, uint64_t ctx)
      : rs_(&rs), scratch_(scratch), ctx_(ctx) {}
  RemoteSyscalls* rs_;
  RemotePtr scratch_;
  uint64_t ctx_;
};

// Moves the ring's TAIL on by N with polls of READY_FD, a file that is
// ready (they complete inside io_submit), in batches. After each batch HEAD
// is put KEEP events behind TAIL (or as many as the ring holds, if fewer):
// the kernel then gives back the slots of the others, and still counts
// KEEP events unreaped, as the caller will make them.
Status AdvanceAioRing(RemoteSyscalls& rs, RemotePtr scratch, uint64_t ctx, int ready_fd, uint32_t n,
                      uint32_t keep);

}  // namespace crl
