#include "restore/restore.h"

#include <fcntl.h>
#include <linux/nsfs.h>
#include <net/if.h>
#include <poll.h>
#include <sched.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/shm.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <climits>
#include <csignal>
#include <cstring>
#include <deque>
#include <filesystem>
#include <future>
#include <map>
#include <optional>
#include <set>
#include <thread>

#include "base/action_script.h"
#include "base/clock.h"
#include "base/interrupt.h"
#include "base/log.h"
#include "files/fd_kind.h"
#include "images/image_archive.h"
#include "images/image_dir.h"
#include "images/image_file.h"
#include "images/page_file.h"
#include "images/registers_image.h"
#include "images/validate.h"
#include "kernel/as_task.h"
#include "kernel/kernel_probe.h"
#include "kernel/mounts.h"
#include "kernel/namespaces.h"
#include "kernel/net_lock.h"
#include "kernel/proc_parsers.h"
#include "kernel/proc_task.h"
#include "kernel/same_cpu.h"
#include "kernel/task_fd.h"
#include "kernel/uapi.h"
#include "restore/aio_restore.h"
#include "restore/cgroup_restore.h"
#include "restore/creds_restore.h"
#include "restore/file_table.h"
#include "restore/lazy_pages.h"
#include "restore/lazy_plan.h"
#include "restore/mount_restore.h"
#include "restore/puppet.h"
#include "restore/task_restore.h"

namespace crl {
namespace {

// What a network namespace's image holds, for kernel/net_ns; loopback's
// state alone for an empty one (--empty-ns net) and for an image from
// before links were recorded.
NetContents NetContentsOf(const img::NetNamespace& n, bool empty) {
  NetContents out;
  if (empty || n.links().empty()) {
    NetLink lo;
    lo.name = "lo";
    lo.kind = "loopback";
    lo.flags = n.lo_up() ? static_cast<uint32_t>(IFF_UP) : 0;
    out.links.push_back(std::move(lo));
    return out;
  }
  for (const img::NetLink& l : n.links())
    out.links.push_back(
        NetLink{l.name(), l.kind(), l.flags(), l.mtu(), l.mac(), l.peer(), l.peer_outside()});
  for (const img::NetAddress& a : n.addresses())
    out.addresses.push_back(NetAddress{a.link(), a.family(), a.local(), a.prefix(), a.label(),
                                       a.broadcast(), a.scope(), a.flags()});
  for (const auto& [path, value] : n.sysctls()) out.sysctls[path] = value;
  for (const img::NetRoute& r : n.routes())
    out.routes.push_back(NetRoute{r.family(), r.table(), r.protocol(), r.scope(), r.type(),
                                  r.priority(), r.dst(), r.dst_len(), r.gateway(), r.link(),
                                  r.prefsrc()});
  for (const img::NetNeighbour& e : n.neighbours())
    out.neighbours.push_back(NetNeighbour{e.link(), e.family(), e.dst(), e.lladdr()});
  return out;
}

struct TaskImages {
  img::TreeEntry entry;
  img::TaskCore core;
  img::MmState mm;
  img::Pagemap pagemap;
  img::Fds fds;
  std::unique_ptr<PageReader> pages;
  std::unique_ptr<PageChain> chain;  // iterative dumps: pages in parent images
  // --pages=lazy: the mappings the daemon fills, and their pages.
  std::vector<std::pair<uint64_t, uint64_t>> lazy_ranges;
  std::vector<ChainedRun> lazy_runs;
  std::vector<const TaskImages*> children;  // tree order
};

char ProcessState(pid_t pid) {
  auto st = ProcTask(pid).Stat();
  return st.ok() ? st->state : 0;
}

Status CheckPidFree(pid_t pid) {
  // A process killed by the dump lingers as a zombie until its parent reaps
  // it, holding the PID: give the parent a moment.
  for (int i = 0; i < 200 && ProcessState(pid) == 'Z'; i++) usleep(10000);
  if (kill(pid, 0) == 0 || errno != ESRCH) {
    std::string comm = "?";
    if (auto c = ProcTask(pid).Read("comm"); c.ok()) comm = c->substr(0, c->find('\n'));
    return CodedError(ErrorCode::kPidInUse,
                      "PID %d is already in use (by %s); a restored process gets its own PID back",
                      pid, comm.c_str());
  }
  return Ok{};
}

// How task E is made by its PARENT in the tree (nullptr: the root, made by
// criu-lite): in its parent's PID namespace, or as the init of one of its
// own, with its PIDs in every namespace below criu-lite's, and in
// criu-lite's where the tree's root is in it (HOST_PIDS: the root sees
// them, and keeps them in its memory; below a root in a namespace of its
// own, a namespace's host PIDs are no part of what is inside).
NewPid PidsFor(const img::TreeEntry& e, const img::TreeEntry* parent, bool host_pids) {
  int depth = e.ns_pids_size(), above = parent ? parent->ns_pids_size() : 0;
  NewPid n;
  n.new_ns = depth > above;
  for (int i = depth - 1; i >= 0; i--) n.set_tid.push_back(e.ns_pids(i));
  if (depth == 0 || host_pids) n.set_tid.push_back(e.pid());
  return n;
}

// E's thread I's TIDs, innermost first (as for its process).
std::vector<pid_t> ThreadTids(const img::TreeEntry& e, int i, bool host_pids) {
  int depth = e.ns_pids_size();
  if (depth == 0) return {e.tids(i)};
  std::vector<pid_t> out;
  for (int l = depth - 1; l >= 0; l--) out.push_back(e.ns_tids(i * depth + l));
  if (host_pids) out.push_back(e.tids(i));
  return out;
}

// E's group as E names it in its own PID namespace.
pid_t SelfPgid(const img::TreeEntry& e) { return e.ns_pids_size() ? e.ns_pgid() : e.pgid(); }

// Everything is read and checked before any task exists.
Status LoadTask(const ImageDir& dir, const RestoreOptions& opts, TaskImages* t) {
  pid_t pid = t->entry.pid();
  TRY(ReadImage(dir.Core(pid), ImageKind::kCore, &t->core));
  TRY(ReadImage(dir.Mm(pid), ImageKind::kMm, &t->mm));
  TRY(ReadImage(dir.Pagemap(pid), ImageKind::kPagemap, &t->pagemap));
  TRY(ReadImage(dir.Fds(pid), ImageKind::kFds, &t->fds));
  TRY(ValidateCore(t->core).Context(dir.Core(pid)));
  TRY(ValidateMm(t->mm).Context(dir.Mm(pid)));
  TRY(ValidatePagemap(t->pagemap, t->mm).Context(dir.Pagemap(pid)));
  TRY(ValidateFds(t->fds).Context(dir.Fds(pid)));
  if (t->core.pid() != pid || t->core.threads_size() != t->entry.tids_size() ||
      t->core.threads_size() == 0)
    return MakeError("%s does not match the inventory's threads of PID %d", dir.Core(pid).c_str(),
                     pid);
  for (const img::ThreadCore& th : t->core.threads()) {
    if (th.xstate().empty()) return MakeError("%s has no FPU state", dir.Core(pid).c_str());
    TRY(ValidateCreds(th.tid(), th.creds()));
  }
  for (const img::Fd& f : t->fds.fds()) TRY(KindOf(f).Context(Format("PID %d", pid)));
  TRY(ValidateVmas(t->mm).Context(Format("PID %d", pid)));
  auto reader = TRY(PageReader::Open(dir.path(), t->pagemap));
  t->pages = std::make_unique<PageReader>(std::move(reader));
  bool chained = false;
  for (const img::PagemapEntry& e : t->pagemap.entries()) chained |= e.in_parent();
  if (opts.pages == PagePlacement::kLazy && !t->pages->raw())
    return MakeError(
        "%s: --pages=lazy needs uncompressed pages (these were dumped with --compress)",
        dir.Pagemap(pid).c_str());
  // Lazy restore splits every task's pages by mapping: a chain of one image.
  if (chained || opts.pages == PagePlacement::kLazy)
    t->chain = std::make_unique<PageChain>(TRY(ResolvePageChain(dir.path(), pid, t->pagemap)));
  // Tasks in a PID namespace restore makes take PIDs in it only.
  if (t->entry.ns_pids().empty())
    for (int tid : t->entry.tids()) TRY(CheckPidFree(tid));
  return Ok{};
}

// That T's files are there to open and map again: where the tree's mount
// namespace is made by restore, run inside it.
Status CheckTaskFiles(const TaskImages& t, const RestoreOptions& opts, bool same_inode) {
  pid_t pid = t.entry.pid();
  for (const img::Fd& f : t.fds.fds()) {
    const FdKind* kind = TRY(KindOf(f).Context(Format("PID %d", pid)));
    bool handed_in = false;  // --inherit-fd: nothing to open here
    for (const auto& [key, fd] : opts.inherit_fds) handed_in |= InheritKeyMatches(key, f);
    if (!handed_in)
      TRY(kind->Check(f, opts.shell_job).Context(Format("fd %d of PID %d", f.fd(), pid)));
  }
  return CheckMappedFiles(t.mm, same_inode).Context(Format("PID %d", pid));
}

struct Tree {
  std::map<pid_t, std::unique_ptr<TaskImages>> tasks;
  const TaskImages* root = nullptr;
  img::Shared shared;
  // page-server --pages=vm-mmap: the page holders, by page file name, and
  // what each page file has in one instead of in the file.
  std::map<std::string, std::unique_ptr<PageHolder>> holders;
  HeldRanges held;
};

// T's parent in the images (null for the root).
const TaskImages* ParentOf(const Tree& tree, const TaskImages& t) {
  if (&t == tree.root) return nullptr;
  auto it = tree.tasks.find(t.entry.ppid());
  return it == tree.tasks.end() ? nullptr : it->second.get();
}

// The task nearest T, from T (included) up to the root (not), that made a
// namespace of what HAS tests; null: none below the root did.
const TaskImages* MakerBelowRoot(const Tree& tree, const TaskImages& t,
                                 bool (img::TaskCore::*has)() const) {
  for (const TaskImages* u = &t; u && u != tree.root; u = ParentOf(tree, *u))
    if ((u->core.*has)()) return u;
  return nullptr;
}

// The mount namespace made below the root that T is in (its ID at dump), or
// 0: the root's.
uint64_t NestedMountNs(const Tree& tree, const TaskImages& t) {
  const TaskImages* maker = MakerBelowRoot(tree, t, &img::TaskCore::has_mnt);
  return maker ? maker->core.mnt().ns_id() : 0;
}

// The same for the network namespace.
uint64_t NestedNetNs(const Tree& tree, const TaskImages& t) {
  const TaskImages* maker = MakerBelowRoot(tree, t, &img::TaskCore::has_net);
  return maker ? maker->core.net().ns_id() : 0;
}

// The mount and network namespaces tasks below the root made, made before
// the tree (mounts: restore/mount_restore.h), by their IDs at dump: an fd
// of each, and the mounts a mount namespace's task makes itself.
struct NestedNamespaces {
  std::map<uint64_t, ScopedFd> mnt;
  std::map<uint64_t, std::set<uint64_t>> later;
  std::map<uint64_t, ScopedFd> net;
};

// The page files of the tree, each once.
std::vector<const PageReader*> PageFiles(const Tree& tree) {
  std::vector<const PageReader*> out;
  for (const auto& [p, t] : tree.tasks) {
    if (t->chain) {
      for (const auto& src : t->chain->sources) out.push_back(src.get());
    } else if (t->pages) {
      out.push_back(t->pages.get());
    }
  }
  return out;
}

// (Pages a page holder has never touched a disk: they are not checked.)
// DROP_CACHE (--pages=vm-mmap): what the check reads leaves no page cache
// behind, as criu-lite's own reads leave none: read ahead of them, or
// after, it would be a second copy of the pages until the end.
Status VerifyPages(const Tree& tree, bool drop_cache = false) {
  for (const PageReader* r : PageFiles(tree))
    if (!tree.held.count(r)) TRY(r->Verify(drop_cache));
  return Ok{};
}

// page-server --pages=vm-mmap: the holders it gave, and for each page file
// of the tree beside a `held-pages`, what the holder has instead of it.
// Without the holders such images cannot be restored: refused, never
// restored with holes for pages.
Status AttachPageHolders(const RestoreOptions& opts, Tree* tree) {
  for (const auto& [name, fd] : opts.page_holders)
    tree->holders[name] =
        std::make_unique<PageHolder>(TRY(PageHolder::FromControl(fd).Context("--page-holder")));
  for (const PageReader* r : PageFiles(*tree)) {
    std::filesystem::path path(r->path());
    std::string held_path = (path.parent_path() / "held-pages").string();
    if (access(held_path.c_str(), F_OK) != 0) continue;
    std::string data = TRY(ReadFileToString(held_path));
    if (opts.pages != PagePlacement::kVmMmap || tree->holders.empty())
      return MakeError(
          "%s: its pages are held in memory by the page server that received them "
          "(page-server --pages=vm-mmap), not in its page files: only that page server can "
          "restore it",
          path.parent_path().c_str());
    img::HeldPages hp;
    if (!hp.ParseFromString(data)) return MakeError("%s does not parse", held_path.c_str());
    for (const img::HeldPages::File& f : hp.files()) {
      if (f.pages_file() != path.filename().string() || f.held().empty()) continue;
      auto& ranges = tree->held[r];
      for (const img::PageRange& h : f.held()) ranges.push_back({h.start(), h.end()});
      std::sort(ranges.begin(), ranges.end());
    }
  }
  return Ok{};
}

Result<Tree> LoadTree(const ImageDir& dir, const img::Inventory& inv, const RestoreOptions& opts) {
  Tree tree;
  TRY(ValidateTree(inv).Context(dir.Inventory()));
  std::vector<std::unique_ptr<TaskImages>> loaded;
  for (const img::TreeEntry& e : inv.tree()) {
    int ss = e.stop_signal();
    if (e.stopped() && ss && ss != SIGSTOP && ss != SIGTSTP && ss != SIGTTIN && ss != SIGTTOU)
      return MakeError("%s: PID %d was stopped by signal %d, which stops nothing",
                       dir.Inventory().c_str(), e.pid(), ss);
    loaded.push_back(std::make_unique<TaskImages>());
    loaded.back()->entry = e;
  }
  // Tasks' images are read and checked on two threads, every other task
  // each: most of it is the kernel's (opening, reading, looking up files).
  auto load = [&](size_t from) -> Status {
    for (size_t i = from; i < loaded.size(); i += 2) {
      TaskImages* t = loaded[i].get();
      if (!t->entry.zombie())
        TRY(LoadTask(dir, opts, t));
      else if (t->entry.ns_pids().empty())
        TRY(CheckPidFree(t->entry.pid()));
    }
    return Ok{};
  };
  std::future<Status> odd =
      std::async(loaded.size() > 1 ? std::launch::async : std::launch::deferred, load, 1);
  Status even = load(0);
  Status odd_status = odd.get();
  TRY(even);
  TRY(odd_status);
  for (std::unique_ptr<TaskImages>& t : loaded) {
    const img::TreeEntry& e = t->entry;
    if (e.pid() != inv.root_pid() && !tree.tasks.count(e.ppid()))
      return MakeError("%s: PID %d's parent %d is not in the tree", dir.Inventory().c_str(),
                       e.pid(), e.ppid());
    if (e.pid() != inv.root_pid()) tree.tasks[e.ppid()]->children.push_back(t.get());
    tree.tasks[e.pid()] = std::move(t);
  }
  tree.root = tree.tasks[inv.root_pid()].get();
  // Below a root in criu-lite's PID namespace, the tasks of namespaces
  // below keep their PIDs in criu-lite's too (PidsFor).
  if (tree.root->entry.ns_pids().empty())
    for (const img::TreeEntry& e : inv.tree())
      if (!e.ns_pids().empty()) {
        if (e.zombie()) TRY(CheckPidFree(e.pid()));
        for (int tid : e.tids()) TRY(CheckPidFree(tid));
      }
  // A group whose leader has exited needs the leader's PID for a moment.
  for (const img::TreeEntry& e : inv.tree())
    if (!tree.tasks.count(e.pgid()) && e.pgid() != tree.tasks[inv.root_pid()]->entry.pgid() &&
        e.ns_pids().empty())
      TRY(CheckPidFree(e.pgid()).Context(Format("process group %d of PID %d", e.pgid(), e.pid())));
  if (access(dir.Shared().c_str(), F_OK) == 0)
    TRY(ReadImage(dir.Shared(), ImageKind::kShared, &tree.shared));
  if (!tree.root || tree.root->entry.zombie())
    return MakeError("%s has no live root task", dir.Inventory().c_str());
  for (const auto& [p, t] : tree.tasks)
    if (t->core.has_mnt() && t->core.mnt().nested() != (t.get() != tree.root))
      return MakeError("%s: PID %d's mount namespace is recorded as %s the tree's root",
                       dir.Inventory().c_str(), p, t->core.mnt().nested() ? "below" : "made by");
  if (tree.root->core.has_mnt()) {
    if (opts.root.empty())
      return MakeError(
          "the tree's root made a mount namespace (a container): give the directory that is "
          "its root with --root");
  } else {
    if (!opts.root.empty())
      return MakeError("--root %s: the tree has no mount namespace of its own to put there",
                       opts.root.c_str());
    // Those in namespaces of their own are checked in them (OpenFiles).
    for (const auto& [p, t] : tree.tasks)
      if (!t->entry.zombie() && !NestedMountNs(tree, *t)) TRY(CheckTaskFiles(*t, opts, true));
  }
  return tree;
}

// --pages=lazy: which pages the daemon places once the tree runs. Those of
// private anonymous mappings; not those a child inherits at fork, which must
// be in place before the fork (the child keeps them, or drops them). In a
// mapping the task itself inherited, its own pages are dropped after the
// fork (DropLazyPages) and come lazily too.
void PlanLazy(Tree& tree) {
  for (auto& [pid, t] : tree.tasks) {
    if (t->entry.zombie()) continue;
    std::vector<std::pair<uint64_t, uint64_t>> kept_by_children;
    for (const TaskImages* c : t->children)
      if (!c->entry.zombie())
        for (const img::Vma& v : c->mm.vmas())
          if (v.inherited()) kept_by_children.push_back({v.start(), v.end()});
    for (const img::Vma& v : t->mm.vmas()) {
      if (v.kind() != img::Vma::ANON_PRIVATE) continue;
      // Placed before the tree runs: locked memory (mlock faults it all in),
      // and the stack with the arguments and environment, which other
      // processes read through /proc/PID/cmdline and environ (a remote read
      // does not wait for a userfaultfd: it would find nothing).
      auto holds = [&v](uint64_t addr) { return addr >= v.start() && addr < v.end(); };
      if (std::count(v.madvise().begin(), v.madvise().end(), "lo") || holds(t->mm.arg_start()) ||
          holds(t->mm.env_start()))
        continue;
      bool kept = false;
      for (const auto& [s, e] : kept_by_children) kept |= s < v.end() && e > v.start();
      if (!kept) t->lazy_ranges.push_back({v.start(), v.end()});
    }
    std::sort(t->lazy_ranges.begin(), t->lazy_ranges.end());
    std::vector<ChainedRun> eager;
    SplitRunsByRanges(t->chain->runs, t->lazy_ranges, &t->lazy_runs, &eager);
    t->chain->runs = std::move(eager);
  }
}

// The parent's pages at the addresses of the task's own lazy pages, in the
// mappings it inherited: dropped, so that they are missing until placed.
Status DropLazyPages(Puppet& p, const TaskImages& t) {
  std::vector<std::pair<uint64_t, uint64_t>> inherited, drop;
  for (const img::Vma& v : t.mm.vmas())
    if (v.inherited()) inherited.push_back({v.start(), v.end()});
  for (const ChainedRun& r : t.lazy_runs)
    for (const auto& [s, e] : inherited)
      if (r.vaddr >= s && r.vaddr < e) drop.push_back({r.vaddr, r.vaddr + r.len});
  std::sort(drop.begin(), drop.end());
  for (size_t i = 0; i < drop.size();) {
    uint64_t s = drop[i].first, e = drop[i].second;
    for (i++; i < drop.size() && drop[i].first == e; i++) e = drop[i].second;
    TRY(p.rs().Checked(Format("madvise(0x%lx, DONTNEED)", s).c_str(), SYS_madvise, s, e - s,
                       MADV_DONTNEED));
  }
  return Ok{};
}

// Which VMAs have pages to place, eagerly or lazily.
VmasWithPages FindVmasWithPages(const TaskImages& t) {
  std::vector<std::pair<uint64_t, uint64_t>> eager, lazy;
  if (t.chain) {
    for (const ChainedRun& r : t.chain->runs) eager.push_back({r.vaddr, r.vaddr + r.len});
    for (const ChainedRun& r : t.lazy_runs) lazy.push_back({r.vaddr, r.vaddr + r.len});
  } else {
    for (const img::PagemapEntry& e : t.pagemap.entries())
      eager.push_back({e.vaddr(), e.vaddr() + e.nr_pages() * kPageSize});
  }
  // Whether a run of RUNS (sorted, apart) reaches into V: the last one that
  // starts before V's end is the only one that may.
  auto touches = [](std::vector<std::pair<uint64_t, uint64_t>>& runs, const img::Vma& v) {
    auto it = std::lower_bound(runs.begin(), runs.end(), std::make_pair(v.end(), uint64_t{0}));
    return it != runs.begin() && std::prev(it)->second > v.start();
  };
  std::sort(eager.begin(), eager.end());
  std::sort(lazy.begin(), lazy.end());
  VmasWithPages out;
  for (const img::Vma& v : t.mm.vmas()) {
    if (touches(eager, v)) out.eager.insert(v.start());
    if (touches(eager, v) || touches(lazy, v)) out.any.insert(v.start());
  }
  return out;
}

struct Phases {
  img::Stats stats;
  Clock::time_point last = Clock::now();
  void Mark(const char* name) {
    auto now = Clock::now();
    img::Phase* p = stats.add_phases();
    p->set_name(name);
    p->set_usec(UsecBetween(last, now));
    last = now;
  }
};

class TreeBuilder {
 public:
  TreeBuilder(const Tree& tree, const RestoreOptions& opts, FileTable& files,
              const CgroupRestore& cgroups, int net_ns, const NestedNamespaces& nested)
      : tree_(tree),
        opts_(opts),
        files_(files),
        cgroups_(cgroups),
        net_ns_(net_ns),
        nested_(nested) {}
  // Tasks not released are killed children first: the init of a PID
  // namespace does not finish dying until every task in it has been reaped,
  // the traced ones by criu-lite.
  ~TreeBuilder() {
    placing_.clear();  // before their tasks and scratch memory go
    while (!zombies_.empty()) zombies_.pop_back();
    while (!puppets_.empty()) puppets_.pop_back();
    LeaveCpu();
  }

  // ROOT is in its cgroups and namespaces already (RootNamespaces).
  Status Build(std::unique_ptr<Puppet> root) {
    ShareCpu(root->pid());
    TRY(BuildProcess(std::move(root), *tree_.root));
    while (!placing_.empty()) TRY(FinishOldestPlacing());
    TRY(RemoveDestroyedSegments());
    TRY(SetProcessGroups());
    for (Zombie& z : zombies_) TRY(ExitZombie(z));
    // No task forks from here on (a fork would wait for the lazy-pages
    // daemon), and nothing has written to lazy memory yet: the kernel writes
    // the rseq areas, which FinishProcess registers, through the daemon.
    if (opts_.pages == PagePlacement::kLazy) {
      LeaveCpu();  // the daemon it forks would keep criu-lite's pin for good
      TRY(StartLazyPages());
    }
    for (auto& [t, p] : puppets_) TRY(FinishProcess(*p, *t));
    // Threads whose images say no CPU set (made before it was recorded)
    // get criu-lite's, as they did before tasks shared its CPU.
    if (cpu_ >= 0) {
      for (auto& [t, p] : puppets_)
        for (int i = 0; i < t->core.threads_size(); i++)
          if (t->core.threads(i).sched().affinity().empty())
            sched_setaffinity(p->thread_tid(i), sizeof own_cpus_, &own_cpus_);
      LeaveCpu();
      cpu_ = -1;
    }
    return Ok{};
  }
  // Last remote syscalls, signal masks, registers; every task runs at once.
  Status ReleaseAll();
  size_t processes() const { return puppets_.size(); }

 private:
  Status BuildProcess(std::unique_ptr<Puppet> p, const TaskImages& t);
  // A task that reads its pages itself while criu-lite builds the next one
  // (StartPlacePages); FinishOldestPlacing waits for the oldest and goes on
  // with it (BuildRest): what comes after its pages, its children included.
  struct Placing {
    Puppet* puppet;
    const TaskImages* images;
    std::unique_ptr<PagesBeingPlaced> pages;
  };
  Status FinishOldestPlacing();
  Status BuildRest(Puppet& p, const TaskImages& t);
  // The tree is built on criu-lite's CPU: each remote syscall is a ptrace
  // exchange, three times as costly between two CPUs (see
  // kernel/same_cpu.h). ShareCpu pins criu-lite and the ROOT puppet to
  // the CPU criu-lite is on; the puppets it forks inherit it. A puppet
  // reading its pages meanwhile gets criu-lite's own set (OwnCpus): it
  // works on the other CPU. Each thread gets its recorded set at the end
  // (RestoreSched). Nothing is left pinned should criu-lite die: the
  // puppets die with it (PTRACE_O_EXITKILL).
  void ShareCpu(pid_t root);
  void OnCriuLitesCpu(pid_t tid);
  void OwnCpus(pid_t tid);
  // criu-lite's own set back (puppets stay where they are).
  void LeaveCpu();
  cpu_set_t own_cpus_{};
  int cpu_ = -1;
  bool self_pinned_ = false;
  Status FinishProcess(Puppet& p, const TaskImages& t);
  Status ForkChildren(Puppet& p, const TaskImages& t, bool in_my_session);
  // A zombie is created with the others, joins its group with them, and
  // exits (as it had) once every group exists.
  struct Zombie {
    Puppet* parent;
    const TaskImages* images;
    std::unique_ptr<Puppet> puppet;
  };
  Status MakeZombie(Puppet& parent, const TaskImages& parent_images, const TaskImages& z);
  Status ExitZombie(Zombie& z);
  Status SetProcessGroups();
  Status MakeLeaderlessGroup(Puppet& member, const TaskImages& t);
  Status StartLazyPages();
  // System V segments removed while attached (IPC_RMID) are removed again
  // once every task has attached them: gone with the last detach, as they
  // were.
  Status RemoveDestroyedSegments() {
    for (auto& [t, p] : puppets_) {
      if (!t->core.has_ipc()) continue;
      for (const img::SysvObject& o : t->core.ipc().objects())
        if (o.kind() == img::SysvObject::SHM && o.shm_destroyed())
          TRY(p->rs().Checked(Format("shmctl(%d, IPC_RMID)", o.id()).c_str(), SYS_shmctl, o.id(),
                              IPC_RMID, 0));
    }
    return Ok{};
  }
  // The pty of the tree that session SID had as its controlling terminal.
  const img::PtyFd* ControllingPty(pid_t sid) const {
    for (const auto& [p, t] : tree_.tasks)
      for (const img::Fd& f : t->fds.fds())
        if (f.has_pty() && (f.pty().master() || f.pty().orphan()) && f.pty().sid() == sid)
          return &f.pty();
    return nullptr;
  }

  // The foreground group of TTY as its session's tasks name it (in a PID
  // namespace restore made, not as criu-lite saw it at dump); 0: none.
  pid_t ForegroundGroup(const img::PtyFd& tty) const {
    for (const auto& [p, t] : tree_.tasks)
      if (t->entry.pgid() == tty.fg_pgrp()) return SelfPgid(t->entry);
    return tty.fg_pgrp();
  }

  // Whether tasks in PID namespaces below keep their PIDs in criu-lite's
  // too: where the root is in it (PidsFor).
  bool HostPids() const { return tree_.root->entry.ns_pids_size() == 0; }

  const Tree& tree_;
  const RestoreOptions& opts_;
  FileTable& files_;
  const CgroupRestore& cgroups_;
  int net_ns_;  // the root's network namespace, made by restore (-1: none)
  const NestedNamespaces& nested_;
  // Creation order: parents before children. Destroying a Puppet that was
  // not released kills it: a failed restore leaves nothing behind.
  std::vector<std::pair<const TaskImages*, std::unique_ptr<Puppet>>> puppets_;
  std::vector<Zombie> zombies_;
  std::set<pid_t> created_groups_;
  // Tasks reading their pages, oldest first: as many as there are cores
  // for them (criu-lite's own work needs little).
  static constexpr size_t kReadingAtOnce = 2;
  std::deque<Placing> placing_;
};

Status TreeBuilder::BuildProcess(std::unique_ptr<Puppet> owned, const TaskImages& t) {
  Puppet& p = *owned;
  puppets_.push_back({&t, std::move(owned)});
  TRY(CheckStop());
  pid_t pid = t.entry.pid();
  auto step = [&](Status s, const char* what) -> Status {
    if (!s.ok()) return MakeError("restoring PID %d: %s: %s", pid, what, s.error().message.c_str());
    return Ok{};
  };
  files_.TaskMade(pid, p.pid());
  // Into its cgroups first: the memory it is given is charged there.
  if (&t != tree_.root) {
    TRY(step(cgroups_.Move(p.pid(), t.core), "restoring cgroups"));
    int net = t.core.has_net() ? nested_.net.at(t.core.net().ns_id()).get() : net_ns_;
    TRY(step(RestoreNamespaces(p, t.core, cgroups_, net), "restoring namespaces"));
    // Last: the mounts it makes itself may be of the namespaces above.
    if (t.core.has_mnt()) {
      uint64_t id = t.core.mnt().ns_id();
      TRY(step(EnterNamespace(p, nested_.mnt.at(id).get(), CLONE_NEWNS, "its mount namespace"),
               "entering its mount namespace"));
      TRY(step(FinishNestedMountNamespace(p, t.core.mnt(), nested_.later.at(id), opts_.ext_mounts),
               "finishing its mount namespace"));
    }
  }
  TRY(step(ClearAddressSpace(p, t.mm), "clearing the address space"));
  VmasWithPages with_pages = FindVmasWithPages(t);
  auto file_of = [this](const img::Vma& v) {
    return v.ghost() ? files_.Ghost(v.file(), v.path()) : files_.Memfd(v.memfd_ino());
  };
  TRY(step(MapVmas(p, t.mm, with_pages, file_of), "mapping VMAs"));
  // Not with lazy pages: a collapse fills what it finds missing.
  if (opts_.huge_pages && opts_.pages != PagePlacement::kLazy &&
      opts_.pages != PagePlacement::kVmMmap)
    TRY(step(PrepareHugePages(p, t.mm), "making huge pages"));
  TRY(step(ZapDroppedPages(p, t.mm), "dropping pages"));
  if (opts_.pages == PagePlacement::kLazy) TRY(step(DropLazyPages(p, t), "dropping pages"));
  PagePlacement how = opts_.pages == PagePlacement::kLazy ? PagePlacement::kRead : opts_.pages;
  auto holder = tree_.holders.find(ImageDir::PagesName(pid));
  if (how == PagePlacement::kVmMmap && holder != tree_.holders.end())
    TRY(step(PlaceFromPageHolder(p, t.mm, with_pages, *t.pages, t.chain.get(), opts_.huge_pages,
                                 *holder->second, tree_.held),
             "placing pages"));
  else if (how == PagePlacement::kVmMmap)
    TRY(step(PlaceByVmMmap(p, t.mm, with_pages, *t.pages, t.chain.get(), opts_.huge_pages),
             "placing pages"));
  else if (t.chain)
    TRY(step(PlaceChainedPages(p, *t.chain, how), "placing pages"));
  else {
    OwnCpus(p.pid());
    Result<std::unique_ptr<PagesBeingPlaced>> started = StartPlacePages(p, *t.pages, opts_.pages);
    if (!started.ok()) return step(started.error(), "placing pages");
    if (!*started) OnCriuLitesCpu(p.pid());
    if (*started) {
      // It reads while criu-lite goes on with the tasks before it (and so
      // on with this one's next sibling): both cores work.
      placing_.push_back(Placing{&p, &t, std::move(*started)});
      if (placing_.size() > kReadingAtOnce) return FinishOldestPlacing();
      return Ok{};
    }
  }
  return BuildRest(p, t);
}

Status TreeBuilder::FinishOldestPlacing() {
  Placing placing = std::move(placing_.front());
  placing_.pop_front();
  if (Status s = placing.pages->Finish(); !s.ok())
    return MakeError("restoring PID %d: placing pages: %s", placing.images->entry.pid(),
                     s.error().message.c_str());
  OnCriuLitesCpu(placing.puppet->pid());
  return BuildRest(*placing.puppet, *placing.images);
}

void TreeBuilder::ShareCpu(pid_t root) {
  if (sched_getaffinity(0, sizeof own_cpus_, &own_cpus_) < 0) return;
  int cpu = sched_getcpu();
  if (cpu < 0 || CPU_COUNT(&own_cpus_) < 2) return;
  cpu_set_t one = OneCpu(cpu);
  if (sched_setaffinity(0, sizeof one, &one) < 0) return;
  cpu_ = cpu;
  self_pinned_ = true;
  OnCriuLitesCpu(root);
}

void TreeBuilder::LeaveCpu() {
  if (self_pinned_) sched_setaffinity(0, sizeof own_cpus_, &own_cpus_);
  self_pinned_ = false;
}

// Either may fail (a cpuset without criu-lite's CPU): only slower.
void TreeBuilder::OnCriuLitesCpu(pid_t tid) {
  if (cpu_ < 0) return;
  cpu_set_t one = OneCpu(cpu_);
  sched_setaffinity(tid, sizeof one, &one);
}

void TreeBuilder::OwnCpus(pid_t tid) {
  if (cpu_ >= 0) sched_setaffinity(tid, sizeof own_cpus_, &own_cpus_);
}

Status TreeBuilder::BuildRest(Puppet& p, const TaskImages& t) {
  pid_t pid = t.entry.pid();
  auto step = [&](Status s, const char* what) -> Status {
    if (!s.ok()) return MakeError("restoring PID %d: %s: %s", pid, what, s.error().message.c_str());
    return Ok{};
  };
  VmasWithPages with_pages = FindVmasWithPages(t);
  TRY(step(FinishVmas(p, t.mm, with_pages), "setting protections"));
  TRY(step(RestoreAioRings(p, t.mm), "restoring AIO contexts"));
  TRY(step(InstallFds(p, t.fds, files_), "restoring files"));
  TRY(step(RestoreProcessState(p, t.core), "restoring process state"));
  // Children in the session this task had before it made its own are forked
  // first; then its setsid; then the children in its own session.
  bool own_session = t.core.sid() == pid;
  TRY(ForkChildren(p, t, false));
  if (own_session) {
    Result<int64_t> r = p.rs().Checked("setsid", SYS_setsid);
    if (!r.ok()) return MakeError("restoring PID %d: %s", pid, r.error().message.c_str());
  }
  TRY(ForkChildren(p, t, true));
  for (int i = 1; i < t.core.threads_size(); i++) {
    TRY(step(p.CloneThread(ThreadTids(t.entry, i, HostPids())), "creating a thread"));
    files_.TaskMade(t.entry.tids(i), p.thread_tid(i));
  }
  return Ok{};
}

// Once the whole tree exists: what each task's threads carry.
Status TreeBuilder::FinishProcess(Puppet& p, const TaskImages& t) {
  TRY(CheckStop());
  pid_t pid = t.entry.pid();
  auto step = [&](Status s, const char* what) -> Status {
    if (!s.ok()) return MakeError("restoring PID %d: %s: %s", pid, what, s.error().message.c_str());
    return Ok{};
  };
  auto fds_of = [this](pid_t pid) -> const img::Fds* {
    auto it = tree_.tasks.find(pid);
    return it == tree_.tasks.end() ? nullptr : &it->second->fds;
  };
  TRY(step(FinishFds(p, t.fds, files_, fds_of), "restoring files"));
  TRY(step(RestoreMmFields(p, t.mm), "restoring mm fields"));
  TRY(step(RestoreSignals(p, t.core), "restoring signals"));
  for (int i = 0; i < t.core.threads_size(); i++)
    TRY(step(RestoreThreadState(p, i, t.core.threads(i)), "restoring a thread"));
  TRY(step(RestoreTimersAndLimits(p, t.core), "restoring timers and limits"));
  TRY(step(RestoreProcessSettings(p, t.core), "restoring process settings"));
  for (int i = 0; i < t.core.threads_size(); i++)
    TRY(step(RestoreSched(p, i, t.core.threads(i).sched()), "restoring scheduling"));
  if (t.entry.sid() == pid)
    if (const img::PtyFd* tty = ControllingPty(pid))
      TRY(step(TakeControllingTerminal(p.rs(), p.scratch(), *tty, ForegroundGroup(*tty)),
               "restoring the controlling terminal"));
  TRY(step(TakeTaskLocks(p, pid, t.fds), "restoring file locks"));
  TRY(step(RestoreSeccomp(p, t.core), "restoring seccomp"));
  TRY(step(RestoreCredsLast(p, t.core), "restoring credentials"));
  return Ok{};
}

Status TreeBuilder::ForkChildren(Puppet& p, const TaskImages& t, bool in_my_session) {
  for (const TaskImages* c : t.children) {
    bool child_in_mine = c->entry.sid() == t.entry.sid() || c->entry.sid() == c->entry.pid();
    if (t.entry.sid() != t.entry.pid()) child_in_mine = true;  // one pass suffices
    if (child_in_mine != in_my_session) continue;
    if (c->entry.zombie()) {
      TRY(MakeZombie(p, t, *c));
      continue;
    }
    auto child = p.Fork(PidsFor(c->entry, &t.entry, HostPids()));
    if (!child.ok())
      return MakeError("restoring PID %d: creating it in %d: %s", c->entry.pid(), p.pid(),
                       child.error().message.c_str());
    TRY(BuildProcess(std::move(*child), *c));
  }
  return Ok{};
}

// A zombie comes back as one: created by its parent, it joins its session
// and group, then exits the way it had (exit code or signal), and its parent
// has not reaped it.
Status TreeBuilder::MakeZombie(Puppet& parent, const TaskImages& parent_images,
                               const TaskImages& z) {
  pid_t pid = z.entry.pid();
  auto child = parent.Fork(PidsFor(z.entry, &parent_images.entry, HostPids()));
  if (!child.ok()) return MakeError("restoring zombie %d: %s", pid, child.error().message.c_str());
  if (z.entry.sid() == pid) TRY((*child)->rs().Checked("setsid in a zombie", SYS_setsid));
  zombies_.push_back({&parent, &z, std::move(*child)});
  return Ok{};
}

Status TreeBuilder::ExitZombie(Zombie& zombie) {
  pid_t pid = zombie.images->entry.pid();
  Puppet& c = *zombie.puppet;
  Puppet& parent = *zombie.parent;
  int status = zombie.images->entry.exit_status();
  Result<WaitStatus> ws = MakeError("unreachable");
  if (WIFSIGNALED(status)) {
    int sig = WTERMSIG(status);
    rlimit64 no_core{0, 0};
    prlimit64(c.pid(), RLIMIT_CORE, &no_core, nullptr);
    RemoteScratch::Frame frame(c.scratch());
    kernel_sigaction dfl{};
    auto ra = TRY(c.scratch().Push(dfl));
    TRY(c.rs().Checked("rt_sigaction(SIG_DFL)", SYS_rt_sigaction, sig, ra, 0, 8));
    TRY(SetSigmask(c.pid(), 0));
    ws = c.rs().SyscallThatExits(SYS_kill, c.self_pid(), sig);
  } else {
    ws = c.rs().SyscallThatExits(SYS_exit_group, WEXITSTATUS(status));
  }
  if (!ws.ok()) return MakeError("restoring zombie %d: %s", pid, ws.error().message.c_str());
  c.MarkExited();
  // Its SIGCHLD was handled before the dump: take the new one back.
  RemoteScratch::Frame frame(parent.scratch());
  uint64_t set = 1ull << (SIGCHLD - 1);
  timespec zero{0, 0};
  auto rset = TRY(parent.scratch().Push(set));
  auto rzero = TRY(parent.scratch().Push(zero));
  (void)parent.rs().Syscall(SYS_rt_sigtimedwait, rset, 0, rzero, 8);
  return Ok{};
}

// A process group whose leader has exited lives on in its members. To put a
// member back in it, a helper task takes the leader's PID in the member's
// session, makes the group, lets the member join, and exits; its parent
// reaps it. The group outlives it, as it did the original leader.
Status TreeBuilder::MakeLeaderlessGroup(Puppet& member, const TaskImages& t) {
  pid_t pgid = t.entry.pgid(), self_pgid = SelfPgid(t.entry);
  Puppet* host = nullptr;  // a task in the member's session to fork the helper
  for (auto& [ti, p] : puppets_)
    if (ti->entry.sid() == t.entry.sid() && (ti->entry.pid() == t.entry.ppid() || !host))
      host = p.get();
  if (!host) return MakeError("no task of session %d to recreate group %d", t.entry.sid(), pgid);
  auto helper_r = host->Fork(NewPid{{self_pgid}, false});
  if (!helper_r.ok())
    return MakeError("recreating process group %d: %s", pgid, helper_r.error().message.c_str());
  std::unique_ptr<Puppet> helper = std::move(*helper_r);
  TRY(helper->rs().Checked("setpgid(0, 0) in the group helper", SYS_setpgid, 0, 0));
  TRY(member.rs().Checked(Format("setpgid(0, %d)", self_pgid).c_str(), SYS_setpgid, 0, self_pgid));
  Result<WaitStatus> ws = helper->rs().SyscallThatExits(SYS_exit_group, 0);
  if (!ws.ok()) return ws.error();
  helper->MarkExited();
  RemoteScratch::Frame frame(host->scratch());
  TRY(host->rs().Checked("wait4(group helper)", SYS_wait4, self_pgid, 0, __WALL, 0));
  uint64_t set = 1ull << (SIGCHLD - 1);
  timespec zero{0, 0};
  auto rset = TRY(host->scratch().Push(set));
  auto rzero = TRY(host->scratch().Push(zero));
  (void)host->rs().Syscall(SYS_rt_sigtimedwait, rset, 0, rzero, 8);
  return Ok{};
}

// Process groups once every task exists (zombies too, before they exit):
// leaders first, then members.
Status TreeBuilder::SetProcessGroups() {
  pid_t root_pgid = tree_.root->entry.pgid();
  std::vector<std::pair<const TaskImages*, Puppet*>> all;
  for (auto& [t, p] : puppets_) all.push_back({t, p.get()});
  for (Zombie& z : zombies_) all.push_back({z.images, z.puppet.get()});
  std::set<pid_t> live;
  for (auto& [t, p] : all) live.insert(t->entry.pid());
  for (int pass = 0; pass < 2; pass++) {
    for (auto& [t, p] : all) {
      pid_t pid = t->entry.pid(), pgid = t->entry.pgid(), self_pgid = SelfPgid(t->entry);
      if (t->entry.sid() == pid) continue;  // a session leader leads its group
      bool leader = pgid == pid;
      if (leader != (pass == 0)) continue;
      if (!leader && pgid == root_pgid && !live.count(pgid)) continue;  // restore's own group
      // A group made outside the task's PID namespace cannot be named in
      // it: the task is in it from its parent, as it was.
      if (!leader && self_pgid == 0) continue;
      if (!leader && !live.count(pgid)) {
        if (created_groups_.count(pgid)) {
          TRY(p->rs().Checked(Format("setpgid(0, %d)", self_pgid).c_str(), SYS_setpgid, 0,
                              self_pgid));
        } else {
          Status s = MakeLeaderlessGroup(*p, *t);
          if (!s.ok()) return MakeError("restoring PID %d: %s", pid, s.error().message.c_str());
          created_groups_.insert(pgid);
        }
        continue;
      }
      Result<int64_t> r = p->rs().Checked(Format("setpgid(0, %d)", leader ? 0 : self_pgid).c_str(),
                                          SYS_setpgid, 0, leader ? 0 : self_pgid);
      if (!r.ok()) return MakeError("restoring PID %d: %s", pid, r.error().message.c_str());
    }
  }
  return Ok{};
}

// Registers every task's lazy mappings and starts the daemon.
Status TreeBuilder::StartLazyPages() {
  std::vector<LazyTask> tasks;
  std::vector<std::pair<int, std::string>> sources;
  for (auto& [t, p] : puppets_) {
    if (t->lazy_runs.empty()) continue;
    LazyTask lt;
    lt.pid = p->pid();
    auto uffd = RegisterLazyRanges(*p, t->lazy_ranges);
    if (!uffd.ok()) return MakeError("restoring PID %d: %s", lt.pid, uffd.error().message.c_str());
    lt.uffd = std::move(*uffd);
    size_t base = sources.size();
    for (const auto& src : t->chain->sources) sources.push_back({src->fd(), src->path()});
    for (const ChainedRun& r : t->lazy_runs)
      lt.runs.push_back({r.vaddr, r.len, base + r.source, r.offset});
    tasks.push_back(std::move(lt));
  }
  if (tasks.empty()) {
    LOG_INFO(
        "lazy pages: nothing to place lazily (all private memory is shared with children "
        "by fork, and was placed before the fork)");
    return VerifyPages(tree_);
  }
  TRY(StartLazyPagesDaemon(std::move(tasks), sources, opts_.lazy_fill_mib_s,
                           puppets_[0].second->pid(), PageFiles(tree_)));
  return Ok{};
}

namespace {

// The guard of a release: waits for a byte from criu-lite; EOF instead
// (criu-lite died, or failed, between letting go of the first process and
// the last) kills every process of the tree through its pidfd, so that no
// part of a tree runs without the rest. Between fork and exit only system
// calls; it keeps no fd but the pipe's and the pidfds (SORTED_KEEP, sorted).
[[noreturn]] void GuardRelease(int fd, const int* pidfds, size_t n, const int* sorted_keep,
                               size_t kept) {
  setsid();
  sigset_t all;
  sigfillset(&all);
  sigprocmask(SIG_BLOCK, &all, nullptr);
  unsigned from = 0;
  for (size_t i = 0; i < kept; i++) {
    if (static_cast<unsigned>(sorted_keep[i]) > from)
      syscall(SYS_close_range, from, sorted_keep[i] - 1, 0);
    from = sorted_keep[i] + 1;
  }
  syscall(SYS_close_range, from, ~0U, 0);
  char c;
  ssize_t r;
  do r = read(fd, &c, 1);
  while (r < 0 && errno == EINTR);
  if (r == 0)
    for (size_t i = 0; i < n; i++) syscall(SYS_pidfd_send_signal, pidfds[i], SIGKILL, nullptr, 0);
  _exit(0);
}

// A tree let go all or nothing: from Arm to Done, a guard process kills
// every process of the tree if criu-lite dies or gives up (ptrace kills
// those not yet let go as their tracer dies; the guard, those already).
class ReleaseGuard {
 public:
  Status Arm(const std::vector<pid_t>& pids) {
    for (pid_t p : pids) {
      int fd = static_cast<int>(syscall(SYS_pidfd_open, p, 0));
      if (fd < 0) return ErrnoError("pidfd_open(%d)", p);
      pidfds_.push_back(fd);
    }
    int pipe_fds[2];
    if (pipe2(pipe_fds, O_CLOEXEC) < 0) return ErrnoError("pipe2");
    std::vector<int> keep = pidfds_;
    keep.push_back(pipe_fds[0]);
    std::sort(keep.begin(), keep.end());
    guard_ = fork();
    if (guard_ == 0)
      GuardRelease(pipe_fds[0], pidfds_.data(), pidfds_.size(), keep.data(), keep.size());
    close(pipe_fds[0]);
    if (guard_ < 0) {
      close(pipe_fds[1]);
      return ErrnoError("fork (the guard of the release)");
    }
    fd_ = pipe_fds[1];
    return Ok{};
  }
  // Every process runs: the guard goes.
  void Done() {
    char c = 'R';
    if (fd_ >= 0) (void)!write(fd_, &c, 1);
    Close();
  }
  ~ReleaseGuard() { Close(); }  // not Done: the guard kills the tree

 private:
  void Close() {
    if (fd_ >= 0) close(std::exchange(fd_, -1));
    if (guard_ > 0)
      while (waitpid(std::exchange(guard_, -1), nullptr, 0) < 0 && errno == EINTR) {
      }
    for (int fd : pidfds_) close(fd);
    pidfds_.clear();
  }
  std::vector<int> pidfds_;
  pid_t guard_ = -1;
  int fd_ = -1;
};

}  // namespace

Status TreeBuilder::ReleaseAll() {
  std::vector<std::vector<Registers>> regs;
  std::vector<std::vector<int64_t>> restart;
  for (auto& [t, p] : puppets_) {
    if (int held = CriuLitePidfdInTasks::InTasks(); held >= 0)
      TRY(p->rs().Checked("close(criu-lite's pidfd)", SYS_close, held));
    // The last remote syscall of each process drops its blob. Its threads
    // stop at that syscall's exit and never return to the unmapped code.
    TRY(p->rs().Checked("munmap(blob)", SYS_munmap, p->blob().start, p->blob().size));
    std::vector<Registers> r;
    std::vector<int64_t> codes;
    for (int i = 0; i < t->core.threads_size(); i++) {
      TRY(SetSigmask(p->thread_tid(i), t->core.threads(i).blocked()));
      r.push_back(RegsFromImage(t->core.threads(i).regs()));
      codes.push_back(t->core.threads(i).restart_code());
    }
    regs.push_back(std::move(r));
    restart.push_back(std::move(codes));
  }
  // Everything is in place: let the whole tree go at once, or none of it.
  ReleaseGuard guard;
  if (puppets_.size() > 1) {
    std::vector<pid_t> pids;
    for (const auto& [t, p] : puppets_) pids.push_back(p->pid());
    TRY(guard.Arm(pids));
  }
  for (size_t i = 0; i < puppets_.size(); i++) {
    const img::TreeEntry& e = puppets_[i].first->entry;
    int stop = e.stopped() ? (e.stop_signal() ? e.stop_signal() : SIGSTOP) : 0;
    TRY(puppets_[i].second->Release(regs[i], restart[i], stop));
    if (i == 0 && puppets_.size() > 1) FaultPoint("restore-releasing");
  }
  guard.Done();
  return Ok{};
}

Status WritePidfile(const std::string& path, pid_t pid) {
  FILE* f = fopen(path.c_str(), "we");
  if (!f) return ErrnoError("fopen(%s)", path.c_str());
  fprintf(f, "%d", pid);
  if (fclose(f) != 0) return ErrnoError("writing %s", path.c_str());
  return Ok{};
}

std::vector<std::pair<uint64_t, uint64_t>> AllVmaRanges(const Tree& tree) {
  std::vector<std::pair<uint64_t, uint64_t>> out;
  for (const auto& [pid, t] : tree.tasks) {
    for (const img::Vma& v : t->mm.vmas()) out.push_back({v.start(), v.end()});
    for (const img::AioRing& a : t->mm.aio_rings()) out.push_back({a.start(), a.start() + a.len()});
  }
  return out;
}

uint64_t SpecialBytes(const img::MmState& mm) {
  uint64_t n = 0;
  for (const img::Vma& v : mm.vmas())
    if (v.kind() == img::Vma::VDSO || v.kind() == img::Vma::VVAR ||
        v.kind() == img::Vma::VVAR_VCLOCK)
      n += v.end() - v.start();
  return n + (64 << 10);
}

// A migration's destination: the tree is ready; run it only if the source
// says it has killed its own copy.
Status AwaitHandover(int fd, int timeout_s) {
  char c = 'R';
  if (write(fd, &c, 1) != 1) return ErrnoError("telling the page server the tree is ready");
  auto deadline = Clock::now() + std::chrono::seconds(timeout_s);
  for (;;) {
    TRY(CheckStop());
    int left =
        std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now()).count();
    if (left <= 0)
      return MakeError(
          "the migration source did not confirm within %d s that its copy is gone: "
          "the restored tree is killed",
          timeout_s);
    pollfd p{fd, POLLIN, 0};
    int n = poll(&p, 1, left);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return ErrnoError("poll(handover)");
    if (n == 0) continue;
    ssize_t r = read(fd, &c, 1);
    if (r < 0 && errno == EINTR) continue;
    if (r == 1 && c == 'G') return Ok{};
    return MakeError(
        "the migration was called off before the source's copy was gone: the "
        "restored tree is killed");
  }
}

// One restore, as its phases in the order Run() takes them:
//   ReadImages  the inventory and every task's images, validated, and the
//               lazy ranges planned: nothing is created before all of it
//               has been read and found sound;
//   (Namespaces, once restore creates them, come here: the files are
//   opened inside them and the tree is forked into them.)
//   PrepareCgroups  the tree's cgroups made ready (--manage-cgroups);
//   OpenFiles   every description the tree's fds need, opened once by
//               criu-lite (FileTable); meanwhile every page is checked
//               against its checksum on the other core;
//   Fork        the root puppet, with the root's PID;
//   Build       the tree: each puppet turned into its process, children
//               forked with their PIDs, groups, zombies, then the files'
//               owners and seals (which need every task);
//   Verify      the checksums joined: no task has run yet;
//   Release     a migration waits for GO here; then every task runs.
// A failure at any phase kills what was created (a Puppet not released
// dies with its owner).
class RestoreRun {
 public:
  explicit RestoreRun(const RestoreOptions& in) : opts_(in) {
    char real[PATH_MAX];
    // The puppets open files: an absolute directory.
    if (realpath(opts_.images_dir.c_str(), real)) opts_.images_dir = real;
  }
  ~RestoreRun() {
    if (verifier_.joinable()) verifier_.join();
    if (!own_lock_.empty()) {
      if (Status st = Unlock(own_lock_, NetNs()); !st.ok())
        LOG_WARN("%s", st.error().message.c_str());
    }
  }

  Result<int> Run() {
    t_start_ = Clock::now();
    if (opts_.pages == PagePlacement::kVmMmap && !HasProcessVmMmap())
      return MakeError(
          "--pages=vm-mmap: this kernel has no process_vm_mmap (no "
          "/proc/sys/vm/process_vm_mmap_nr: it needs the kernel linux-patches/build-kernel.sh "
          "builds); "
          "--pages=read is the nearest");
    if (!opts_.archive.empty()) TRY(Unpack());
    scripts_ = ActionScripts(opts_.action_scripts, opts_.images_dir, opts_.notify);
    TRY(ReadImages());
    scripts_.set_init_pid(inv_.root_pid());
    TRY(scripts_.Run("pre-restore"));
    TRY(PrepareCgroups());
    TRY(PrepareFiles());
    // Files are opened before any task exists (a socket is made by a task
    // of the PID it names as its peer credentials, which the tree's tasks
    // then take), but in a mount namespace restore makes: after its root
    // has made it, inside it.
    // So are they in an empty network namespace, once the caller has set it
    // up (CRIU's setup-namespaces, its root in it), and message queues in
    // the ipc namespace the root makes.
    bool empty_net = tree_.root->core.has_net() && EmptyNet();
    bool inside = tree_.root->core.has_mnt() || empty_net || QueuesInside() || AnyNestedMounts() ||
                  !nested_.net.empty() || MadeInRootPidNamespace();
    if (!inside) TRY(OpenFiles());
    TRY(Fork());
    TRY(RootNamespaces());
    // As CRIU: the root's namespaces exist and nothing of the tree runs (a
    // runtime runs its hooks and sets up an empty network namespace here).
    TRY(scripts_.Run("setup-namespaces"));
    if (inside) TRY(OpenFiles());
    TRY(scripts_.Run("post-setup-namespaces"));
    builder_.emplace(tree_, opts_, *files_, *cgroups_, net_ns_.valid() ? net_ns_.get() : -1,
                     nested_);
    TRY(builder_->Build(std::move(root_)));
    TRY(files_->Finish(all_fds_, tree_.shared).Context("finishing the tree's files"));
    ph_.Mark("build");
    TRY(Verify());
    TRY(scripts_.Run("post-restore"));
    TRY(Release());
    // The tree runs: a failing script no longer undoes anything.
    if (Status st = scripts_.Run("post-resume"); !st.ok())
      LOG_WARN("%s", st.error().message.c_str());
    WriteStats();
    unpacked_.reset();  // every page is in place
    return Wait();
  }

 private:
  Status Unpack() {
    if (opts_.pages == PagePlacement::kLazy)
      return MakeError(
          "--pages=lazy with --archive: the lazy-pages daemon reads the page files after the "
          "restore returns; unpack the archive and restore from the directory");
    unpacked_.emplace(TRY(TempImageDir::Create()));
    opts_.images_dir = unpacked_->path();
    auto t = Clock::now();
    TRY(UnpackImageArchive(opts_.archive, opts_.images_dir));
    LOG_INFO("unpacked %s in %.3f s", opts_.archive.c_str(), UsecBetween(t, Clock::now()) / 1e6);
    return Ok{};
  }

  Status ReadImages() {
    ImageDir dir(opts_.images_dir);
    inv_ = TRY(dir.ReadInventory());
    if (inv_.pre_dump())
      return MakeError(
          "%s is a pre-dump (memory only): restore the final dump made with "
          "--prev-images-dir pointing to it",
          opts_.images_dir.c_str());
    if (!Kernel().prctl_set_mm_map)
      return MakeError(
          "this kernel lacks PR_SET_MM_MAP (CONFIG_CHECKPOINT_RESTORE): cannot restore");
    if (inv_.tree_size() == 0) {
      // Images from before trees were recorded: one process.
      img::TreeEntry* e = inv_.add_tree();
      e->set_pid(inv_.root_pid());
      e->add_tids(inv_.root_pid());
    }
    tree_ = TRY(LoadTree(dir, inv_, opts_));
    TRY(AttachPageHolders(opts_, &tree_));
    TRY(RerootCgroups());
    if (opts_.pages == PagePlacement::kLazy) PlanLazy(tree_);
    ph_.Mark("read-images");
    return Ok{};
  }

  // --cgroup-root: every cgroup the images name, moved below its new root
  // (the tasks', their cgroup namespaces' roots, and the settings' records).
  Status RerootCgroups() {
    if (opts_.cgroup_roots.empty() || opts_.cgroups == CgroupMode::kIgnore) return Ok{};
    const img::TaskCore& root = tree_.root->core;
    CgroupReroot reroot =
        TRY(CgroupReroot::Make(opts_.cgroup_roots, {root.cgroups().begin(), root.cgroups().end()}));
    auto lines = [&](google::protobuf::RepeatedPtrField<std::string>* ls) -> Status {
      for (std::string& l : *ls) l = TRY(reroot.Line(l));
      return Ok{};
    };
    for (auto& [pid, t] : tree_.tasks) {
      if (t->entry.zombie()) continue;
      TRY(lines(t->core.mutable_cgroups()).Context(Format("PID %d", pid)));
      if (t->core.has_cgroup_ns())
        TRY(lines(t->core.mutable_cgroup_ns()->mutable_roots()).Context(Format("PID %d", pid)));
    }
    for (img::CgroupDir& d : *inv_.mutable_cgroups())
      d.set_path(TRY(reroot.Path(d.controllers(), d.path())));
    return Ok{};
  }

  Status PrepareCgroups() {
    std::vector<const img::TaskCore*> cores;
    for (const auto& [p, t] : tree_.tasks)
      if (!t->entry.zombie()) cores.push_back(&t->core);
    cgroups_.emplace(TRY(CgroupRestore::Prepare(opts_.cgroups, cores, inv_.cgroups())));
    ph_.Mark("cgroups");
    return Ok{};
  }

  Status PrepareFiles() {
    // Every page against its checksum before any task runs: on the other
    // core while the tree is built (it reads the same pages, from the page
    // cache), joined before the tree is let go. With --pages=lazy the
    // lazy-pages guard does it while the tree runs (and kills it on a
    // mismatch): before, it would put back into the freeze what lazy
    // restore takes out of it.
    if (opts_.pages != PagePlacement::kLazy)
      verifier_ = std::thread([this] {
        sigset_t all;
        sigfillset(&all);
        pthread_sigmask(SIG_BLOCK, &all, nullptr);  // stop signals are the main thread's
        verified_ = VerifyPages(tree_, opts_.pages == PagePlacement::kVmMmap);
      });
    for (const auto& [p, t] : tree_.tasks)
      if (!t->entry.zombie()) all_fds_.push_back(&t->fds);
    if (tree_.root->core.has_net() && !tree_.root->core.net().external().empty())
      net_ns_ = TRY(ExternalNetNamespace(tree_.root->core.net().external()));
    else if (tree_.root->core.has_net())
      net_ns_ = TRY(MakeNetNamespace(NetContentsOf(tree_.root->core.net(), EmptyNet()), opts_.veths)
                        .Context("making the tree's network namespace"));
    // Those made below the root (loopback, addresses, routes, sysctls: the
    // dump refuses links to other namespaces there), before their sockets.
    for (const auto& [p, t] : tree_.tasks)
      if (t.get() != tree_.root && t->core.has_net())
        nested_.net[t->core.net().ns_id()] =
            TRY(MakeNetNamespace(NetContentsOf(t->core.net(), false), {})
                    .Context(Format("making the network namespace of PID %d", p)));
    if (!nested_.net.empty() && !net_ns_.valid()) {
      own_net_ns_.reset(open("/proc/self/ns/net", O_RDONLY | O_CLOEXEC));
      if (!own_net_ns_.valid()) return ErrnoError("open(/proc/self/ns/net)");
    }
    TRY(LockConnections());
    return Ok{};
  }

  // The caller's network namespace (dumped with --external net[INODE]:KEY):
  // the fd --inherit-fd gives for KEY, which must be a network namespace.
  Result<ScopedFd> ExternalNetNamespace(const std::string& key) const {
    auto it = opts_.inherit_fds.find(key);
    if (it == opts_.inherit_fds.end())
      return MakeError(
          "the tree's network namespace was the caller's at dump (--external net[INODE]:%s): "
          "give one with --inherit-fd fd[N]:%s",
          key.c_str(), key.c_str());
    int type = ioctl(it->second, NS_GET_NSTYPE);
    if (type != CLONE_NEWNET)
      return MakeError("--inherit-fd fd[%d]:%s: not a network namespace", it->second, key.c_str());
    ScopedFd fd(fcntl(it->second, F_DUPFD_CLOEXEC, 3));
    if (!fd.valid()) return ErrnoError("dup(%d)", it->second);
    LOG_INFO("the tree joins the network namespace given as %s", key.c_str());
    return fd;
  }

  // The root makes its own namespaces (a file system made anew belongs to
  // the namespaces of the task that mounts it); criu-lite opens the files
  // on a thread that has joined the root's network, mount and ipc
  // namespaces.
  Status RootNamespaces() {
    const img::TaskCore& core = tree_.root->core;
    auto step = [&](Status s, const char* what) -> Status {
      if (!s.ok())
        return MakeError("restoring PID %d: %s: %s", core.pid(), what, s.error().message.c_str());
      return Ok{};
    };
    TRY(step(cgroups_->Move(root_pid_, core), "restoring cgroups"));
    TRY(step(RestoreNamespaces(*root_, core, *cgroups_, net_ns_.valid() ? net_ns_.get() : -1),
             "restoring namespaces"));
    if (core.has_ipc()) {
      // Where its POSIX message queues are, for the fds opened on them.
      std::string ipc = ProcTask(root_pid_).Path("ns/ipc");
      ipc_ns_.reset(open(ipc.c_str(), O_RDONLY | O_CLOEXEC));
      if (!ipc_ns_.valid()) return ErrnoError("open(%s)", ipc.c_str());
    }
    if (core.has_mnt()) {
      TRY(step(MakeMountNamespace(*root_, core.mnt(), opts_.root, opts_.ext_mounts, &ptys_),
               "making its mount namespace"));
      std::string path = ProcTask(root_pid_).Path("ns/mnt");
      mnt_ns_.reset(open(path.c_str(), O_RDONLY | O_CLOEXEC));
      if (!mnt_ns_.valid()) return ErrnoError("open(%s)", path.c_str());
    }
    TRY(NestedMountNamespaces());
    ph_.Mark("mounts");
    return Ok{};
  }

  // Whether a unix socket was made by a task of the PID namespace the root
  // is the init of (the root too): made again once the namespace exists
  // (OpenFiles' stampers).
  bool MadeInRootPidNamespace() const {
    int depth = tree_.root->entry.ns_pids_size();
    if (!depth) return false;
    auto below = [&](const img::PeerCred& c) {
      auto t = tree_.tasks.find(c.pid());
      return c.pid() && !c.pid_not_kept() && t != tree_.tasks.end() &&
             t->second->entry.ns_pids_size() == depth;
    };
    for (const img::Fds* fds : all_fds_)
      for (const img::Fd& f : fds->fds())
        if (f.has_unix_socket() &&
            (below(f.unix_socket().cred()) || below(f.unix_socket().connector())))
          return true;
    return false;
  }

  bool AnyNestedMounts() const {
    for (const auto& [p, t] : tree_.tasks)
      if (t.get() != tree_.root && t->core.has_mnt()) return true;
    return false;
  }

  // The network namespace the root's sockets are made in: the one restore
  // made for it, or criu-lite's.
  int HomeNetNs() const { return net_ns_.valid() ? net_ns_.get() : own_net_ns_.get(); }

  // The mount namespace the root's files are opened in: the one it made,
  // or criu-lite's.
  int HomeMountNs() const { return mnt_ns_.valid() ? mnt_ns_.get() : own_mnt_ns_.get(); }

  // The mount namespaces tasks below the root made, each made by the root's
  // puppet as a helper (it is in the root's namespaces, which the new
  // mounts of proc, sysfs, mqueue and cgroup2 are tied to; those a task
  // must make itself it makes once it exists), parents' first, before the
  // tree's files are opened in them. The root goes back into its own.
  Status NestedMountNamespaces() {
    if (!AnyNestedMounts()) return Ok{};
    own_mnt_ns_.reset(open("/proc/self/ns/mnt", O_RDONLY | O_CLOEXEC));
    if (!own_mnt_ns_.valid()) return ErrnoError("open(/proc/self/ns/mnt)");
    const TaskImages& root = *tree_.root;
    for (const img::TreeEntry& e : inv_.tree()) {  // parents first
      const TaskImages& t = *tree_.tasks.at(e.pid());
      if (&t == &root || !t.core.has_mnt()) continue;
      uint64_t id = t.core.mnt().ns_id();
      uint64_t from = NestedMountNs(tree_, *ParentOf(tree_, t));
      auto step = [&](Status s) -> Status {
        if (!s.ok())
          return MakeError("restoring PID %d: making its mount namespace: %s", e.pid(),
                           s.error().message.c_str());
        return Ok{};
      };
      TRY(step(EnterNamespace(*root_, from ? nested_.mnt.at(from).get() : HomeMountNs(),
                              CLONE_NEWNS, "the mount namespace it was made from")));
      bool own_pid = e.ns_pids_size() != root.entry.ns_pids_size();
      std::set<uint64_t> later = TaskMadeMounts(
          t.core.mnt(), own_pid, MakerBelowRoot(tree_, t, &img::TaskCore::has_ipc) != nullptr,
          MakerBelowRoot(tree_, t, &img::TaskCore::has_cgroup_ns) != nullptr);
      TRY(step(MakeNestedMountNamespace(*root_, t.core.mnt(), later, opts_.ext_mounts, &ptys_)));
      std::string path = ProcTask(root_pid_).Path("ns/mnt");
      ScopedFd fd(open(path.c_str(), O_RDONLY | O_CLOEXEC));
      if (!fd.valid()) return ErrnoError("open(%s)", path.c_str());
      nested_.mnt[id] = std::move(fd);
      nested_.later[id] = std::move(later);
    }
    return EnterNamespace(*root_, HomeMountNs(), CLONE_NEWNS, "its own mount namespace");
  }

  // The mount namespace fd TASK's files are opened in.
  int MountNsFd(const TaskImages& t) const {
    uint64_t id = NestedMountNs(tree_, t);
    return id ? nested_.mnt.at(id).get() : HomeMountNs();
  }

  // Whether a task has an fd of a message queue of the ipc namespace the
  // root makes.
  bool QueuesInside() const {
    if (!tree_.root->core.has_ipc()) return false;
    for (const img::Fds* fds : all_fds_)
      for (const img::Fd& f : fds->fds())
        if (f.has_mqueue()) return true;
    return false;
  }

  Status OpenFiles() {
    std::vector<std::pair<int, int>> inside;
    if (net_ns_.valid() || own_net_ns_.valid()) inside.push_back({HomeNetNs(), CLONE_NEWNET});
    if (mnt_ns_.valid() || own_mnt_ns_.valid()) inside.push_back({HomeMountNs(), CLONE_NEWNS});
    if (ipc_ns_.valid()) inside.push_back({ipc_ns_.get(), CLONE_NEWIPC});
    // Each task's files in its mount and network namespaces (a socket in its
    // own network namespace): the thread that opens them moves between them
    // (its own, not criu-lite's).
    std::map<uint64_t, int> networks;  // by inode at dump
    if (net_ns_.valid() && tree_.root->core.net().ns_id())
      networks[tree_.root->core.net().ns_id()] = net_ns_.get();
    for (const auto& [id, fd] : nested_.net) networks[id] = fd.get();
    std::map<const img::Fds*, TaskNamespaces> namespaces;
    for (const auto& [p, t] : tree_.tasks) {
      TaskNamespaces& ns = namespaces[&t->fds];
      if (own_mnt_ns_.valid() || mnt_ns_.valid()) ns.push_back({MountNsFd(*t), CLONE_NEWNS});
      if (!nested_.net.empty()) {
        uint64_t id = NestedNetNs(tree_, *t);
        ns.push_back({id ? nested_.net.at(id).get() : HomeNetNs(), CLONE_NEWNET});
      }
    }
    // (Through criu-lite's /proc: the thread below sees the tree's.)
    if (root_ && !root_pid_ns_.valid()) {
      root_pid_ns_.reset(open(ProcTask(root_pid_).Path("ns/pid").c_str(), O_RDONLY | O_CLOEXEC));
      if (!root_pid_ns_.valid()) return ErrnoError("open(the root's PID namespace)");
    }
    auto open_all = [&](CallerThread* caller) -> Status {
      // Checked at load time where criu-lite sees the files as the tree does.
      for (const auto& [p, t] : tree_.tasks)
        if (!t->entry.zombie() && (mnt_ns_.valid() || NestedMountNs(tree_, *t))) {
          if (setns(MountNsFd(*t), CLONE_NEWNS) < 0)
            return ErrnoError("setns(the mount namespace of PID %d)", p);
          TRY(CheckTaskFiles(*t, opts_, false));
        }
      // Opened once the root exists: what the root made, it makes again
      // (its PID is taken), by remote syscalls from the thread that traces
      // it; what a task of the PID namespace the root is the init of made,
      // a short-lived process of that task's PID there makes.
      std::map<pid_t, OpenFiles::Stamper> stampers;
      if (root_) {
        stampers[inv_.root_pid()] = [this, caller](
                                        const TaskCreds& c,
                                        const StampingCall& call) -> Result<std::array<int, 2>> {
          Result<std::array<int, 2>> made = MakeError("%s: not made", call.what());
          auto stamp = [&]() -> Status {
            made = StampAs(*root_, c, call);
            return Ok{};
          };
          TRY(caller ? caller->Run(stamp) : stamp());
          return made;
        };
        int depth = tree_.root->entry.ns_pids_size();
        for (const auto& [p, t] : tree_.tasks)
          if (depth && t.get() != tree_.root && t->entry.ns_pids_size() == depth)
            stampers[p] = [this, inside = t->entry.ns_pids(depth - 1)](
                              const TaskCreds& c,
                              const StampingCall& call) -> Result<std::array<int, 2>> {
              TaskCreds as = c;
              as.pid = inside;
              return AsTaskInPidNamespace(
                  root_pid_ns_.get(), as, call.what(),
                  [&call](std::array<int, 2>& out) { return call.Run(out); });
            };
      }
      // The network namespace's key is no fd's.
      std::map<std::string, int> for_fds = opts_.inherit_fds;
      if (tree_.root->core.has_net()) for_fds.erase(tree_.root->core.net().external());
      auto prepare = [this](crl::OpenFiles& files) {
        files.SetPremadePtys(std::move(ptys_));
        files.SetOrphanMasterSink(opts_.orphan_pts_master);
      };
      files_.emplace(TRY(FileTable::Create(all_fds_, tree_.shared, for_fds, std::move(stampers),
                                           prepare, namespaces, networks)
                             .Context("opening the tree's files")));
      return Ok{};
    };
    if (inside.empty()) return open_all(nullptr);
    return InNamespacesFd(inside, [&](CallerThread& caller) { return open_all(&caller); });
  }

  // The tree's TCP connections, locked on this host before they are made
  // again: a packet for one that comes before it exists (a peer sending
  // again once a migrated service address is here) is dropped, not answered
  // with a reset. The dump's lock, where it is on this host, gets the same
  // rules again; a lock made here is lifted if the restore fails.
  Status LockConnections() {
    if (inv_.net_lock().empty()) return Ok{};
    std::vector<std::pair<std::string, std::string>> conns;
    for (const img::Fds* fds : all_fds_)
      for (const img::Fd& f : fds->fds())
        if (f.has_inet_socket() && f.inet_socket().has_tcp())
          conns.push_back({f.inet_socket().local(), f.inet_socket().peer()});
    if (conns.empty()) return Ok{};
    // In the tree's own network namespace if it has one (its packets come
    // through its links, never this namespace's input and output hooks).
    bool here = LockExists(inv_.net_lock(), NetNs());
    ScopedFd ns(net_ns_.valid() ? dup(net_ns_.get()) : -1);
    TRY(NetLock(inv_.net_lock(), std::move(ns))
            .Add(conns)
            .Context("locking the tree's TCP connections"));
    if (!here) own_lock_ = inv_.net_lock();
    return Ok{};
  }

  Status Fork() {
    pid_t pid = inv_.root_pid();
    // Inherited by every task, above every fd of the tree (FdGiver).
    if (Kernel().pidfd_getfd) {
      int max_fd = 0;
      for (const img::Fds* fds : all_fds_)
        for (const img::Fd& f : fds->fds()) max_fd = std::max(max_fd, f.fd());
      criu_pidfd_.emplace(TRY(CriuLitePidfdInTasks::Open(max_fd + 1)));
    }
    Blob blob = TRY(MapBlob(AllVmaRanges(tree_), SpecialBytes(tree_.root->mm)));
    auto puppet = Puppet::Create(PidsFor(tree_.root->entry, nullptr, false), blob,
                                 Kernel().clone3_set_tid, opts_.sibling);
    UnmapBlob(blob);  // the puppet has its own copy now
    if (!puppet.ok())
      return puppet.error().Is(ErrorCode::kPidInUse)
                 ? puppet.error()
                 : MakeError("restoring PID %d: %s", pid, puppet.error().message.c_str());
    root_ = std::move(*puppet);
    if (criu_pidfd_) criu_pidfd_->CloseOwn();
    root_pid_ = root_->pid();
    if (root_pid_ != pid) LOG_INFO("the root, PID %d at dump, is PID %d here", pid, root_pid_);
    scripts_.set_init_pid(root_pid_);
    ph_.Mark("fork");
    return Ok{};
  }

  Status Verify() {
    if (!opts_.pidfile.empty()) TRY(WritePidfile(opts_.pidfile, root_pid_));
    if (verifier_.joinable()) verifier_.join();
    TRY(verified_);
    ph_.Mark("verify-pages");
    return Ok{};
  }

  Status Release() {
    // The last point at which a stop signal undoes the restore.
    FaultPoint("restore-built");
    TRY(CheckStop());
    if (opts_.handover_fd >= 0) TRY(AwaitHandover(opts_.handover_fd, opts_.handover_timeout));
    // The dump's network lock is lifted, then the connections leave repair
    // mode (probing their peers' windows), and the tree runs.
    TRY(scripts_.Run("network-unlock"));
    TRY(Unlock(inv_.net_lock(), NetNs()));
    own_lock_.clear();
    TRY(files_->FinishRepairs());
    TRY(builder_->ReleaseAll());
    cgroups_->Keep();
    ph_.Mark("resume");
    return Ok{};
  }

  void WriteStats() {
    img::Stats& st = ph_.stats;
    st.set_kind("restore");
    st.set_page_placement(PagePlacementName(opts_.pages));
    uint64_t pages = 0;
    for (const auto& [p, t] : tree_.tasks) pages += t->pagemap.total_pages();
    st.set_pages_written(pages);
    st.set_total_usec(UsecBetween(t_start_, Clock::now()));
    if (opts_.stats_out) *opts_.stats_out = st;
    // From an archive the figures are in the log only: no directory keeps them.
    Status s = unpacked_
                   ? Ok{}
                   : WriteImage(ImageDir(opts_.images_dir).Stats("restore"), ImageKind::kStats, st);
    if (!s.ok()) LOG_WARN("writing restore stats: %s", s.error().message.c_str());
    LOG_INFO("restored the tree of PID %d (%zu processes) in %.3f s", root_pid_,
             builder_->processes(), st.total_usec() / 1e6);
  }

  // The exit status criu-lite ends with (restore.h).
  Result<int> Wait() {
    pid_t pid = root_pid_;
    // A sibling is not criu-lite's child: it cannot be waited for.
    if (opts_.detached || opts_.sibling) return 0;
    int status;
    while (waitpid(pid, &status, 0) < 0) {
      if (errno != EINTR) return ErrnoError("waitpid(%d)", pid);
      if (StopSignal())
        return MakeError("%s while waiting for the restored tree: it runs on (PID %d)",
                         CheckStop().error().message.c_str(), pid);
    }
    if (WIFEXITED(status)) return WEXITSTATUS(status);
    return 128 + WTERMSIG(status);
  }

  RestoreOptions opts_;
  std::optional<TempImageDir> unpacked_;  // --archive's files
  ActionScripts scripts_;
  std::string own_lock_;  // a lock this restore made, lifted if it fails
  Clock::time_point t_start_;
  Phases ph_;
  img::Inventory inv_;
  Tree tree_;
  Status verified_ = Ok{};
  std::thread verifier_;  // reads tree_: joined in the destructor's body
  std::vector<const img::Fds*> all_fds_;
  // Removed, if the restore fails, once every task in them is dead.
  std::optional<CgroupRestore> cgroups_;
  std::optional<FileTable> files_;
  std::optional<CriuLitePidfdInTasks> criu_pidfd_;
  ScopedFd net_ns_;      // the root's network namespace, made before its sockets
  ScopedFd own_net_ns_;  // criu-lite's, where the root made none and a task below did
  int NetNs() const { return net_ns_.valid() ? net_ns_.get() : -1; }
  // The tree's network namespace is the caller's to set up (--empty-ns
  // net here, or at dump).
  bool EmptyNet() const { return opts_.empty_net || tree_.root->core.net().empty(); }
  ScopedFd mnt_ns_;      // the root's mount namespace, made before its files are opened
  ScopedFd own_mnt_ns_;  // criu-lite's, where the root made none and a task below did
  NestedNamespaces nested_;
  std::map<int, ScopedFd> ptys_;  // masters of ptys made with the mounts, by index
  ScopedFd ipc_ns_;               // the root's ipc namespace, if it made one
  ScopedFd root_pid_ns_;          // the root's PID namespace, once it exists
  std::unique_ptr<Puppet> root_;
  pid_t root_pid_ = 0;  // the root's PID here (another in a PID namespace restore made)
  // Last: destroyed first, killing every task not yet released.
  std::optional<TreeBuilder> builder_;
};

}  // namespace

Result<int> Restore(const RestoreOptions& opts) { return RestoreRun(opts).Run(); }

Status AddRestoreExternal(const std::string& spec, RestoreOptions* opts) {
  if (TRY(ParseVethExternal(spec, &opts->veths))) return Ok{};
  auto [name, path] = TRY(ParseMountExternal(spec, "KEY]:PATH"));
  opts->ext_mounts[name] = path;
  return Ok{};
}

Status AddRestoreExtMountMap(const std::string& map, RestoreOptions* opts) {
  auto [name, path] = TRY(ParseExtMountMap(map, "KEY:PATH"));
  opts->ext_mounts[name] = path;
  return Ok{};
}

}  // namespace crl
