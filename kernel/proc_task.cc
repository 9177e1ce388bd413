#include "kernel/proc_task.h"

#include <unistd.h>

#include <climits>
#include <cstdlib>

namespace crl {

std::string ProcTask::Path(std::string_view what) const {
  std::string base = tid_ ? Format("/proc/%d/task/%d/", pid_, tid_) : Format("/proc/%d/", pid_);
  return base.append(what);
}

Result<std::string> ProcTask::Read(std::string_view what) const {
  return ReadFileToString(Path(what));
}

Result<std::string> ProcTask::Link(std::string_view what) const {
  std::string path = Path(what);
  char buf[PATH_MAX];
  ssize_t n = readlink(path.c_str(), buf, sizeof buf);
  if (n < 0) return ErrnoError("readlink(%s)", path.c_str());
  return std::string(buf, n);
}

Result<ProcStat> ProcTask::Stat() const {
  std::string path = Path("stat");
  return ParseProcStat(TRY(ReadFileToString(path))).Context(path);
}

Result<ProcStatus> ProcTask::Status() const {
  std::string path = Path("status");
  return ParseProcStatus(TRY(ReadFileToString(path))).Context(path);
}

Result<std::vector<int>> ProcTask::Fds() const { return ListNumbered(Path("fd")); }

Result<std::vector<pid_t>> ProcTask::Threads() const { return ListNumbered(Path("task")); }

std::vector<pid_t> ProcTask::Children() const {
  std::vector<pid_t> out;
  std::vector<pid_t> tids = tid_ ? std::vector<pid_t>{tid_} : Threads().value_or({});
  for (pid_t tid : tids) {
    auto text = ReadFileToString(Format("/proc/%d/task/%d/children", pid_, tid));
    if (!text.ok()) continue;
    for (const char* p = text->c_str(); *p;) {
      char* end;
      long c = strtol(p, &end, 10);
      if (end == p) break;
      out.push_back(static_cast<pid_t>(c));
      p = end;
    }
  }
  return out;
}

bool IsLiveCriuLite(pid_t pid) {
  if (pid <= 0) return false;
  auto comm = ProcTask(pid).Read("comm");
  return comm.ok() && comm->rfind("criu-lite", 0) == 0;
}

}  // namespace crl
