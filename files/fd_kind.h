// Kinds of file descriptor. Each kind is one file in files/ that says how
// dump recognises and records an fd of that kind, how the tree-wide pass
// settles it (its other end inside the tree or not, data in flight), what
// restore checks before any task exists, and how restore opens it again; one
// line of files/registry.cc lists it, and one arm of the image's `Fd.kind`
// oneof holds what it records. What every fd has (number, flags, offset,
// open file description, signal owner) is handled once, around the kinds:
// dump/fd_dump.cc at dump, restore/file_table.cc at restore.
#pragma once

#include <sys/stat.h>
#include <sys/types.h>

#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "base/result.h"
#include "base/scoped_fd.h"
#include "images/criu_lite.pb.h"
#include "kernel/as_task.h"

namespace crl {

// Dump: the tree's TCP connections (--tcp-established), each put in
// repair mode (TCP_REPAIR: the socket sends nothing, and closes without a
// reset or a FIN) under the network lock. When the tree is killed they stay
// so, and the lock stays for restore to lift; otherwise (a failed dump,
// -R) each leaves repair mode and the lock is lifted before the tree runs
// again (files/inet_socket.cc).
class NetLock;

class TcpRepairs {
 public:
  TcpRepairs(bool established, bool close, std::string lock_table);
  ~TcpRepairs();
  TcpRepairs(const TcpRepairs&) = delete;
  TcpRepairs& operator=(const TcpRepairs&) = delete;
  bool established() const { return established_; }  // --tcp-established
  bool close() const { return close_; }              // --tcp-close
  // SOCK, criu-lite's copy of fd FD of task PID, a connection from LOCAL to
  // PEER: to be locked and put in repair mode by Lock, with all the others
  // (one nftables transaction), until the end of the dump.
  void Defer(pid_t pid, int fd, ScopedFd sock, const std::string& local, const std::string& peer);
  // Locks every connection deferred so far, then puts each in repair mode.
  Status Lock();
  // Criu-lite's copy of fd FD of task PID, locked and in repair mode (-1:
  // none).
  int Taken(pid_t pid, int fd) const;
  // The tree is killed: the connections die silently, the lock stays.
  // Returns the lock's table ("" if none), for the inventory.
  std::string Keep();
  // Repair mode off, lock lifted (done once).
  void LetGo();
  // The lock's table if a connection was locked, else "".
  std::string lock_table() const;
  // Time spent making the lock (the tree frozen meanwhile).
  uint64_t lock_usec() const { return lock_usec_; }

 private:
  Result<ScopedFd> ConnectionsNamespace() const;
  bool established_, close_;
  std::string lock_table_;
  std::unique_ptr<NetLock> lock_;
  struct Conn {
    ScopedFd sock;
    std::string local, peer;
    bool repairing = false;  // locked, in repair mode
  };
  std::map<std::pair<pid_t, int>, Conn> conns_;  // by task and fd
  bool kept_ = false;
  uint64_t lock_usec_ = 0;
};

// What dump sees of one fd of a task before any kind claims it.
struct FdSeen {
  pid_t pid = -1;
  int fd = -1;
  std::string link;    // /proc/PID/fd/FD's target
  std::string fdinfo;  // /proc/PID/fdinfo/FD
  struct stat st {};   // of the file the fd refers to
  // "pipe", "socket", "anon_inode:eventfd"...: an fd that is no file.
  std::optional<std::string> anon;
  // A socket's protocol as sockfs names it ("TCP", "UDPv6", "UNIX-STREAM",
  // "NETLINK"...: its system.sockprotoname attribute); empty for others.
  std::string sock_proto;
  bool shell_job = false;     // --shell-job
  TcpRepairs* tcp = nullptr;  // the dump's TCP connections
};

// One fd of the tree, in the tree-wide pass.
struct FdRef {
  pid_t pid;
  img::Fd* fd;
};

// The tree-wide pass's view, given to each kind's Resolve.
class TreeFds {
 public:
  TreeFds(bool shell_job, uint64_t ghost_limit, img::Shared* shared, std::set<pid_t> tasks)
      : shell_job_(shell_job),
        ghost_limit_(ghost_limit),
        shared_(shared),
        tasks_(std::move(tasks)) {}
  img::Shared* shared() { return shared_; }
  bool shell_job() const { return shell_job_; }
  // --orphan-pts-master: a terminal whose master is outside the tree is
  // recorded as such (files/pty.cc), not refused.
  bool orphan_pts_master() const { return orphan_pts_master_; }
  void set_orphan_pts_master(bool on) { orphan_pts_master_ = on; }
  // --ghost-limit: the most bytes of data a deleted file may hold.
  uint64_t ghost_limit() const { return ghost_limit_; }
  // The tree's root.
  pid_t root() const { return root_; }
  void set_root(pid_t root) { root_ = root; }
  // Whether TID is a thread of the tree.
  bool HasTask(pid_t tid) const { return tasks_.count(tid) != 0; }
  const std::set<pid_t>& tasks() const { return tasks_; }
  // Every fd of the tree, of every kind.
  const std::vector<FdRef>& all() const { return all_; }
  void set_all(std::vector<FdRef> all) { all_ = std::move(all); }
  // An fd whose object is outside the tree (a terminal, a pipe's other
  // end): with --shell-job, stdin/out/err become restore's own (the
  // `inherited` arm); otherwise refused, saying WHAT it is.
  Status External(FdRef ref, const char* what) const;
  // The dump's TCP connections (--tcp-established), or null.
  TcpRepairs* tcp() const { return tcp_; }
  void set_tcp(TcpRepairs* tcp) { tcp_ = tcp; }
  // --ext-unix-sk: whether INO, a unix socket connected outside the tree,
  // is recorded as external, for restore to take from --inherit-fd.
  bool ExternalUnix(uint64_t ino) const { return ext_unix_all_ || ext_unix_.count(ino); }
  void set_ext_unix_sk(bool all, std::set<uint64_t> inos) {
    ext_unix_all_ = all;
    ext_unix_ = std::move(inos);
  }
  // True the first time it is asked for INO under PURPOSE: one kernel
  // object shared by several fds is saved once.
  bool First(const char* purpose, uint64_t ino) { return done_.insert({purpose, ino}).second; }

 private:
  bool shell_job_;
  bool orphan_pts_master_ = false;
  uint64_t ghost_limit_;
  img::Shared* shared_;
  std::set<std::pair<std::string, uint64_t>> done_;
  std::set<pid_t> tasks_;
  std::vector<FdRef> all_;
  bool ext_unix_all_ = false;
  std::set<uint64_t> ext_unix_;
  TcpRepairs* tcp_ = nullptr;
  pid_t root_ = -1;
};

class FdKind;
class RemoteSyscalls;
class RemoteScratch;

// Restore's open file descriptions in the making, given to each kind's Open.
class OpenFiles {
 public:
  explicit OpenFiles(const img::Shared& shared);
  const img::Shared& shared() const { return shared_; }
  // What the tree's pipes and sockets held, by the reading end's inode.
  const img::QueuedData* Queued(uint64_t ino) const;
  // criu-lite's own copy of memfd INO (made from shared.img), or -1.
  int Memfd(uint64_t ino) const;
  void AddMemfd(uint64_t ino, ScopedFd fd);
  // A kernel object one fd of a kind made and the others of the same object
  // use (a pipe's two ends, a socket pair's), by kind and inode; empty until
  // made. The fds in it stay open as long as this table.
  std::vector<int>& Object(const FdKind* kind, uint64_t ino) { return objects_[{kind, ino}]; }
  // Keeps FD open as long as this table.
  int Hold(ScopedFd fd);
  // FD, a TCP connection made in repair mode (open as long as this table),
  // leaves it at FinishRepairs.
  void Repairing(int fd) { repairing_.push_back(fd); }
  // Every connection out of repair mode (once the network lock is lifted).
  Status FinishRepairs();
  // The task of the tree whose PID was IMAGE at dump is LIVE here (they
  // differ in a PID namespace restore made).
  void TaskMade(pid_t image, pid_t live) { live_pids_[image] = live; }
  // The PID here of what was IMAGE at dump: a task of the tree made by now,
  // or IMAGE itself.
  pid_t LivePid(pid_t image) const {
    auto it = live_pids_.find(image);
    return it == live_pids_.end() ? image : it->second;
  }
  // Where the files are opened once the root exists (inside namespaces it
  // made), its PID is taken: what it made as a unix socket's maker of
  // record is made by it again; in the PID namespace it is the init of, a
  // task's PID there is free until that task is made, and what the task
  // made is made by a short-lived process of that PID there. A stamper
  // runs a call as task IMAGE (its PID at dump) with the credentials
  // given.
  using Stamper = std::function<Result<std::array<int, 2>>(const TaskCreds&, const StampingCall&)>;
  void SetStampers(std::map<pid_t, Stamper> by_image) { stampers_ = std::move(by_image); }
  // Pty masters made with the mounts, by index: a bind of a slave (runc's
  // /dev/console) needs the slave to exist (restore/mount_restore.cc).
  void SetPremadePtys(std::map<int, ScopedFd> ptys) { premade_ptys_ = std::move(ptys); }
  // Pty INDEX's master made with the mounts, given up to the caller; or an
  // invalid fd.
  ScopedFd TakePremadePty(int index) {
    auto it = premade_ptys_.find(index);
    if (it == premade_ptys_.end()) return ScopedFd();
    ScopedFd fd = std::move(it->second);
    premade_ptys_.erase(it);
    return fd;
  }
  // Where the new master of a terminal whose master was outside the tree
  // goes (RestoreOptions::orphan_pts_master); null: nowhere.
  using MasterSink = std::function<Status(int master)>;
  void SetOrphanMasterSink(MasterSink sink) { orphan_master_sink_ = std::move(sink); }
  const MasterSink& orphan_master_sink() const { return orphan_master_sink_; }
  // The stamper for task IMAGE, or nullptr.
  const Stamper* StamperFor(pid_t image) const {
    auto it = stampers_.find(image);
    return it == stampers_.end() ? nullptr : &it->second;
  }

 private:
  const img::Shared& shared_;
  std::map<uint64_t, const img::QueuedData*> queues_;
  std::map<uint64_t, int> memfds_;
  std::map<std::pair<const FdKind*, uint64_t>, std::vector<int>> objects_;
  std::vector<ScopedFd> held_;
  std::vector<int> repairing_;
  std::map<pid_t, pid_t> live_pids_;
  std::map<pid_t, Stamper> stampers_;
  std::map<int, ScopedFd> premade_ptys_;
  MasterSink orphan_master_sink_;
};

class FdKind {
 public:
  virtual ~FdKind() = default;
  // The image's arm, and a name for messages ("pipe", "unix socket").
  virtual img::Fd::KindCase arm() const = 0;
  virtual const char* name() const = 0;

  // Dump: whether this kind takes the fd (kinds are asked in registry
  // order; the first that claims it records it).
  virtual bool Claims(const FdSeen& seen) const = 0;
  // Dump: records the kind's arm (and refuses what it cannot carry).
  virtual Status Collect(const FdSeen& seen, img::Fd* out) const = 0;
  // Dump, once every task's fds are recorded: settles the tree's fds of
  // this kind (MINE) and saves what is in flight in them.
  virtual Status Resolve(const std::vector<FdRef>& mine, TreeFds& tree) const;

  // Restore: true for a kind opened only once every task of the tree exists
  // (a pidfd names a task), and given to the tasks then.
  virtual bool AfterTree() const { return false; }
  // Restore: descriptions are opened in this order (lowest first; the same
  // order keeps the images'): a kind whose objects are made through others
  // of its kind (a unix connection through its listener) opens those first.
  virtual int OpenOrder(const img::Fd&) const { return 0; }
  // Restore, before any task exists: what cannot be opened here is refused.
  virtual Status Check(const img::Fd& f, bool shell_job) const;
  // Restore: a new open file description in criu-lite for F (restore sets
  // its flags and hands it to the tasks).
  virtual Result<ScopedFd> Open(const img::Fd& f, OpenFiles& files) const = 0;
  // Restore, once the tree exists and the first task given F's description
  // has all its fds (TASK_FDS; RS and SCRATCH run syscalls in it): what only that task can
  // do, once per description. An epoll's registrations name fd numbers of
  // the task that made them.
  // LOCAL_FD_OF(PID, FD): criu-lite's description for fd FD of task PID of
  // the tree (-1 if there is none), to lend the task.
  virtual Status Settle(const img::Fd& f, const img::Fds& task_fds, RemoteSyscalls& rs,
                        RemoteScratch& scratch,
                        const std::function<int(pid_t, int)>& local_fd_of) const;
};

// Every kind, in the order dump asks them.
const std::vector<const FdKind*>& FdKinds();
// The kind of an image record, or an error naming its unknown arm.
Result<const FdKind*> KindOf(const img::Fd& f);

// The session leader of the session whose controlling terminal pty P was
// makes it its own again, and sets its foreground group, FG_PGRP as the
// leader names it (0: none) (files/pty.cc).
Status TakeControllingTerminal(RemoteSyscalls& rs, RemoteScratch& scratch, const img::PtyFd& p,
                               pid_t fg_pgrp);
// The master of a new pty numbered INDEX, from the ptmx at PTMX (opened
// until the kernel hands out INDEX; the others opened meanwhile closed
// again), unlocked (files/pty.cc).
Result<ScopedFd> OpenPtyNumbered(const std::string& ptmx, int index);

// Saves the bytes of a deleted file once (ACCESS_PATH opens it:
// /proc/PID/fd/N or /proc/PID/map_files/RANGE), up to LIMIT bytes of data
// (files/ghost.cc).
Status SaveGhost(const std::string& access_path, const img::FileId& id, uint64_t limit,
                 img::Shared* shared);
// Restore: something deleted made again for the moment under NAME (or
// beside it, if the name is taken now; a removed directory made for the
// moment too): MAKE(AT) creates it at AT and returns an fd (-1 and errno
// EEXIST if AT is taken); then the name and the directories made are
// removed, and the fd stays (files/ghost.cc).
Result<ScopedFd> MakeUnlinked(const std::string& name,
                              const std::function<int(const std::string& at)>& make);
// Restore: criu-lite's fd of the deleted file ID made again (once, read and
// write), under the name in LINK ("PATH (deleted)").
Result<int> GhostFile(OpenFiles& files, const img::FileId& id, const std::string& link);

// Saves a memfd's contents once (ACCESS_PATH opens it: /proc/PID/fd/N or
// /proc/PID/map_files/RANGE; LINK is what /proc shows of it).
Status SaveMemfd(const std::string& access_path, const std::string& link, uint64_t ino,
                 img::Shared* shared);

}  // namespace crl
