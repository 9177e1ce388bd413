// What the running kernel offers, probed once at start-up. Every probe
// exercises the interface on criu-lite itself; none guesses from versions.
#pragma once

#include <string>
#include <vector>

namespace crl {

// One flag per interface; each is probed by its row in kernel_probe.cc.
struct KernelFeatures {
  bool pagemap_scan = false;    // PAGEMAP_SCAN ioctl on /proc/PID/pagemap
  bool procmap_query = false;   // PROCMAP_QUERY ioctl on /proc/PID/maps
  bool soft_dirty = false;      // pagemap bit 55 + clear_refs 4
  bool uffd_wp_async = false;   // UFFD_FEATURE_WP_ASYNC + WP_UNPOPULATED
  bool uffd_move = false;       // UFFDIO_MOVE
  bool clone3_set_tid = false;  // clone3 with set_tid
  bool pidfd_getfd = false;
  bool kcmp_epoll_tfd = false;  // which file an epoll registration is for
  bool pidfd_open = false;      // pidfds to make again (5.3)
  bool open_by_handle = false;  // an inotify watch's file from its handle (CAP_DAC_READ_SEARCH)
  bool process_madvise = false;
  bool prctl_set_mm_map = false;  // PR_SET_MM_MAP (CONFIG_CHECKPOINT_RESTORE)
  bool vvar_vclock = false;       // [vvar_vclock] mapping (6.13+)
  bool statmount = false;         // listmount + statmount with the fs's options (6.11)
};

const KernelFeatures& Kernel();
// Probed on first use, not with the rest at start-up: each probe costs
// milliseconds (io_destroy waits for an RCU grace period, about 30 ms
// here; closing an nf_tables socket about 5 ms), and most runs need
// neither.
// io_setup with IOCB_CMD_POLL (4.18): AIO contexts can be dumped.
bool AioPollWorks();
// nf_tables through libnftables: the network lock.
bool NftablesWork();
// process_vm_mmap is an out-of-tree patch (linux-patches/patches) with no mainline
// number: a kernel that has it says its number in
// /proc/sys/vm/process_vm_mmap_nr (probed on first use; -1 without it).
bool HasProcessVmMmap();
long ProcessVmMmapNr();
// Its flags (the patch's include/uapi/linux/mman.h).
inline constexpr unsigned long kPvmmapFixed = 0x01, kPvmmapFixedNoreplace = 0x02,
                               kPvmmapPidfd = 0x04;

// --disable-kernel-feature NAME: the fallback path taken on a kernel that
// has the newer interface (for tests). False for a name it does not know.
bool DisableFeature(const std::string& name);
// The names DisableFeature knows, for messages and help.
std::string DisableableFeatures();

// The table `criu-lite check` prints.
struct CheckRow {
  std::string need, interface, status, path;
};
std::vector<CheckRow> CheckTable();

}  // namespace crl
