// Cgroups at restore, under CRIU's --manage-cgroups modes: the tree's
// cgroups made ready before any task exists (created, or required to exist;
// their settings written back), each task moved into its own as it is made,
// and the cgroups this restore created removed again if it fails.
#pragma once

#include <sys/types.h>

#include <map>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "base/result.h"
#include "images/criu_lite.pb.h"
#include "kernel/cgroups.h"

namespace crl {

// CRIU's modes. Settings are written to the cgroups: props, full, strict:
// all of them; soft: those the restore creates; none: none. A missing
// cgroup is created, but under none and props (an error). strict: a cgroup
// that exists already is an error. ignore: tasks stay in criu-lite's.
enum class CgroupMode { kIgnore, kNone, kProps, kSoft, kFull, kStrict };
Result<CgroupMode> ParseCgroupMode(std::string_view name);

// --cgroup-root [CONTROLLER:]/NEWROOT (CRIU's): the tree's cgroups go
// below NEWROOT instead of below the root task's cgroup at dump, in the
// hierarchy of CONTROLLER (a v1 controller, "name=systemd", or "cgroup2"
// for the unified hierarchy), or (without one) in every hierarchy no other
// spec names.
class CgroupReroot {
 public:
  // ROOT_LINES: the root task's /proc/PID/cgroup lines at dump.
  static Result<CgroupReroot> Make(const std::vector<std::string>& specs,
                                   const std::vector<std::string>& root_lines);
  bool empty() const { return specs_.empty(); }
  // The path in hierarchy CONTROLLERS ("memory", "cpu,cpuacct", "" for
  // cgroup2) where PATH goes; an error for a cgroup outside the root task's.
  Result<std::string> Path(const std::string& controllers, const std::string& path) const;
  // The same for a line "ID:controllers:/path".
  Result<std::string> Line(const std::string& line) const;

 private:
  std::vector<std::pair<std::string, std::string>> specs_;  // controller ("" any), new root
  std::map<std::string, std::string> old_roots_;            // by controllers
};

class CgroupRestore {
 public:
  // CORES: every task of the tree; CGROUPS: the dump's records of their
  // cgroups and settings.
  static Result<CgroupRestore> Prepare(
      CgroupMode mode, const std::vector<const img::TaskCore*>& cores,
      const google::protobuf::RepeatedPtrField<img::CgroupDir>& cgroups);
  CgroupRestore(CgroupRestore&& o) noexcept
      : mode_(o.mode_), mounts_(std::move(o.mounts_)), created_(std::exchange(o.created_, {})) {}
  CgroupRestore& operator=(CgroupRestore&&) = delete;
  // Removes the cgroups it created, but after Keep().
  ~CgroupRestore();

  // Moves PID (its only thread) into each cgroup CORE records that it is
  // not in yet.
  Status Move(pid_t pid, const img::TaskCore& core) const;
  // Moves PID into the cgroup LINE names ("ID:controllers:/path"), as a
  // cgroup namespace's root before the task unshares it (not under ignore).
  Status MoveTo(pid_t pid, const std::string& line) const;
  // The restore succeeded: what was created stays.
  void Keep() { created_.clear(); }

 private:
  explicit CgroupRestore(CgroupMode mode) : mode_(mode) {}
  Status MakeDir(const std::string& dir, const CgroupLine& l);
  Status EnableControllers(const std::string& dir, const img::CgroupDir& rec);

  CgroupMode mode_;
  std::vector<CgroupMount> mounts_;
  std::vector<std::string> created_;  // in the order made
};

}  // namespace crl
