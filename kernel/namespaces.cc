#include "kernel/namespaces.h"

#include <fcntl.h>
#include <sched.h>
#include <sys/stat.h>
#include <sys/utsname.h>

#include <functional>
#include <thread>

#include "base/scoped_fd.h"
#include "kernel/proc_task.h"

namespace crl {

uint64_t NamespaceId(pid_t pid, const char* type) {
  struct stat st;
  if (stat(ProcTask(pid).Path(std::string("ns/") + type).c_str(), &st) < 0) return 0;
  return st.st_ino;
}

namespace {

// READ run on a thread of criu-lite's that has joined PID's namespace of
// TYPE (CLONE_NEW*) for the moment.
template <typename T>
Result<T> InNamespace(pid_t pid, const char* type, int flag,
                      const std::function<Result<T>()>& read) {
  std::string path = ProcTask(pid).Path(std::string("ns/") + type);
  ScopedFd ns(open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (!ns.valid()) return ErrnoError("open(%s)", path.c_str());
  Result<T> out = MakeError("reading the %s namespace of PID %d: no answer", type, pid);
  std::thread reader([&] {
    if (setns(ns.get(), flag) < 0)
      out = ErrnoError("setns(%s namespace of PID %d)", type, pid);
    else
      out = read();
  });
  reader.join();
  return out;
}

}  // namespace

Result<UtsNames> ReadUtsNames(pid_t pid) {
  return InNamespace<UtsNames>(pid, "uts", CLONE_NEWUTS, []() -> Result<UtsNames> {
    utsname u{};
    uname(&u);
    return UtsNames{u.nodename, u.domainname};
  });
}

Result<std::string> ReadCgroupsInNamespace(pid_t pid) {
  return InNamespace<std::string>(pid, "cgroup", CLONE_NEWCGROUP,
                                  [pid] { return ProcTask(pid).Read("cgroup"); });
}

}  // namespace crl
