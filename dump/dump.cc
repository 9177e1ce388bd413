#include "dump/dump.h"

#include <sys/utsname.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <ctime>
#include <map>
#include <optional>
#include <set>
#include <thread>
#include <tuple>

#include "base/action_script.h"
#include "base/clock.h"
#include "base/interrupt.h"
#include "base/log.h"
#include "dump/aio_dump.h"
#include "dump/cgroup_dump.h"
#include "dump/fd_dump.h"
#include "dump/memory_dump.h"
#include "dump/seized_tree.h"
#include "dump/task_state.h"
#include "dump/tracking.h"
#include "files/fd_kind.h"
#include "images/image_dir.h"
#include "images/image_file.h"
#include "images/image_output.h"
#include "images/page_file.h"
#include "kernel/mounts.h"
#include "kernel/proc_parsers.h"
#include "kernel/proc_task.h"
#include "kernel/remote_syscalls.h"
#include "kernel/task_fd.h"
#include "kernel/vma_list.h"

namespace crl {
namespace {

// Refuses, before touching it, a PID that cannot be dumped.
Status CheckDumpable(pid_t pid) {
  if (pid <= 0) return MakeError("invalid PID %d", pid);
  if (pid == getpid()) return MakeError("PID %d is criu-lite itself", pid);
  if (access(ProcTask(pid).Path("stat").c_str(), F_OK) < 0)
    return MakeError("no process with PID %d", pid);
  ProcStat st = TRY(ProcTask(pid).Stat());
  if (st.flags & kPfKthread)
    return MakeError("PID %d (%s) is a kernel thread; only user processes can be dumped", pid,
                     st.comm.c_str());
  if (st.state == 'Z') return MakeError("PID %d (%s) is a zombie", pid, st.comm.c_str());
  if (auto status = ProcTask(pid).Status(); status.ok()) {
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
                      TcpRepairs* tcp, SameCpu& same_cpu, ProcessImages* out) {
  bool memory_only = opts.pre_dump;
  pid_t pid = p.pid;
  out->pid = pid;
  bool root = pid == opts.pid;
  TRY(CheckTaskCarried(p, parent, root));
  std::vector<VmaInfo> vmas = TRY(ListVmas(pid).Context(Format("listing VMAs of PID %d", pid)));
  if (memory_only) return DescribeVmas(pid, vmas, &out->mm);
  uint64_t unguarded = RemoteSyscalls::UnguardedWindows();
  uint64_t brk = 0;
  TRY(CollectTaskCore(p, vmas, same_cpu, &out->core, &brk)
          .Context(Format("collecting PID %d", pid)));
  TRY(CollectNamespaces(pid, root ? 0 : parent, opts, &out->core)
          .Context(Format("collecting PID %d", pid)));
  TRY(CollectMmFields(p, brk, &out->mm).Context(Format("collecting mm of PID %d", pid)));
  TRY(CollectAioRings(p, vmas, &out->mm));
  // An unguarded remote-syscall window maps and unmaps scratch memory (the
  // kernel may then have split or merged a neighbour), and a guarded one's
  // frame may have grown the stack: then the VMAs are listed again (with
  // smaps, which walks every page table entry: not when nothing changed).
  if (RemoteSyscalls::UnguardedWindows() != unguarded ||
      !SameMappings(vmas, TRY(ListMappings(pid))))
    vmas = TRY(ListVmas(pid));
  TRY(DescribeVmas(pid, vmas, &out->mm));
  TRY(DumpFds(pid, opts, tcp, &out->fds));
  return Ok{};
}

// Whether PID has ended (a zombie, or gone).
bool Exited(pid_t pid) {
  auto st = ProcTask(pid).Stat();
  return !st.ok() || st->state == 'Z' || st->state == 'X';
}

// One dump, as its phases in the order they run:
//   Check    refuse a PID that cannot be dumped, before touching anything;
//   Freeze   seize the whole tree (every thread stopped, see seized_tree.h);
//   Collect  each process's core, memory layout and fds, then what spans
//            processes (fds resolved over the tree, memfds, shared anonymous
//            memory). It comes first because its remote syscalls may change
//            a task's mappings, which every later phase reads;
//   Plan     which pages each page file needs: taking the written pages from
//            the tracker re-arms it, so it comes last before the copy;
//   Thaw     a pre-dump only: the tree runs on while its pages are copied;
//   Copy     the pages into the page files;
//   Write    the other images, the inventory last, then commit: a dump that
//            fails before this leaves the checkpoint that was there;
//   Release  kill the tree (dump), resume it (-R, pre-dump), or let a
//            migration decide between the two.
class DumpRun {
 public:
  explicit DumpRun(const DumpOptions& opts)
      : opts_(opts),
        dir_(opts.images_dir),
        local_(opts.images_dir),
        out_(opts.output ? *opts.output : local_),
        chained_(!opts.prev_images_dir.empty()),
        scripts_(opts.action_scripts, opts.images_dir, opts.notify) {
    scripts_.set_init_pid(opts.pid);
    prev_dir_ = opts.prev_images_dir;
    if (chained_ && prev_dir_[0] != '/') prev_dir_ = opts.images_dir + "/" + prev_dir_;
  }

  Result<img::Stats> Run() {
    Mark("start");
    TRY(CheckDumpable(opts_.pid));
    // Without a directory (an archive is the output), nothing is kept aside.
    if (!opts_.images_dir.empty()) TRY(dir_.PrepareForDump());
    TRY(scripts_.Run("pre-dump"));
    TRY(Freeze());
    TRY(Collect());
    if (tcp_ && !tcp_->lock_table().empty()) TRY(scripts_.Run("network-lock"));
    TRY(Plan());
    if (opts_.pre_dump) TRY(tree_->Release());
    Mark("thawed");
    TRY(Copy());
    TRY(Write());
    // A failing post-dump script leaves the images (complete) and the tree
    // running, as after --leave-running.
    TRY(scripts_.Run("post-dump").Context("the images are complete; the tree runs on"));
    TRY(Release());
    return Stats();
  }

 private:
  void Mark(const char* at) { marks_[at] = Clock::now(); }
  uint64_t Between(const char* a, const char* b) { return UsecBetween(marks_.at(a), marks_.at(b)); }

  Status Freeze() {
    pid_t pid = opts_.pid;
    tree_.emplace(TRY(SeizedTree::Seize(pid, opts_.freeze_cgroup)
                          .Context(Format("seizing the tree of PID %d", pid))));
    // Where fds are taken through the task (no pidfd_getfd), in its window.
    windows_.emplace([this](pid_t p) { return tree_->Window(p); });
    timespec now{};
    clock_gettime(CLOCK_REALTIME, &now);
    tcp_.emplace(opts_.tcp_established, opts_.tcp_close,
                 Format("criu_lite_%d_%lx%09lx", pid, now.tv_sec, now.tv_nsec));
    Mark("frozen");
    FaultPoint("dump-seized");
    LOG_INFO("tree of PID %d stopped: %zu processes, %zu zombies", pid, tree_->processes().size(),
             tree_->zombies().size());
    return Ok{};
  }

  // Restore makes a namespace again in the one task that is in it and whose
  // parent is not: two such tasks for one namespace (one joined the other's
  // with setns) would come back in two.
  Status CheckNamespacesOwned() const {
    std::map<std::pair<std::string, uint64_t>, pid_t> made_by;
    for (const ProcessImages& p : procs_) {
      std::vector<std::pair<std::string, uint64_t>> made;
      if (p.core.has_uts()) made.push_back({"uts", p.core.uts().ns_id()});
      if (p.core.has_cgroup_ns()) made.push_back({"cgroup", p.core.cgroup_ns().ns_id()});
      if (p.core.has_ipc()) made.push_back({"ipc", p.core.ipc().ns_id()});
      if (p.core.has_time_ns()) made.push_back({"time", p.core.time_ns().ns_id()});
      if (p.core.has_net()) made.push_back({"net", p.core.net().ns_id()});
      for (const auto& ns : made) {
        auto [it, fresh] = made_by.emplace(ns, p.pid);
        if (!fresh)
          return MakeError(
              "PID %d joined the %s namespace of PID %d, its parent's is another: not carried "
              "(restore makes a namespace again in the task that is in it and whose parent is "
              "not)",
              p.pid, ns.first.c_str(), it->second);
      }
    }
    return Ok{};
  }

  // Each task's PIDs in the namespaces below criu-lite's. A PID namespace
  // the tree makes is made again with only what is in the tree: a process
  // in it that is not (one that joined it with setns, as `nsenter` and
  // `docker exec` do) would silently be missing after restore, so it is
  // refused.
  Status CollectPidNamespaces() {
    std::set<pid_t> in_tree;
    std::map<std::string, pid_t> inits;  // namespace link -> its init in the tree
    for (const SeizedProcess& p : tree_->processes()) {
      in_tree.insert(p.pid);
      std::vector<pid_t> tids;
      for (const SeizedThread& t : p.threads) tids.push_back(t.tid);
      TRY(crl::CollectPidNamespaces(p.pid, tids, &pid_ns_[p.pid]));
      const img::TreeEntry& e = pid_ns_[p.pid];
      if (!e.ns_pids().empty() && e.ns_pids(e.ns_pids_size() - 1) == 1)
        inits[ProcTask(p.pid).Link("ns/pid").value_or("")] = p.pid;
    }
    for (const ZombieTask& z : tree_->zombies()) {
      in_tree.insert(z.pid);
      TRY(crl::CollectPidNamespaces(z.pid, {}, &pid_ns_[z.pid]));
    }
    if (inits.empty()) return Ok{};
    for (int pid : TRY(ListNumbered("/proc"))) {
      if (in_tree.count(pid)) continue;
      auto it = inits.find(ProcTask(pid).Link("ns/pid").value_or("-"));
      if (it == inits.end()) continue;
      std::string comm = "?";
      if (auto c = ProcTask(pid).Read("comm"); c.ok()) comm = c->substr(0, c->find('\n'));
      return MakeError(
          "PID %d (%s) is in the PID namespace of PID %d but not in its tree (it joined the "
          "namespace with setns, as nsenter does): it would be missing after restore",
          pid, comm.c_str(), it->second);
    }
    return Ok{};
  }

  Status Collect() {
    procs_.resize(tree_->processes().size());
    // The remote syscalls are ptrace exchanges: on one CPU, each task's
    // with criu-lite's (see same_cpu.h). Only here: the copy works on two.
    SameCpu same_cpu;
    for (size_t i = 0; i < procs_.size(); i++) {
      TRY(CheckStop());
      const SeizedProcess& p = tree_->processes()[i];
      // The root too: what it shares with a parent outside the tree could
      // not be shared again either.
      TRY(CollectProcess(p, p.ppid, opts_, &*tcp_, same_cpu, &procs_[i]));
      // Pre-dump passes save each process's private memory whole; the final
      // dump (chained or not) leaves out what a child still shares with its
      // parent copy-on-write, compared at the freeze. Shared anonymous
      // memory is inherited in every pass: it is one object.
      bool cow = !opts_.pre_dump;
      for (size_t j = 0; j < i; j++)
        if (procs_[j].pid == p.ppid) {
          if (cow) procs_[i].parent = p.ppid;
          MarkInherited(procs_[j].mm, &procs_[i].mm, !cow);
        }
    }
    std::vector<std::pair<pid_t, const img::MmState*>> mms;
    for (const ProcessImages& p : procs_) mms.push_back({p.pid, &p.mm});
    TRY(CheckSharedAnonCarried(mms));
    TRY(CheckNamespacesOwned());
    TRY(CollectPidNamespaces());
    if (!opts_.pre_dump) {
      std::vector<const img::TaskCore*> cores;
      for (ProcessImages& p : procs_) {
        if (!opts_.record_cgroups) p.core.clear_cgroups();
        cores.push_back(&p.core);
      }
      if (opts_.record_cgroups) cgroups_ = TRY(RecordCgroups(cores));
      std::vector<ProcessFds> pf;
      for (ProcessImages& p : procs_) pf.push_back({p.pid, &p.fds});
      std::set<pid_t> tasks;  // what a pidfd of the tree may name
      for (const SeizedProcess& p : tree_->processes())
        for (const SeizedThread& t : p.threads) tasks.insert(t.tid);
      for (const ZombieTask& z : tree_->zombies()) tasks.insert(z.pid);
      TRY(ResolveTreeFds(pf, std::move(tasks), opts_, &*tcp_, &shared_));
      for (ProcessImages& p : procs_)
        for (const img::Vma& v : p.mm.vmas())
          if (v.memfd_ino()) {
            TRY(SaveMemfd(ProcTask(p.pid).Path(Format("map_files/%lx-%lx", v.start(), v.end())),
                          v.path(), v.memfd_ino(), &shared_));
          } else if (v.ghost()) {
            std::string mf = ProcTask(p.pid).Path(Format("map_files/%lx-%lx", v.start(), v.end()));
            Status s = SaveGhost(mf, v.file(), opts_.ghost_limit, &shared_);
            if (!s.ok())
              return MakeError("PID %d maps the deleted file %s at 0x%lx, which %s", p.pid,
                               v.path().c_str(), v.start(), s.error().message.c_str());
          }
    }
    Mark("collected");
    FaultPoint("dump-collected");
    return Ok{};
  }

  Status Plan() {
    tracker_ = Tracker::Fresh(BestTrackingMethod());
    if (chained_) tracker_ = TRY(Tracker::Resume(prev_dir_));
    // Taking the written pages re-arms their tracking: from here on, only
    // this pass's images know what the previous pass did not have.
    if (chained_) TRY(tracker_.Consume(prev_dir_));
    if ((opts_.pre_dump || opts_.track_mem) && tracker_.method() == TrackingMethod::kNone)
      return MakeError(
          "this kernel can track written pages neither with uffd-wp async "
          "(PAGEMAP_SCAN) nor with soft-dirty: pre-dump is not possible");
    in_parent_.resize(procs_.size());
    for (size_t i = 0; i < procs_.size(); i++) {
      TRY(CheckStop());
      ProcessImages& p = procs_[i];
      PagemapFile pagemap = TRY(PagemapFile::Open(p.pid));
      std::optional<PagemapFile> parent_pagemap;
      if (p.parent > 0) parent_pagemap.emplace(TRY(PagemapFile::Open(p.parent)));
      img::MmState prev_mm;
      bool have_prev =
          chained_ && ReadImage(ImageDir(prev_dir_).Mm(p.pid), ImageKind::kMm, &prev_mm).ok();
      img::Pagemap prev_pm;
      have_prev = have_prev &&
                  ReadImage(ImageDir(prev_dir_).Pagemap(p.pid), ImageKind::kPagemap, &prev_pm).ok();
      if (have_prev && tracker_.Tracking(p.pid)) {
        std::vector<PageRun> prev_pages;  // what the chain holds, sorted
        for (const img::PagemapEntry& e : prev_pm.entries())
          prev_pages.push_back({e.vaddr(), e.vaddr() + e.nr_pages() * kPageSize});
        std::sort(prev_pages.begin(), prev_pages.end(),
                  [](const PageRun& a, const PageRun& b) { return a.start < b.start; });
        IncrementalPlan inc =
            TRY(PlanIncremental(p.pid, p.parent, &p.mm, prev_mm, prev_pages, tracker_, &mstats_)
                    .Context(Format("finding pages PID %d wrote", p.pid)));
        plans_.push_back(std::move(inc.copy));
        in_parent_[i] = std::move(inc.in_parent);
      } else {
        if (chained_) LOG_INFO("PID %d: no tracking from the previous pass: a full copy", p.pid);
        plans_.push_back(
            TRY(PlanMemory(pagemap, parent_pagemap ? &*parent_pagemap : nullptr, &p.mm, &mstats_)
                    .Context(Format("scanning memory of PID %d", p.pid))));
        if (opts_.pre_dump) TRY(tracker_.Start(tree_->processes()[i], p.mm));
      }
      if (opts_.pre_dump) TRY(tracker_.Rearm(p.pid));
      // Restore reads the last pass's mm only.
      if (!opts_.pre_dump)
        TRY(RecordHugePages(pagemap, &p.mm).Context(Format("finding huge pages of PID %d", p.pid)));
    }
    Mark("planned");
    FaultPoint("dump-written-pages-taken");
    return Ok{};
  }

  // What one copying thread counted.
  struct CopyCounts {
    MemoryDumpStats stats;
    uint64_t bytes = 0, checksum_nsec = 0;
  };

  // Process I's pages into its page file, and its pagemap. A pre-dump's
  // tree runs meanwhile: a page it writes is copied new and also counts as
  // written for the next pass.
  Status CopyProcess(size_t i, CopyCounts* counts) {
    ProcessImages& p = procs_[i];
    std::optional<PageWriter> writer;
    writer.emplace(TRY(PageWriter::Create(&out_, ImageDir::PagesName(p.pid), opts_.zstd_level)));
    Status copied = CopyPages(p.pid, plans_[i], p.mm, opts_.leave_running || opts_.pre_dump,
                              &*writer, &counts->stats);
    if (!copied.ok() && opts_.pre_dump && Exited(p.pid)) {
      // A pre-dump copies while the tree runs: a task that ended meanwhile
      // (a shell's short-lived child) has nothing left to save, and the
      // final dump will not find it.
      LOG_INFO("PID %d exited while its pages were copied: none kept", p.pid);
      tracker_.Forget(p.pid);
      writer.reset();
      writer.emplace(TRY(PageWriter::Create(&out_, ImageDir::PagesName(p.pid), opts_.zstd_level)));
      in_parent_[i].clear();
    } else {
      TRY(std::move(copied).Context(Format("dumping memory of PID %d", p.pid)));
    }
    for (const PageRun& r : in_parent_[i]) writer->AppendInParent(r.start, r.end - r.start);
    img::Pagemap pagemap;
    TRY(writer->Finish(&pagemap));
    counts->bytes += writer->bytes_written();
    counts->checksum_nsec += writer->checksum_nsec();
    return WriteImage(out_, ImageDir::PagemapName(p.pid), ImageKind::kPagemap, pagemap);
  }

  // A tree's processes two at a time where their page files are files of
  // an image directory (not a pre-dump: its tracker is one thread's): each
  // page file is an inode of its own, and a file system writes one inode's
  // pages on one CPU at a time (ext4 holds its lock for the copy).
  Status Copy() {
    std::vector<CopyCounts> counts(1);
    bool two = !opts_.output && !opts_.pre_dump && procs_.size() > 1;
    if (!two) {
      for (size_t i = 0; i < procs_.size(); i++) TRY(CopyProcess(i, &counts[0]));
    } else {
      counts.resize(2);
      std::atomic<size_t> next{0};
      std::atomic<bool> failed{false};
      std::vector<Status> ended(2, Ok{});
      auto work = [&](size_t w) {
        for (size_t i; !failed && (i = next++) < procs_.size();) {
          ended[w] = CopyProcess(i, &counts[w]);
          if (!ended[w].ok()) failed = true;
        }
      };
      std::thread helper([&] {
        // The main thread takes the signals (a stop, the wait timer).
        sigset_t all;
        sigfillset(&all);
        pthread_sigmask(SIG_BLOCK, &all, nullptr);
        work(1);
      });
      work(0);
      helper.join();
      for (const Status& s : ended) TRY(s);
    }
    for (const CopyCounts& c : counts) {
      mstats_.pages_written += c.stats.pages_written;
      bytes_ += c.bytes;
      checksum_nsec_ += c.checksum_nsec;
    }
    if (chained_) TRY(out_.Symlink(ImageDir::kParentLink, opts_.prev_images_dir));
    Mark("copied");
    FaultPoint("dump-pages-copied");
    return Ok{};
  }

  Status Write() {
    if (!opts_.pre_dump) TRY(WriteImage(out_, ImageDir::SharedName(), ImageKind::kShared, shared_));
    for (const ProcessImages& p : procs_) {
      TRY(WriteImage(out_, ImageDir::MmName(p.pid), ImageKind::kMm, p.mm));
      if (opts_.pre_dump) continue;
      TRY(WriteImage(out_, ImageDir::CoreName(p.pid), ImageKind::kCore, p.core));
      TRY(WriteImage(out_, ImageDir::FdsName(p.pid), ImageKind::kFds, p.fds));
    }
    // The inventory goes last: its presence says the dump is complete.
    TRY(CheckStop());
    TRY(WriteImage(out_, ImageDir::InventoryName(), ImageKind::kInventory, Inventory()));
    TRY(out_.Commit());
    FaultPoint("dump-committed");
    if (opts_.pre_dump) {
      // The images are complete: the next pass may start from them.
      Status saved = tracker_.Save(opts_.images_dir, opts_.tracking_owner);
      if (!saved.ok())
        LOG_WARN("the write tracking could not be kept (%s): the next pass copies everything",
                 saved.error().message.c_str());
    }
    Mark("written");
    return Ok{};
  }

  img::Inventory Inventory() const {
    img::Inventory inv;
    inv.set_pre_dump(opts_.pre_dump);
    for (size_t i = 0; i < procs_.size(); i++) {
      const SeizedProcess& p = tree_->processes()[i];
      inv.add_pids(p.pid);
      img::TreeEntry* e = inv.add_tree();
      e->set_pid(p.pid);
      e->set_ppid(p.ppid);
      if (!opts_.pre_dump) {
        e->set_pgid(procs_[i].core.pgid());
        e->set_sid(procs_[i].core.sid());
      }
      e->set_stopped(p.stopped);
      e->set_stop_signal(p.stop_signal);
      for (const SeizedThread& t : p.threads) e->add_tids(t.tid);
      if (auto it = pid_ns_.find(p.pid); it != pid_ns_.end()) e->MergeFrom(it->second);
    }
    for (const ZombieTask& z : tree_->zombies()) {
      img::TreeEntry* e = inv.add_tree();
      e->set_pid(z.pid);
      e->set_ppid(z.ppid);
      e->set_pgid(z.pgid);
      e->set_sid(z.sid);
      e->set_zombie(true);
      e->set_exit_status(z.exit_status);
      if (auto it = pid_ns_.find(z.pid); it != pid_ns_.end()) e->MergeFrom(it->second);
    }
    inv.set_format_version(kImageFormatVersion);
    inv.set_root_pid(opts_.pid);
    if (tcp_) inv.set_net_lock(tcp_->lock_table());
    for (const img::CgroupDir& d : cgroups_) *inv.add_cgroups() = d;
    utsname u;
    uname(&u);
    inv.set_kernel_release(u.release);
    inv.set_page_size(kPageSize);
    inv.set_criu_lite_version(CRIU_LITE_VERSION);
    inv.set_dump_time_unix(time(nullptr));
    inv.set_shell_job(opts_.shell_job);
    return inv;
  }

  Status Release() {
    bool kill_tree = !opts_.leave_running && !opts_.pre_dump;
    // A migration decides here: the destination either runs the tree (kill
    // the source) or failed (resume it, nothing lost).
    if (opts_.before_release) kill_tree = TRY(opts_.before_release());
    Status after_kill = Ok{};
    if (kill_tree)
      tcp_->Keep();
    else
      tcp_->LetGo();
    if (kill_tree) {
      tree_->SignalKill();
      if (opts_.after_kill_signalled) after_kill = opts_.after_kill_signalled();
    }
    TRY(tree_->Release());
    TRY(after_kill);
    Mark("end");
    if (chained_ && !opts_.pre_dump) tracker_.Stop();  // the final pass ends tracking
    return Ok{};
  }

  Result<img::Stats> Stats() {
    img::Stats stats;
    for (auto [name, from, to] : {std::tuple{"validate", "start", "frozen"},
                                  {"collect", "frozen", "collected"},
                                  {"scan", "collected", "planned"},
                                  {"memory", "thawed", "copied"},
                                  {"write-images", "copied", "written"},
                                  {"release", "written", "end"}}) {
      img::Phase* p = stats.add_phases();
      p->set_name(name);
      p->set_usec(Between(from, to));
    }
    stats.set_pages_scanned(mstats_.pages_scanned);
    stats.set_pages_written(mstats_.pages_written);
    stats.set_bytes_written(bytes_);
    stats.set_checksum_usec(checksum_nsec_ / 1000);
    if (tcp_) stats.set_net_lock_usec(tcp_->lock_usec());
    stats.set_frozen_usec(Between("frozen", opts_.pre_dump ? "thawed" : "end"));
    stats.set_total_usec(Between("start", "end"));
    stats.set_kind(opts_.pre_dump ? "pre-dump" : "dump");
    if (!opts_.images_dir.empty()) TRY(WriteImage(dir_.Stats("dump"), ImageKind::kStats, stats));
    LOG_INFO(
        "dumped the tree of PID %d: %zu processes, %lu pages (%lu more shared with parents), "
        "%lu bytes in %.3f s (frozen %.3f s)",
        opts_.pid, procs_.size(), mstats_.pages_written, mstats_.pages_shared_with_parent, bytes_,
        stats.total_usec() / 1e6, stats.frozen_usec() / 1e6);
    return stats;
  }

  const DumpOptions& opts_;
  ImageDir dir_;
  // Images are staged and moved in at the end (LocalImageOutput::Commit).
  LocalImageOutput local_;
  ImageOutput& out_;
  bool chained_;
  std::string prev_dir_;
  std::optional<SeizedTree> tree_;
  // After the tree: on the way out its connections leave repair mode and
  // the lock is lifted before the tree is resumed.
  std::optional<TcpRepairs> tcp_;
  ActionScripts scripts_;
  std::optional<TaskWindows> windows_;  // ends before the tree is released
  std::vector<ProcessImages> procs_;
  std::map<pid_t, img::TreeEntry> pid_ns_;  // CollectPidNamespaces: the ns_* fields
  std::vector<img::CgroupDir> cgroups_;
  img::Shared shared_;
  Tracker tracker_ = Tracker::Fresh(TrackingMethod::kNone);
  MemoryDumpStats mstats_;
  std::vector<MemoryPlan> plans_;
  std::vector<std::vector<PageRun>> in_parent_;
  uint64_t bytes_ = 0, checksum_nsec_ = 0;
  std::map<std::string, Clock::time_point> marks_;
};

}  // namespace

Result<img::Stats> Dump(const DumpOptions& opts) { return DumpRun(opts).Run(); }

Status AddDumpExternal(const std::string& key, DumpOptions* opts) {
  unsigned long a, b;
  int end = 0;
  if (sscanf(key.c_str(), "unix[%lu]%n", &a, &end) == 1 && end == static_cast<int>(key.size())) {
    opts->ext_unix_sk.insert(a);  // CRIU's other name for --ext-unix-sk=INODE
    return Ok{};
  }
  if (sscanf(key.c_str(), "net[%lu]:%n", &a, &end) == 1 && end > 0) {
    if (static_cast<size_t>(end) == key.size())
      return MakeError("%s: no KEY after ':'", key.c_str());
    opts->ext_net_ns[a] = key.substr(end);
    return Ok{};
  }
  if (key.rfind("mnt[", 0) == 0) {
    auto [mountpoint, name] = TRY(ParseMountExternal(key, "MOUNTPOINT]:KEY"));
    opts->ext_mounts[mountpoint] = name;
    return Ok{};
  }
  bool tty = sscanf(key.c_str(), "tty[%lx:%lx]%n", &a, &b, &end) == 2;
  bool file = !tty && sscanf(key.c_str(), "file[%lx:%lx]%n", &a, &b, &end) == 2;
  if ((!tty && !file) || end != static_cast<int>(key.size()))
    return MakeError(
        "%s: not tty[RDEV:DEV], file[MNT_ID:INODE], unix[INODE], mnt[MOUNTPOINT]:KEY or "
        "net[INODE]:KEY",
        key.c_str());
  opts->externals.insert(Format(tty ? "tty[%lx:%lx]" : "file[%lx:%lx]", a, b));
  return Ok{};
}

Status AddDumpExtMountMap(const std::string& map, DumpOptions* opts) {
  auto [mountpoint, name] = TRY(ParseExtMountMap(map, "MOUNTPOINT:KEY"));
  opts->ext_mounts[mountpoint] = name;
  return Ok{};
}

}  // namespace crl
