#include "dump/cgroup_dump.h"

#include <set>
#include <sstream>

#include "base/log.h"
#include "kernel/cgroups.h"
#include "kernel/proc_parsers.h"

namespace crl {
namespace {

std::vector<std::string> Words(const std::string& s, char sep) {
  std::vector<std::string> out;
  std::istringstream in(s);
  for (std::string w; std::getline(in, w, sep);)
    if (!w.empty()) out.push_back(w);
  return out;
}

Result<img::CgroupDir> RecordOne(const std::vector<CgroupMount>& mounts, const std::string& line,
                                 const CgroupLine& l) {
  std::string dir = TRY(CgroupDir(mounts, line));
  img::CgroupDir out;
  out.set_controllers(l.controllers);
  out.set_path(l.path);
  std::vector<std::string> controllers = Words(l.controllers, ',');
  if (l.v2) {
    controllers = Words(CgroupValue(TRY(ReadFileToString(dir + "/cgroup.controllers"))), ' ');
    for (const std::string& c : controllers) out.add_enabled(c);
  }
  for (const std::string& name : CgroupSettingNames(controllers, l.v2)) {
    Result<std::string> value = ReadFileToString(dir + "/" + name);
    if (!value.ok()) continue;  // not in this cgroup (memory.swap.max without swap)
    std::string v = CgroupValue(*value);
    if (v.empty()) continue;  // cgroup2's cpuset.cpus unset: inherited
    img::CgroupProp* p = out.add_props();
    p->set_name(name);
    p->set_value(v);
  }
  return out;
}

}  // namespace

Result<std::vector<img::CgroupDir>> RecordCgroups(const std::vector<const img::TaskCore*>& cores) {
  std::set<std::string> lines;
  for (const img::TaskCore* c : cores)
    for (const std::string& line : c->cgroups()) lines.insert(line);
  std::vector<CgroupMount> mounts =
      ParseCgroupMounts(TRY(ReadFileToString("/proc/self/mountinfo")));
  std::vector<img::CgroupDir> out;
  std::set<std::pair<std::string, std::string>> seen;
  for (const std::string& line : lines) {
    CgroupLine l = TRY(ParseCgroupLine(line));
    if (l.path == "/" || !seen.insert({l.controllers, l.path}).second) continue;
    Result<img::CgroupDir> d = RecordOne(mounts, line, l);
    if (!d.ok()) {
      LOG_INFO("cgroup %s: settings not recorded: %s", line.c_str(), d.error().message.c_str());
      continue;
    }
    out.push_back(std::move(*d));
  }
  return out;
}

}  // namespace crl
