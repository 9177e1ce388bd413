#include "kernel/cgroups.h"

#include <algorithm>
#include <sstream>

namespace crl {
namespace {

std::vector<std::string> Split(std::string_view s, char sep) {
  std::vector<std::string> out;
  for (size_t p = 0;;) {
    size_t q = s.find(sep, p);
    out.emplace_back(s.substr(p, q == std::string_view::npos ? std::string_view::npos : q - p));
    if (q == std::string_view::npos) break;
    p = q + 1;
  }
  return out;
}

}  // namespace

std::vector<CgroupMount> ParseCgroupMounts(std::string_view mountinfo) {
  // "40 31 0:37 / /sys/fs/cgroup/systemd rw,relatime - cgroup cgroup rw,name=systemd"
  std::vector<CgroupMount> out;
  std::istringstream in{std::string(mountinfo)};
  for (std::string line; std::getline(in, line);) {
    size_t dash = line.find(" - ");
    if (dash == std::string::npos) continue;
    std::istringstream pre(line.substr(0, dash)), post(line.substr(dash + 3));
    std::string id, parent, devno, root, mountpoint, fstype, source, options;
    pre >> id >> parent >> devno >> root >> mountpoint;
    post >> fstype >> source >> options;
    if (fstype != "cgroup" && fstype != "cgroup2") continue;
    CgroupMount m{mountpoint, root, {}, fstype == "cgroup2"};
    // Super options: the controllers, "name=X" for a named hierarchy, and
    // flags that are neither.
    static const char* const kFlags[] = {
        "rw", "ro", "xattr", "noprefix", "clone_children", "cpuset_v2_mode", "favordynmods"};
    for (const std::string& o : Split(options, ',')) {
      if (m.v2 || std::count(std::begin(kFlags), std::end(kFlags), o)) continue;
      if (o.find('=') == std::string::npos || o.rfind("name=", 0) == 0) m.controllers.push_back(o);
    }
    out.push_back(std::move(m));
  }
  return out;
}

Result<std::string> CgroupDir(const std::vector<CgroupMount>& mounts, std::string_view line) {
  std::vector<std::string> f = Split(line, ':');
  if (f.size() < 3) return MakeError("malformed cgroup line '%.*s'", int(line.size()), line.data());
  // The path may itself hold ':'.
  std::string path(line.substr(f[0].size() + f[1].size() + 2));
  bool v2 = f[0] == "0" && f[1].empty();
  std::vector<std::string> want = f[1].empty() ? std::vector<std::string>{} : Split(f[1], ',');
  std::sort(want.begin(), want.end());
  for (const CgroupMount& m : mounts) {
    if (m.v2 != v2) continue;
    std::vector<std::string> have = m.controllers;
    std::sort(have.begin(), have.end());
    if (have != want) continue;
    // Only a mount of the hierarchy's root, or of a directory above PATH.
    if (m.root != "/" && path != m.root && path.rfind(m.root + "/", 0) != 0) continue;
    std::string rel = m.root == "/" ? path : path.substr(m.root.size());
    return m.mountpoint + (rel == "/" ? "" : rel);
  }
  return MakeError("cgroup hierarchy '%s' (for %s) is not mounted here",
                   v2 ? "cgroup2" : f[1].c_str(), path.c_str());
}

}  // namespace crl
