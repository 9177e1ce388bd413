#include "rpc/options.h"

#include <sched.h>
#include <sys/stat.h>

#include <algorithm>

#include "base/log.h"

namespace crl {
namespace {

Error Refuse(const char* option, const char* why) {
  return MakeError("RPC option %s is not supported by criu-lite: %s", option, why);
}

bool IsDump(rpc::RequestType t) {
  return t == rpc::DUMP || t == rpc::PRE_DUMP || t == rpc::SINGLE_PRE_DUMP;
}

// Options no request can honour yet, each with what to do instead.
Status RefuseEverywhere(const rpc::Options& o) {
  if (o.auto_dedup())
    return Refuse("auto_dedup", "a pre-dump's pages are never punched out of its parent");
  // evasive_devices (runc always sends it at restore) only allows another
  // path to the same device where the recorded one is gone: a device file
  // is reopened at the path it had, and a restore without it fails.
  if (o.link_remap())
    return Refuse("link_remap",
                  "a deleted file is saved into the images (ghost_limit), never linked back");
  if (o.force_irmap() || o.irmap_scan_paths_size())
    return Refuse("force_irmap/irmap_scan_paths", "inotify watches are recorded by handle");
  if (o.exec_cmd_size()) return Refuse("exec_cmd", "run the command from post-restore instead");
  if (o.auto_ext_mnt() || o.ext_sharing() || o.ext_masters())
    return Refuse("auto_ext_mnt/ext_sharing/ext_masters",
                  "name each external mount (external mnt[...])");
  if (o.skip_mnt_size()) return Refuse("skip_mnt", "every mount of the tree is carried");
  if (o.enable_fs_size()) return Refuse("enable_fs", "file systems are carried by kind");
  if (o.join_ns_size()) return Refuse("join_ns", "the tree's namespaces are made anew");
  if (o.has_cgroup_props() || o.has_cgroup_props_file() || o.cgroup_dump_controller_size())
    return Refuse("cgroup_props/cgroup_props_file/cgroup_dump_controller",
                  "every controller's settings are recorded");
  if (o.has_cgroup_yard()) return Refuse("cgroup_yard", "cgroups are reached where mounted");
  if (o.tcp_skip_in_flight())
    return Refuse("tcp_skip_in_flight", "a connection still being set up is refused by name");
  if (o.weak_sysctls()) return Refuse("weak_sysctls", "a sysctl that cannot be set fails");
  if (o.lazy_pages())
    return Refuse("lazy_pages", "restore lazily with `criu-lite restore --pages=lazy`");
  if (o.has_status_fd()) return Refuse("status_fd", "it goes with lazy_pages");
  if (o.has_ps()) return Refuse("ps", "use `criu-lite migrate` for a page server");
  if (o.tls()) return Refuse("tls", "it goes with ps");
  if (o.has_lsm_profile() && !o.lsm_profile().empty())
    return Refuse("lsm_profile", "the tree keeps the LSM labels it had");
  if (o.has_lsm_mount_context() && !o.lsm_mount_context().empty())
    return Refuse("lsm_mount_context", "mounts keep the options they had");
  if (o.has_pidfd_store_sk()) return Refuse("pidfd_store_sk", "PIDs are checked by the dump");
  if (o.mntns_compat_mode()) return Refuse("mntns_compat_mode", "mounts are restored one way");
  if (o.skip_file_rwx_check())
    return Refuse("skip_file_rwx_check", "a file is reopened with the access it had");
  if (o.unprivileged()) return Refuse("unprivileged", "criu-lite runs as root");
  if (o.leave_stopped()) return Refuse("leave_stopped", "the tree is killed or runs on");
  if (o.empty_ns() & ~static_cast<uint32_t>(CLONE_NEWNET))
    return MakeError("RPC option empty_ns 0x%x: only CLONE_NEWNET (0x%x) can be left empty",
                     o.empty_ns(), CLONE_NEWNET);
  // runc names its configuration file whether or not it exists; one that
  // exists would change options criu-lite never reads.
  struct stat st;
  if (o.has_config_file() && !o.config_file().empty() && stat(o.config_file().c_str(), &st) == 0)
    return MakeError(
        "RPC option config_file %s: criu-lite reads no configuration file; give the options in "
        "the request",
        o.config_file().c_str());
  return Ok{};
}

// CRIU's 0 (messages) .. 4 (debug) to criu-lite's kError (0) .. kDebug (3).
int LogLevelFrom(int criu_level) { return std::clamp(criu_level - 1, 0, 3); }

Result<CgroupMode> CgroupModeFrom(const rpc::Options& o) {
  if (!o.has_manage_cgroups_mode())
    return o.has_manage_cgroups() && !o.manage_cgroups() ? CgroupMode::kIgnore : CgroupMode::kSoft;
  switch (o.manage_cgroups_mode()) {
    case rpc::IGNORE:
      return CgroupMode::kIgnore;
    case rpc::CG_NONE:
      return CgroupMode::kNone;
    case rpc::PROPS:
      return CgroupMode::kProps;
    case rpc::SOFT:
    case rpc::DEFAULT:
      return CgroupMode::kSoft;
    case rpc::FULL:
      return CgroupMode::kFull;
    case rpc::STRICT:
      return CgroupMode::kStrict;
  }
  return MakeError("RPC option manage_cgroups_mode %d is not one of CRIU's modes",
                   o.manage_cgroups_mode());
}

}  // namespace

Result<RpcSession> SessionFromRpc(const rpc::Options& o, const PeerDirResolver& dir_of) {
  RpcSession s;
  if (o.images_dir_fd() >= 0)
    s.images_dir = TRY(dir_of(o.images_dir_fd(), "images_dir_fd"));
  else if (!o.images_dir().empty())
    s.images_dir = o.images_dir();
  s.work_dir = s.images_dir;
  if (o.has_work_dir_fd() && o.work_dir_fd() >= 0)
    s.work_dir = TRY(dir_of(o.work_dir_fd(), "work_dir_fd"));
  const std::string& work_dir = s.work_dir;
  if (!o.log_file().empty()) {
    if (o.log_file().find('/') != std::string::npos)
      return MakeError("RPC option log_file %s: a name in the work directory, not a path",
                       o.log_file().c_str());
    if (work_dir.empty())
      return MakeError("RPC option log_file %s: no work_dir_fd or images directory to put it in",
                       o.log_file().c_str());
    s.log_file = work_dir + "/" + o.log_file();
  }
  s.log_level = LogLevelFrom(o.log_level());
  s.log_to_stderr = o.log_to_stderr();
  s.notify = o.notify_scripts();
  return s;
}

Status RefuseUnsupportedRpc(const rpc::Options& o, rpc::RequestType type) {
  const google::protobuf::UnknownFieldSet& unknown = o.GetReflection()->GetUnknownFields(o);
  if (unknown.field_count() > 0)
    return MakeError(
        "RPC option number %d is not one criu-lite knows (a newer CRIU's?): refused rather than "
        "ignored",
        unknown.field(0).number());
  TRY(RefuseEverywhere(o));
  if (IsDump(type) && !o.has_pid())
    return MakeError(
        "RPC option pid is missing: criu-lite does not dump the requesting process itself");
  if (o.has_network_lock() && o.network_lock() == rpc::SKIP && o.tcp_established())
    return MakeError(
        "RPC option network_lock SKIP with tcp_established: a connection is carried only "
        "under the network lock");
  return Ok{};
}

Result<DumpOptions> DumpOptionsFromRpc(const rpc::Options& o, const std::string& images_dir,
                                       rpc::RequestType type) {
  TRY(RefuseUnsupportedRpc(o, type));
  DumpOptions d;
  d.pid = o.pid();
  d.images_dir = images_dir;
  d.pre_dump = type != rpc::DUMP;
  d.leave_running = d.pre_dump || o.leave_running();
  if (!d.pre_dump) {
    d.shell_job = o.shell_job();
    d.orphan_pts_master = o.orphan_pts_master();
    d.file_locks = o.file_locks();
    d.tcp_established = o.tcp_established();
    d.tcp_close = o.tcp_close();
    if (d.tcp_established && d.tcp_close)
      return MakeError("RPC options tcp_established and tcp_close exclude each other");
    d.ghost_limit = o.ghost_limit();
    d.ext_unix_sk_all = o.ext_unix_sk();
    for (const rpc::UnixSk& sk : o.unix_sk_ino()) d.ext_unix_sk.insert(sk.inode());
    for (const std::string& key : o.external())
      TRY(AddDumpExternal(key, &d).Context("RPC option external"));
    for (const rpc::ExtMountMap& m : o.ext_mnt()) d.ext_mount_map[m.key()] = m.val();
    d.empty_net = o.empty_ns() & CLONE_NEWNET;
    d.record_cgroups = TRY(CgroupModeFrom(o)) != CgroupMode::kIgnore;
    d.track_mem = o.track_mem();
  }
  // A runtime's parent_img is relative to the images directory, as
  // --prev-images-dir.
  d.prev_images_dir = o.parent_img();
  d.freeze_cgroup = o.freeze_cgroup();
  return d;
}

Result<RestoreOptions> RestoreOptionsFromRpc(const rpc::Options& o, const std::string& images_dir) {
  TRY(RefuseUnsupportedRpc(o, rpc::RESTORE));
  RestoreOptions r;
  r.images_dir = images_dir;
  // The service answers once the tree runs; the tree is the client's to
  // wait for (rst_sibling: its child).
  r.detached = true;
  r.sibling = o.rst_sibling();
  r.shell_job = o.shell_job();
  r.root = o.root();
  r.empty_net = o.empty_ns() & CLONE_NEWNET;
  r.cgroups = TRY(CgroupModeFrom(o));
  for (const rpc::CgroupRoot& c : o.cg_root())
    r.cgroup_roots.push_back(c.ctrl().empty() ? c.path() : c.ctrl() + ":" + c.path());
  for (const std::string& spec : o.external())
    TRY(AddRestoreExternal(spec, &r).Context("RPC option external"));
  for (const rpc::ExtMountMap& m : o.ext_mnt()) r.ext_mounts[m.key()] = m.val();
  for (const rpc::VethPair& v : o.veths()) r.veths[v.if_in()] = VethOutside{v.if_out(), ""};
  for (const rpc::InheritFd& f : o.inherit_fd()) r.inherit_fds[f.key()] = f.fd();
  return r;
}

}  // namespace crl
