// The tree's open file descriptions, created once in criu-lite before any
// task exists: files reopened at their offsets, pipes and socket pairs with
// the data they held, eventfds with their counts. Each restored task then
// takes the ones it had with a remote pidfd_getfd(), so that fds shared by
// several tasks share one description again (offset, flags, buffers).
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <set>
#include <vector>

#include "base/result.h"
#include "base/scoped_fd.h"
#include "files/fd_kind.h"
#include "images/criu_lite.pb.h"
#include "restore/puppet.h"

namespace crl {

// Whether --inherit-fd's KEY names F: its external key (--external), or
// what its /proc link was at dump (pipe:[INO], socket:[INO], a path with or
// without its leading slash).
bool InheritKeyMatches(const std::string& key, const img::Fd& f);

// The namespaces a task's files are opened in: (fd, CLONE_NEWNS or
// CLONE_NEWNET) each.
using TaskNamespaces = std::vector<std::pair<int, int>>;

class FileTable {
 public:
  // INHERIT: --inherit-fd's keys and criu-lite's fds for them.
  // STAMPERS: by image PID, who makes again what that task made (a unix
  // socket's maker of record) where criu-lite's own children cannot have its
  // PID (OpenFiles::SetStampers); used during Create only. PREPARE is given the table's OpenFiles
  // before any file is opened (the ptys made with the mounts, where a terminal's new master goes).
  // NAMESPACES: the mount and network namespaces each task's files are opened in (the calling
  // thread, which must have its own fs_struct, joins each in turn); none: the caller's. NETWORKS:
  // the network namespaces made for the tree, by their inode at dump: a socket of one (Fd.net_ns)
  // is made there, whichever task holds it.
  static Result<FileTable> Create(const std::vector<const img::Fds*>& all,
                                  const img::Shared& shared,
                                  const std::map<std::string, int>& inherit = {},
                                  std::map<pid_t, OpenFiles::Stamper> stampers = {},
                                  const std::function<void(OpenFiles&)>& prepare = nullptr,
                                  const std::map<const img::Fds*, TaskNamespaces>& namespaces = {},
                                  const std::map<uint64_t, int>& networks = {});
  FileTable(FileTable&&) = default;
  // criu-lite's fd for the description FILE_ID.
  int LocalFd(uint32_t file_id) const;
  // Criu-lite's copy of the memfd INO, which restored tasks are given.
  Result<int> Memfd(uint64_t ino) const;
  // Criu-lite's fd of the deleted file ID made again (LINK: "PATH
  // (deleted)"), which restored tasks are given.
  Result<int> Ghost(const img::FileId& id, const std::string& link) {
    return GhostFile(files_, id, link);
  }
  // Once every task exists and has mapped its memfds: each description's
  // signal owner (a task of the tree), flock and OFD locks, and the memfds'
  // seals.
  Status Finish(const std::vector<const img::Fds*>& all, const img::Shared& shared) const;
  // True the first time it is asked for FILE_ID: the task being given the
  // description then settles it (its kind's Settle).
  bool FirstGiven(uint32_t file_id) { return given_.insert(file_id).second; }
  // Opens F's description if it is not open yet: at Create, or, for a kind
  // made once the tree exists (AfterTree), then.
  Status Add(const img::Fd& f);
  // The tree's TCP connections out of repair mode (once the network lock
  // is lifted, just before the tree runs).
  Status FinishRepairs() { return files_.FinishRepairs(); }
  // The task of the tree that was IMAGE at dump is LIVE here (OpenFiles).
  void TaskMade(pid_t image, pid_t live) { files_.TaskMade(image, live); }

 private:
  explicit FileTable(const img::Shared& shared) : files_(shared) {}
  // The --inherit-fd fd handed in for F, or -1.
  int Inherited(const img::Fd& f) const;
  std::map<uint32_t, ScopedFd> fds_;  // by file_id
  OpenFiles files_;                   // pipes, socket pairs, memfds, kept open
  std::set<uint32_t> given_;
  std::map<std::string, int> inherit_;
  std::set<uint32_t> callers_;  // descriptions handed in, which keep their flags and owner
};

// Closes what the puppet inherited and gives it its own fds from TABLE,
// except those of kinds made once the tree exists.
Status InstallFds(Puppet& p, const img::Fds& fds, const FileTable& table);
// Once the whole tree exists: gives the puppet the fds of kinds made then
// (pidfds), and settles each description no task settled before (an
// epoll's registrations, which may name those).
// FDS_OF(PID): the fds of task PID of the tree (nullptr if none), whose
// descriptions an epoll's task may be lent (files/epoll.cc).
Status FinishFds(Puppet& p, const img::Fds& fds, FileTable& table,
                 const std::function<const img::Fds*(pid_t)>& fds_of);
// The POSIX locks the puppet held, taken again by it (they are the
// process's), and the flocks it had taken (the taker shows in /proc); last
// among its files, since closing any fd of a file drops the process's POSIX
// locks on it. Other flocks and OFD locks, which belong to descriptions,
// are taken by FileTable::Finish.
Status TakeTaskLocks(Puppet& p, pid_t image_pid, const img::Fds& fds);

}  // namespace crl
