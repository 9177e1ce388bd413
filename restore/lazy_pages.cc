#include "restore/lazy_pages.h"

#include <fcntl.h>
#include <linux/userfaultfd.h>
#include <poll.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <csignal>
#include <cstring>
#include <list>
#include <map>
#include <set>

#include "base/background.h"
#include "base/clock.h"
#include "base/interrupt.h"
#include "base/log.h"
#include "images/page_file.h"
#include "kernel/proc_parsers.h"
#include "kernel/proc_task.h"
#include "kernel/task_fd.h"
#include "kernel/uapi.h"
#include "restore/lazy_plan.h"

namespace crl {

Result<ScopedFd> RegisterLazyRanges(Puppet& p,
                                    const std::vector<std::pair<uint64_t, uint64_t>>& ranges) {
  RemoteSyscalls& rs = p.rs();
  // A userfaultfd belongs to the mm of the task that creates it.
  int64_t remote = TRY(rs.Checked("userfaultfd", SYS_userfaultfd, O_CLOEXEC | O_NONBLOCK));
  RemoteScratch::Frame frame(p.scratch());
  RemotePtr scm = TRY(p.scratch().Reserve(kScmScratchBytes));
  ScopedFd uffd = TRY(TakeMadeFd(rs, scm, p.pid(), remote, "userfaultfd"));
  uffdio_api api{};
  api.api = UFFD_API;
  api.features = UFFD_FEATURE_EVENT_FORK | UFFD_FEATURE_EVENT_REMAP | UFFD_FEATURE_EVENT_REMOVE |
                 UFFD_FEATURE_EVENT_UNMAP;
  if (ioctl(uffd.get(), UFFDIO_API, &api) < 0)
    return ErrnoError(
        "ioctl(UFFDIO_API) for PID %d: this kernel's userfaultfd lacks the events "
        "lazy restore follows",
        p.pid());
  for (const auto& [start, end] : ranges) {
    uffdio_register reg{};
    reg.range = {start, end - start};
    reg.mode = UFFDIO_REGISTER_MODE_MISSING;
    if (ioctl(uffd.get(), UFFDIO_REGISTER, &reg) < 0)
      return ErrnoError("registering 0x%lx-0x%lx of PID %d with its userfaultfd", start, end,
                        p.pid());
  }
  return uffd;
}

namespace {

struct Mm {
  pid_t pid;  // 0 for a process the task forked after the restore
  ScopedFd uffd;
  PendingMap pending;
  std::vector<uint64_t> faults;  // to serve, or to retry
  bool gone = false;
};

struct Source {
  const char* base = nullptr;
  uint64_t size = 0;
};

enum class Outcome { kDone, kRetry, kGone };

constexpr uint64_t kFaultChunk = 64 << 10;      // placed around a faulting page
constexpr uint64_t kBackgroundChunk = 1 << 20;  // placed per step between faults

class Daemon {
 public:
  Daemon(std::vector<Source> sources, uint64_t fill_rate)
      : sources_(std::move(sources)), fill_rate_(fill_rate) {}
  void Add(Mm mm) { mms_.push_back(std::move(mm)); }
  void Run();

 private:
  Outcome Copy(Mm& mm, uint64_t a, uint64_t b);
  Outcome ServeFault(Mm& mm, uint64_t addr);
  void ReadMessages(Mm& mm);

  std::vector<Source> sources_;
  uint64_t fill_rate_;  // bytes per second, 0: as fast as it goes
  std::list<Mm> mms_;
  uint64_t on_demand_ = 0, in_background_ = 0, zero_ = 0;
};

// Places [A, B), which lies in one pending run.
Outcome Daemon::Copy(Mm& mm, uint64_t a, uint64_t b) {
  auto it = std::prev(mm.pending.upper_bound(a));
  const char* data = sources_[it->second.source].base + it->second.offset + (a - it->first);
  while (a < b) {
    uffdio_copy c{};
    c.dst = a;
    c.src = reinterpret_cast<uint64_t>(data);
    c.len = b - a;
    if (ioctl(mm.uffd.get(), UFFDIO_COPY, &c) == 0) {
      Erase(mm.pending, a, b);
      return Outcome::kDone;
    }
    if (c.copy > 0) {  // part of it went in
      Erase(mm.pending, a, a + c.copy);
      a += c.copy;
      data += c.copy;
      continue;
    }
    if (errno == EAGAIN) return Outcome::kRetry;  // the layout is changing: read events first
    if (errno == ESRCH) return Outcome::kGone;    // the process has exited
    // Already there (EEXIST: the kernel wrote it before the restore handed
    // the task to us, which restore avoids), or no longer a registered
    // mapping (ENOENT): nothing to place on this page.
    if (errno == EEXIST)
      LOG_WARN("lazy pages: PID %d: page 0x%lx was present before its image was placed", mm.pid, a);
    else
      LOG_DEBUG("lazy pages: PID %d: page 0x%lx not placed: %m", mm.pid, a);
    Erase(mm.pending, a, a + kPageSize);
    a += kPageSize;
    data += kPageSize;
  }
  return Outcome::kDone;
}

Outcome Daemon::ServeFault(Mm& mm, uint64_t addr) {
  uint64_t page = addr & ~(kPageSize - 1);
  auto it = mm.pending.upper_bound(page);
  if (it != mm.pending.begin() && page < std::prev(it)->first + std::prev(it)->second.len) {
    --it;
    uint64_t start = std::max(it->first, page & ~(kFaultChunk - 1));
    uint64_t end = std::min(it->first + it->second.len, start + kFaultChunk);
    uint64_t n = (end - start) / kPageSize;
    Outcome o = Copy(mm, start, end);
    if (o == Outcome::kDone) on_demand_ += n;
    return o;
  }
  // A page the image does not have: it reads as zeros, as it did.
  uffdio_zeropage z{};
  z.range = {page, kPageSize};
  if (ioctl(mm.uffd.get(), UFFDIO_ZEROPAGE, &z) == 0) {
    LOG_DEBUG("lazy pages: PID %d: zero page at 0x%lx", mm.pid, page);
    zero_++;
    return Outcome::kDone;
  }
  if (errno == EAGAIN) return Outcome::kRetry;
  if (errno == ESRCH) return Outcome::kGone;
  // Placed meanwhile (EEXIST), or the mapping went away: let the thread retry.
  uffdio_range r{page, kPageSize};
  (void)ioctl(mm.uffd.get(), UFFDIO_WAKE, &r);
  return Outcome::kDone;
}

void Daemon::ReadMessages(Mm& mm) {
  uffd_msg msgs[64];
  for (;;) {
    ssize_t n = read(mm.uffd.get(), msgs, sizeof msgs);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return;  // EAGAIN: nothing more
    for (ssize_t i = 0; i < n / static_cast<ssize_t>(sizeof msgs[0]); i++) {
      const uffd_msg& m = msgs[i];
      switch (m.event) {
        case UFFD_EVENT_PAGEFAULT:
          mm.faults.push_back(m.arg.pagefault.address);
          break;
        case UFFD_EVENT_FORK: {
          // The child has the parent's missing pages missing too, with the
          // same contents to come.
          Mm child{0, ScopedFd(static_cast<int>(m.arg.fork.ufd)), mm.pending, {}, false};
          LOG_DEBUG("lazy pages: PID %d forked; following its child", mm.pid);
          mms_.push_back(std::move(child));
          break;
        }
        case UFFD_EVENT_REMAP:
          Move(mm.pending, m.arg.remap.from, m.arg.remap.to, m.arg.remap.len);
          break;
        case UFFD_EVENT_REMOVE:  // MADV_DONTNEED and the like: zeros from now on
        case UFFD_EVENT_UNMAP:
          Erase(mm.pending, m.arg.remove.start, m.arg.remove.end);
          break;
        default:
          LOG_WARN("lazy pages: PID %d: unexpected userfaultfd event 0x%x", mm.pid, m.event);
      }
    }
  }
}

void Daemon::Run() {
  auto t0 = Clock::now();
  uint64_t total = 0;
  for (const Mm& mm : mms_)
    for (const auto& [a, p] : mm.pending) total += p.len / kPageSize;
  LOG_INFO("lazy pages: serving %zu processes, %lu pages", mms_.size(), total);
  auto next = mms_.begin();  // whose pages the background fill places next
  bool stalled = false;
  while (!mms_.empty()) {
    if (StopSignal() && fill_rate_) {
      LOG_INFO("lazy pages: asked to stop: placing the rest at once");
      fill_rate_ = 0;
    }
    bool filling = false;
    for (const Mm& mm : mms_) filling |= !mm.pending.empty() && !mm.gone;
    // --lazy-fill-rate: the background fill keeps to its budget.
    double elapsed = SecsBetween(t0, Clock::now());
    bool may_fill = fill_rate_ == 0 || in_background_ * kPageSize <= fill_rate_ * elapsed;
    std::vector<pollfd> pfds;
    for (const Mm& mm : mms_) pfds.push_back({mm.uffd.get(), POLLIN, 0});
    int timeout = (filling && may_fill && !stalled) ? 0 : filling || stalled ? 1 : 100;
    (void)poll(pfds.data(), pfds.size(), timeout);
    stalled = false;
    size_t count = mms_.size();  // forks found now are served next round
    auto it = mms_.begin();
    for (size_t i = 0; i < count; i++, ++it) {
      if (pfds[i].revents) ReadMessages(*it);
      std::vector<uint64_t> retry;
      for (uint64_t addr : it->faults) {
        Outcome o = it->gone ? Outcome::kGone : ServeFault(*it, addr);
        if (o == Outcome::kRetry) retry.push_back(addr);
        if (o == Outcome::kGone) it->gone = true;
      }
      it->faults = std::move(retry);
      stalled |= !it->faults.empty();
    }
    // One step of the background fill, round robin over the processes.
    for (size_t tries = 0; may_fill && tries < mms_.size(); tries++) {
      if (next == mms_.end()) next = mms_.begin();
      Mm& mm = *next++;
      if (mm.gone || mm.pending.empty()) continue;
      auto run = mm.pending.begin();
      uint64_t a = run->first, b = a + std::min(run->second.len, kBackgroundChunk);
      Outcome o = Copy(mm, a, b);
      if (o == Outcome::kDone) in_background_ += (b - a) / kPageSize;
      if (o == Outcome::kGone) mm.gone = true;
      if (o == Outcome::kRetry) stalled = true;
      break;
    }
    // A process whose pages are all in place no longer needs us: closing its
    // userfaultfd hands its mappings back to the kernel.
    for (auto m = mms_.begin(); m != mms_.end();) {
      bool done = m->gone || (m->pending.empty() && m->faults.empty());
      if (done && !m->gone) {
        ReadMessages(*m);  // a fork or a fault that came in just now
        done = m->pending.empty() && m->faults.empty();
      }
      if (!done) {
        ++m;
        continue;
      }
      if (m->gone) LOG_DEBUG("lazy pages: PID %d has exited", m->pid);
      if (next == m) ++next;
      m = mms_.erase(m);
    }
  }
  double secs = std::chrono::duration<double>(Clock::now() - t0).count();
  LOG_INFO(
      "lazy pages: done in %.3f s: %lu pages placed on demand, %lu in the background, %lu zero "
      "pages on demand",
      secs, on_demand_, in_background_, zero_);
}

}  // namespace

namespace {

// Every process of the tree under ROOT (ROOT too), read now.
void Descendants(pid_t root, std::vector<pid_t>* out) {
  out->push_back(root);
  for (pid_t k : ProcTask(root).Children()) Descendants(k, out);
}

// The daemon's work: serve TASKS until every page is placed or its process gone.
[[noreturn]] void DaemonMain(std::vector<LazyTask> tasks,
                             const std::vector<std::pair<int, std::string>>& sources,
                             uint64_t fill_mib_s) {
  prctl(PR_SET_NAME, "crl-lazy-pages");
  std::vector<Source> mapped;
  for (const auto& [fd, path] : sources) {
    struct stat st;
    Source s;
    if (fstat(fd, &st) == 0 && st.st_size > 0) {
      void* base = mmap(nullptr, st.st_size, PROT_READ, MAP_SHARED, fd, 0);
      if (base == MAP_FAILED) {
        LOG_ERROR("lazy pages: mmap(%s): %m", path.c_str());
        _exit(1);
      }
      s = {static_cast<const char*>(base), static_cast<uint64_t>(st.st_size)};
    }
    mapped.push_back(s);
  }
  Daemon daemon(std::move(mapped), fill_mib_s << 20);
  for (LazyTask& t : tasks) {
    Mm mm{t.pid, std::move(t.uffd), {}, {}, false};
    for (const LazyRun& r : t.runs) mm.pending[r.vaddr] = {r.len, r.source, r.offset};
    daemon.Add(std::move(mm));
  }
  daemon.Run();
  _exit(0);
}

// The daemon's parent: if the daemon ends before every page is placed
// (killed, crashed), the restored processes would read zeros where their
// memory was, and go wrong at random later. The guard kills them instead,
// and says why.
[[noreturn]] void KillTheTree(const std::string& why,
                              const std::vector<std::pair<pid_t, int>>& roots);

[[noreturn]] void GuardMain(pid_t daemon, const std::vector<std::pair<pid_t, int>>& roots) {
  prctl(PR_SET_NAME, "crl-lazy-guard");
  int status = 0;
  while (waitpid(daemon, &status, 0) < 0 && errno == EINTR) {
  }
  if (WIFEXITED(status) && WEXITSTATUS(status) == 0) _exit(0);
  KillTheTree(
      Format("the daemon %d %s before every page was in place", daemon,
             WIFSIGNALED(status) ? Format("was killed by signal %d (%s)", WTERMSIG(status),
                                          strsignal(WTERMSIG(status)))
                                       .c_str()
                                 : Format("exited with status %d", WEXITSTATUS(status)).c_str()) +
          ": the restored processes would read zeros where their memory was",
      roots);
}

void KillTheTree(const std::string& why, const std::vector<std::pair<pid_t, int>>& roots) {
  std::vector<pid_t> found;
  for (const auto& [pid, pidfd] : roots)
    if (syscall(__NR_pidfd_send_signal, pidfd, 0, nullptr, 0) == 0) Descendants(pid, &found);
  std::set<pid_t> victims(found.begin(), found.end());
  std::string list;
  for (pid_t v : victims) list += Format(" %d", v);
  LOG_ERROR("lazy pages: %s; killed them:%s", why.c_str(), list.c_str());
  for (const auto& [pid, pidfd] : roots)
    syscall(__NR_pidfd_send_signal, pidfd, SIGKILL, nullptr, 0);
  for (pid_t v : victims) kill(v, SIGKILL);
  _exit(1);
}

}  // namespace

Result<pid_t> StartLazyPagesDaemon(std::vector<LazyTask> tasks,
                                   const std::vector<std::pair<int, std::string>>& sources,
                                   uint64_t fill_mib_s, pid_t tree_root,
                                   const std::vector<const PageReader*>& verify) {
  fflush(nullptr);
  pid_t guard = fork();
  if (guard < 0) return ErrnoError("fork (lazy-pages guard)");
  if (guard > 0) {
    LOG_INFO("lazy pages: a daemon serves %zu processes (its guard is %d)", tasks.size(), guard);
    return guard;  // TASKS goes away here, closing criu-lite's copies
  }
  // The guard, then the daemon: neither holds anything of the tree's (a pipe
  // end or socket kept here would keep it from seeing EOF), neither is
  // criu-lite's child any more once it exits, and the terminal's signals
  // are not for them. A SIGTERM makes the daemon place the rest at once.
  std::set<int> keep{LogFileFd()};
  DetachFromTerminal(keep);
  keep.insert({0, 1, 2});
  // The whole restored tree goes if the daemon does: its root (and what it
  // has under it then), and the processes served, wherever they are by then.
  std::vector<std::pair<pid_t, int>> roots;
  std::set<pid_t> pids{tree_root};
  for (const LazyTask& t : tasks) pids.insert(t.pid);
  for (pid_t p : pids) {
    int fd = syscall(__NR_pidfd_open, p, 0);
    if (fd >= 0) roots.push_back({p, fd});
  }
  pid_t daemon = fork();
  if (daemon == 0) {
    for (const LazyTask& t : tasks) keep.insert(t.uffd.get());
    for (const auto& [fd, path] : sources) keep.insert(fd);
    CloseAllBut(keep);
    DaemonMain(std::move(tasks), sources, fill_mib_s);
  }
  for (const auto& [pid, fd] : roots) keep.insert(fd);
  for (const PageReader* r : verify) keep.insert(r->fd());
  CloseAllBut(keep);  // the userfaultfds too: only the daemon may hold them
  if (daemon < 0)
    KillTheTree(Format("the daemon could not start (fork: %s)", strerror(errno)), roots);
  for (const PageReader* r : verify) {
    Status ok = r->Verify();
    if (!ok.ok()) {
      kill(daemon, SIGKILL);
      KillTheTree(ok.error().message + ": the restored processes would run on it", roots);
    }
  }
  GuardMain(daemon, roots);
}

}  // namespace crl
