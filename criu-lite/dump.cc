#include "criu-lite/dump.h"

#include <sys/utsname.h>
#include <unistd.h>

#include <chrono>
#include <csignal>
#include <ctime>

#include "criu-lite/fd_dump.h"
#include "criu-lite/memory_dump.h"
#include "criu-lite/seized_tree.h"
#include "criu-lite/task_state.h"
#include "criu-lite/tracking.h"
#include "files/fd_kind.h"
#include "images/image_dir.h"
#include "images/image_file.h"
#include "images/image_output.h"
#include "images/page_file.h"
#include "kernel/interrupt.h"
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
  if (access(Format("/proc/%d/stat", pid).c_str(), F_OK) < 0)
    return MakeError("no process with PID %d", pid);
  ProcStat st = TRY(ReadProcStat(pid));
  if (st.flags & kPfKthread)
    return MakeError("PID %d (%s) is a kernel thread; only user processes can be dumped", pid,
                     st.comm.c_str());
  if (st.state == 'Z') return MakeError("PID %d (%s) is a zombie", pid, st.comm.c_str());
  if (auto status = ReadProcStatus(pid); status.ok()) {
    if (status->tgid != pid)
      return MakeError("PID %d is a thread of process %d; dump the process", pid, status->tgid);
  }
  return Ok{};
}

// Everything recorded of one process before its pages are written.
struct ProcessImages {
  pid_t pid = 0;
  pid_t parent = -1;  // in the tree, or -1
  img::TaskCore core;
  img::MmState mm;
  img::Fds fds;
};

Status CollectProcess(const SeizedProcess& p, pid_t parent, const DumpOptions& opts,
                      ProcessImages* out) {
  bool memory_only = opts.pre_dump;
  pid_t pid = p.pid;
  out->pid = pid;
  TRY(CheckTaskCarried(p, parent));
  std::vector<VmaInfo> vmas = TRY(ListVmas(pid).Context(Format("listing VMAs of PID %d", pid)));
  if (memory_only) return DescribeVmas(pid, vmas, &out->mm);
  TRY(CollectTaskCore(p, vmas, &out->core).Context(Format("collecting PID %d", pid)));
  TRY(CollectMmFields(p, vmas, &out->mm).Context(Format("collecting mm of PID %d", pid)));
  // An unguarded remote-syscall window maps and unmaps scratch memory (the
  // kernel may then have split or merged a neighbour): list VMAs again.
  vmas = TRY(ListVmas(pid));
  TRY(DescribeVmas(pid, vmas, &out->mm));
  TRY(DumpFds(pid, opts.shell_job, &out->fds));
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
  // Images are staged and moved in at the end (LocalImageOutput::Commit): a
  // dump that fails leaves the checkpoint that was in the directory.
  LocalImageOutput local(opts.images_dir);
  ImageOutput& out = opts.output ? *opts.output : local;

  pid_t pid = opts.pid;
  SeizedTree tree = TRY(SeizedTree::Seize(pid).Context(Format("seizing the tree of PID %d", pid)));
  auto t_frozen = Clock::now();
  FaultPoint("dump-seized");
  LOG_INFO("tree of PID %d stopped: %zu processes, %zu zombies", pid, tree.processes().size(),
           tree.zombies().size());

  std::vector<ProcessImages> procs(tree.processes().size());
  bool chained = !opts.prev_images_dir.empty();
  for (size_t i = 0; i < procs.size(); i++) {
    TRY(CheckStop());
    const SeizedProcess& p = tree.processes()[i];
    // The root too: what it shares with a parent outside the tree could not
    // be shared again either.
    TRY(CollectProcess(p, p.ppid, opts, &procs[i]));
    // Pre-dump passes save each process's private memory whole; the final
    // dump (chained or not) leaves out what a child still shares with its
    // parent copy-on-write, compared at the freeze. Shared anonymous memory
    // is inherited in every pass: it is one object.
    bool cow = !opts.pre_dump;
    for (size_t j = 0; j < i; j++)
      if (procs[j].pid == p.ppid) {
        if (cow) procs[i].parent = p.ppid;
        MarkInherited(procs[j].mm, &procs[i].mm, !cow);
      }
  }
  {
    std::vector<std::pair<pid_t, const img::MmState*>> mms;
    for (const ProcessImages& p : procs) mms.push_back({p.pid, &p.mm});
    TRY(CheckSharedAnonCarried(mms));
  }
  img::Shared shared;
  if (!opts.pre_dump) {
    std::vector<ProcessFds> pf;
    for (ProcessImages& p : procs) pf.push_back({p.pid, &p.fds});
    TRY(ResolveTreeFds(pf, opts.shell_job, &shared));
    for (ProcessImages& p : procs)
      for (const img::Vma& v : p.mm.vmas())
        if (v.memfd_ino())
          TRY(SaveMemfd(Format("/proc/%d/map_files/%lx-%lx", p.pid, v.start(), v.end()), v.path(),
                        v.memfd_ino(), &shared));
  }
  auto t_collected = Clock::now();
  FaultPoint("dump-collected");

  MemoryDumpStats mstats;
  std::vector<MemoryPlan> plans;
  std::vector<std::vector<PageRun>> in_parent(procs.size());
  std::string prev_dir = opts.prev_images_dir;
  if (chained && prev_dir[0] != '/') prev_dir = opts.images_dir + "/" + prev_dir;
  Tracker tracker = Tracker::Fresh(BestTrackingMethod());
  if (chained) tracker = TRY(Tracker::Resume(prev_dir));
  // Taking the written pages re-arms their tracking: from here on, only
  // this pass's images know what the previous pass did not have.
  if (chained) TRY(tracker.Consume(prev_dir));
  if ((opts.pre_dump || opts.track_mem) && tracker.method() == TrackingMethod::kNone)
    return MakeError(
        "this kernel can track written pages neither with uffd-wp async "
        "(PAGEMAP_SCAN) nor with soft-dirty: pre-dump is not possible");
  for (size_t i = 0; i < procs.size(); i++) {
    TRY(CheckStop());
    ProcessImages& p = procs[i];
    img::MmState prev_mm;
    bool have_prev =
        chained && ReadImage(ImageDir(prev_dir).Mm(p.pid), ImageKind::kMm, &prev_mm).ok();
    if (chained && have_prev && tracker.Tracking(p.pid)) {
      IncrementalPlan inc = TRY(PlanIncremental(p.pid, p.parent, &p.mm, prev_mm, tracker, &mstats)
                                    .Context(Format("finding pages PID %d wrote", p.pid)));
      plans.push_back(std::move(inc.copy));
      in_parent[i] = std::move(inc.in_parent);
    } else {
      if (chained) LOG_INFO("PID %d: no tracking from the previous pass: a full copy", p.pid);
      plans.push_back(TRY(PlanMemory(p.pid, p.parent, &p.mm, &mstats)
                              .Context(Format("scanning memory of PID %d", p.pid))));
      if (opts.pre_dump) TRY(tracker.Start(tree.processes()[i], p.mm));
    }
    if (opts.pre_dump) TRY(tracker.Rearm(p.pid));
  }
  auto t_scanned = Clock::now();
  FaultPoint("dump-written-pages-taken");
  // A pre-dump lets the tree run on while its pages are copied: a page it
  // writes meanwhile is copied new and also counts as written for the next pass.
  if (opts.pre_dump) TRY(tree.Release());
  auto t_thawed = Clock::now();
  uint64_t bytes = 0, checksum_nsec = 0;
  for (size_t i = 0; i < procs.size(); i++) {
    ProcessImages& p = procs[i];
    PageWriter writer = TRY(PageWriter::Create(&out, ImageDir::PagesName(p.pid), opts.zstd_level));
    TRY(CopyPages(p.pid, plans[i], opts.leave_running || opts.pre_dump, &writer, &mstats)
            .Context(Format("dumping memory of PID %d", p.pid)));
    for (const PageRun& r : in_parent[i]) writer.AppendInParent(r.start, r.end - r.start);
    img::Pagemap pagemap;
    TRY(writer.Finish(&pagemap));
    bytes += writer.bytes_written();
    checksum_nsec += writer.checksum_nsec();
    TRY(WriteImage(out, ImageDir::PagemapName(p.pid), ImageKind::kPagemap, pagemap));
  }
  if (chained) {
    TRY(out.Symlink(ImageDir::kParentLink, opts.prev_images_dir));
  }
  auto t_memory = Clock::now();
  FaultPoint("dump-pages-copied");

  img::Inventory inv;
  inv.set_pre_dump(opts.pre_dump);
  if (!opts.pre_dump) TRY(WriteImage(out, ImageDir::SharedName(), ImageKind::kShared, shared));
  for (const ProcessImages& p : procs) {
    TRY(WriteImage(out, ImageDir::MmName(p.pid), ImageKind::kMm, p.mm));
    if (opts.pre_dump) continue;
    TRY(WriteImage(out, ImageDir::CoreName(p.pid), ImageKind::kCore, p.core));
    TRY(WriteImage(out, ImageDir::FdsName(p.pid), ImageKind::kFds, p.fds));
  }
  for (const SeizedProcess& p : tree.processes()) {
    inv.add_pids(p.pid);
    img::TreeEntry* e = inv.add_tree();
    e->set_pid(p.pid);
    e->set_ppid(p.ppid);
    for (const ProcessImages& pi : procs)
      if (pi.pid == p.pid && !opts.pre_dump) {
        e->set_pgid(pi.core.pgid());
        e->set_sid(pi.core.sid());
      }
    e->set_stopped(p.stopped);
    e->set_stop_signal(p.stop_signal);
    for (const SeizedThread& t : p.threads) e->add_tids(t.tid);
  }
  for (const ZombieTask& z : tree.zombies()) {
    img::TreeEntry* e = inv.add_tree();
    e->set_pid(z.pid);
    e->set_ppid(z.ppid);
    e->set_pgid(z.pgid);
    e->set_sid(z.sid);
    e->set_zombie(true);
    e->set_exit_status(z.exit_status);
  }
  inv.set_format_version(kImageFormatVersion);
  inv.set_root_pid(pid);
  utsname u;
  uname(&u);
  inv.set_kernel_release(u.release);
  inv.set_page_size(kPageSize);
  inv.set_criu_lite_version(CRIU_LITE_VERSION);
  inv.set_dump_time_unix(time(nullptr));
  inv.set_shell_job(opts.shell_job);
  // The inventory goes last: its presence says the dump is complete.
  TRY(CheckStop());
  TRY(WriteImage(out, ImageDir::InventoryName(), ImageKind::kInventory, inv));
  TRY(out.Commit());
  FaultPoint("dump-committed");
  if (opts.pre_dump) {
    // The images are complete: the next pass may start from them.
    Status saved = tracker.Save(opts.images_dir, opts.tracking_owner);
    if (!saved.ok())
      LOG_WARN("the write tracking could not be kept (%s): the next pass copies everything",
               saved.error().message.c_str());
  }
  auto t_written = Clock::now();

  bool kill_tree = !opts.leave_running && !opts.pre_dump;
  // A migration decides here: the destination either runs the tree (kill
  // the source) or failed (resume it, nothing lost).
  if (opts.before_release) kill_tree = TRY(opts.before_release());
  Status after_kill = Ok{};
  if (kill_tree) {
    tree.SignalKill();
    if (opts.after_kill_signalled) after_kill = opts.after_kill_signalled();
  }
  TRY(tree.Release());
  TRY(after_kill);
  auto t_end = Clock::now();
  if (chained && !opts.pre_dump) tracker.Stop();  // the final pass ends tracking

  img::Stats stats;
  stats.set_kind("dump");
  AddPhase(&stats, "validate", t_start, t_frozen);
  AddPhase(&stats, "collect", t_frozen, t_collected);
  AddPhase(&stats, "scan", t_collected, t_scanned);
  AddPhase(&stats, "memory", t_thawed, t_memory);
  AddPhase(&stats, "write-images", t_memory, t_written);
  AddPhase(&stats, "release", t_written, t_end);
  stats.set_pages_scanned(mstats.pages_scanned);
  stats.set_pages_written(mstats.pages_written);
  stats.set_bytes_written(bytes);
  stats.set_checksum_usec(checksum_nsec / 1000);
  stats.set_frozen_usec(opts.pre_dump ? Usec(t_frozen, t_thawed) : Usec(t_frozen, t_end));
  stats.set_total_usec(Usec(t_start, t_end));
  stats.set_kind(opts.pre_dump ? "pre-dump" : "dump");
  TRY(WriteImage(dir.Stats("dump"), ImageKind::kStats, stats));
  LOG_INFO(
      "dumped the tree of PID %d: %zu processes, %lu pages (%lu more shared with parents), "
      "%lu bytes in %.3f s (frozen %.3f s)",
      pid, procs.size(), mstats.pages_written, mstats.pages_shared_with_parent, bytes,
      stats.total_usec() / 1e6, stats.frozen_usec() / 1e6);
  return Ok{};
}

}  // namespace crl
