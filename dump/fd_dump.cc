#include "dump/fd_dump.h"

#include <fcntl.h>
#include <linux/sockios.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <algorithm>
#include <climits>
#include <cstring>
#include <map>
#include <optional>
#include <set>

#include "base/log.h"
#include "base/scoped_fd.h"
#include "files/fd_kind.h"
#include "kernel/mounts.h"
#include "kernel/namespaces.h"
#include "kernel/proc_parsers.h"
#include "kernel/proc_task.h"
#include "kernel/task_fd.h"
#include "kernel/uapi.h"

namespace crl {
namespace {

constexpr int kKcmpFile = 0;  // KCMP_FILE

// What /proc shows of fd FD of PID, before any kind claims it.
Result<FdSeen> See(pid_t pid, int fd, bool shell_job) {
  FdSeen s;
  s.pid = pid;
  s.fd = fd;
  s.shell_job = shell_job;
  std::string link_path = ProcTask(pid).Path(Format("fd/%d", fd));
  char buf[4096];
  ssize_t n = readlink(link_path.c_str(), buf, sizeof buf - 1);
  if (n < 0) return ErrnoError("readlink(%s)", link_path.c_str());
  s.link.assign(buf, n);
  s.fdinfo = TRY(ReadFileToString(ProcTask(pid).Path(Format("fdinfo/%d", fd))));
  if (stat(link_path.c_str(), &s.st) < 0) return ErrnoError("stat(%s)", link_path.c_str());
  s.anon = FdLinkKind(s.link);
  if (s.anon == "socket") {
    ssize_t len = getxattr(link_path.c_str(), "system.sockprotoname", buf, sizeof buf - 1);
    if (len > 0) s.sock_proto.assign(buf, strnlen(buf, len));
  }
  return s;
}

// Kinds of fd refused on purpose, with the reason the message gives.
const std::map<std::string, const char*> kRefusedAnon = {
    {"anon_inode:io_uring",
     "an io_uring (io_uring_setup): its requests in flight, registered files and buffers "
     "have no interface to be read back (CRIU refuses it too)"},
    {"anon_inode:userfaultfd",
     "a userfaultfd of the task's own: its registrations are not carried"},
    {"anon_inode:perf_event", "a perf event: not carried"},
    {"anon_inode:bpf-map", "a BPF map: not carried"},
    {"anon_inode:bpf-prog", "a BPF program: not carried"},
};

// An fd no kind claims, named.
Error Unclaimed(const FdSeen& s) {
  if (s.anon) {
    auto known = kRefusedAnon.find(*s.anon);
    if (known != kRefusedAnon.end())
      return MakeError("PID %d fd %d is %s", s.pid, s.fd, known->second);
    return MakeError("PID %d fd %d is a %s (%s): not supported yet", s.pid, s.fd, s.anon->c_str(),
                     s.link.c_str());
  }
  if (s.link.size() > 10 && s.link.compare(s.link.size() - 10, 10, " (deleted)") == 0)
    return MakeError("PID %d fd %d is %s deleted under this name (%s)%s: not supported", s.pid,
                     s.fd, S_ISREG(s.st.st_mode) ? "a file" : "a special file", s.link.c_str(),
                     s.st.st_nlink
                         ? " that still has other names, which restore could not tell from a copy"
                         : "");
  return MakeError("PID %d fd %d (%s) is a %s: not supported yet", s.pid, s.fd, s.link.c_str(),
                   S_ISSOCK(s.st.st_mode) ? "socket" : "special file");
}

// The locks fdinfo lists as taken through the fd ("lock:\t1: POSIX  ADVISORY
// WRITE 1234 fe:00:567 0 EOF"), with --file-locks; refused without it, and
// leases always.
Status CollectLocks(const FdSeen& s, bool file_locks, img::Fd* out) {
  for (size_t l = s.fdinfo.find("lock:\t"); l != std::string::npos;
       l = s.fdinfo.find("lock:\t", l + 1)) {
    std::string line = s.fdinfo.substr(l + 6, s.fdinfo.find('\n', l) - l - 6);
    char type[16], mode[16], rw[16], end[32];
    int owner;
    unsigned long long start;
    if (sscanf(line.c_str(), "%*d: %15s %15s %15s %d %*s %llu %31s", type, mode, rw, &owner, &start,
               end) != 6)
      return MakeError("PID %d fd %d: a lock line that does not parse: %s", s.pid, s.fd,
                       line.c_str());
    std::string t = type;
    if (t != "FLOCK" && t != "POSIX" && t != "OFDLCK")
      return MakeError("PID %d holds a %s through fd %d (%s: %s): not carried", s.pid, type, s.fd,
                       s.link.c_str(), line.c_str());
    if (!file_locks)
      return MakeError(
          "PID %d holds a file lock through fd %d (%s: %s): dump with --file-locks to carry "
          "it (no other process may take it meanwhile)",
          s.pid, s.fd, s.link.c_str(), line.c_str());
    img::FileLock* lock = out->add_locks();
    lock->set_kind(t == "FLOCK"   ? img::FileLock::FLOCK
                   : t == "POSIX" ? img::FileLock::POSIX
                                  : img::FileLock::OFD);
    lock->set_write(std::string(rw) == "WRITE");
    lock->set_start(start);
    lock->set_pid(owner);
    if (std::string(end) != "EOF") lock->set_len(std::stoull(end) - start + 1);
  }
  return Ok{};
}

}  // namespace

// The --external keys fd S could be named by: tty[RDEV:DEV] for a
// character device, file[MNT_ID:INODE] for anything else (CRIU's).
std::vector<std::string> ExternalKeys(const FdSeen& s, const FdInfo& info) {
  std::vector<std::string> keys;
  if (S_ISCHR(s.st.st_mode))
    keys.push_back(Format("tty[%lx:%lx]", (unsigned long)s.st.st_rdev, (unsigned long)s.st.st_dev));
  keys.push_back(Format("file[%lx:%lx]", (unsigned long)info.mnt_id, (unsigned long)s.st.st_ino));
  return keys;
}

namespace {

// The mounts of PID's mount namespace (their IDs as fdinfo gives them),
// where it is not criu-lite's: a file reopened by its path must be on one
// of them. None (nullopt) in criu-lite's own.
Result<std::optional<std::set<uint64_t>>> OwnNamespaceMounts(pid_t pid) {
  using Out = std::optional<std::set<uint64_t>>;
  if (NamespaceId(pid, "mnt") == NamespaceId(getpid(), "mnt")) return Out();
  std::set<uint64_t> ids;
  for (const MountEntry& m : TRY(ParseMountinfo(TRY(ProcTask(pid).Read("mountinfo")))))
    ids.insert(m.id);
  return Out(std::move(ids));
}

// A namespace unshare made has copies of the mounts of the one it was made
// from: a file opened before, on the original, is reached by its path in
// the copy. Adds to IDS those originals, up PID's ancestors' namespaces to
// criu-lite's (asked only when an fd's mount is none of PID's own).
Status AddAncestorsCopiedMounts(pid_t pid, std::set<uint64_t>* ids) {
  std::vector<MountEntry> mounts = TRY(ParseMountinfo(TRY(ProcTask(pid).Read("mountinfo"))));
  uint64_t last = NamespaceId(pid, "mnt"), mine = NamespaceId(getpid(), "mnt");
  for (pid_t up = pid; up > 1;) {
    auto st = ProcTask(up).Stat();
    if (!st.ok()) break;  // an ancestor gone: what it had counts for nothing
    up = st->ppid;
    uint64_t ns = NamespaceId(up, "mnt");
    if (up <= 0 || ns == last) continue;
    last = ns;
    auto text = ProcTask(up).Read("mountinfo");
    auto theirs = text.ok() ? ParseMountinfo(*text) : Result<std::vector<MountEntry>>(text.error());
    if (!theirs.ok()) break;
    for (const MountEntry& e : *theirs)
      for (const MountEntry& m : mounts)
        if (SameMountAt(m, e)) ids->insert(e.id);
    if (ns == mine) break;
  }
  return Ok{};
}

}  // namespace

Status DumpFds(pid_t pid, const DumpOptions& opts, TcpRepairs* tcp, img::Fds* fds) {
  bool shell_job = opts.shell_job, file_locks = opts.file_locks;
  std::optional<std::set<uint64_t>> ns_mounts = TRY(OwnNamespaceMounts(pid));
  bool ancestors_asked = false;
  for (int fd : TRY(ProcTask(pid).Fds())) {
    FdSeen s = TRY(See(pid, fd, shell_job));
    s.tcp = tcp;
    FdInfo info = TRY(ParseFdInfo(s.fdinfo).Context(ProcTask(pid).Path(Format("fdinfo/%d", fd))));
    std::string external;
    for (const std::string& key : ExternalKeys(s, info))
      if (opts.externals.count(key)) external = key;

    const FdKind* kind = nullptr;
    for (const FdKind* k : FdKinds())
      if (external.empty() && k->Claims(s)) {
        kind = k;
        break;
      }
    if (!kind && external.empty()) return Unclaimed(s);
    bool by_path = kind && (kind->arm() == img::Fd::kRegular ||
                            kind->arm() == img::Fd::kDirectory || kind->arm() == img::Fd::kChardev);
    if (by_path && ns_mounts && !ns_mounts->count(info.mnt_id) && !ancestors_asked) {
      TRY(AddAncestorsCopiedMounts(pid, &*ns_mounts));
      ancestors_asked = true;
    }
    if (by_path && ns_mounts && !ns_mounts->count(info.mnt_id))
      return MakeError(
          "fd %d of PID %d is %s, on a mount outside its mount namespace (a file its launcher "
          "gave it): restore could not reach it by its path; name it with --external %s and "
          "give it back at restore with --inherit-fd fd[N]:%s",
          fd, pid, s.link.c_str(), ExternalKeys(s, info).back().c_str(),
          ExternalKeys(s, info).back().c_str());

    img::Fd out;
    out.set_fd(fd);
    out.set_cloexec(info.flags & O_CLOEXEC);
    out.set_flags(info.flags & ~O_CLOEXEC);
    out.set_pos(info.pos);
    out.set_path(s.link);
    out.set_ino(s.st.st_ino);
    img::FileId* id = out.mutable_file();
    id->set_dev(s.st.st_dev);
    id->set_ino(s.st.st_ino);
    id->set_size(s.st.st_size);
    id->set_mode(s.st.st_mode);
    TRY(CollectLocks(s, file_locks, &out));
    if (!external.empty())
      out.mutable_external()->set_key(external);  // restore takes it from --inherit-fd
    else
      TRY(kind->Collect(s, &out));
    *fds->add_fds() = std::move(out);
  }
  return Ok{};
}

Status ResolveTreeFds(const std::vector<ProcessFds>& procs, std::set<pid_t> tasks,
                      const DumpOptions& opts, TcpRepairs* tcp, img::Shared* shared) {
  // Each kind settles its fds over the whole tree (its other ends inside or
  // not) and saves what is in flight in them.
  TreeFds tree(opts.shell_job, opts.ghost_limit, shared, std::move(tasks));
  tree.set_ext_unix_sk(opts.ext_unix_sk_all, opts.ext_unix_sk);
  tree.set_orphan_pts_master(opts.orphan_pts_master);
  tree.set_tcp(tcp);
  if (!procs.empty()) tree.set_root(procs.front().pid);  // parents come first
  std::map<img::Fd::KindCase, std::vector<FdRef>> by_arm;
  std::vector<FdRef> all;
  for (const auto& [pid, fds] : procs)
    for (img::Fd& f : *fds->mutable_fds()) {
      by_arm[f.kind_case()].push_back({pid, &f});
      all.push_back({pid, &f});
    }
  tree.set_all(std::move(all));
  for (const FdKind* k : FdKinds()) TRY(k->Resolve(by_arm[k->arm()], tree));

  // Open file descriptions: the fds of each inode are sorted by kcmp, which
  // orders the kernel's file objects, so that fds of one description end up
  // side by side: O(n log n) kcmp calls, where comparing each fd with every
  // earlier one took 60 s for 10,000 fds on one inode.
  using Ref = FdRef;
  std::map<std::pair<uint64_t, uint64_t>, std::vector<Ref>> by_inode;  // (dev, ino)
  for (const auto& [pid, fds] : procs)
    for (img::Fd& f : *fds->mutable_fds())
      by_inode[{f.file().dev(), f.file().ino()}].push_back({pid, &f});
  Status kcmp_error = Ok{};
  auto kcmp = [&](const Ref& a, const Ref& b) -> long {
    long r = syscall(SYS_kcmp, a.pid, b.pid, kKcmpFile, a.fd->fd(), b.fd->fd());
    if (r < 0 && kcmp_error.ok())
      kcmp_error = ErrnoError("kcmp(%d fd %d, %d fd %d)", a.pid, a.fd->fd(), b.pid, b.fd->fd());
    return r;
  };
  uint32_t next_id = 1;
  for (auto& [inode, refs] : by_inode) {
    // kcmp: 0 the same, 1 less, 2 greater (3: no order: not with this kernel).
    std::sort(refs.begin(), refs.end(),
              [&](const Ref& a, const Ref& b) { return kcmp(a, b) == 1; });
    TRY(kcmp_error);
    for (size_t k = 0; k < refs.size(); k++) {
      long same = k ? kcmp(refs[k - 1], refs[k]) : 1;
      TRY(kcmp_error);
      if (same == 3) return MakeError("kcmp cannot order open files on this kernel");
      refs[k].fd->set_file_id(same == 0 ? refs[k - 1].fd->file_id() : next_id++);
    }
  }

  // Who owns each description's signals: asked of criu-lite's own copy of
  // it. An owner outside the tree could not be named again. And a socket's
  // network namespace, where it is not criu-lite's: restore makes it there,
  // which must be one of the tree's.
  std::set<pid_t> in_tree;
  std::set<uint64_t> tree_nets;
  uint64_t own_net = NamespaceId(getpid(), "net");
  for (const auto& [pid, fds] : procs) {
    in_tree.insert(pid);
    tree_nets.insert(NamespaceId(pid, "net"));
  }
  std::map<uint32_t, std::pair<f_owner_ex, int>> owners;  // by file_id
  std::map<uint32_t, uint64_t> socket_nets;               // by file_id
  for (const auto& [pid, fds] : procs) {
    for (img::Fd& f : *fds->mutable_fds()) {
      if (f.has_inherited()) continue;
      if (!owners.count(f.file_id())) {
        ScopedFd mine = TRY(TakeFd(pid, f.fd()));
        if (S_ISSOCK(f.file().mode())) {
          ScopedFd ns(ioctl(mine.get(), SIOCGSKNS));
          struct stat st {};
          if (!ns.valid() || fstat(ns.get(), &st) < 0)
            return ErrnoError("the network namespace of PID %d fd %d (SIOCGSKNS)", pid, f.fd());
          if (st.st_ino != own_net && !tree_nets.count(st.st_ino))
            return MakeError(
                "PID %d fd %d is a socket of a network namespace no task of the tree is in: not "
                "carried",
                pid, f.fd());
          socket_nets[f.file_id()] = st.st_ino == own_net ? 0 : st.st_ino;
        }
        f_owner_ex owner{};
        if (fcntl(mine.get(), F_GETOWN_EX, &owner) < 0)
          return ErrnoError("fcntl(PID %d fd %d, F_GETOWN_EX)", pid, f.fd());
        int sig = fcntl(mine.get(), F_GETSIG);
        if (sig < 0) return ErrnoError("fcntl(PID %d fd %d, F_GETSIG)", pid, f.fd());
        owners[f.file_id()] = {owner, sig};
      }
      auto [owner, sig] = owners[f.file_id()];
      pid_t owner_process = owner.pid;  // a thread's process, a group's leader
      if (owner.type == F_OWNER_TID) {
        auto st = ProcTask(owner.pid).Status();
        owner_process = st.ok() ? st->tgid : -1;
      }
      if (owner.pid && !in_tree.count(owner_process))
        return MakeError(
            "PID %d fd %d (%s) sends its signals to %d, outside the tree: not "
            "carried",
            pid, f.fd(), f.path().c_str(), owner.pid);
      if (socket_nets.count(f.file_id())) f.set_net_ns(socket_nets[f.file_id()]);
      f.set_owner_type(owner.type);
      f.set_owner_pid(owner.pid);
      f.set_owner_signal(sig);
    }
  }

  return Ok{};
}

}  // namespace crl
