// Cgroups: where each hierarchy is mounted (/proc/self/mountinfo), which
// directory a line of /proc/PID/cgroup names, which settings of a cgroup are
// carried (pure functions over text, unit-tested without a live system);
// and freezing the tasks of a cgroup (cgroup2's cgroup.freeze or the v1
// freezer).
#pragma once

#include <sys/types.h>

#include <chrono>
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

// A cgroup file's value as written back: its text without the final newline.
std::string CgroupValue(std::string text);

// A line of /proc/PID/cgroup.
struct CgroupLine {
  std::string controllers;  // "memory", "cpu,cpuacct", "name=systemd"; empty for cgroup2
  std::string path;         // "/a/b"
  bool v2 = false;
};
Result<CgroupLine> ParseCgroupLine(std::string_view line);

// The root of a cgroup namespace in each hierarchy, as "ID:controllers:/root"
// lines, from a task's /proc/PID/cgroup read outside the namespace (FULL)
// and inside it (INSIDE, relative to the roots). A task outside its
// namespace's root ("/.." inside) is an error.
Result<std::vector<std::string>> CgroupNamespaceRoots(std::string_view full,
                                                      std::string_view inside);

// The settings of a cgroup that are carried, in the order they are written
// back: those of each of CONTROLLERS (a v1 hierarchy's, or for cgroup2 the
// ones enabled for the cgroup) and, for cgroup2, the core ones. A setting a
// cgroup lacks (memory.swap.max without swap) is simply not there to read.
// Not carried: v1 devices, memsw and kmem limits, the freezer's state, io.max.
std::vector<std::string> CgroupSettingNames(const std::vector<std::string>& controllers, bool v2);

// The cgroup at DIR and its descendants frozen (cgroup2: cgroup.freeze; v1:
// freezer.state) until Thaw() or the destructor. A child process of
// criu-lite's, in a session of its own and with every signal blocked, thaws
// it should criu-lite die first (SIGKILL too): a cgroup is never left
// frozen.
class FrozenCgroup {
 public:
  // Returns once every task in them is frozen, or fails (thawed) after
  // TIMEOUT.
  static Result<FrozenCgroup> Freeze(const std::string& dir, std::chrono::milliseconds timeout);
  FrozenCgroup(FrozenCgroup&& o) noexcept;
  FrozenCgroup& operator=(FrozenCgroup&&) = delete;
  ~FrozenCgroup();
  Status Thaw();

 private:
  FrozenCgroup() = default;
  std::string file_;    // cgroup.freeze or freezer.state
  std::string thawed_;  // what it says when thawed: "0" or "THAWED"
  pid_t guard_ = -1;
  int guard_fd_ = -1;  // EOF here tells the guard to thaw
};
// The processes in the cgroup at DIR and its descendants.
Result<std::vector<pid_t>> CgroupProcesses(const std::string& dir);

}  // namespace crl
