#include "restore/cgroup_restore.h"

#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <set>

#include "base/log.h"
#include "kernel/proc_parsers.h"

namespace crl {
namespace {

const char* ModeName(CgroupMode m) {
  switch (m) {
    case CgroupMode::kIgnore:
      return "ignore";
    case CgroupMode::kNone:
      return "none";
    case CgroupMode::kProps:
      return "props";
    case CgroupMode::kSoft:
      return "soft";
    case CgroupMode::kFull:
      return "full";
    case CgroupMode::kStrict:
      return "strict";
  }
  return "?";
}

bool HasWord(const std::string& text, const std::string& word) {
  for (size_t p = text.find(word); p != std::string::npos; p = text.find(word, p + 1)) {
    bool starts = p == 0 || text[p - 1] == ' ' || text[p - 1] == '\n';
    size_t e = p + word.size();
    if (starts && (e == text.size() || text[e] == ' ' || text[e] == '\n')) return true;
  }
  return false;
}

// The settings of REC written to the cgroup at DIR, each only where it
// differs (a cgroup may refuse even its own value, as the root does).
Status WriteSettings(const std::string& dir, const img::CgroupDir& rec) {
  for (const img::CgroupProp& p : rec.props()) {
    std::string path = dir + "/" + p.name();
    Result<std::string> now = ReadFileToString(path);
    if (!now.ok())
      return MakeError("cgroup %s has no %s here (its controller is not enabled for it)",
                       dir.c_str(), p.name().c_str());
    if (CgroupValue(*now) == p.value()) continue;
    TRY(WriteKernelFile(path, p.value()).Context("restoring the settings of cgroup " + dir));
  }
  return Ok{};
}

}  // namespace

Result<CgroupReroot> CgroupReroot::Make(const std::vector<std::string>& specs,
                                        const std::vector<std::string>& root_lines) {
  CgroupReroot out;
  for (const std::string& s : specs) {
    size_t slash = s.find('/');
    if (slash == std::string::npos || (slash > 0 && s[slash - 1] != ':'))
      return MakeError("--cgroup-root %s: not [CONTROLLER:]/PATH", s.c_str());
    std::string controller = slash ? s.substr(0, slash - 1) : "", root = s.substr(slash);
    while (root.size() > 1 && root.back() == '/') root.pop_back();
    if (root.find("/..") != std::string::npos || root.find("/./") != std::string::npos)
      return MakeError("--cgroup-root %s: a path with . or .. in it", s.c_str());
    out.specs_.push_back({controller, root});
  }
  for (const std::string& line : root_lines) {
    CgroupLine l = TRY(ParseCgroupLine(line));
    out.old_roots_[l.controllers] = l.path;
  }
  return out;
}

Result<std::string> CgroupReroot::Path(const std::string& controllers,
                                       const std::string& path) const {
  const std::string* root = nullptr;
  for (const auto& [controller, r] : specs_) {
    bool named = false;
    std::string list = "," + controllers + ",";
    if (!controller.empty())
      named = controllers.empty() ? controller == "cgroup2"
                                  : list.find("," + controller + ",") != std::string::npos;
    if (named || (controller.empty() && !root)) root = &r;
    if (named) break;
  }
  if (!root) return path;
  auto old = old_roots_.find(controllers);
  if (old == old_roots_.end())
    return MakeError("cgroup %s (%s): the root task was in no cgroup of that hierarchy",
                     path.c_str(), controllers.empty() ? "cgroup2" : controllers.c_str());
  const std::string& from = old->second;
  std::string rest;
  if (path == from)
    rest = "";
  else if (from == "/")
    rest = path;
  else if (path.rfind(from + "/", 0) == 0)
    rest = path.substr(from.size());
  else
    return MakeError(
        "--cgroup-root: cgroup %s is not below the root task's cgroup %s (%s), so it has no "
        "place below the new root",
        path.c_str(), from.c_str(), controllers.empty() ? "cgroup2" : controllers.c_str());
  return *root == "/" ? (rest.empty() ? "/" : rest) : *root + rest;
}

Result<std::string> CgroupReroot::Line(const std::string& line) const {
  CgroupLine l = TRY(ParseCgroupLine(line));
  std::string prefix = line.substr(0, line.size() - l.path.size());
  return prefix + TRY(Path(l.controllers, l.path));
}

Result<CgroupMode> ParseCgroupMode(std::string_view name) {
  for (CgroupMode m : {CgroupMode::kIgnore, CgroupMode::kNone, CgroupMode::kProps,
                       CgroupMode::kSoft, CgroupMode::kFull, CgroupMode::kStrict})
    if (name == ModeName(m)) return m;
  return MakeError(
      "--manage-cgroups: unknown mode '%.*s' (none, props, soft, full, strict, ignore)",
      int(name.size()), name.data());
}

Result<CgroupRestore> CgroupRestore::Prepare(
    CgroupMode mode, const std::vector<const img::TaskCore*>& cores,
    const google::protobuf::RepeatedPtrField<img::CgroupDir>& cgroups) {
  CgroupRestore out(mode);
  if (mode == CgroupMode::kIgnore) return out;
  out.mounts_ = ParseCgroupMounts(TRY(ReadFileToString("/proc/self/mountinfo")));
  // A cgroup criu-lite is in itself exists, and the tasks are made in it:
  // left as it is (a cgroup of the caller's, not the tree's own).
  std::string own = "\n" + TRY(ReadFileToString("/proc/self/cgroup"));
  std::set<std::string> lines;  // sorted: a cgroup comes before those below it
  for (const img::TaskCore* c : cores)
    for (const std::string& line : c->cgroups())
      if (own.find("\n" + line + "\n") == std::string::npos) lines.insert(line);
  struct Want {
    std::string dir;
    CgroupLine line;
    const img::CgroupDir* rec = nullptr;
    bool exists = false;
  };
  // All checked before anything is made.
  std::vector<Want> wants;
  for (const std::string& line : lines) {
    Want w;
    w.line = TRY(ParseCgroupLine(line));
    if (w.line.path == "/") continue;  // a hierarchy's root: there, with nothing to restore
    w.dir = TRY(CgroupDir(out.mounts_, line).Context("restoring the tree's cgroups"));
    for (const img::CgroupDir& d : cgroups)
      if (d.controllers() == w.line.controllers && d.path() == w.line.path) w.rec = &d;
    w.exists = access(w.dir.c_str(), F_OK) == 0;
    if (!w.exists && (mode == CgroupMode::kNone || mode == CgroupMode::kProps))
      return MakeError(
          "cgroup %s does not exist: --manage-cgroups=%s restores only into existing cgroups "
          "(soft, the default, creates them)",
          w.dir.c_str(), ModeName(mode));
    if (w.exists && mode == CgroupMode::kStrict)
      return MakeError(
          "cgroup %s exists already: --manage-cgroups=strict restores only into cgroups it "
          "creates",
          w.dir.c_str());
    wants.push_back(std::move(w));
  }
  for (const Want& w : wants) {
    bool settings = mode == CgroupMode::kProps || mode == CgroupMode::kFull ||
                    mode == CgroupMode::kStrict || (mode == CgroupMode::kSoft && !w.exists);
    if (!w.exists) TRY(out.MakeDir(w.dir, w.line));
    if (!settings || !w.rec) continue;
    if (w.line.v2) TRY(out.EnableControllers(w.dir, *w.rec));
    TRY(WriteSettings(w.dir, *w.rec));
  }
  return out;
}

// Each missing directory down to DIR made (and recorded, to be removed if
// the restore fails). A v1 cpuset cgroup takes no task before it has CPUs
// and memory nodes: a new one gets its parent's (its own settings, if
// restored, come after).
Status CgroupRestore::MakeDir(const std::string& dir, const CgroupLine& l) {
  std::string controllers = l.controllers;
  std::replace(controllers.begin(), controllers.end(), ',', ' ');
  bool cpuset_v1 = !l.v2 && HasWord(controllers, "cpuset");
  for (size_t p = dir.find('/', 1);; p = dir.find('/', p + 1)) {
    std::string part = p == std::string::npos ? dir : dir.substr(0, p);
    if (mkdir(part.c_str(), 0755) == 0) {
      LOG_INFO("created cgroup %s", part.c_str());
      created_.push_back(part);
      if (cpuset_v1) {
        std::string parent = part.substr(0, part.rfind('/'));
        for (const char* f : {"cpuset.cpus", "cpuset.mems"})
          TRY(WriteKernelFile(part + "/" + f, CgroupValue(TRY(ReadFileToString(parent + "/" + f))))
                  .Context("making cgroup " + part));
      }
    } else if (errno != EEXIST) {
      return ErrnoError("mkdir(%s) (making cgroup %s)", part.c_str(), dir.c_str());
    }
    if (p == std::string::npos) break;
  }
  return Ok{};
}

// cgroup2: each controller REC had enabled for it is enabled in every
// cgroup above DIR, from its hierarchy's root down. (One it enabled in an
// existing cgroup stays enabled after a failed restore.)
Status CgroupRestore::EnableControllers(const std::string& dir, const img::CgroupDir& rec) {
  std::string top;
  for (const CgroupMount& m : mounts_)
    if (m.v2 && dir.rfind(m.mountpoint + "/", 0) == 0 && m.mountpoint.size() > top.size())
      top = m.mountpoint;
  if (top.empty()) return MakeError("cgroup %s is not in a cgroup2 hierarchy here", dir.c_str());
  for (size_t p = top.size(); p != std::string::npos && p < dir.size(); p = dir.find('/', p + 1)) {
    std::string above = dir.substr(0, p);
    std::string have = TRY(ReadFileToString(above + "/cgroup.subtree_control"));
    std::string can = TRY(ReadFileToString(above + "/cgroup.controllers"));
    for (const std::string& c : rec.enabled()) {
      if (HasWord(have, c)) continue;
      if (!HasWord(can, c))
        return MakeError("cgroup %s needs the %s controller, which %s does not have here",
                         dir.c_str(), c.c_str(), above.c_str());
      TRY(WriteKernelFile(above + "/cgroup.subtree_control", "+" + c)
              .Context(Format("enabling the %s controller below %s (for cgroup %s)", c.c_str(),
                              above.c_str(), dir.c_str())));
    }
  }
  return Ok{};
}

Status CgroupRestore::MoveTo(pid_t pid, const std::string& line) const {
  if (mode_ == CgroupMode::kIgnore) return Ok{};
  std::string dir = TRY(CgroupDir(mounts_, line).Context(Format("PID %d", pid)));
  return WriteKernelFile(dir + "/cgroup.procs", std::to_string(pid))
      .Context(Format("moving PID %d into cgroup %s", pid, dir.c_str()));
}

Status CgroupRestore::Move(pid_t pid, const img::TaskCore& core) const {
  if (mode_ == CgroupMode::kIgnore || core.cgroups().empty()) return Ok{};
  std::string now = "\n" + TRY(ReadFileToString(Format("/proc/%d/cgroup", pid)));
  for (const std::string& line : core.cgroups()) {
    if (now.find("\n" + line + "\n") == std::string::npos) TRY(MoveTo(pid, line));
  }
  return Ok{};
}

CgroupRestore::~CgroupRestore() {
  for (auto it = created_.rbegin(); it != created_.rend(); ++it)
    if (rmdir(it->c_str()) < 0)
      LOG_WARN("removing cgroup %s, made by the failed restore: %s", it->c_str(), strerror(errno));
    else
      LOG_INFO("removed cgroup %s, made by the failed restore", it->c_str());
}

}  // namespace crl
