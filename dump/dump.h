// `criu-lite dump`: freeze a process, record it into an image directory,
// then kill it or (--leave-running) let it go on.
#pragma once

#include <sys/types.h>

#include <functional>
#include <map>
#include <set>
#include <string>
#include <vector>

#include "base/action_script.h"
#include "base/result.h"
#include "images/criu_lite.pb.h"
#include "images/image_output.h"

namespace crl {

struct DumpOptions {
  pid_t pid = 0;
  std::string images_dir;
  bool leave_running = false;
  bool shell_job = false;
  // --orphan-pts-master (CRIU's): a terminal whose master is outside the
  // tree (a container's console, its master held by the runtime) is
  // recorded as such; restore makes it again and hands its new master over.
  bool orphan_pts_master = false;
  // The most bytes of data a deleted file the tree holds open may have
  // (--ghost-limit; CRIU's default).
  uint64_t ghost_limit = 1 << 20;
  // --file-locks: carry the flock, POSIX and OFD locks the tree holds (no
  // other process may take them between the dump and the restore).
  bool file_locks = false;
  // --tcp-established (CRIU's): carry TCP connections with TCP_REPAIR, under
  // the network lock, which stays until restore lifts it; --tcp-close: save
  // them as closed sockets instead (the restored process finds each
  // connection gone).
  bool tcp_established = false;
  bool tcp_close = false;
  // --external tty[RDEV:DEV] / file[MNT_ID:INODE] (CRIU's, numbers in hex):
  // fds of those objects are recorded as external, and restore takes them
  // from --inherit-fd with the same key (as container runtimes do for a
  // console or a log file).
  std::set<std::string> externals;
  // --external mnt[MOUNTPOINT]:KEY (CRIU's; --ext-mount-map MOUNTPOINT:KEY):
  // that mount of the root's mount namespace is the caller's, given back at
  // restore with --external mnt[KEY]:PATH.
  std::map<std::string, std::string> ext_mounts;
  // CRIU's RPC ext_mnt: the same for the mount points the namespace has
  // (runtimes name every device node and masked path, mounts or not).
  std::map<std::string, std::string> ext_mount_map;
  // --external net[INODE]:KEY (CRIU's; runtimes send it for a network
  // namespace they made and configured, "extRootNetNS"): the root's network
  // namespace, if its inode is INODE, is the caller's: recorded without what
  // it holds, and joined at restore from --inherit-fd fd[N]:KEY.
  std::map<uint64_t, std::string> ext_net_ns;
  // --empty-ns net (CRIU's): the root's network namespace is recorded
  // without what it holds; the caller sets the new one up at restore.
  bool empty_net = false;
  // --ext-unix-sk (CRIU's): unix stream sockets connected outside the tree
  // (all of them, or those of EXT_UNIX_SK's inodes; --external unix[INO]
  // names one too) are recorded as external, for restore to take from
  // --inherit-fd fd[N]:socket:[INO].
  // --action-script (CRIU's): run at pre-dump, network-lock, post-dump.
  std::vector<std::string> action_scripts;
  // The same points told to the RPC client (CRIU's notify_scripts).
  ActionNotifier notify;
  bool ext_unix_sk_all = false;
  std::set<uint64_t> ext_unix_sk;
  // --manage-cgroups=ignore (CRIU's) records no cgroup at all; any other
  // mode records each task's cgroups and their settings (the mode is
  // restore's choice).
  bool record_cgroups = true;
  // --freeze-cgroup (CRIU's): the directory of a cgroup (cgroup2, or of the
  // v1 freezer) holding the tree, frozen while its tasks are attached.
  std::string freeze_cgroup;
  int zstd_level = 0;  // 0: raw pages
  // Iterative dumps: the previous pass's directory (relative to images_dir
  // unless absolute), and whether this pass is a pre-dump (memory only, the
  // tree keeps running) or the final dump (--track-mem).
  std::string prev_images_dir;
  bool pre_dump = false;
  bool track_mem = false;
  // Where the images go (a page server, an archive); by default images_dir.
  // The small files a next pass needs are read from images_dir either way;
  // with an output, images_dir may be empty (no pass follows, and the
  // figures are in the log only).
  ImageOutput* output = nullptr;
  // Called with the tree still frozen once every image is out: true to kill
  // it, false to resume it.
  std::function<Result<bool>()> before_release;
  // Once SIGKILL is sent to the tree (dump without -R), before waiting for
  // it to die: a migration lets the destination's copy run from here.
  std::function<Status()> after_kill_signalled;
  // A pre-dump's tracking holder also ends when this process does (a
  // migration's passes: nobody continues the chain once migrate is gone).
  pid_t tracking_owner = -1;
};

// The dump's figures (also written to the image directory's stats file).
Result<img::Stats> Dump(const DumpOptions& opts);

// One of CRIU's --external keys at dump into OPTS: tty[RDEV:DEV] and
// file[MNT_ID:INODE] (hex), unix[INODE], mnt[MOUNTPOINT]:KEY. The error
// names KEY and what it should have been.
Status AddDumpExternal(const std::string& key, DumpOptions* opts);
// --ext-mount-map MOUNTPOINT:KEY (CRIU's other spelling of mnt[...]).
Status AddDumpExtMountMap(const std::string& map, DumpOptions* opts);

}  // namespace crl
