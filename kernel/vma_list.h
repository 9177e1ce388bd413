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
// The same without VmFlags, which only smaps has (it walks every page
// table entry to count what each mapping holds): the mappings alone.
Result<std::vector<MapsEntry>> ListMappings(pid_t pid);
// Whether A and B list the same mappings (bounds, protection, file).
bool SameMappings(const std::vector<VmaInfo>& a, const std::vector<MapsEntry>& b);
// MUST: PROCMAP_QUERY_VMA_* and _FILE_BACKED_VMA flags a VMA must have to
// be listed (0: every VMA).
Result<std::vector<MapsEntry>> QueryVmasWithProcmapQuery(pid_t pid, uint64_t must = 0);

}  // namespace crl
