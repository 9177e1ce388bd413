#include "kernel/cgroups.h"

#include <fcntl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <csignal>
#include <cstring>
#include <filesystem>
#include <sstream>
#include <thread>
#include <utility>

#include "base/background.h"
#include "base/interrupt.h"
#include "base/log.h"
#include "kernel/proc_parsers.h"

namespace crl {

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

Result<CgroupLine> ParseCgroupLine(std::string_view line) {
  std::vector<std::string> f = Split(line, ':');
  if (f.size() < 3) return MakeError("malformed cgroup line '%.*s'", int(line.size()), line.data());
  // The path may itself hold ':'.
  std::string path(line.substr(f[0].size() + f[1].size() + 2));
  if (path.empty() || path[0] != '/')
    return MakeError("malformed cgroup line '%.*s'", int(line.size()), line.data());
  return CgroupLine{f[1], path, f[0] == "0" && f[1].empty()};
}

Result<std::string> CgroupDir(const std::vector<CgroupMount>& mounts, std::string_view line) {
  CgroupLine l = TRY(ParseCgroupLine(line));
  const std::string& path = l.path;
  bool v2 = l.v2;
  std::vector<std::string> want =
      l.controllers.empty() ? std::vector<std::string>{} : Split(l.controllers, ',');
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
                   v2 ? "cgroup2" : l.controllers.c_str(), path.c_str());
}

Result<std::vector<std::string>> CgroupNamespaceRoots(std::string_view full,
                                                      std::string_view inside) {
  std::vector<std::string> out;
  std::vector<std::string> in_lines = Split(inside, '\n');
  for (const std::string& line : Split(full, '\n')) {
    if (line.empty()) continue;
    CgroupLine f = TRY(ParseCgroupLine(line));
    std::string id = line.substr(0, line.find(':'));
    std::string rel;
    for (const std::string& i : in_lines)
      if (!i.empty() && i.rfind(id + ":" + f.controllers + ":", 0) == 0)
        rel = TRY(ParseCgroupLine(i)).path;
    if (rel.empty()) return MakeError("no line for hierarchy %s inside the namespace", id.c_str());
    if (rel.rfind("/..", 0) == 0)
      return MakeError("in cgroup %s, outside its cgroup namespace's root", f.path.c_str());
    std::string root = f.path;
    if (rel != "/") {
      if (root.size() < rel.size() || root.compare(root.size() - rel.size(), rel.size(), rel) != 0)
        return MakeError("cgroup %s is not below its namespace's root (%s inside)", f.path.c_str(),
                         rel.c_str());
      root.resize(root.size() - rel.size());
      if (root.empty()) root = "/";
    }
    out.push_back(id + ":" + f.controllers + ":" + root);
  }
  return out;
}

std::string CgroupValue(std::string text) {
  while (!text.empty() && (text.back() == '\n' || text.back() == ' ')) text.pop_back();
  return text;
}

std::vector<std::string> CgroupSettingNames(const std::vector<std::string>& controllers, bool v2) {
  // cpuset first: a v1 cpuset cgroup takes no task before it has CPUs and
  // memory nodes. A period before the quota that is a share of it; memory's
  // guarantees before its limits.
  static const std::vector<std::pair<std::string, std::vector<std::string>>> kV1 = {
      {"cpuset", {"cpuset.cpus", "cpuset.mems"}},
      {"cpu", {"cpu.shares", "cpu.cfs_period_us", "cpu.cfs_quota_us"}},
      {"memory", {"memory.limit_in_bytes", "memory.soft_limit_in_bytes", "memory.swappiness"}},
      {"pids", {"pids.max"}},
      {"blkio", {"blkio.weight"}},
  };
  static const std::vector<std::pair<std::string, std::vector<std::string>>> kV2 = {
      {"cpuset", {"cpuset.cpus", "cpuset.mems"}},
      {"cpu", {"cpu.weight", "cpu.max"}},
      {"memory", {"memory.min", "memory.low", "memory.high", "memory.max", "memory.swap.max"}},
      {"pids", {"pids.max"}},
      {"io", {"io.weight"}},
  };
  std::vector<std::string> out;
  if (v2) out = {"cgroup.max.descendants", "cgroup.max.depth"};
  for (const auto& [controller, names] : v2 ? kV2 : kV1)
    if (std::count(controllers.begin(), controllers.end(), controller))
      out.insert(out.end(), names.begin(), names.end());
  return out;
}

namespace {

// Whether the cgroup at DIR (cgroup2 or a v1 freezer) is frozen now.
Result<bool> Frozen(const std::string& dir, bool v2) {
  if (!v2) return CgroupValue(TRY(ReadFileToString(dir + "/freezer.state"))) == "FROZEN";
  std::string events = TRY(ReadFileToString(dir + "/cgroup.events"));
  return events.find("frozen 1\n") != std::string::npos;
}

Result<bool> IsV2(const std::string& dir) {
  if (access((dir + "/cgroup.freeze").c_str(), F_OK) == 0) return true;
  if (access((dir + "/freezer.state").c_str(), F_OK) == 0) return false;
  return MakeError(
      "%s is neither a cgroup2 cgroup (no cgroup.freeze: the root cannot be frozen) nor one of "
      "the v1 freezer hierarchy (no freezer.state)",
      dir.c_str());
}

}  // namespace

// The guard: waits for a byte from criu-lite; EOF instead (criu-lite is
// dead) thaws.
[[noreturn]] void GuardCgroup(int fd, const char* file, const char* thawed) {
  if (GuardWait(fd) == 0) {
    int f = open(file, O_WRONLY | O_CLOEXEC);
    if (f >= 0) (void)!write(f, thawed, strlen(thawed));
  }
  _exit(0);
}

Result<FrozenCgroup> FrozenCgroup::Freeze(const std::string& dir,
                                          std::chrono::milliseconds timeout) {
  bool v2 = TRY(IsV2(dir));
  FrozenCgroup out;
  out.file_ = dir + (v2 ? "/cgroup.freeze" : "/freezer.state");
  out.thawed_ = v2 ? "0" : "THAWED";
  int p[2];
  if (pipe2(p, O_CLOEXEC) < 0) return ErrnoError("pipe2");
  out.guard_ = fork();
  if (out.guard_ == 0) GuardCgroup(p[0], out.file_.c_str(), out.thawed_.c_str());
  close(p[0]);
  if (out.guard_ < 0) {
    close(p[1]);
    return ErrnoError("fork (the guard of a frozen cgroup)");
  }
  out.guard_fd_ = p[1];
  auto deadline = std::chrono::steady_clock::now() + timeout;
  for (auto pause = std::chrono::microseconds(100);;
       pause = std::min(pause * 2, std::chrono::microseconds(10000))) {
    // v1 may stay FREEZING (a task in an unfreezable sleep): asking again
    // retries the tasks not yet frozen.
    TRY(WriteKernelFile(out.file_, v2 ? "1" : "FROZEN"));
    if (TRY(Frozen(dir, v2))) return out;
    TRY(CheckStop());
    if (std::chrono::steady_clock::now() > deadline)
      return MakeError("the tasks of cgroup %s did not all freeze within %lld ms", dir.c_str(),
                       static_cast<long long>(timeout.count()));
    std::this_thread::sleep_for(pause);
  }
}

Status FrozenCgroup::Thaw() {
  if (guard_fd_ < 0) return Ok{};
  Status st = WriteKernelFile(file_, thawed_);
  // Thawed (or, if that failed, the guard tries once more as it goes).
  char c = 'T';
  if (st.ok()) (void)!write(guard_fd_, &c, 1);
  close(std::exchange(guard_fd_, -1));
  while (waitpid(guard_, nullptr, 0) < 0 && errno == EINTR) {
  }
  return st;
}

FrozenCgroup::FrozenCgroup(FrozenCgroup&& o) noexcept
    : file_(std::move(o.file_)),
      thawed_(std::move(o.thawed_)),
      guard_(std::exchange(o.guard_, -1)),
      guard_fd_(std::exchange(o.guard_fd_, -1)) {}

FrozenCgroup::~FrozenCgroup() {
  if (Status st = Thaw(); !st.ok()) LOG_ERROR("%s", st.error().message.c_str());
}

Result<std::vector<pid_t>> CgroupProcesses(const std::string& dir) {
  std::vector<pid_t> out;
  std::error_code ec;
  std::vector<std::string> dirs = {dir};
  for (std::filesystem::recursive_directory_iterator it(dir, ec), end; !ec && it != end;
       it.increment(ec))
    if (it->is_directory(ec)) dirs.push_back(it->path());
  if (ec) return MakeError("listing cgroup %s: %s", dir.c_str(), ec.message().c_str());
  for (const std::string& d : dirs) {
    std::istringstream in(TRY(ReadFileToString(d + "/cgroup.procs")));
    for (pid_t pid; in >> pid;) out.push_back(pid);
  }
  return out;
}

}  // namespace crl
