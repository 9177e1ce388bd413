// Kernel uapi definitions newer than the 6.1 system headers. Each is guarded so
// that newer headers win, and each struct's size is checked against the ABI.
#pragma once

#include <linux/fs.h>
#include <linux/ioctl.h>
#include <linux/types.h>
#include <linux/userfaultfd.h>

#include <cstdint>

// ---- PAGEMAP_SCAN (6.7): fs.h -------------------------------------------------
#ifndef PAGEMAP_SCAN
#define PAGE_IS_WPALLOWED (1 << 0)
#define PAGE_IS_WRITTEN (1 << 1)
#define PAGE_IS_FILE (1 << 2)
#define PAGE_IS_PRESENT (1 << 3)
#define PAGE_IS_SWAPPED (1 << 4)
#define PAGE_IS_PFNZERO (1 << 5)
#define PAGE_IS_HUGE (1 << 6)
#define PAGE_IS_SOFT_DIRTY (1 << 7)

struct page_region {
  __u64 start;
  __u64 end;
  __u64 categories;
};

#define PM_SCAN_WP_MATCHING (1 << 0)
#define PM_SCAN_CHECK_WPASYNC (1 << 1)

struct pm_scan_arg {
  __u64 size;
  __u64 flags;
  __u64 start;
  __u64 end;
  __u64 walk_end;
  __u64 vec;
  __u64 vec_len;
  __u64 max_pages;
  __u64 category_inverted;
  __u64 category_mask;
  __u64 category_anyof_mask;
  __u64 return_mask;
};

#define PAGEMAP_IOCTL_MAGIC 'f'
#define PAGEMAP_SCAN _IOWR(PAGEMAP_IOCTL_MAGIC, 16, struct pm_scan_arg)
#endif
static_assert(sizeof(page_region) == 24);
static_assert(sizeof(pm_scan_arg) == 96);

// ---- PROCMAP_QUERY (6.11): fs.h -----------------------------------------------
#ifndef PROCMAP_QUERY
#define PROCFS_IOCTL_MAGIC 'f'
enum procmap_query_flags {
  PROCMAP_QUERY_VMA_READABLE = 0x01,
  PROCMAP_QUERY_VMA_WRITABLE = 0x02,
  PROCMAP_QUERY_VMA_EXECUTABLE = 0x04,
  PROCMAP_QUERY_VMA_SHARED = 0x08,
  PROCMAP_QUERY_COVERING_OR_NEXT_VMA = 0x10,
  PROCMAP_QUERY_FILE_BACKED_VMA = 0x20,
};

struct procmap_query {
  __u64 size;
  __u64 query_flags;
  __u64 query_addr;
  __u64 vma_start;
  __u64 vma_end;
  __u64 vma_flags;
  __u64 vma_page_size;
  __u64 vma_offset;
  __u64 inode;
  __u32 dev_major;
  __u32 dev_minor;
  __u32 vma_name_size;
  __u32 build_id_size;
  __u64 vma_name_addr;
  __u64 build_id_addr;
};
#define PROCMAP_QUERY _IOWR(PROCFS_IOCTL_MAGIC, 17, struct procmap_query)
#endif
static_assert(sizeof(procmap_query) == 104);
static_assert(PROCMAP_QUERY == 0xC0686611);

// ---- userfaultfd features newer than 6.1 ---------------------------------------
#ifndef UFFD_FEATURE_WP_UNPOPULATED
#define UFFD_FEATURE_WP_UNPOPULATED (1 << 13)
#endif
#ifndef UFFD_FEATURE_WP_ASYNC
#define UFFD_FEATURE_WP_ASYNC (1 << 15)
#endif
#ifndef UFFD_FEATURE_MOVE
#define UFFD_FEATURE_MOVE (1 << 16)
#endif

// ---- x86-64 syscall numbers the 6.1 headers may lack ---------------------------
#ifndef __NR_clone3
#define __NR_clone3 435
#endif
#ifndef __NR_pidfd_open
#define __NR_pidfd_open 434
#endif
#ifndef __NR_pidfd_getfd
#define __NR_pidfd_getfd 438
#endif
#ifndef MADV_COLLAPSE
#define MADV_COLLAPSE 25  // 6.1
#endif
#ifndef __NR_process_madvise
#define __NR_process_madvise 440
#endif

// The kernel's struct sigaction for rt_sigaction (not glibc's).
struct kernel_sigaction {
  uint64_t handler;
  uint64_t flags;
  uint64_t restorer;
  uint64_t mask;
};
static_assert(sizeof(kernel_sigaction) == 32);

// Kernel-internal restart codes a syscall interrupted by a stop leaves in rax.
constexpr long kERESTARTSYS = 512;
constexpr long kERESTARTNOINTR = 513;
constexpr long kERESTARTNOHAND = 514;
constexpr long kERESTART_RESTARTBLOCK = 516;

// ---- membarrier (6.3): which REGISTER_* commands a process has issued -------
#ifndef MEMBARRIER_CMD_GET_REGISTRATIONS
#define MEMBARRIER_CMD_GET_REGISTRATIONS (1 << 9)
#endif

// ---- prctl (6.3): memory-deny-write-execute -----------------------------------
#ifndef PR_GET_MDWE
#define PR_SET_MDWE 65
#define PR_GET_MDWE 66
#endif

// ---- timerfd (3.17): linux/timerfd.h clashes with glibc's sys/timerfd.h ------
#ifndef TFD_IOC_SET_TICKS
#define TFD_IOC_SET_TICKS _IOW('T', 0, __u64)
#endif

// ---- statmount / listmount (6.8): the mount tree, one call per mount -------
#ifndef __NR_statmount
#define __NR_statmount 457
#define __NR_listmount 458
#endif
#define CRL_STATMOUNT_SB_BASIC 0x1u
#define CRL_STATMOUNT_MNT_BASIC 0x2u
#define CRL_STATMOUNT_PROPAGATE_FROM 0x4u
#define CRL_STATMOUNT_MNT_ROOT 0x8u
#define CRL_STATMOUNT_MNT_POINT 0x10u
#define CRL_STATMOUNT_FS_TYPE 0x20u
#define CRL_STATMOUNT_MNT_OPTS 0x80u    // 6.11
#define CRL_STATMOUNT_SB_SOURCE 0x200u  // 6.14
#define CRL_LSMT_ROOT 0xffffffffffffffffull
struct crl_mnt_id_req {
  uint32_t size;
  uint32_t spare;
  uint64_t mnt_id;
  uint64_t param;
};
struct crl_statmount {
  uint32_t size;
  uint32_t mnt_opts;  // [str], 6.11
  uint64_t mask;
  uint32_t sb_dev_major, sb_dev_minor;
  uint64_t sb_magic;
  uint32_t sb_flags;
  uint32_t fs_type;  // [str]
  uint64_t mnt_id, mnt_parent_id;
  uint32_t mnt_id_old, mnt_parent_id_old;
  uint64_t mnt_attr, mnt_propagation, mnt_peer_group, mnt_master, propagate_from;
  uint32_t mnt_root, mnt_point;  // [str]
  uint64_t mnt_ns_id;
  uint32_t fs_subtype, sb_source;  // [str]
  uint32_t opt_num, opt_array, opt_sec_num, opt_sec_array;
  uint64_t supported_mask;
  uint32_t uidmap_num, uidmap, gidmap_num, gidmap;
  uint64_t spare2[43];
  char str[];
};
static_assert(sizeof(crl_statmount) == 512);
