#include "kernel/namespaces.h"

#include <dirent.h>
#include <fcntl.h>
#include <sched.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/utsname.h>

#include <algorithm>
#include <functional>
#include <sstream>
#include <thread>

#include "base/scoped_fd.h"
#include "kernel/proc_parsers.h"
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

namespace {

// The sysctls of an IPC namespace (those a kernel lacks are not there to read).
const char* const kIpcSysctls[] = {"kernel/shmmax",
                                   "kernel/shmall",
                                   "kernel/shmmni",
                                   "kernel/shm_rmid_forced",
                                   "kernel/msgmax",
                                   "kernel/msgmni",
                                   "kernel/msgmnb",
                                   "kernel/sem",
                                   "fs/mqueue/queues_max",
                                   "fs/mqueue/msg_max",
                                   "fs/mqueue/msgsize_max",
                                   "fs/mqueue/msg_default",
                                   "fs/mqueue/msgsize_default"};

std::string Value(std::string text) {
  while (!text.empty() && text.back() == '\n') text.pop_back();
  return text;
}

// The POSIX message queues of the calling thread's IPC namespace: an mqueue
// file system (the instance of that namespace) mounted over /tmp in a
// private mount namespace of the thread's own, which goes with the thread.
Result<std::vector<std::string>> MessageQueues() {
  if (unshare(CLONE_FS | CLONE_NEWNS) < 0) return ErrnoError("unshare(CLONE_FS | CLONE_NEWNS)");
  if (mount(nullptr, "/", nullptr, MS_REC | MS_PRIVATE, nullptr) < 0)
    return ErrnoError("making the reader's mounts private");
  if (mount("mqueue", "/tmp", "mqueue", 0, nullptr) < 0) return ErrnoError("mount(mqueue)");
  std::vector<std::string> out;
  if (DIR* d = opendir("/tmp")) {
    while (dirent* e = readdir(d))
      if (e->d_name[0] != '.') out.push_back(std::string("POSIX message queue /") + e->d_name);
    closedir(d);
  }
  return out;
}

}  // namespace

Result<IpcNamespace> ReadIpcNamespace(pid_t pid) {
  return InNamespace<IpcNamespace>(pid, "ipc", CLONE_NEWIPC, []() -> Result<IpcNamespace> {
    IpcNamespace out;
    static const std::pair<const char*, const char*> kSysv[] = {{"shm", "System V shared memory"},
                                                                {"sem", "System V semaphore set"},
                                                                {"msg", "System V message queue"}};
    for (const auto& [file, what] : kSysv) {
      std::string text = TRY(ReadFileToString(std::string("/proc/sysvipc/") + file));
      std::istringstream in(text);
      std::string line;
      std::getline(in, line);  // the header
      while (std::getline(in, line)) {
        std::istringstream f(line);
        std::string key, id;
        if (f >> key >> id) out.objects.push_back(std::string(what) + " key " + key + " id " + id);
      }
    }
    for (const char* name : kIpcSysctls)
      if (auto v = ReadFileToString(std::string("/proc/sys/") + name); v.ok())
        out.sysctls[name] = Value(*v);
    // Last: it leaves this thread in a mount namespace of its own.
    for (std::string& q : TRY(MessageQueues())) out.objects.push_back(std::move(q));
    return out;
  });
}

Status WriteIpcSysctls(pid_t pid, const std::map<std::string, std::string>& sysctls) {
  // Only an IPC namespace's own (an image names them: not kernel/core_pattern).
  for (const auto& [name, value] : sysctls)
    if (std::find(std::begin(kIpcSysctls), std::end(kIpcSysctls), name) == std::end(kIpcSysctls))
      return MakeError("'%s' is not a sysctl of an ipc namespace", name.c_str());
  return InNamespace<Ok>(pid, "ipc", CLONE_NEWIPC, [&]() -> Result<Ok> {
    for (const auto& [name, value] : sysctls) {
      std::string path = "/proc/sys/" + name;
      auto now = ReadFileToString(path);
      if (!now.ok()) return MakeError("this kernel has no %s", path.c_str());
      if (Value(*now) == value) continue;
      TRY(WriteKernelFile(path, value));
    }
    return Ok{};
  });
}

// "monotonic 100 0\nboottime -5 250\n": seconds, then nanoseconds in
// [0, 1e9).
Result<TimeOffsets> ReadTimeOffsets(pid_t pid) {
  std::string path = ProcTask(pid).Path("timens_offsets");
  std::istringstream in(TRY(ReadFileToString(path)));
  TimeOffsets out;
  std::string clock;
  int64_t sec, nsec;
  while (in >> clock >> sec >> nsec) {
    if (clock == "monotonic")
      out.monotonic_ns = sec * 1000000000 + nsec;
    else if (clock == "boottime")
      out.boottime_ns = sec * 1000000000 + nsec;
    else
      return MakeError("%s: unknown clock '%s'", path.c_str(), clock.c_str());
  }
  return out;
}

Status WriteTimeOffsets(pid_t pid, const TimeOffsets& offsets) {
  auto line = [](const char* clock, int64_t ns) {
    int64_t sec = ns / 1000000000, nsec = ns % 1000000000;
    if (nsec < 0) {
      sec -= 1;
      nsec += 1000000000;
    }
    return Format("%s %ld %ld\n", clock, sec, nsec);
  };
  return WriteKernelFile(
      ProcTask(pid).Path("timens_offsets"),
      line("monotonic", offsets.monotonic_ns) + line("boottime", offsets.boottime_ns));
}

}  // namespace crl
