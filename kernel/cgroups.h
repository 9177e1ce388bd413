// Cgroup membership: where each hierarchy is mounted (/proc/self/mountinfo)
// and which directory a line of /proc/PID/cgroup names. Pure functions over
// text, unit-tested without a live system.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "base/result.h"

namespace crl {

struct CgroupMount {
  std::string mountpoint;                // where it is mounted here
  std::string root;                      // which directory of the hierarchy is mounted there
  std::vector<std::string> controllers;  // v1: "cpu", "name=systemd"...; empty for v2
  bool v2 = false;
};
std::vector<CgroupMount> ParseCgroupMounts(std::string_view mountinfo);

// The directory for a /proc/PID/cgroup line ("4:memory:/a/b", "0::/a"), or
// an error naming the hierarchy that is not mounted here.
Result<std::string> CgroupDir(const std::vector<CgroupMount>& mounts, std::string_view line);

}  // namespace crl
