// Counting the requests in flight in an AIO context.
//
// The kernel keeps no count of them anyone can read. It does keep the
// context's free slots, and every slot is always in exactly one place:
//   N - 1 = free (in the global counter, or stashed on a CPU)
//         + in flight + completed and not yet given back,
// where N is the ring's size. The global counter moves only in batches of
// B = (N - 1) / (4 x possible CPUs), so once drained it holds (N - 1) mod B.
// So criu-lite takes every free slot it can with poll requests of its own
// that do not complete (from the task, pinned to each CPU in turn, so that
// each CPU's stash is drained too): once io_submit says EAGAIN, the
// completed events not given back are exactly those in the ring (the kernel
// takes back the others first), and
//   in flight = N - 1 - (N - 1) mod B - taken - events in the ring.
// Then its polls fire (the pipe they wait on is closed) and the ring is put
// back as it was: its tail moved on once around by polls that complete at
// once, and its bytes written back, HEAD and the events unchanged.
#include "dump/aio_dump.h"

#include <fcntl.h>
#include <linux/aio_abi.h>
#include <sched.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <chrono>
#include <cstring>
#include <string>
#include <thread>

#include "base/scoped_fd.h"
#include "dump/task_state.h"
#include "kernel/aio_ring.h"
#include "kernel/kernel_probe.h"
#include "kernel/ptrace_task.h"
#include "kernel/remote_syscalls.h"
#include "kernel/same_cpu.h"
#include "kernel/task_fd.h"

namespace crl {
namespace {

using Clock = std::chrono::steady_clock;

// How long a context's requests in flight may take to complete with the
// tree frozen (I/O to a disk does; a poll of a file nobody writes does not).
constexpr auto kDrainTime = std::chrono::seconds(1);

// Pins thread TID to one CPU at a time; its own set comes back at the end.
class CpuPin {
 public:
  explicit CpuPin(pid_t tid) : tid_(tid) {
    saved_ok_ = sched_getaffinity(tid, sizeof saved_, &saved_) == 0;
  }
  ~CpuPin() {
    if (saved_ok_) sched_setaffinity(tid_, sizeof saved_, &saved_);
  }
  CpuPin(const CpuPin&) = delete;
  CpuPin& operator=(const CpuPin&) = delete;
  // False where the task may not run (its cpuset).
  bool To(int cpu) {
    cpu_set_t one = OneCpu(cpu);
    return saved_ok_ && sched_setaffinity(tid_, sizeof one, &one) == 0;
  }

 private:
  pid_t tid_;
  cpu_set_t saved_;
  bool saved_ok_ = false;
};

struct Ring {
  uint64_t ctx;
  std::string bytes;  // as it was
  AioRingHeader h;
};

Result<AioRingHeader> ReadHeader(pid_t pid, uint64_t ctx) {
  return ReadRemote(pid, RemotePtr(ctx).As<AioRingHeader>());
}

// Waits until the K polls of IOCB have completed after TAIL; returns the
// events in the ring then, from HEAD on.
Result<std::vector<io_event>> AwaitPolls(pid_t pid, const Ring& r, uint64_t iocb, uint32_t k) {
  auto deadline = Clock::now() + std::chrono::seconds(5);
  for (;;) {
    AioRingHeader h = TRY(ReadHeader(pid, r.ctx));
    uint32_t n = AioEventsInRing(r.h.head, h.tail, h.nr);
    std::vector<io_event> events(n);
    uint32_t ours = 0;
    for (uint32_t i = 0; i < n; i++) {
      uint32_t slot = (r.h.head + i) % h.nr;
      TRY(ReadRemote(pid, RemotePtr(r.ctx + AioEventOffset(slot)), &events[i], sizeof events[i]));
      ours += events[i].obj == iocb;
    }
    if (ours == k) return events;
    if (Clock::now() > deadline)
      return MakeError("criu-lite's %u poll requests in the AIO context at 0x%lx did not complete",
                       k, r.ctx);
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
}

// Takes every free slot with polls of a pipe only criu-lite can write to;
// returns how many.
Result<uint32_t> TakeFreeSlots(RemoteSyscalls& rs, AioPolls& polls) {
  std::vector<int> online = TRY(ReadCpuList("online"));
  CpuPin pin(rs.tid());
  uint32_t taken = 0;
  for (int cpu : online)
    if (pin.To(cpu)) taken += TRY(polls.Submit(UINT32_MAX));
  return taken;
}

// After its polls completed: the ring as it was. EXACT (nothing of the
// process in flight, none of its requests completed meanwhile): as it was
// byte for byte, its tail gone round once. Otherwise the events of the
// process, in order, end at the tail.
Status PutBack(RemoteSyscalls& rs, RemotePtr scratch, const Ring& r, int ready_fd, uint64_t iocb,
               uint32_t taken, const std::vector<io_event>& events, bool exact) {
  pid_t pid = rs.tid();
  uint32_t nr = r.h.nr;
  RemotePtr head_at = RemotePtr(r.ctx) + offsetof(AioRingHeader, head);
  if (exact) {
    uint32_t before = AioEventsInRing(r.h.head, r.h.tail, nr);
    TRY(AdvanceAioRing(rs, scratch, r.ctx, ready_fd, (nr - taken % nr) % nr, before));
    size_t hdr = sizeof(AioRingHeader);
    TRY(WriteRemote(pid, RemotePtr(r.ctx) + hdr, r.bytes.data() + hdr, r.bytes.size() - hdr));
    TRY(WriteRemote(pid, head_at, &r.h.head, sizeof r.h.head));
    AioRingHeader h = TRY(ReadHeader(pid, r.ctx));
    if (h.tail != r.h.tail)
      return MakeError("the AIO ring at 0x%lx ends at %u, not %u", r.ctx, h.tail, r.h.tail);
    return Ok{};
  }
  std::vector<io_event> theirs;
  for (const io_event& e : events)
    if (e.obj != iocb) theirs.push_back(e);
  uint32_t tail = (r.h.head + events.size()) % nr;
  uint32_t head = (tail + nr - theirs.size()) % nr;
  for (size_t i = 0; i < theirs.size(); i++)
    TRY(WriteRemote(pid, RemotePtr(r.ctx + AioEventOffset((head + i) % nr)), &theirs[i],
                    sizeof theirs[i]));
  return WriteRemote(pid, head_at, &head, sizeof head);
}

// The requests in flight in R's context, or -1 if one completed while they
// were counted.
Result<int64_t> CountInFlight(RemoteSyscalls& rs, RemotePtr scratch, const Ring& r) {
  pid_t pid = rs.tid();
  uint32_t cpus = static_cast<uint32_t>(TRY(ReadCpuList("possible")).size());
  TRY(rs.Checked("pipe2", SYS_pipe2, scratch, O_CLOEXEC | O_NONBLOCK));
  int fds[2];
  TRY(ReadRemote(pid, scratch, fds, sizeof fds));
  RemoteFd read_end(rs, fds[0]);
  ScopedFd write_end = TRY(TakeMadeFd(rs, scratch, pid, fds[1], "AIO probe pipe"));
  AioPolls polls = TRY(AioPolls::Make(rs, scratch, r.ctx, read_end.get()));
  uint32_t k = TRY(TakeFreeSlots(rs, polls));
  write_end.reset();  // the polls fire: a pipe with no writer is ready
  uint32_t m = AioEventsInRing(r.h.head, r.h.tail, r.h.nr);
  int64_t n = r.h.nr - 1, batch = std::max<int64_t>(1, n / (cpus * 4));
  int64_t in_flight = n - n % batch - k - m;
  std::vector<io_event> events = TRY(AwaitPolls(pid, r, polls.iocb_addr(), k));
  bool raced = events.size() != m + k;
  TRY(PutBack(rs, scratch, r, read_end.get(), polls.iocb_addr(), k, events, !raced && !in_flight));
  return raced ? -1 : in_flight;
}

Status CollectAioRing(RemoteSyscalls& rs, RemotePtr scratch, const VmaInfo& v, img::AioRing* out) {
  pid_t pid = rs.tid();
  Ring r{v.start, std::string(v.end - v.start, '\0'), {}};
  // io_submit of nothing: 0 in a context of the process's own, EINVAL in a
  // ring it only maps (inherited over fork from the process that made it).
  if (TRY(rs.Syscall(SYS_io_submit, r.ctx, 0, 0)) == -EINVAL)
    return MakeError(
        "maps at 0x%lx the ring of an AIO context that is not its own (made by the process it "
        "was forked from): not carried",
        r.ctx);
  auto deadline = Clock::now() + kDrainTime;
  for (;;) {
    TRY(ReadRemote(pid, RemotePtr(r.ctx), r.bytes.data(), r.bytes.size()));
    memcpy(&r.h, r.bytes.data(), sizeof r.h);
    TRY(CheckAioRing(r.h, r.bytes.size()).Context(Format("the AIO ring at 0x%lx", r.ctx)));
    int64_t in_flight = TRY(CountInFlight(rs, scratch, r));
    if (in_flight == 0) break;
    if (Clock::now() > deadline)
      return MakeError(
          "its AIO context at 0x%lx has %s in flight that did not complete in %ld ms with the "
          "tree frozen (a poll waiting for an event, or I/O that does not finish): requests in "
          "flight cannot be carried",
          r.ctx, in_flight > 0 ? Format("%ld request(s)", in_flight).c_str() : "requests",
          static_cast<long>(std::chrono::milliseconds(kDrainTime).count()));
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  out->set_start(r.ctx);
  out->set_len(r.bytes.size());
  out->set_nr(r.h.nr);
  out->set_head(r.h.head);
  out->set_tail(r.h.tail);
  out->set_id(r.h.id);
  out->set_ring(std::move(r.bytes));
  return Ok{};
}

}  // namespace

bool IsAioRing(const VmaInfo& v) { return v.path.rfind("/[aio]", 0) == 0; }

Status CollectAioRings(const SeizedProcess& task, const std::vector<VmaInfo>& vmas,
                       img::MmState* mm) {
  bool any = false;
  for (const VmaInfo& v : vmas) any |= IsAioRing(v);
  if (!any) return Ok{};
  pid_t pid = task.pid;
  if (!AioPollWorks())
    return MakeError(
        "PID %d has an AIO context, and this kernel's AIO has no IOCB_CMD_POLL "
        "(4.18), with which criu-lite counts and moves its ring",
        pid);
  RemotePtr site = TRY(SyscallSite(pid, vmas));
  RemoteSyscalls rs(task.threads[0].tid, site, task.threads[0].live, RemoteSyscalls::Mode::kWindow);
  RemotePtr scratch = TRY(rs.Scratch());
  for (const VmaInfo& v : vmas)
    if (IsAioRing(v))
      TRY(CollectAioRing(rs, scratch, v, mm->add_aio_rings()).Context(Format("PID %d", pid)));
  return Ok{};
}

}  // namespace crl
