// `criu-lite restore`: rebuild a dumped process from its images.
#pragma once

#include <functional>
#include <map>
#include <string>
#include <vector>

#include "base/action_script.h"
#include "base/result.h"
#include "images/criu_lite.pb.h"
#include "kernel/net_ns.h"
#include "restore/cgroup_restore.h"
#include "restore/memory_restore.h"

namespace crl {

struct RestoreOptions {
  std::string images_dir;
  // Or an archive of them (images/image_archive.h): unpacked into a
  // private directory removed once the tree runs.
  std::string archive;
  // If set, the restore's figures (also in the stats file) once the tree runs.
  img::Stats* stats_out = nullptr;
  bool detached = false;
  bool sibling = false;  // --restore-sibling: the root's parent is criu-lite's parent
  bool shell_job = false;
  // Where the new master of a terminal whose master was outside the tree
  // goes (CRIU's orphan-pts-master: over the RPC socket to the runtime,
  // which passes it to its console socket); unset: such images are refused.
  std::function<Status(int master)> orphan_pts_master;
  std::string pidfile;
  // --action-script (CRIU's): run at pre-restore, post-restore,
  // network-unlock, post-resume.
  std::vector<std::string> action_scripts;
  // The same points told to the RPC client (CRIU's notify_scripts), with
  // the root's PID here from setup-namespaces on.
  ActionNotifier notify;
  // --inherit-fd fd[N]:KEY (CRIU's): criu-lite's fd N is the open file
  // description for every fd of the tree whose object was KEY at dump
  // ("pipe:[INO]", "socket:[INO]", or a file's path, with or without its
  // leading slash), instead of one restore makes.
  std::map<std::string, int> inherit_fds;
  // --page-holder NAME=FD (page-server --pages=vm-mmap gives them): the
  // control socket of the page holder that has the pages of page file NAME.
  std::map<std::string, int> page_holders;
  // --manage-cgroups (CRIU's; soft by default): restore/cgroup_restore.h.
  CgroupMode cgroups = CgroupMode::kSoft;
  // --cgroup-root [CONTROLLER:]/NEWROOT (CRIU's), each: CgroupReroot.
  std::vector<std::string> cgroup_roots;
  // --root (CRIU's): the directory that becomes the root of the tree's
  // mount namespace; --external mnt[KEY]:PATH: the caller's mounts.
  std::string root;
  std::map<std::string, std::string> ext_mounts;
  // --external veth[IF]:NAME[@BRIDGE] (CRIU's): where the other end of
  // each veth whose peer was outside the tree's network namespace goes.
  std::map<std::string, VethOutside> veths;
  // --empty-ns net (CRIU's): the tree's network namespace is made empty
  // (loopback up) and set up by the caller's setup-namespaces
  // action script, before the tree's sockets are made in it.
  bool empty_net = false;
  PagePlacement pages = PagePlacement::kRead;
  uint64_t lazy_fill_mib_s = 0;  // --lazy-fill-rate: 0 is as fast as it goes
  // Memory the tree had in transparent huge pages is made huge again
  // (MADV_COLLAPSE) once its pages are placed; --no-huge-pages leaves it in
  // small pages (a shorter restore, a slower task). Not with --pages=lazy.
  bool huge_pages = true;
  // The destination of a migration: once the tree is built (every task
  // held, nothing run), write one byte to HANDOVER_FD and wait (at most
  // HANDOVER_TIMEOUT seconds) for one byte back: 'G' lets the tree run;
  // anything else, EOF or the timeout kills it, as a failed restore. The
  // source kills its own copy in between: never do both copies run.
  int handover_fd = -1;
  int handover_timeout = 30;
};

// The exit status criu-lite should end with: 0 with -d once the task runs;
// without -d, the restored task's own exit status once it ends.
Result<int> Restore(const RestoreOptions& opts);

// One of CRIU's --external specs at restore into OPTS: mnt[KEY]:PATH or
// veth[IF]:NAME[@BRIDGE]. The error names SPEC and what it should have been.
Status AddRestoreExternal(const std::string& spec, RestoreOptions* opts);
// --ext-mount-map KEY:PATH (CRIU's other spelling of mnt[KEY]:PATH).
Status AddRestoreExtMountMap(const std::string& map, RestoreOptions* opts);

}  // namespace crl
