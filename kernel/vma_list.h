// The VMA list of a process: PROCMAP_QUERY where the kernel has it (6.11),
// /proc/PID/maps otherwise; VmFlags always come from /proc/PID/smaps.
#pragma once

#include <sys/types.h>

#include <vector>

#include "base/result.h"
#include "kernel/proc_parsers.h"

namespace crl {

struct VmaInfo : MapsEntry {
  std::string vmflags;  // "rd wr mr mw me ac": /proc/PID/smaps' VmFlags
  bool HasFlag(std::string_view code) const { return HasFlagCode(vmflags, code); }
};

Result<std::vector<VmaInfo>> ListVmas(pid_t pid);
// MUST: PROCMAP_QUERY_VMA_* and _FILE_BACKED_VMA flags a VMA must have to
// be listed (0: every VMA).
Result<std::vector<MapsEntry>> QueryVmasWithProcmapQuery(pid_t pid, uint64_t must = 0);

}  // namespace crl
