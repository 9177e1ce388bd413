// A task's /proc directory: the one place that spells its paths and reads
// them. The formats are parsed by proc_parsers.h; what dump and restore
// want from a task goes through here.
#pragma once

#include <sys/types.h>

#include <string>
#include <string_view>
#include <vector>

#include "base/result.h"
#include "kernel/proc_parsers.h"

namespace crl {

class ProcTask {
 public:
  // PID's directory, or with TID that of one of its threads.
  explicit ProcTask(pid_t pid, pid_t tid = 0) : pid_(pid), tid_(tid) {}
  pid_t pid() const { return pid_; }
  ProcTask Thread(pid_t tid) const { return ProcTask(pid_, tid); }

  // /proc/PID/WHAT (/proc/PID/task/TID/WHAT for a thread).
  std::string Path(std::string_view what) const;
  Result<std::string> Read(std::string_view what) const;
  // Where the link WHAT points ("exe", "cwd", "fd/3").
  Result<std::string> Link(std::string_view what) const;

  Result<ProcStat> Stat() const;
  Result<ProcStatus> Status() const;
  // Its fds, and (of a process) its threads, in order.
  Result<std::vector<int>> Fds() const;
  Result<std::vector<pid_t>> Threads() const;
  // The children of this thread (task/TID/children), or of every thread of
  // the process; empty for a task gone meanwhile.
  std::vector<pid_t> Children() const;

 private:
  pid_t pid_, tid_;
};

// Whether PID is a criu-lite still running: the work it left (a staging
// directory, a migration's work directory) is then not abandoned.
bool IsLiveCriuLite(pid_t pid);

}  // namespace crl
