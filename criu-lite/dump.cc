#include "criu-lite/dump.h"

#include <sys/utsname.h>
#include <unistd.h>

#include <chrono>
#include <csignal>
#include <ctime>

#include "criu-lite/fd_dump.h"
#include "criu-lite/memory_dump.h"
#include "criu-lite/seized_task.h"
#include "criu-lite/task_state.h"
#include "images/image_dir.h"
#include "images/image_file.h"
#include "images/page_file.h"
#include "kernel/log.h"
#include "kernel/proc_parsers.h"
#include "kernel/vma_list.h"

namespace crl {
namespace {

using Clock = std::chrono::steady_clock;

uint64_t Usec(Clock::time_point a, Clock::time_point b) {
  return std::chrono::duration_cast<std::chrono::microseconds>(b - a).count();
}

// Refuses, before touching it, a PID that cannot be dumped.
Status CheckDumpable(pid_t pid) {
  if (pid <= 0) return MakeError("invalid PID %d", pid);
  if (pid == getpid()) return MakeError("PID %d is criu-lite itself", pid);
  auto stat_text = ReadFileToString(Format("/proc/%d/stat", pid));
  if (!stat_text.ok()) return MakeError("no process with PID %d", pid);
  ProcStat st = TRY(ParseProcStat(*stat_text).Context(Format("/proc/%d/stat", pid)));
  if (st.flags & kPfKthread)
    return MakeError("PID %d (%s) is a kernel thread; only user processes can be dumped", pid,
                     st.comm.c_str());
  if (st.state == 'Z') return MakeError("PID %d (%s) is a zombie", pid, st.comm.c_str());
  auto status_text = ReadFileToString(Format("/proc/%d/status", pid));
  if (status_text.ok()) {
    ProcStatus status = TRY(ParseProcStatus(*status_text));
    if (status.tgid != pid)
      return MakeError("PID %d is a thread of process %d; dump the process", pid, status.tgid);
  }
  return Ok{};
}

// What this version can dump: one process with one thread and no children.
Status CheckSupportedShape(pid_t pid) {
  std::string stat_text = TRY(ReadFileToString(Format("/proc/%d/stat", pid)));
  ProcStat st = TRY(ParseProcStat(stat_text));
  if (st.num_threads != 1)
    return MakeError("PID %d has %ld threads; multi-threaded processes are not supported yet", pid,
                     st.num_threads);
  auto children = ReadFileToString(Format("/proc/%d/task/%d/children", pid, pid));
  if (children.ok() && !children->empty())
    return MakeError("PID %d has child processes (%s); process trees are not supported yet", pid,
                     children->c_str());
  return Ok{};
}

void AddPhase(img::Stats* stats, const char* name, Clock::time_point a, Clock::time_point b) {
  img::Phase* p = stats->add_phases();
  p->set_name(name);
  p->set_usec(Usec(a, b));
}

}  // namespace

Status Dump(const DumpOptions& opts) {
  auto t_start = Clock::now();
  TRY(CheckDumpable(opts.pid));
  ImageDir dir(opts.images_dir);
  TRY(dir.PrepareForDump());
  // A previous dump's inventory must not make a half-written one look whole.
  unlink(dir.Inventory().c_str());

  pid_t pid = opts.pid;
  SeizedTask task = TRY(SeizedTask::Seize(pid).Context(Format("seizing PID %d", pid)));
  auto t_frozen = Clock::now();
  LOG_INFO("PID %d stopped", pid);
  TRY(CheckSupportedShape(pid));

  img::TaskCore core;
  img::MmState mm;
  img::Fds fds;
  std::vector<VmaInfo> vmas = TRY(ListVmas(pid).Context(Format("listing VMAs of PID %d", pid)));
  TRY(CollectTaskCore(task, vmas, &core).Context(Format("collecting PID %d", pid)));
  TRY(CollectMmFields(task, vmas, &mm).Context(Format("collecting mm of PID %d", pid)));
  // Remote syscalls above mapped and unmapped scratch memory: list VMAs again.
  vmas = TRY(ListVmas(pid));
  TRY(DescribeVmas(pid, vmas, &mm));
  TRY(DumpFds(pid, opts.shell_job, &fds));
  auto t_collected = Clock::now();

  PageWriter writer = TRY(PageWriter::Create(opts.images_dir, dir.PagesName(pid), opts.zstd_level));
  MemoryDumpStats mstats;
  TRY(DumpMemory(pid, mm, &writer, &mstats).Context(Format("dumping memory of PID %d", pid)));
  img::Pagemap pagemap;
  TRY(writer.Finish(&pagemap));
  auto t_memory = Clock::now();

  TRY(WriteImage(dir.Core(pid), ImageKind::kCore, core));
  TRY(WriteImage(dir.Mm(pid), ImageKind::kMm, mm));
  TRY(WriteImage(dir.Pagemap(pid), ImageKind::kPagemap, pagemap));
  TRY(WriteImage(dir.Fds(pid), ImageKind::kFds, fds));
  img::Inventory inv;
  inv.set_format_version(kImageFormatVersion);
  inv.set_root_pid(pid);
  inv.add_pids(pid);
  utsname u;
  uname(&u);
  inv.set_kernel_release(u.release);
  inv.set_page_size(kPageSize);
  inv.set_criu_lite_version(CRIU_LITE_VERSION);
  inv.set_dump_time_unix(time(nullptr));
  inv.set_shell_job(opts.shell_job);
  // The inventory goes last: its presence says the dump is complete.
  TRY(WriteImage(dir.Inventory(), ImageKind::kInventory, inv));
  auto t_written = Clock::now();

  if (!opts.leave_running) task.KillOnRelease();
  TRY(task.Release());
  auto t_end = Clock::now();

  img::Stats stats;
  stats.set_kind("dump");
  AddPhase(&stats, "validate", t_start, t_frozen);
  AddPhase(&stats, "collect", t_frozen, t_collected);
  AddPhase(&stats, "memory", t_collected, t_memory);
  AddPhase(&stats, "write-images", t_memory, t_written);
  AddPhase(&stats, "release", t_written, t_end);
  stats.set_pages_scanned(mstats.pages_scanned);
  stats.set_pages_written(mstats.pages_written);
  stats.set_bytes_written(writer.bytes_written());
  stats.set_frozen_usec(Usec(t_frozen, t_end));
  stats.set_total_usec(Usec(t_start, t_end));
  TRY(WriteImage(dir.Stats("dump"), ImageKind::kStats, stats));
  LOG_INFO("dumped PID %d: %lu pages, %lu bytes in %.3f s (frozen %.3f s)", pid,
           mstats.pages_written, writer.bytes_written(), stats.total_usec() / 1e6,
           stats.frozen_usec() / 1e6);
  return Ok{};
}

}  // namespace crl
