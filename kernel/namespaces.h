// What a task's namespaces hold, read from outside it: criu-lite joins a
// namespace on a thread of its own for the moment of the read (setns works
// per thread for these kinds), never in its main thread.
#pragma once

#include <sys/types.h>

#include <condition_variable>
#include <cstdint>
#include <functional>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "base/result.h"
#include "base/scoped_fd.h"

namespace crl {

// Runs FN on a thread of criu-lite's that has joined PID's namespace of
// TYPE ("net", ...; FLAG its CLONE_NEW*) for the moment.
Status InNamespaceOf(pid_t pid, const char* type, int flag, const std::function<Status()>& fn);
// The same with the namespace NS_FD names (a mount namespace's thread has
// its own root and working directory: the namespace's root).
Status InNamespaceFd(int ns_fd, int flag, const std::function<Status()>& fn);
// The same with several: (fd, flag) each.
Status InNamespacesFd(const std::vector<std::pair<int, int>>& namespaces,
                      const std::function<Status()>& fn);

// The thread that called InNamespacesFd, waiting for FN: what only it may do
// (ptrace requests come from the thread that attached) FN hands it here.
class CallerThread {
 public:
  // Runs WORK on the calling thread, and waits for it.
  Status Run(const std::function<Status()>& work);

 private:
  friend Status InNamespacesFd(const std::vector<std::pair<int, int>>&,
                               const std::function<Status(CallerThread&)>&);
  std::mutex mu_;
  std::condition_variable cv_;
  const std::function<Status()>* work_ = nullptr;
  std::optional<Status> result_;
  bool finished_ = false;
};
// The same, FN given the caller's thread.
Status InNamespacesFd(const std::vector<std::pair<int, int>>& namespaces,
                      const std::function<Status(CallerThread&)>& fn);

// How many PID namespaces PID is in, as criu-lite sees it: its NSpid
// fields, criu-lite's own level and those above it included. criu-lite's
// own count is read once.
Result<size_t> PidNamespaceLevels(pid_t pid);
Result<size_t> OwnPidNamespaceLevels();

// The inode of PID's namespace of TYPE ("uts", "ipc"...): 0 where the kernel
// lacks that kind.
uint64_t NamespaceId(pid_t pid, const char* type);

struct UtsNames {
  std::string hostname, domainname;
};
// The host and domain names of PID's UTS namespace.
Result<UtsNames> ReadUtsNames(pid_t pid);

// /proc/PID/cgroup as PID sees it: read from inside its cgroup namespace,
// where paths are relative to the namespace's root.
Result<std::string> ReadCgroupsInNamespace(pid_t pid);

// A System V object, as it is made again: its ID and key, its owner and
// mode, and what it holds (a queue's messages, oldest first, read with
// MSG_COPY, which leaves them; a semaphore set's values; a shared memory
// segment's bytes). Its creator, times and last PIDs are not kept.
struct SysvObject {
  enum Kind { kMsg, kSem, kShm } kind = kMsg;
  int id = 0, key = 0;
  uint32_t mode = 0, uid = 0, gid = 0;
  uint64_t msg_qbytes = 0;
  std::vector<std::pair<long, std::string>> messages;  // type, text
  std::vector<uint16_t> sem_values;
  uint64_t shm_size = 0;
  std::string shm_data;
  bool shm_destroyed = false;  // IPC_RMID while attached (SHM_DEST)
  bool shm_locked = false;     // SHM_LOCK (SHM_LOCKED)
};

// A POSIX message queue: its name (without the leading '/'), owner, mode,
// sizes, and its messages in the order they are received (highest priority
// first, oldest first within a priority), which is the order they are sent
// again in.
struct PosixQueue {
  std::string name;
  uint32_t mode = 0, uid = 0, gid = 0;
  long max_messages = 0, message_size = 0;
  std::vector<std::pair<unsigned, std::string>> messages;  // priority, bytes
};

// An IPC namespace: its System V objects (from /proc/sysvipc), its POSIX
// message queues (from an mqueue file system mounted for the moment in a
// mount namespace of the reading thread's own), what it holds that is not
// carried, each as "KIND KEY/NAME (WHY)" (a queue some process waits to be
// notified by; shared memory some process has attached, or larger than
// SHM_LIMIT), and its sysctls (kernel/shmmax, fs/mqueue/msg_max...: path
// under /proc/sys -> value).
//
// A POSIX queue cannot be read without taking its messages (there is no
// MSG_COPY for it): with the tree frozen, each is emptied and at once
// filled again in the same order, all of it on the reading thread, before
// anything else is asked of the kernel.
struct IpcNamespace {
  std::vector<SysvObject> sysv;
  std::vector<PosixQueue> posix;
  std::vector<std::string> objects;
  std::map<std::string, std::string> sysctls;
};
Result<IpcNamespace> ReadIpcNamespace(pid_t pid, uint64_t shm_limit);
// Makes OBJECTS again in PID's IPC namespace with the same IDs (through
// kernel/{msg,sem,shm}_next_id), contents, owners and modes.
Status WriteSysvObjects(pid_t pid, const std::vector<SysvObject>& objects);
// Makes QUEUES again in PID's IPC namespace, with their messages; limits
// (fs/mqueue/msg_max, msgsize_max, queues_max) the namespace has now and a
// queue exceeds are raised for the moment and set back.
Status WritePosixQueues(pid_t pid, const std::vector<PosixQueue>& queues);
// Writes SYSCTLS into PID's IPC namespace (each only where it differs).
Status WriteIpcSysctls(pid_t pid, const std::map<std::string, std::string>& sysctls);

// A time namespace's offsets of CLOCK_MONOTONIC and CLOCK_BOOTTIME from the
// host's clocks, in nanoseconds.
struct TimeOffsets {
  int64_t monotonic_ns = 0, boottime_ns = 0;
};
// Those of the namespace PID's children are made in (time_for_children).
Result<TimeOffsets> ReadTimeOffsets(pid_t pid);
// Sets them, for a namespace no task has entered yet.
Status WriteTimeOffsets(pid_t pid, const TimeOffsets& offsets);

}  // namespace crl
