#include "dump/tracking.h"

#include <dirent.h>
#include <fcntl.h>
#include <linux/userfaultfd.h>
#include <poll.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <csignal>
#include <optional>

#include "base/background.h"
#include "base/log.h"
#include "images/image_dir.h"
#include "images/image_file.h"
#include "kernel/kernel_probe.h"
#include "kernel/proc_parsers.h"
#include "kernel/proc_task.h"
#include "kernel/remote_syscalls.h"
#include "kernel/task_fd.h"
#include "kernel/uapi.h"

namespace crl {
namespace {

uint64_t StartTime(pid_t pid) {
  auto st = ProcTask(pid).Stat();
  return st.ok() ? st->start_time : 0;
}

bool Trackable(const img::Vma& v) {
  return v.kind() == img::Vma::ANON_PRIVATE || v.kind() == img::Vma::FILE_PRIVATE ||
         v.kind() == img::Vma::ANON_SHARED;
}

// The holder: keeps the userfaultfds open until every tracked task is gone,
// or OWNER (if > 0) is.
[[noreturn]] void HolderMain(const std::vector<int>& keep, const std::vector<pid_t>& pids,
                             pid_t owner) {
  prctl(PR_SET_NAME, "crl-wp-holder");
  std::set<int> kept(keep.begin(), keep.end());
  DetachFromTerminal(kept);  // the terminal's Ctrl-C is for criu-lite, not for it
  signal(SIGTERM, SIG_DFL);
  CloseAllBut(kept);
  std::vector<pollfd> pfds;
  for (pid_t p : pids) {
    int fd = syscall(__NR_pidfd_open, p, 0);
    if (fd >= 0) pfds.push_back({fd, POLLIN, 0});
  }
  int owner_fd = owner > 0 ? syscall(__NR_pidfd_open, owner, 0) : -1;
  if (owner > 0 && owner_fd < 0) _exit(0);  // gone already
  while (!pfds.empty()) {
    std::vector<pollfd> all = pfds;
    if (owner_fd >= 0) all.push_back({owner_fd, POLLIN, 0});
    if (poll(all.data(), all.size(), -1) < 0) continue;
    if (owner_fd >= 0 && all.back().revents) _exit(0);
    for (size_t i = 0; i < pfds.size(); i++) pfds[i].revents = all[i].revents;
    pfds.erase(std::remove_if(pfds.begin(), pfds.end(), [](const pollfd& p) { return p.revents; }),
               pfds.end());
  }
  _exit(0);
}

// Ends the holders of other chains that track PID (each has a pidfd for it),
// and waits until their fds are closed: a task's memory can be registered
// with one userfaultfd at a time, and a new chain supersedes an old one
// (whose next pass then finds no holder and copies in full, as it says).
void EndOtherChains(pid_t pid) {
  DIR* proc = opendir("/proc");
  if (!proc) return;
  std::vector<pid_t> holders;
  char want[32];
  snprintf(want, sizeof want, "Pid:\t%d\n", pid);
  while (dirent* d = readdir(proc)) {
    pid_t h = atoi(d->d_name);
    if (h <= 0 || h == getpid()) continue;
    auto comm = ReadFileToString(Format("/proc/%d/comm", h));
    if (!comm.ok() || *comm != "crl-wp-holder\n") continue;
    DIR* fds = opendir(Format("/proc/%d/fdinfo", h).c_str());
    if (!fds) continue;
    while (dirent* f = readdir(fds)) {
      auto info = ReadFileToString(Format("/proc/%d/fdinfo/%s", h, f->d_name));
      if (info.ok() && info->find(want) != std::string::npos) {
        holders.push_back(h);
        break;
      }
    }
    closedir(fds);
  }
  closedir(proc);
  for (pid_t h : holders) {
    LOG_INFO("PID %d: ending the tracking of an earlier chain (holder %d)", pid, h);
    kill(h, SIGKILL);
    // Its files are closed once it is a zombie (it is nobody's child here).
    for (int i = 0; i < 2000; i++) {
      auto st = ProcTask(h).Stat();
      if (!st.ok() || st->state == 'Z' || st->state == 'X') break;
      usleep(1000);
    }
  }
}

}  // namespace

TrackingMethod BestTrackingMethod() {
  if (Kernel().uffd_wp_async && Kernel().pagemap_scan) return TrackingMethod::kUffdWp;
  if (Kernel().soft_dirty) return TrackingMethod::kSoftDirty;
  return TrackingMethod::kNone;
}

const char* TrackingMethodName(TrackingMethod m) {
  switch (m) {
    case TrackingMethod::kUffdWp:
      return "uffd-wp";
    case TrackingMethod::kSoftDirty:
      return "soft-dirty";
    default:
      return "none";
  }
}

bool Tracker::Tracking(pid_t pid) const {
  return method_ == TrackingMethod::kUffdWp ? uffds_.count(pid) > 0 : soft_dirty_.count(pid) > 0;
}

Result<Tracker> Tracker::Resume(const std::string& prev_dir) {
  ImageDir prev(prev_dir);
  img::Tracking t;
  if (access(prev.Tracking().c_str(), F_OK) < 0) {
    LOG_WARN("%s holds no tracking state: every page counts as written", prev_dir.c_str());
    return Tracker(BestTrackingMethod());
  }
  TRY(ReadImage(prev.Tracking(), ImageKind::kTracking, &t));
  if (t.consumed()) {
    LOG_WARN(
        "the tracking state of %s was taken by a later pass (one that failed, or another "
        "chain): what was written since is not known, every page counts as written (a full "
        "copy)",
        prev_dir.c_str());
    return Tracker(t.method() == "soft-dirty" ? TrackingMethod::kSoftDirty
                                              : TrackingMethod::kUffdWp);
  }
  if (t.method() == "soft-dirty") {
    Tracker tr(TrackingMethod::kSoftDirty);
    for (const img::TrackedTask& task : t.tasks()) tr.soft_dirty_[task.pid()] = true;
    return tr;
  }
  Tracker tr(TrackingMethod::kUffdWp);
  if (t.holder_pid() <= 0 || StartTime(t.holder_pid()) != t.holder_start_time()) {
    LOG_WARN(
        "the tracking holder %d of %s is gone: tracking was lost, every page counts as "
        "written (a full dump)",
        t.holder_pid(), prev_dir.c_str());
    return tr;
  }
  tr.holder_ = t.holder_pid();
  for (const img::TrackedTask& task : t.tasks()) {
    // (Without pidfd_getfd the holder, not a task of the tree, cannot pass
    // them back: each pass then copies everything, and says so here.)
    Result<ScopedFd> fd = TakeFd(t.holder_pid(), task.holder_fd());
    auto link = fd.ok() ? ProcTask(getpid()).Link(Format("fd/%d", fd->get()))
                        : Result<std::string>(fd.error());
    if (link.ok() && *link == "anon_inode:[userfaultfd]") {
      tr.uffds_[task.pid()] = std::move(*fd);
      tr.holder_fds_[task.pid()] = task.holder_fd();
    } else {
      LOG_WARN("tracking of PID %d was lost (%s): its pages all count as written", task.pid(),
               link.ok() ? link->c_str() : link.error().message.c_str());
    }
  }
  return tr;
}

Status Tracker::Start(const SeizedProcess& p, const img::MmState& mm) {
  pid_t pid = p.pid;
  if (method_ == TrackingMethod::kSoftDirty) {
    soft_dirty_[pid] = true;
    return Rearm(pid);
  }
  if (method_ != TrackingMethod::kUffdWp) return MakeError("no tracking method");
  uint64_t vdso = 0, vdso_end = 0;
  for (const img::Vma& v : mm.vmas())
    if (v.kind() == img::Vma::VDSO) vdso = v.start(), vdso_end = v.end();
  RemotePtr site = TRY(FindSyscallInsn(pid, vdso, vdso_end));
  {
    RemoteSyscalls rs(p.threads[0].tid, site, p.threads[0].live, RemoteSyscalls::Mode::kWindow);
    // Created by the task itself: a userfaultfd belongs to its creator's mm.
    // User-mode faults only: the task may lack CAP_SYS_PTRACE (a
    // container's), which a full userfaultfd needs where
    // vm.unprivileged_userfaultfd is 0; asynchronous write-protection never
    // delivers a fault, from user or kernel mode. Kernels before 5.11 do
    // not know the flag.
    int64_t remote_fd =
        TRY(rs.Syscall(SYS_userfaultfd, O_CLOEXEC | O_NONBLOCK | UFFD_USER_MODE_ONLY));
    if (remote_fd == -EINVAL)
      remote_fd = TRY(rs.Checked("userfaultfd", SYS_userfaultfd, O_CLOEXEC | O_NONBLOCK));
    else if (remote_fd < 0)
      return ErrnoError(static_cast<int>(-remote_fd), "userfaultfd(UFFD_USER_MODE_ONLY) in PID %d",
                        pid);
    uffds_[pid] = TRY(TakeMadeFd(rs, TRY(rs.Scratch()), pid, remote_fd, "userfaultfd"));
  }
  int uffd = uffds_[pid].get();
  uffdio_api api{};
  api.api = UFFD_API;
  // WP_ASYNC without WP_UNPOPULATED: unpopulated pages then stay plain empty
  // ptes (a first write to one fills it, unprotected: "written"), where
  // WP_UNPOPULATED would install markers that PAGEMAP_SCAN and
  // /proc/PID/pagemap both report as swapped pages, not telling them from
  // real ones.
  api.features = UFFD_FEATURE_WP_ASYNC;
  if (ioctl(uffd, UFFDIO_API, &api) < 0)
    return ErrnoError("ioctl(UFFDIO_API, WP_ASYNC) for %d", pid);
  int tracked = 0;
  bool ended_other_chains = false;
  for (const img::Vma& v : mm.vmas()) {
    if (!Trackable(v)) continue;
    uffdio_register reg{};
    reg.range = {v.start(), v.end() - v.start()};
    reg.mode = UFFDIO_REGISTER_MODE_WP;
    int ok = ioctl(uffd, UFFDIO_REGISTER, &reg);
    if (ok < 0 && errno == EBUSY && !ended_other_chains) {
      // Registered already: with an earlier chain's userfaultfd, or the
      // task's own.
      EndOtherChains(pid);
      ended_other_chains = true;
      ok = ioctl(uffd, UFFDIO_REGISTER, &reg);
    }
    if (ok < 0) {
      // Not trackable (the task's own userfaultfd, say): dumped in full.
      LOG_DEBUG("PID %d: cannot track 0x%lx-0x%lx: %m", pid, v.start(), v.end());
      continue;
    }
    uffdio_writeprotect wp{};
    wp.range = reg.range;
    wp.mode = UFFDIO_WRITEPROTECT_MODE_WP;
    if (ioctl(uffd, UFFDIO_WRITEPROTECT, &wp) < 0)
      return ErrnoError("ioctl(UFFDIO_WRITEPROTECT, 0x%lx) for %d", v.start(), pid);
    tracked++;
  }
  LOG_INFO("PID %d: tracking writes in %d mappings with uffd-wp", pid, tracked);
  return Ok{};
}

Result<std::vector<PageRun>> Tracker::TakeWritten(pid_t pid, uint64_t start, uint64_t end) {
  std::string path = ProcTask(pid).Path("pagemap");
  ScopedFd fd(open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (!fd.valid()) return ErrnoError("open(%s)", path.c_str());
  std::vector<PageRun> runs;
  if (method_ == TrackingMethod::kSoftDirty) {
    std::vector<uint64_t> e(4096);
    for (uint64_t pos = start; pos < end;) {
      size_t n = std::min<uint64_t>((end - pos) / kPageSize, e.size());
      if (pread(fd.get(), e.data(), n * 8, (pos / kPageSize) * 8) != static_cast<ssize_t>(n * 8))
        return ErrnoError("pread(%s)", path.c_str());
      for (size_t i = 0; i < n; i++)
        if (e[i] & (1ull << 55)) {
          uint64_t a = pos + i * kPageSize;
          if (!runs.empty() && runs.back().end == a)
            runs.back().end += kPageSize;
          else
            runs.push_back({a, a + kPageSize});
        }
      pos += n * kPageSize;
    }
    return runs;
  }
  std::vector<page_region> vec(1024);
  for (uint64_t pos = start; pos < end;) {
    pm_scan_arg arg{};
    arg.size = sizeof arg;
    arg.flags = PM_SCAN_WP_MATCHING | PM_SCAN_CHECK_WPASYNC;
    arg.start = pos;
    arg.end = end;
    arg.vec = reinterpret_cast<uint64_t>(vec.data());
    arg.vec_len = vec.size();
    arg.category_mask = PAGE_IS_WRITTEN;
    arg.return_mask = PAGE_IS_WRITTEN;
    long n = ioctl(fd.get(), PAGEMAP_SCAN, &arg);
    if (n < 0 && errno == EPERM)
      return CodedError(ErrorCode::kUntracked, "PID %d 0x%lx-0x%lx: not write-protected", pid, pos,
                        end);
    if (n < 0) return ErrnoError("ioctl(PAGEMAP_SCAN, written, 0x%lx-0x%lx)", pos, end);
    for (long i = 0; i < n; i++) {
      if (!runs.empty() && runs.back().end == vec[i].start)
        runs.back().end = vec[i].end;
      else
        runs.push_back({vec[i].start, vec[i].end});
    }
    if (arg.walk_end <= pos) break;
    pos = arg.walk_end;
  }
  return runs;
}

Status Tracker::Consume(const std::string& prev_dir) {
  ImageDir prev(prev_dir);
  img::Tracking t;
  if (access(prev.Tracking().c_str(), F_OK) < 0) return Ok{};
  TRY(ReadImage(prev.Tracking(), ImageKind::kTracking, &t));
  if (t.consumed()) return Ok{};
  t.set_consumed(true);
  // Written aside and renamed: the mark is there whole, or not at all.
  std::string tmp = prev.Tracking() + ".consumed";
  TRY(WriteImage(tmp, ImageKind::kTracking, t));
  if (rename(tmp.c_str(), prev.Tracking().c_str()) < 0) {
    int e = errno;
    unlink(tmp.c_str());
    return ErrnoError(e, "rename(%s)", prev.Tracking().c_str());
  }
  if (holder_ > 0) kill(holder_, SIGKILL);
  holder_ = -1;
  return Ok{};
}

void Tracker::EndChain(const std::string& dir) {
  img::Tracking t;
  if (!ReadImage(ImageDir(dir).Tracking(), ImageKind::kTracking, &t).ok()) return;
  if (t.holder_pid() > 0 && StartTime(t.holder_pid()) == t.holder_start_time()) {
    kill(t.holder_pid(), SIGKILL);
    LOG_INFO("ended the write tracking of %s (holder %d)", dir.c_str(), t.holder_pid());
  }
}

Status Tracker::Rearm(pid_t pid) {
  if (method_ != TrackingMethod::kSoftDirty) return Ok{};
  std::string path = ProcTask(pid).Path("clear_refs");
  ScopedFd fd(open(path.c_str(), O_WRONLY | O_CLOEXEC));
  if (!fd.valid() || write(fd.get(), "4", 1) != 1) return ErrnoError("write(%s, 4)", path.c_str());
  return Ok{};
}

Status Tracker::Save(const std::string& dir, pid_t owner) {
  img::Tracking t;
  t.set_method(TrackingMethodName(method_));
  if (method_ == TrackingMethod::kSoftDirty) {
    for (auto& [pid, on] : soft_dirty_) t.add_tasks()->set_pid(pid);
    return WriteImage(ImageDir(dir).Tracking(), ImageKind::kTracking, t);
  }
  if (holder_ > 0) kill(holder_, SIGKILL);  // the new holder takes over every fd
  holder_ = -1;
  std::vector<int> keep;
  std::vector<pid_t> pids;
  for (auto& [pid, fd] : uffds_) {
    keep.push_back(fd.get());
    pids.push_back(pid);
  }
  // Double fork: the holder is nobody's child, so nothing has to reap it.
  int ready[2];
  if (pipe(ready) < 0) return ErrnoError("pipe");
  pid_t mid = fork();
  if (mid < 0) return ErrnoError("fork");
  if (mid == 0) {
    pid_t h = fork();
    if (h == 0) {
      keep.push_back(ready[1]);
      close(ready[0]);
      HolderMain(keep, pids, owner);
    }
    if (write(ready[1], &h, sizeof h) != sizeof h) _exit(1);
    _exit(0);
  }
  close(ready[1]);
  pid_t h = -1;
  if (read(ready[0], &h, sizeof h) != sizeof h) h = -1;
  close(ready[0]);
  waitpid(mid, nullptr, 0);
  if (h <= 0) return MakeError("could not start the tracking holder");
  holder_ = h;
  t.set_holder_pid(h);
  t.set_holder_start_time(StartTime(h));
  for (auto& [pid, fd] : uffds_) {
    img::TrackedTask* task = t.add_tasks();
    task->set_pid(pid);
    task->set_holder_fd(fd.get());
  }
  return WriteImage(ImageDir(dir).Tracking(), ImageKind::kTracking, t);
}

void Tracker::Stop() {
  if (holder_ > 0) kill(holder_, SIGKILL);
  holder_ = -1;
  uffds_.clear();
}

Result<IncrementalPlan> PlanIncremental(pid_t pid, pid_t parent, img::MmState* mm,
                                        const img::MmState& prev,
                                        const std::vector<PageRun>& prev_pages, Tracker& tracker,
                                        MemoryDumpStats* stats) {
  IncrementalPlan plan;
  auto add = [](std::vector<PageRun>& runs, uint64_t a, uint64_t b) {
    if (!runs.empty() && runs.back().end == a)
      runs.back().end = b;
    else
      runs.push_back({a, b});
  };
  auto copy = [&plan](uint64_t a, uint64_t b, bool readable) {
    if (!plan.copy.empty() && plan.copy.back().first.end == a)
      plan.copy.back().first.end = b;
    else
      plan.copy.push_back({{a, b}, readable});
  };
  // Pages not written since the last pass, [A, B): in the parent image if
  // the chain has them, copied otherwise.
  size_t pi = 0;
  auto unchanged = [&](uint64_t a, uint64_t b, bool readable) {
    while (a < b) {
      while (pi < prev_pages.size() && prev_pages[pi].end <= a) pi++;
      bool held = pi < prev_pages.size() && prev_pages[pi].start <= a;
      uint64_t lim = b;
      if (pi < prev_pages.size())
        lim = std::min(lim, held ? prev_pages[pi].end : prev_pages[pi].start);
      if (held)
        add(plan.in_parent, a, lim);
      else
        copy(a, lim, readable);
      a = lim;
    }
  };
  PagemapFile pagemap = TRY(PagemapFile::Open(pid));
  std::optional<PagemapFile> parent_pagemap;
  for (img::Vma& v : *mm->mutable_vmas()) {
    if (!Trackable(v)) continue;
    // A shared object inherited from the parent is the parent's: one copy.
    if (v.kind() == img::Vma::ANON_SHARED && v.inherited()) continue;
    bool existed = false;
    for (const img::Vma& pv : prev.vmas())
      if (pv.start() == v.start() && pv.end() == v.end() && pv.kind() == v.kind()) existed = true;
    bool shared_anon = v.kind() == img::Vma::ANON_SHARED;
    bool readable = v.prot() & PROT_READ;
    stats->pages_scanned += (v.end() - v.start()) / kPageSize;
    std::vector<PageRun> data = TRY(pagemap.DataPages(v.start(), v.end(), shared_anon));
    if (v.inherited() && parent > 0) {
      // Frames still the parent's are inherited at restore, as in a plain dump.
      if (!parent_pagemap) parent_pagemap.emplace(TRY(PagemapFile::Open(parent)));
      std::vector<PageRun> own;
      uint64_t shared = TRY(SplitAgainstParent(pagemap, *parent_pagemap, v, data, &own, mm, stats));
      data = std::move(own);
      if (shared == 0 && v.kind() == img::Vma::ANON_PRIVATE) v.set_inherited(false);  // PlanMemory
    }
    auto written = tracker.TakeWritten(pid, v.start(), v.end());
    // Untracked (a mapping made since the last pass): copied whole. Any
    // other failure is one: a full copy would hide it.
    if (!written.ok() && !written.error().Is(ErrorCode::kUntracked)) return written.error();
    if (LogEnabled(LogLevel::kDebug)) {
      size_t nd = 0, nw = 0;
      for (const PageRun& r : data) nd += (r.end - r.start) / kPageSize;
      if (written.ok())
        for (const PageRun& r : *written) nw += (r.end - r.start) / kPageSize;
      LOG_DEBUG("PID %d 0x%lx-0x%lx: %zu data pages, %s %zu written", pid, v.start(), v.end(), nd,
                written.ok() ? "tracked," : "untracked,", nw);
    }
    if (!written.ok() || !existed) {
      for (const PageRun& r : data) plan.copy.push_back({r, readable});
      continue;
    }
    // Each data page is either written since the last pass, or unchanged and
    // so in the parent image.
    size_t wi = 0;
    for (const PageRun& r : data) {
      for (uint64_t a = r.start; a < r.end;) {
        while (wi < written->size() && (*written)[wi].end <= a) wi++;
        bool w = wi < written->size() && (*written)[wi].start <= a;
        uint64_t lim = r.end;
        if (wi < written->size())
          lim = std::min(lim, w ? (*written)[wi].end : (*written)[wi].start);
        if (w)
          copy(a, lim, readable);
        else
          unchanged(a, lim, readable);
        a = lim;
      }
    }
  }
  return plan;
}

}  // namespace crl
