#include "kernel/kernel_probe.h"

#include <fcntl.h>
#include <linux/aio_abi.h>
#include <linux/kcmp.h>
#include <linux/prctl.h>
#include <poll.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/ptrace.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "base/scoped_fd.h"
#include "kernel/cgroups.h"
#include "kernel/mounts.h"
#include "kernel/net_lock.h"
#include "kernel/proc_parsers.h"
#include "kernel/uapi.h"

namespace crl {
namespace {

bool ProbePagemapScan() {
  ScopedFd fd(open("/proc/self/pagemap", O_RDONLY | O_CLOEXEC));
  if (!fd.valid()) return false;
  page_region regions[1];
  pm_scan_arg arg{};
  arg.size = sizeof arg;
  arg.start = reinterpret_cast<uint64_t>(&regions) & ~4095ul;
  arg.end = arg.start + 4096;
  arg.vec = reinterpret_cast<uint64_t>(regions);
  arg.vec_len = 1;
  arg.category_anyof_mask = PAGE_IS_PRESENT;
  arg.return_mask = PAGE_IS_PRESENT;
  return ioctl(fd.get(), PAGEMAP_SCAN, &arg) >= 0;
}

bool ProbeProcmapQuery() {
  ScopedFd fd(open("/proc/self/maps", O_RDONLY | O_CLOEXEC));
  if (!fd.valid()) return false;
  procmap_query q{};
  q.size = sizeof q;
  q.query_flags = PROCMAP_QUERY_COVERING_OR_NEXT_VMA;
  q.query_addr = 0;
  return ioctl(fd.get(), PROCMAP_QUERY, &q) == 0;
}

bool ProbeSoftDirty() {
  // With CONFIG_MEM_SOFT_DIRTY a freshly written page has pagemap bit 55.
  void* p = mmap(nullptr, 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (p == MAP_FAILED) return false;
  *static_cast<volatile char*>(p) = 1;
  bool dirty = false;
  ScopedFd fd(open("/proc/self/pagemap", O_RDONLY | O_CLOEXEC));
  uint64_t entry = 0;
  if (fd.valid() && pread(fd.get(), &entry, 8, (reinterpret_cast<uint64_t>(p) / 4096) * 8) == 8)
    dirty = entry & (1ull << 55);
  munmap(p, 4096);
  return dirty;
}

uint64_t ProbeUffdFeatures() {
  int fd = syscall(SYS_userfaultfd, O_CLOEXEC | O_NONBLOCK | UFFD_USER_MODE_ONLY);
  if (fd < 0) fd = syscall(SYS_userfaultfd, O_CLOEXEC | O_NONBLOCK);
  if (fd < 0) return 0;
  ScopedFd owner(fd);
  uffdio_api api{};
  api.api = UFFD_API;
  api.features = 0;  // asking for 0 returns every feature the kernel has
  if (ioctl(fd, UFFDIO_API, &api) < 0) return 0;
  return api.features;
}

bool ProbeEbadfNotEnosys(long nr, long a1, long a2, long a3, long a4 = 0, long a5 = 0) {
  errno = 0;
  long r = syscall(nr, a1, a2, a3, a4, a5);
  return !(r < 0 && errno == ENOSYS);
}

// An eventfd registered in an epoll is found by kcmp KCMP_EPOLL_TFD (4.13,
// CONFIG_KCMP).
bool ProbeKcmpEpollTfd() {
  ScopedFd ep(epoll_create1(EPOLL_CLOEXEC)), ev(eventfd(0, EFD_CLOEXEC));
  epoll_event e{};
  if (!ep.valid() || !ev.valid() || epoll_ctl(ep.get(), EPOLL_CTL_ADD, ev.get(), &e) < 0)
    return false;
  kcmp_epoll_slot slot{static_cast<uint32_t>(ep.get()), static_cast<uint32_t>(ev.get()), 0};
  return syscall(SYS_kcmp, getpid(), getpid(), KCMP_EPOLL_TFD, ev.get(), &slot) == 0;
}

// A file handle of "/" opens again (what names an inotify watch's file).
bool ProbeOpenByHandle() {
  struct {
    file_handle h;
    unsigned char bytes[MAX_HANDLE_SZ];
  } fh{};
  fh.h.handle_bytes = MAX_HANDLE_SZ;
  int mount_id;
  if (name_to_handle_at(AT_FDCWD, "/", &fh.h, &mount_id, 0) < 0) return false;
  ScopedFd root(open("/", O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  ScopedFd again(open_by_handle_at(root.get(), &fh.h, O_PATH | O_CLOEXEC));
  return again.valid();
}

// An AIO context takes a poll of a ready pipe and completes it at once
// (what counting and moving a ring takes).
bool ProbeAioPoll() {
  aio_context_t ctx = 0;
  int p[2];
  if (syscall(SYS_io_setup, 1, &ctx) < 0) return false;
  bool ok = false;
  if (pipe2(p, O_CLOEXEC) == 0) {
    close(p[1]);
    iocb cb{};
    cb.aio_lio_opcode = IOCB_CMD_POLL;
    cb.aio_fildes = p[0];
    cb.aio_buf = POLLIN;
    iocb* list[] = {&cb};
    io_event ev;
    timespec none{0, 0};
    ok = syscall(SYS_io_submit, ctx, 1, list) == 1 &&
         syscall(SYS_io_getevents, ctx, 1, 1, &ev, &none) == 1;
    close(p[0]);
  }
  syscall(SYS_io_destroy, ctx);
  return ok;
}

bool ProbeSetMmMap() {
  unsigned int size = 0;
  return prctl(PR_SET_MM, PR_SET_MM_MAP_SIZE, &size, 0, 0) == 0 && size > 0;
}

// process_vm_mmap never reached mainline and has no number of its own: the
// patched kernel (linux-patches/patches) says which it has in a sysctl, so that no
// number that may be another syscall is ever called to find out.
long ProbeProcessVmMmap() {
  auto text = ReadFileToString("/proc/sys/vm/process_vm_mmap_nr");
  if (!text.ok()) return -1;
  char* end = nullptr;
  long nr = strtol(text->c_str(), &end, 10);
  return end != text->c_str() && nr > 0 ? nr : -1;
}

bool ProbeVvarVclock() {
  auto maps = ReadFileToString("/proc/self/maps");
  return maps.ok() && maps->find("[vvar_vclock]") != std::string::npos;
}

uint64_t UffdFeatures() {
  static uint64_t features = ProbeUffdFeatures();
  return features;
}

// Every kernel interface criu-lite looks for, one row each: the flag it
// sets, its probe, the name --disable-kernel-feature knows it by (tests
// take the fallback with it), and its line in `criu-lite check`: what it is
// needed for ("" continues the line above), and what criu-lite uses.
struct FeatureRow {
  bool KernelFeatures::*flag;
  bool (*probe)();
  const char* disable_as;  // "" if it cannot be disabled
  const char* need;
  const char* interface;
  const char* (*uses)(const KernelFeatures&);
};

const FeatureRow kFeatures[] = {
    {&KernelFeatures::pagemap_scan, ProbePagemapScan, "pagemap-scan", "which pages exist",
     "PAGEMAP_SCAN",
     [](const KernelFeatures& f) {
       return f.pagemap_scan ? "PAGEMAP_SCAN" : "read /proc/PID/pagemap";
     }},
    {&KernelFeatures::uffd_wp_async,
     [] {
       uint64_t u = UffdFeatures();
       return (u & UFFD_FEATURE_WP_ASYNC) && (u & UFFD_FEATURE_WP_UNPOPULATED);
     },
     "uffd-wp", "written-page tracking", "uffd WP_ASYNC",
     [](const KernelFeatures& f) {
       return f.uffd_wp_async ? "uffd-wp async + PAGEMAP_SCAN"
              : f.soft_dirty  ? "soft-dirty"
                              : "none: pre-dump unavailable";
     }},
    {&KernelFeatures::soft_dirty, ProbeSoftDirty, "", "", "soft-dirty",
     [](const KernelFeatures&) { return ""; }},
    {&KernelFeatures::procmap_query, ProbeProcmapQuery, "procmap-query", "VMA list",
     "PROCMAP_QUERY",
     [](const KernelFeatures& f) {
       return f.procmap_query ? "PROCMAP_QUERY" : "parse /proc/PID/maps";
     }},
    {&KernelFeatures::statmount, ProbeStatmount, "statmount", "mount tree", "statmount",
     [](const KernelFeatures& f) {
       return f.statmount ? "listmount + statmount" : "/proc/PID/mountinfo";
     }},
    {&KernelFeatures::pidfd_getfd, [] { return ProbeEbadfNotEnosys(__NR_pidfd_getfd, -1, 0, 0); },
     "pidfd-getfd", "take a task's fd", "pidfd_getfd",
     [](const KernelFeatures& f) {
       return f.pidfd_getfd ? "pidfd_getfd" : "SCM_RIGHTS through the task";
     }},
    // clone3(NULL, 0) is EINVAL where clone3 exists; set_tid came with it in
    // 5.5 together with the size check that makes that EINVAL.
    {&KernelFeatures::clone3_set_tid, [] { return ProbeEbadfNotEnosys(__NR_clone3, 0, 0, 0); },
     "clone3", "task with a given PID", "clone3 set_tid",
     [](const KernelFeatures& f) { return f.clone3_set_tid ? "clone3(set_tid)" : "ns_last_pid"; }},
    {&KernelFeatures::kcmp_epoll_tfd, ProbeKcmpEpollTfd, "", "epoll targets", "KCMP_EPOLL_TFD",
     [](const KernelFeatures& f) {
       return f.kcmp_epoll_tfd ? "kcmp(KCMP_EPOLL_TFD)"
                               : "unavailable: epolls with targets refused";
     }},
    {&KernelFeatures::pidfd_open,
     [] { return ScopedFd(syscall(SYS_pidfd_open, getpid(), 0)).valid(); }, "",
     "pidfds of the tree", "pidfd_open",
     [](const KernelFeatures& f) {
       return f.pidfd_open ? "pidfd_open" : "unavailable: restore cannot make pidfds";
     }},
    {&KernelFeatures::open_by_handle, ProbeOpenByHandle, "", "inotify watch paths",
     "open_by_handle_at",
     [](const KernelFeatures& f) {
       return f.open_by_handle ? "open_by_handle_at" : "unavailable: inotify watches refused";
     }},
    {&KernelFeatures::prctl_set_mm_map, ProbeSetMmMap, "", "set mm fields", "PR_SET_MM_MAP",
     [](const KernelFeatures& f) {
       return f.prctl_set_mm_map ? "PR_SET_MM_MAP" : "unavailable: restore cannot work";
     }},
    {&KernelFeatures::process_madvise,
     [] { return ProbeEbadfNotEnosys(__NR_process_madvise, -1, 0, 0, 0, 0); }, "",
     "hint another task's memory", "process_madvise",
     [](const KernelFeatures& f) { return f.process_madvise ? "process_madvise" : "-"; }},
    {&KernelFeatures::uffd_move, [] { return (UffdFeatures() & UFFD_FEATURE_MOVE) != 0; }, "",
     "post-copy restore", "UFFDIO_MOVE", [](const KernelFeatures&) { return "UFFDIO_COPY"; }},
    {&KernelFeatures::vvar_vclock, ProbeVvarVclock, "", "vDSO data split", "[vvar_vclock]",
     [](const KernelFeatures& f) {
       return f.vvar_vclock ? "move [vvar] and [vvar_vclock] with [vdso]"
                            : "move [vvar] with [vdso]";
     }},
};

KernelFeatures Probe() {
  KernelFeatures f;
  for (const FeatureRow& row : kFeatures) f.*row.flag = row.probe();
  return f;
}

KernelFeatures& MutableKernel() {
  static KernelFeatures f = Probe();
  return f;
}

}  // namespace

const KernelFeatures& Kernel() { return MutableKernel(); }

bool AioPollWorks() {
  static const bool works = ProbeAioPoll();
  return works;
}

bool NftablesWork() {
  static const bool work = NetLockAvailable();
  return work;
}

long ProcessVmMmapNr() {
  static long nr = ProbeProcessVmMmap();
  return nr;
}

bool HasProcessVmMmap() { return ProcessVmMmapNr() > 0; }

bool DisableFeature(const std::string& name) {
  for (const FeatureRow& row : kFeatures)
    if (!name.empty() && name == row.disable_as) {
      MutableKernel().*row.flag = false;
      return true;
    }
  return false;
}

std::string DisableableFeatures() {
  std::string names;
  for (const FeatureRow& row : kFeatures)
    if (*row.disable_as) names += std::string(names.empty() ? "" : ", ") + row.disable_as;
  return names;
}

// The cgroup layout criu-lite finds here and how --freeze-cgroup freezes.
CheckRow CgroupRow() {
  auto text = ReadFileToString("/proc/self/mountinfo");
  std::string v2, v1;
  bool freezer = false;
  for (const CgroupMount& m : ParseCgroupMounts(text.ok() ? *text : "")) {
    if (m.v2) {
      if (v2.empty()) v2 = m.mountpoint;
      continue;
    }
    for (const std::string& c : m.controllers) {
      v1 += (v1.empty() ? "" : ",") + c;
      freezer |= c == "freezer";
    }
  }
  std::string layout =
      v2.empty() ? (v1.empty() ? "none" : "v1") : (v1.empty() ? "cgroup2" : "hybrid");
  std::string uses;
  if (!v2.empty()) uses = "cgroup2 at " + v2 + " (cgroup.freeze)";
  if (!v1.empty()) uses += (uses.empty() ? "v1: " : "; v1: ") + v1;
  if (freezer) uses += " (freezer.state)";
  return {"cgroups", layout, !v2.empty() || !v1.empty() ? "yes" : "no", uses};
}

std::vector<CheckRow> CheckTable() {
  const KernelFeatures& f = Kernel();
  auto yes = [](bool b) { return std::string(b ? "yes" : "no"); };
  std::vector<CheckRow> rows;
  for (const FeatureRow& row : kFeatures)
    rows.push_back({row.need, row.interface, yes(f.*row.flag), row.uses(f)});
  // Not probed at start-up.
  rows.push_back({"AIO contexts", "IOCB_CMD_POLL", yes(AioPollWorks()),
                  AioPollWorks() ? "IOCB_CMD_POLL" : "unavailable: AIO contexts refused"});
  rows.push_back({"network lock", "nf_tables", yes(NftablesWork()),
                  NftablesWork() ? "nftables table" : "unavailable: --tcp-established refused"});
  // The first is always there, the second is a patched kernel's.
  rows.push_back({"read target memory", "process_vm_readv", "yes", "process_vm_readv"});
  bool vm_mmap = HasProcessVmMmap();
  rows.push_back({"pages without a copy", "process_vm_mmap", yes(vm_mmap),
                  vm_mmap ? Format("--pages=vm-mmap (syscall %ld)", ProcessVmMmapNr())
                          : std::string("--pages=read (task preadv)")});
  rows.push_back(CgroupRow());
  return rows;
}

}  // namespace crl
