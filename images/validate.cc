#include "images/validate.h"

#include <algorithm>
#include <map>
#include <set>
#include <vector>

#include "images/page_file.h"

namespace crl {
namespace {

bool Aligned(uint64_t x) { return x % kPageSize == 0; }

}  // namespace

// A task in PID namespaces below criu-lite's: in its parent's (at depth
// ABOVE), or the init of one of its own just below.
static Status ValidatePidNamespaces(const img::TreeEntry& e, int above) {
  int depth = e.ns_pids_size();
  if (depth != above && depth != above + 1)
    return MakeError("PID %d is %d PID namespaces deep, its parent %d", e.pid(), depth, above);
  for (int p : e.ns_pids())
    if (p <= 0 || p > kMaxPid) return MakeError("PID %d has PID %d in a namespace", e.pid(), p);
  if (depth > above && e.ns_pids(depth - 1) != 1)
    return MakeError("PID %d makes a PID namespace but is not its init (PID 1)", e.pid());
  if (depth == 0 && (e.ns_tids_size() || e.ns_pgid() || e.ns_sid()))
    return MakeError("PID %d has namespace PIDs but no PID namespace", e.pid());
  if (e.ns_tids_size() != e.tids_size() * depth)
    return MakeError("PID %d has %d threads in %d PID namespaces, and %d thread IDs there", e.pid(),
                     e.tids_size(), depth, e.ns_tids_size());
  for (int t : e.ns_tids())
    if (t <= 0 || t > kMaxPid)
      return MakeError("PID %d has a thread %d in its namespace", e.pid(), t);
  if (e.ns_pgid() < 0 || e.ns_pgid() > kMaxPid || e.ns_sid() < 0 || e.ns_sid() > kMaxPid)
    return MakeError("PID %d has group %d and session %d in its namespace", e.pid(), e.ns_pgid(),
                     e.ns_sid());
  return Ok{};
}

Status ValidateTree(const img::Inventory& inv) {
  if (inv.tree_size() == 0) return MakeError("the inventory lists no tasks");
  if (inv.tree_size() > kMaxTasks)
    return MakeError("the inventory lists %d tasks (at most %d)", inv.tree_size(), kMaxTasks);
  if (inv.tree(0).pid() != inv.root_pid())
    return MakeError("the inventory's first task is %d, not its root %d", inv.tree(0).pid(),
                     inv.root_pid());
  std::set<int> pids, tids;
  std::map<int, int> depth;  // of each task's PID namespace, below criu-lite's
  for (const img::TreeEntry& e : inv.tree()) {
    if (e.pid() <= 0 || e.pid() > kMaxPid) return MakeError("the inventory lists PID %d", e.pid());
    if (!pids.insert(e.pid()).second) return MakeError("the inventory lists PID %d twice", e.pid());
    // Parents come first: a parent link can then never form a cycle.
    if (e.pid() != inv.root_pid() && (e.ppid() == e.pid() || !pids.count(e.ppid())))
      return MakeError("PID %d's parent %d is not listed before it", e.pid(), e.ppid());
    if (e.pid() == inv.root_pid() && e.zombie())
      return MakeError("the root %d is a zombie", e.pid());
    if (e.zombie() && e.tids_size() != 0) return MakeError("zombie %d has threads", e.pid());
    if (!e.zombie() && (e.tids_size() == 0 || e.tids(0) != e.pid()))
      return MakeError("PID %d: its first thread is not its leader", e.pid());
    if (e.tids_size() > kMaxThreadsPerTask)
      return MakeError("PID %d has %d threads (at most %d)", e.pid(), e.tids_size(),
                       kMaxThreadsPerTask);
    for (int tid : e.tids()) {
      if (tid <= 0 || tid > kMaxPid) return MakeError("PID %d has a thread %d", e.pid(), tid);
      if (!tids.insert(tid).second) return MakeError("thread %d is listed twice", tid);
    }
    if (e.pgid() < 0 || e.pgid() > kMaxPid || e.sid() < 0 || e.sid() > kMaxPid)
      return MakeError("PID %d has group %d and session %d", e.pid(), e.pgid(), e.sid());
    TRY(ValidatePidNamespaces(e, e.pid() == inv.root_pid() ? 0 : depth[e.ppid()]));
    depth[e.pid()] = e.ns_pids_size();
  }
  for (const img::TreeEntry& e : inv.tree())
    for (int tid : e.tids())
      if (tid != e.pid() && pids.count(tid))
        return MakeError("thread %d of PID %d is also a process", tid, e.pid());
  return Ok{};
}

Status ValidateMm(const img::MmState& mm) {
  if (mm.vmas_size() > kMaxVmas)
    return MakeError("%d mappings (at most %d)", mm.vmas_size(), kMaxVmas);
  uint64_t prev_end = 0;
  for (const img::Vma& v : mm.vmas()) {
    if (!Aligned(v.start()) || !Aligned(v.end()) || v.start() >= v.end() || v.end() > kUserSpaceEnd)
      return MakeError("a mapping 0x%lx-0x%lx that cannot exist", v.start(), v.end());
    if (v.start() < prev_end)
      return MakeError("mappings overlap or are out of order at 0x%lx", v.start());
    if (v.prot() & ~7u) return MakeError("mapping 0x%lx has protection 0x%x", v.start(), v.prot());
    if (!Aligned(v.pgoff()))
      return MakeError("mapping 0x%lx has offset 0x%lx", v.start(), v.pgoff());
    if (!img::Vma::Kind_IsValid(v.kind()))
      return MakeError("mapping 0x%lx has kind %d", v.start(), v.kind());
    if (v.kind() == img::Vma::SYSV_SHM && v.shmid() < 0)
      return MakeError("mapping 0x%lx attaches System V shared memory %d", v.start(), v.shmid());
    prev_end = v.end();
  }
  // Huge-page ranges: whole 2 MiB pages, in order, each inside private
  // anonymous mappings only (restore writes a byte at each one's start).
  constexpr uint64_t kHuge = 2 << 20;
  prev_end = 0;
  for (const img::PageRange& r : mm.huge()) {
    if (r.start() % kHuge || r.end() % kHuge || r.start() >= r.end() || r.end() > kUserSpaceEnd ||
        r.start() < prev_end)
      return MakeError("a huge-page range 0x%lx-0x%lx that cannot exist", r.start(), r.end());
    uint64_t covered = r.start();
    for (const img::Vma& v : mm.vmas())
      if (v.start() <= covered && covered < v.end() && v.kind() == img::Vma::ANON_PRIVATE)
        covered = v.end();
    if (covered < r.end())
      return MakeError("the huge-page range 0x%lx-0x%lx is not private anonymous memory", r.start(),
                       r.end());
    prev_end = r.end();
  }
  return Ok{};
}

Status ValidatePagemap(const img::Pagemap& pm, const img::MmState& mm) {
  if (pm.entries_size() > kMaxVmas * 64) return MakeError("%d page runs", pm.entries_size());
  std::vector<std::pair<uint64_t, uint64_t>> vmas;
  for (const img::Vma& v : mm.vmas()) vmas.push_back({v.start(), v.end()});
  // Entries are in address order within the data they cover; runs in the
  // parent interleave with them, so sort a copy by address.
  std::vector<const img::PagemapEntry*> by_addr;
  uint64_t pages = 0;
  for (const img::PagemapEntry& e : pm.entries()) {
    if (!Aligned(e.vaddr()) || e.nr_pages() == 0 || e.nr_pages() > kUserSpaceEnd / kPageSize ||
        e.vaddr() >= kUserSpaceEnd || e.nr_pages() * kPageSize > kUserSpaceEnd - e.vaddr())
      return MakeError("a page run at 0x%lx of %lu pages that cannot exist", e.vaddr(),
                       e.nr_pages());
    if (!e.in_parent()) {
      if (pm.encoding() == img::Pagemap::RAW && !Aligned(e.data_offset()))
        return MakeError("the run at 0x%lx starts at offset %lu of its pages, not a page boundary",
                         e.vaddr(), e.data_offset());
      if (e.data_offset() > UINT64_MAX - e.nr_pages() * kPageSize)
        return MakeError("the run at 0x%lx has offset %lu", e.vaddr(), e.data_offset());
      pages += e.nr_pages();
    }
    by_addr.push_back(&e);
  }
  if (pages != pm.total_pages())
    return MakeError("the pagemap counts %lu pages, its runs hold %lu", pm.total_pages(), pages);
  std::sort(by_addr.begin(), by_addr.end(),
            [](const auto* a, const auto* b) { return a->vaddr() < b->vaddr(); });
  uint64_t prev_end = 0;
  size_t vi = 0;
  for (const img::PagemapEntry* e : by_addr) {
    uint64_t a = e->vaddr(), b = a + e->nr_pages() * kPageSize;
    if (a < prev_end) return MakeError("page runs overlap at 0x%lx", a);
    prev_end = b;
    // Inside mappings (adjacent ones may share a run).
    for (uint64_t at = a; at < b;) {
      while (vi < vmas.size() && vmas[vi].second <= at) vi++;
      if (vi == vmas.size() || vmas[vi].first > at)
        return MakeError("pages at 0x%lx are in no mapping", at);
      at = std::min(b, vmas[vi].second);
    }
  }
  return Ok{};
}

namespace {

// An absolute path with no "." or ".." part: below --root, it stays there.
bool PlainAbsolute(const std::string& path) {
  if (path.empty() || path[0] != '/' || path.find('\0') != std::string::npos) return false;
  for (size_t p = 1; p <= path.size();) {
    size_t q = path.find('/', p);
    if (q == std::string::npos) q = path.size();
    std::string part = path.substr(p, q - p);
    if (part == "." || part == ".." || (part.empty() && q != path.size())) return false;
    p = q + 1;
  }
  return true;
}

// What restore mounts: only the kinds it makes anew, at plain paths, each
// bind of a mount listed before it, the root first.
Status ValidateMounts(const img::MountNamespace& ns) {
  static const std::set<std::string> kNew = {"proc",   "sysfs",   "devpts",
                                             "mqueue", "cgroup2", "tmpfs"};
  std::map<uint64_t, std::string> before;  // ID -> root
  for (int i = 0; i < ns.mounts_size(); i++) {
    const img::Mount& m = ns.mounts(i);
    // A nested namespace's root is its parent's, copied.
    img::Mount::How first = ns.nested() ? img::Mount::INHERITED : img::Mount::ROOT;
    if (!img::Mount::How_IsValid(m.how()) || (i == 0 && m.how() != first) ||
        (i > 0 && m.how() == img::Mount::ROOT) ||
        (!ns.nested() && m.how() == img::Mount::INHERITED))
      return MakeError("mount %d is recorded as kind %d", i, m.how());
    if (!PlainAbsolute(m.mountpoint()) || !PlainAbsolute(m.root()))
      return MakeError("a mount at '%.64s' of '%.64s'", m.mountpoint().c_str(), m.root().c_str());
    if (m.how() == img::Mount::NEW && !kNew.count(m.fstype()))
      return MakeError("a new mount of %.32s, which restore does not make", m.fstype().c_str());
    if (m.how() == img::Mount::BIND) {
      auto of = before.find(m.bind_of());
      if (of == before.end() ||
          (of->second != "/" && m.root() != of->second && m.root().rfind(of->second + "/", 0) != 0))
        return MakeError("mount %s binds a directory of no mount listed before it",
                         m.mountpoint().c_str());
    }
    if (m.how() == img::Mount::EXTERNAL && m.external_key().empty())
      return MakeError("mount %s is the caller's under no key", m.mountpoint().c_str());
    if (!m.tmpfs_tar().empty() && m.fstype() != "tmpfs")
      return MakeError("mount %s (%.32s) carries files", m.mountpoint().c_str(),
                       m.fstype().c_str());
    before[m.id()] = m.root();
  }
  return Ok{};
}

}  // namespace

Status ValidateCore(const img::TaskCore& core) {
  if (core.threads_size() == 0 || core.threads_size() > kMaxThreadsPerTask)
    return MakeError("%d threads", core.threads_size());
  if (core.sigactions_size() > 64) return MakeError("%d signal actions", core.sigactions_size());
  for (const img::SigAction& sa : core.sigactions())
    if (sa.signo() < 1 || sa.signo() > 64) return MakeError("a handler for signal %d", sa.signo());
  // __NEW_UTS_LEN
  if (core.uts().hostname().size() > 64 || core.uts().domainname().size() > 64)
    return MakeError("a uts namespace's name longer than 64 bytes");
  for (const img::SysvObject& o : core.ipc().objects()) {
    // SEMMSL's and SEMVMX's ceilings.
    if (!img::SysvObject::Kind_IsValid(o.kind()) || o.id() < 0 || o.sem_values_size() > 32000 ||
        o.shm_data().size() > o.shm_size())
      return MakeError("a System V object (kind %d, id %d) that cannot exist", o.kind(), o.id());
    for (uint32_t v : o.sem_values())
      if (v > 32767) return MakeError("semaphore set %d holds the value %u", o.id(), v);
  }
  for (const img::PosixQueue& q : core.ipc().posix_queues()) {
    // The kernel's ceilings: NAME_MAX, HARD_MSGMAX, HARD_MSGSIZEMAX,
    // MQ_PRIO_MAX.
    if (q.name().empty() || q.name().size() > 255 || q.name().find('/') != std::string::npos ||
        q.name() == "." || q.name() == "..")
      return MakeError("a POSIX message queue named '%s'", q.name().c_str());
    if (q.max_messages() < 1 || q.max_messages() > 65536 || q.message_size() < 1 ||
        q.message_size() > (16 << 20) || q.messages_size() > q.max_messages())
      return MakeError("POSIX message queue /%s: %d message(s) in %ld of %ld bytes",
                       q.name().c_str(), q.messages_size(), static_cast<long>(q.max_messages()),
                       static_cast<long>(q.message_size()));
    for (const img::PosixMessage& m : q.messages())
      if (m.priority() >= 32768 || static_cast<int64_t>(m.data().size()) > q.message_size())
        return MakeError("POSIX message queue /%s holds a message that cannot be in it",
                         q.name().c_str());
  }
  if (core.has_mnt()) TRY(ValidateMounts(core.mnt()).Context("its mount namespace"));
  return Ok{};
}

Status ValidateFds(const img::Fds& fds) {
  if (fds.fds_size() > kMaxFds) return MakeError("%d descriptors", fds.fds_size());
  std::set<int> seen;
  for (const img::Fd& f : fds.fds()) {
    if (f.fd() < 0 || f.fd() >= kMaxFds) return MakeError("descriptor number %d", f.fd());
    if (!seen.insert(f.fd()).second) return MakeError("descriptor %d is listed twice", f.fd());
    if (f.kind_case() == img::Fd::KIND_NOT_SET) {
      // Images made before the kinds became arms have it as an enum field.
      if (!f.GetReflection()->GetUnknownFields(f).empty())
        return MakeError(
            "descriptor %d was recorded by an older criu-lite (its kind is not an arm of "
            "Fd.kind): dump again",
            f.fd());
      return MakeError("descriptor %d has no kind", f.fd());
    }
  }
  return Ok{};
}

}  // namespace crl
