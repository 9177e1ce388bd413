#include "restore/aio_restore.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/syscall.h>

#include <algorithm>
#include <vector>

#include "kernel/aio_ring.h"
#include "kernel/ptrace_task.h"
#include "kernel/remote_syscalls.h"

namespace crl {
namespace {

// A new context of A's size, its ring moved to A's address.
Status MakeContext(Puppet& p, const img::AioRing& a) {
  RemoteSyscalls& rs = p.rs();
  RemoteScratch::Frame frame(p.scratch());
  // io_setup(n) makes a ring of max(n, 4 x possible CPUs) x 2 + 2 events,
  // rounded up to whole pages: n = (nr - 2) / 2 gives back a ring of nr.
  uint32_t cpus = static_cast<uint32_t>(TRY(ReadCpuList("possible")).size());
  uint32_t n = (a.nr() - 2) / 2;
  if (n < 4 * cpus)
    return MakeError(
        "its AIO context holds %u events, fewer than the smallest this machine makes (%u, with "
        "%u possible CPUs)",
        a.nr(), 8 * cpus + 2, cpus);
  remote_ptr<uint64_t> ctx_at = TRY(p.scratch().Push<uint64_t>(0));
  TRY(rs.Checked(Format("io_setup(%u)", n).c_str(), SYS_io_setup, n, ctx_at));
  uint64_t ctx = TRY(ReadRemote(p.pid(), ctx_at));
  AioRingHeader h = TRY(ReadRemote(p.pid(), RemotePtr(ctx).As<AioRingHeader>()));
  if (h.nr != a.nr())
    return MakeError("io_setup(%u) made a ring of %u events, not %u", n, h.nr, a.nr());
  if (ctx != a.start())
    TRY(rs.Checked(Format("mremap(AIO ring to 0x%lx)", a.start()).c_str(), SYS_mremap, ctx, a.len(),
                   a.len(), MREMAP_MAYMOVE | MREMAP_FIXED, a.start()));
  return Ok{};
}

Status RestoreAioRing(Puppet& p, const img::AioRing& a) {
  if (a.ring().size() != a.len() || a.len() < sizeof(AioRingHeader))
    return MakeError("the image's AIO ring at 0x%lx has %zu bytes, not %lu", a.start(),
                     a.ring().size(), a.len());
  TRY(MakeContext(p, a));
  RemoteSyscalls& rs = p.rs();
  RemoteScratch::Frame frame(p.scratch());
  // Its tail is moved on by polls of a pipe with no writer (ready at once).
  RemotePtr fds_at = TRY(p.scratch().Reserve(2 * sizeof(int)));
  TRY(rs.Checked("pipe2", SYS_pipe2, fds_at, O_CLOEXEC));
  int fds[2];
  TRY(ReadRemote(p.pid(), fds_at, fds, sizeof fds));
  RemoteFd read_end(rs, fds[0]);
  { RemoteFd write_end(rs, fds[1]); }
  RemotePtr scratch = TRY(p.scratch().Reserve(kAioScratchBytes));
  TRY(AdvanceAioRing(rs, scratch, a.start(), read_end.get(), a.tail(),
                     AioEventsInRing(a.head(), a.tail(), a.nr())));
  // Then its events and head are the image's (the header's id stays the
  // kernel's: it names the context's slot in the new process).
  size_t hdr = sizeof(AioRingHeader);
  TRY(WriteRemote(p.pid(), RemotePtr(a.start()) + hdr, a.ring().data() + hdr, a.len() - hdr));
  uint32_t head = a.head();
  TRY(WriteRemote(p.pid(), RemotePtr(a.start()) + offsetof(AioRingHeader, head), &head,
                  sizeof head));
  AioRingHeader h = TRY(ReadRemote(p.pid(), RemotePtr(a.start()).As<AioRingHeader>()));
  if (h.tail != a.tail())
    return MakeError("the AIO ring at 0x%lx ends at %u, not %u", a.start(), h.tail, a.tail());
  return Ok{};
}

}  // namespace

Status RestoreAioRings(Puppet& p, const img::MmState& mm) {
  // In the order they were made, so that each gets the same slot.
  std::vector<const img::AioRing*> rings;
  for (const img::AioRing& a : mm.aio_rings()) rings.push_back(&a);
  std::sort(rings.begin(), rings.end(), [](auto* x, auto* y) { return x->id() < y->id(); });
  for (const img::AioRing* a : rings)
    TRY(RestoreAioRing(p, *a).Context(Format("the AIO context at 0x%lx", a->start())));
  return Ok{};
}

}  // namespace crl
