#include "kernel/namespaces.h"

#include <dirent.h>
#include <fcntl.h>
#include <mqueue.h>
#include <sched.h>
#include <sys/ipc.h>
#include <sys/mount.h>
#include <sys/msg.h>
#include <sys/sem.h>
#include <sys/shm.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/utsname.h>

#include <algorithm>
#include <cstring>
#include <functional>
#include <optional>
#include <sstream>
#include <thread>
#include <utility>

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
  TRY(InNamespaceFd(ns.get(), flag, [&]() -> Status {
        out = read();
        return Ok{};
      }).Context(Format("the %s namespace of PID %d", type, pid)));
  return out;
}

}  // namespace

Status InNamespaceOf(pid_t pid, const char* type, int flag, const std::function<Status()>& fn) {
  return InNamespace<Ok>(pid, type, flag, [&]() -> Result<Ok> {
    TRY(fn());
    return Ok{};
  });
}

Status InNamespaceFd(int ns_fd, int flag, const std::function<Status()>& fn) {
  return InNamespacesFd({{ns_fd, flag}}, fn);
}

Status CallerThread::Run(const std::function<Status()>& work) {
  std::unique_lock lock(mu_);
  work_ = &work;
  result_.reset();
  cv_.notify_all();
  cv_.wait(lock, [this] { return result_.has_value(); });
  Status out = std::move(*result_);
  result_.reset();
  return out;
}

Status InNamespacesFd(const std::vector<std::pair<int, int>>& namespaces,
                      const std::function<Status(CallerThread&)>& fn) {
  Status out = MakeError("no answer from the thread in the namespace");
  CallerThread caller;
  std::thread t([&] {
    out = [&]() -> Status {
      for (const auto& [fd, flag] : namespaces) {
        // A thread joins a mount namespace with a root and working
        // directory of its own: criu-lite's other threads keep theirs.
        if (flag == CLONE_NEWNS && unshare(CLONE_FS) < 0) return ErrnoError("unshare(CLONE_FS)");
        if (setns(fd, flag) < 0) return ErrnoError("setns(%d)", flag);
      }
      return fn(caller);
    }();
    std::lock_guard lock(caller.mu_);
    caller.finished_ = true;
    caller.cv_.notify_all();
  });
  // Meanwhile, what the thread hands this one.
  {
    std::unique_lock lock(caller.mu_);
    for (;;) {
      caller.cv_.wait(lock, [&] { return caller.work_ || caller.finished_; });
      if (!caller.work_) break;
      const std::function<Status()>* work = std::exchange(caller.work_, nullptr);
      lock.unlock();
      Status done = (*work)();
      lock.lock();
      caller.result_ = std::move(done);
      caller.cv_.notify_all();
    }
  }
  t.join();
  return out;
}

Status InNamespacesFd(const std::vector<std::pair<int, int>>& namespaces,
                      const std::function<Status()>& fn) {
  return InNamespacesFd(namespaces, [&fn](CallerThread&) { return fn(); });
}

Result<size_t> PidNamespaceLevels(pid_t pid) {
  ProcStatus st = TRY(ProcTask(pid).Status());
  if (st.nspid.empty()) return MakeError("PID %d: /proc/PID/status has no NSpid", pid);
  return st.nspid.size();
}

Result<size_t> OwnPidNamespaceLevels() {
  static const Result<size_t> own = PidNamespaceLevels(getpid());
  return own;
}

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

// QUEUE's messages, taken and at once sent again in the order they came
// (the tree is frozen: no task of it takes or sends one meanwhile). What
// was taken is sent again even if a later take fails.
Status TakeAndPutBack(mqd_t q, const std::string& name, long size,
                      std::vector<std::pair<unsigned, std::string>>* out) {
  std::vector<char> buf(static_cast<size_t>(size));
  Status taking = Ok{};
  for (;;) {
    unsigned prio = 0;
    ssize_t n = mq_receive(q, buf.data(), buf.size(), &prio);
    if (n < 0) {
      if (errno != EAGAIN) taking = ErrnoError("mq_receive(/%s)", name.c_str());
      break;
    }
    out->push_back({prio, std::string(buf.data(), static_cast<size_t>(n))});
  }
  for (const auto& [prio, bytes] : *out)
    if (mq_send(q, bytes.data(), bytes.size(), prio) < 0)
      return ErrnoError("mq_send(/%s): putting back a message taken to read it", name.c_str());
  return taking;
}

// The POSIX message queues of the calling thread's IPC namespace: an mqueue
// file system (the instance of that namespace) mounted over /tmp in a
// private mount namespace of the thread's own, which goes with the thread.
Status ReadPosixQueues(IpcNamespace* out) {
  if (unshare(CLONE_FS | CLONE_NEWNS) < 0) return ErrnoError("unshare(CLONE_FS | CLONE_NEWNS)");
  if (mount(nullptr, "/", nullptr, MS_REC | MS_PRIVATE, nullptr) < 0)
    return ErrnoError("making the reader's mounts private");
  if (mount("mqueue", "/tmp", "mqueue", 0, nullptr) < 0) return ErrnoError("mount(mqueue)");
  std::vector<std::string> names;
  if (DIR* d = opendir("/tmp")) {
    while (dirent* e = readdir(d))
      if (e->d_name[0] != '.') names.push_back(e->d_name);
    closedir(d);
  }
  for (const std::string& name : names) {
    std::string path = "/tmp/" + name;
    // "QSIZE:N NOTIFY:N SIGNO:N NOTIFY_PID:N": a registration (mq_notify)
    // belongs to a process and is not carried.
    std::string info = TRY(ReadFileToString(path));
    size_t at = info.find("NOTIFY_PID:");
    if (at != std::string::npos && strtol(info.c_str() + at + 11, nullptr, 10) != 0) {
      out->objects.push_back(
          Format("POSIX message queue /%s (a process waits to be notified by it: mq_notify)",
                 name.c_str()));
      continue;
    }
    mqd_t q = mq_open(("/" + name).c_str(), O_RDWR | O_NONBLOCK | O_CLOEXEC);
    if (q < 0) return ErrnoError("mq_open(/%s)", name.c_str());
    ScopedFd held(q);
    struct stat st {};
    if (fstat(q, &st) < 0) return ErrnoError("fstat(mqueue /%s)", name.c_str());
    mq_attr a{};
    PosixQueue p;
    p.name = name;
    p.mode = st.st_mode & 07777;
    p.uid = st.st_uid;
    p.gid = st.st_gid;
    if (mq_getattr(q, &a) < 0) return ErrnoError("mq_getattr(/%s)", name.c_str());
    TRY(TakeAndPutBack(q, name, a.mq_msgsize, &p.messages));
    if (p.messages.size() != static_cast<size_t>(a.mq_curmsgs))
      return MakeError("POSIX message queue /%s held %ld message(s) and %zu were read",
                       name.c_str(), a.mq_curmsgs, p.messages.size());
    p.max_messages = a.mq_maxmsg;
    p.message_size = a.mq_msgsize;
    out->posix.push_back(std::move(p));
  }
  return Ok{};
}

}  // namespace

namespace {

// The rows of /proc/sysvipc/FILE (the calling thread's IPC namespace), each
// as its fields; the header is left out.
Result<std::vector<std::vector<std::string>>> SysvRows(const std::string& file) {
  std::istringstream in(TRY(ReadFileToString("/proc/sysvipc/" + file)));
  std::vector<std::vector<std::string>> rows;
  std::string line;
  std::getline(in, line);
  while (std::getline(in, line)) {
    std::istringstream f(line);
    std::vector<std::string> row;
    for (std::string x; f >> x;) row.push_back(x);
    if (row.size() >= 2) rows.push_back(std::move(row));
  }
  return rows;
}

void SetPerm(const ipc_perm& p, SysvObject* o) {
  o->key = p.__key;
  o->mode = p.mode & 0777;
  o->uid = p.uid;
  o->gid = p.gid;
}

union SemArg {
  int val;
  semid_ds* buf;
  unsigned short* array;
};

Result<SysvObject> ReadMsgQueue(int id, size_t msgmax) {
  msqid_ds ds{};
  if (msgctl(id, IPC_STAT, &ds) < 0) return ErrnoError("msgctl(%d, IPC_STAT)", id);
  SysvObject o;
  o.kind = SysvObject::kMsg;
  o.id = id;
  SetPerm(ds.msg_perm, &o);
  o.msg_qbytes = ds.msg_qbytes;
  std::vector<char> buf(sizeof(long) + msgmax);
  for (msgqnum_t i = 0; i < ds.msg_qnum; i++) {
    ssize_t n = msgrcv(id, buf.data(), msgmax, static_cast<long>(i), IPC_NOWAIT | MSG_COPY);
    if (n < 0)
      return ErrnoError("reading message %lu of System V message queue %d (MSG_COPY)", i, id);
    long type;
    memcpy(&type, buf.data(), sizeof type);
    o.messages.push_back({type, std::string(buf.data() + sizeof(long), n)});
  }
  return o;
}

Result<SysvObject> ReadSemSet(int id) {
  semid_ds ds{};
  SemArg arg{};
  arg.buf = &ds;
  if (semctl(id, 0, IPC_STAT, arg) < 0) return ErrnoError("semctl(%d, IPC_STAT)", id);
  SysvObject o;
  o.kind = SysvObject::kSem;
  o.id = id;
  SetPerm(ds.sem_perm, &o);
  o.sem_values.resize(ds.sem_nsems);
  arg.array = o.sem_values.data();
  if (semctl(id, 0, GETALL, arg) < 0) return ErrnoError("semctl(%d, GETALL)", id);
  return o;
}

// A segment with its contents: one no process has attached up to LIMIT
// bytes (--ghost-limit), one the tree has attached (its memory) up to
// kMaxAttachedShm; else what it is, in NOT_CARRIED.
constexpr uint64_t kMaxAttachedShm = 1ull << 30;

Result<std::optional<SysvObject>> ReadShm(int id, uint64_t limit,
                                          std::vector<std::string>* not_carried) {
  shmid_ds ds{};
  if (shmctl(id, IPC_STAT, &ds) < 0) return ErrnoError("shmctl(%d, IPC_STAT)", id);
  std::string what = Format("System V shared memory key %d id %d", ds.shm_perm.__key, id);
  uint64_t max = ds.shm_nattch > 0 ? kMaxAttachedShm : limit;
  if (ds.shm_segsz > max) {
    not_carried->push_back(Format("%s (%lu bytes, over %s)", what.c_str(),
                                  static_cast<unsigned long>(ds.shm_segsz),
                                  ds.shm_nattch > 0 ? "1 GiB" : "the ghost limit"));
    return std::optional<SysvObject>();
  }
  SysvObject o;
  o.kind = SysvObject::kShm;
  o.id = id;
  SetPerm(ds.shm_perm, &o);
  o.shm_size = ds.shm_segsz;
  o.shm_destroyed = ds.shm_perm.mode & SHM_DEST;
  o.shm_locked = ds.shm_perm.mode & SHM_LOCKED;
  void* at = shmat(id, nullptr, SHM_RDONLY);
  if (at == reinterpret_cast<void*>(-1)) return ErrnoError("shmat(%d)", id);
  o.shm_data.assign(static_cast<const char*>(at), ds.shm_segsz);
  shmdt(at);
  return std::optional<SysvObject>(std::move(o));
}

Status ReadSysvObjects(uint64_t shm_limit, IpcNamespace* out) {
  size_t msgmax = 8192;
  if (auto v = ReadFileToString("/proc/sys/kernel/msgmax"); v.ok()) msgmax = std::stoul(*v);
  for (const auto& row : TRY(SysvRows("msg")))
    out->sysv.push_back(TRY(ReadMsgQueue(std::stoi(row[1]), msgmax)));
  for (const auto& row : TRY(SysvRows("sem")))
    out->sysv.push_back(TRY(ReadSemSet(std::stoi(row[1]))));
  for (const auto& row : TRY(SysvRows("shm")))
    if (auto o = TRY(ReadShm(std::stoi(row[1]), shm_limit, &out->objects)))
      out->sysv.push_back(std::move(*o));
  return Ok{};
}

// O made again in the calling thread's IPC namespace.
Status MakeSysvObject(const SysvObject& o) {
  static const char* const kNextId[] = {"kernel/msg_next_id", "kernel/sem_next_id",
                                        "kernel/shm_next_id"};
  static const char* const kWhat[] = {"message queue", "semaphore set", "shared memory"};
  const char* what = kWhat[o.kind];
  TRY(WriteKernelFile(std::string("/proc/sys/") + kNextId[o.kind], std::to_string(o.id))
          .Context("choosing the ID of a System V object (needs CONFIG_CHECKPOINT_RESTORE)"));
  key_t key = o.key ? o.key : IPC_PRIVATE;
  int flags = IPC_CREAT | IPC_EXCL | static_cast<int>(o.mode & 0777);
  int id = o.kind == SysvObject::kMsg   ? msgget(key, flags)
           : o.kind == SysvObject::kSem ? semget(key, static_cast<int>(o.sem_values.size()), flags)
                                        : shmget(key, o.shm_size, flags);
  if (id < 0) return ErrnoError("making System V %s %d (key %d)", what, o.id, o.key);
  if (id != o.id) return MakeError("System V %s %d was made with ID %d", what, o.id, id);
  ipc_perm* perm = nullptr;
  msqid_ds mds{};
  semid_ds sds{};
  shmid_ds hds{};
  SemArg arg{};
  if (o.kind == SysvObject::kMsg) {
    if (msgctl(id, IPC_STAT, &mds) < 0) return ErrnoError("msgctl(%d, IPC_STAT)", id);
    mds.msg_qbytes = o.msg_qbytes;
    if (msgctl(id, IPC_SET, &mds) < 0)
      return ErrnoError("msgctl(%d, IPC_SET, qbytes %lu)", id,
                        static_cast<unsigned long>(o.msg_qbytes));
    for (const auto& [type, text] : o.messages) {
      std::string buf(sizeof(long), '\0');
      memcpy(buf.data(), &type, sizeof type);
      buf += text;
      if (msgsnd(id, buf.data(), text.size(), IPC_NOWAIT) < 0)
        return ErrnoError("msgsnd(%d, %zu bytes)", id, text.size());
    }
    perm = &mds.msg_perm;
  } else if (o.kind == SysvObject::kSem) {
    std::vector<uint16_t> values = o.sem_values;
    arg.array = values.data();
    if (semctl(id, 0, SETALL, arg) < 0) return ErrnoError("semctl(%d, SETALL)", id);
    arg.buf = &sds;
    if (semctl(id, 0, IPC_STAT, arg) < 0) return ErrnoError("semctl(%d, IPC_STAT)", id);
    perm = &sds.sem_perm;
  } else {
    void* at = shmat(id, nullptr, 0);
    if (at == reinterpret_cast<void*>(-1)) return ErrnoError("shmat(%d)", id);
    // Pages of zeros are left as holes: a segment mostly unused stays so.
    size_t n = std::min<size_t>(o.shm_data.size(), o.shm_size);
    static const char kZeros[4096] = {};
    for (size_t off = 0; off < n; off += sizeof kZeros) {
      size_t len = std::min(sizeof kZeros, n - off);
      if (memcmp(o.shm_data.data() + off, kZeros, len) != 0)
        memcpy(static_cast<char*>(at) + off, o.shm_data.data() + off, len);
    }
    shmdt(at);
    if (o.shm_locked && shmctl(id, SHM_LOCK, nullptr) < 0)
      return ErrnoError("shmctl(%d, SHM_LOCK)", id);
    if (shmctl(id, IPC_STAT, &hds) < 0) return ErrnoError("shmctl(%d, IPC_STAT)", id);
    perm = &hds.shm_perm;
  }
  perm->uid = o.uid;
  perm->gid = o.gid;
  perm->mode = o.mode;
  int r = o.kind == SysvObject::kMsg   ? msgctl(id, IPC_SET, &mds)
          : o.kind == SysvObject::kSem ? semctl(id, 0, IPC_SET, arg)
                                       : shmctl(id, IPC_SET, &hds);
  if (r < 0) return ErrnoError("setting the owner and mode of System V %s %d", what, id);
  return Ok{};
}

}  // namespace

Result<IpcNamespace> ReadIpcNamespace(pid_t pid, uint64_t shm_limit) {
  return InNamespace<IpcNamespace>(pid, "ipc", CLONE_NEWIPC, [&]() -> Result<IpcNamespace> {
    IpcNamespace out;
    TRY(ReadSysvObjects(shm_limit, &out));
    for (const char* name : kIpcSysctls)
      if (auto v = ReadFileToString(std::string("/proc/sys/") + name); v.ok())
        out.sysctls[name] = Value(*v);
    // Last: it leaves this thread in a mount namespace of its own.
    TRY(ReadPosixQueues(&out));
    return out;
  });
}

Status WriteSysvObjects(pid_t pid, const std::vector<SysvObject>& objects) {
  return InNamespace<Ok>(pid, "ipc", CLONE_NEWIPC, [&]() -> Result<Ok> {
    for (const SysvObject& o : objects) TRY(MakeSysvObject(o));
    return Ok{};
  });
}

Status WritePosixQueues(pid_t pid, const std::vector<PosixQueue>& queues) {
  if (queues.empty()) return Ok{};
  return InNamespace<Ok>(pid, "ipc", CLONE_NEWIPC, [&]() -> Result<Ok> {
    // Without CAP_SYS_RESOURCE a new queue may be no larger than the
    // namespace's limits allow now, and they may have been lowered since
    // the queue was made: raised for the moment where they are short.
    long need[3] = {0, 0, static_cast<long>(queues.size())};
    for (const PosixQueue& q : queues) {
      need[0] = std::max(need[0], q.max_messages);
      need[1] = std::max(need[1], q.message_size);
    }
    const char* const kLimits[3] = {"/proc/sys/fs/mqueue/msg_max",
                                    "/proc/sys/fs/mqueue/msgsize_max",
                                    "/proc/sys/fs/mqueue/queues_max"};
    std::vector<std::pair<std::string, std::string>> set_back;
    Status made = [&]() -> Status {
      for (int i = 0; i < 3; i++) {
        std::string now = Value(TRY(ReadFileToString(kLimits[i])));
        if (std::stol(now) >= need[i]) continue;
        TRY(WriteKernelFile(kLimits[i], std::to_string(need[i])));
        set_back.push_back({kLimits[i], now});
      }
      for (const PosixQueue& q : queues) {
        mq_attr a{};
        a.mq_maxmsg = q.max_messages;
        a.mq_msgsize = q.message_size;
        std::string name = "/" + q.name;
        mqd_t fd = mq_open(name.c_str(), O_RDWR | O_CREAT | O_EXCL | O_NONBLOCK | O_CLOEXEC,
                           q.mode & 0777, &a);
        if (fd < 0)
          return ErrnoError("mq_open(%s, %ld messages of %ld bytes)", name.c_str(), q.max_messages,
                            q.message_size);
        ScopedFd held(fd);
        // The mode as it was, not as criu-lite's umask leaves it.
        if (fchmod(fd, q.mode) < 0 || fchown(fd, q.uid, q.gid) < 0)
          return ErrnoError("setting the owner and mode of %s", name.c_str());
        for (const auto& [prio, bytes] : q.messages)
          if (mq_send(fd, bytes.data(), bytes.size(), prio) < 0)
            return ErrnoError("mq_send(%s, %zu bytes)", name.c_str(), bytes.size());
      }
      return Ok{};
    }();
    for (const auto& [path, value] : set_back) {
      Status s = WriteKernelFile(path, value);
      if (made.ok() && !s.ok()) made = s;
    }
    TRY(made);
    return Ok{};
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
