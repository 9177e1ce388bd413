// criu-lite: checkpoint/restore for Linux processes. The command line follows
// CRIU's where the same thing is meant, so that scripts carry over. Each
// subcommand is a Command: its options, then what it runs once they parsed.
#include <fcntl.h>
#include <google/protobuf/stubs/logging.h>
#include <sys/socket.h>
#include <sys/stat.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <cctype>
#include <cstdio>
#include <filesystem>
#include <memory>
#include <optional>
#include <set>
#include <sstream>
#include <vector>

#include "base/interrupt.h"
#include "base/log.h"
#include "dump/dump.h"
#include "images/image_archive.h"
#include "images/image_file.h"
#include "images/page_holder.h"
#include "kernel/kernel_probe.h"
#include "kernel/mounts.h"
#include "kernel/net_ns.h"
#include "migrate/migrate.h"
#include "pageserver/receiver.h"
#include "pageserver/sender.h"
#include "restore/restore.h"
#include "rpc/service.h"

namespace {

int Fail(const crl::Error& e) {
  crl::Log(crl::LogLevel::kError, "%s", e.message.c_str());
  return 1;
}

int Exit(const crl::Status& s) { return s.ok() ? 0 : Fail(s.error()); }

// The dump's figures are in its log and stats file; the command wants whether.
crl::Status DumpStatus(const crl::Result<crl::img::Stats>& r) {
  if (!r.ok()) return r.error();
  return crl::Ok{};
}

// A mistake on the command line the parser cannot see: one line, exit 1.
int Usage(const std::string& what) {
  fprintf(stderr, "criu-lite: %s\n", what.c_str());
  return 1;
}

// CRIU's --empty-ns: only "net" is a namespace it can leave empty.
void AddEmptyNsOption(CLI::App* cmd, bool* empty_net, const char* what) {
  cmd->add_option_function<std::string>(
         "--empty-ns", [empty_net](const std::string&) { *empty_net = true; }, what)
      ->check(CLI::IsMember({"net"}))
      ->type_name("net");
}

// CRIU's TLS options, for every command that speaks to a page server.
void AddTlsOptions(CLI::App* cmd, crl::TlsOptions* t) {
  cmd->add_flag("--tls", t->on, "TLS with certificates on both sides for the page server link");
  cmd->add_option("--tls-cacert", t->cacert, "the CA that signs both sides' certificates")
      ->type_name("FILE")
      ->capture_default_str();
  cmd->add_option("--tls-cacrl", t->cacrl, "revoked certificates (used if the file exists)")
      ->type_name("FILE")
      ->capture_default_str();
  cmd->add_option("--tls-cert", t->cert, "this side's certificate")
      ->type_name("FILE")
      ->capture_default_str();
  cmd->add_option("--tls-key", t->key, "this side's private key")
      ->type_name("FILE")
      ->capture_default_str();
  cmd->add_flag("--tls-no-cn-verify", t->no_cn_verify,
                "do not check that the page server's certificate names the address dialled");
}

class Command {
 public:
  explicit Command(CLI::App* app) : app_(app) {}
  virtual ~Command() = default;
  bool chosen() const { return app_->parsed(); }
  virtual int Run() = 0;
  // Where a relative --log-file goes without --work-dir (CRIU's rule), and
  // whether the command makes that directory (a dump's -D) rather than
  // needing it.
  virtual std::string images_dir() const { return ""; }
  virtual bool makes_images_dir() const { return false; }

 protected:
  CLI::App* app_;
};

// `dump` and `pre-dump`: the same library call, with CRIU's options for each.
class DumpCommand : public Command {
 public:
  DumpCommand(CLI::App& root, bool pre)
      : Command(pre ? root.add_subcommand("pre-dump",
                                          "copy a tree's memory while it runs and track what it "
                                          "writes next")
                    : root.add_subcommand("dump",
                                          "checkpoint a running process into an image directory")) {
    o_.pre_dump = o_.leave_running = pre;
    app_->add_option("-t,--tree", o_.pid,
                     pre ? "PID of the tree's root" : "PID of the process to dump")
        ->required()
        ->type_name("PID");
    auto* dir = app_->add_option("-D,--images-dir", o_.images_dir,
                                 pre ? "directory to write the pages to"
                                     : "directory to write the images to")
                    ->type_name("DIR");
    if (pre) dir->required();
    if (!pre)
      app_->add_option("--archive", archive_,
                       "write the images into one archive FILE instead of -D: .tar, .tar.zst or "
                       ".tar.gz by its name, streamed (no image file on disk first)")
          ->type_name("FILE")
          ->excludes(dir);
    if (pre) {
      app_->add_option("--prev-images-dir", o_.prev_images_dir,
                       "the previous pre-dump (relative to -D): copy only what was written since")
          ->type_name("DIR");
      app_->add_flag("--track-mem", track_mem_ignored_,
                     "accepted for CRIU compatibility: pre-dump always tracks");
    } else {
      app_->add_flag("-R,--leave-running", o_.leave_running,
                     "let the process run on after the dump (default: kill it)");
      app_->add_flag("-j,--shell-job", o_.shell_job,
                     "the process's stdin/stdout/stderr are a terminal or pipe that restore "
                     "provides");
      app_->add_flag("--orphan-pts-master", o_.orphan_pts_master,
                     "a terminal whose master is outside the tree (a container's console) is "
                     "carried: restore over RPC makes it again and hands its new master over");
      app_->add_option(
              "--external", externals_,
              "an fd's object the caller owns and hands back at restore with "
              "--inherit-fd: tty[RDEV:DEV] or file[MNT_ID:INODE] (hex), or unix[INODE]; or "
              "mnt[MOUNTPOINT]:KEY, a mount of the root's mount namespace the caller gives "
              "back at restore with --external mnt[KEY]:PATH; or net[INODE]:KEY, the root's "
              "network namespace if it is INODE, the caller's: its contents not recorded, "
              "joined at restore from --inherit-fd fd[N]:KEY; as CRIU's")
          ->type_name("KEY");
      app_->add_option("--ext-mount-map", ext_mount_map_,
                       "the same as --external mnt[MOUNTPOINT]:KEY, as CRIU's")
          ->type_name("MOUNTPOINT:KEY");
      AddEmptyNsOption(app_, &o_.empty_net,
                       "net: record the root's network namespace without its links, addresses "
                       "and routes; the caller sets up the new one at restore (its "
                       "setup-namespaces action script), as CRIU's");
      ext_unix_opt_ =
          app_->add_option("-x,--ext-unix-sk", ext_unix_,
                           "unix stream sockets connected outside the tree (all, or those of "
                           "the inodes listed) are handed back at restore with --inherit-fd "
                           "fd[N]:socket:[INODE], as CRIU's")
              ->expected(0, 1)
              ->type_name("INODE,...");
      app_->add_flag("--file-locks", o_.file_locks,
                     "carry the file locks the tree holds (flock, POSIX, OFD), as CRIU's");
      app_->add_flag("--tcp-established", o_.tcp_established,
                     "carry established TCP connections (TCP_REPAIR), their packets dropped "
                     "from the dump until restore has them again, as CRIU's");
      app_->add_flag("--tcp-close", o_.tcp_close,
                     "save established TCP connections as closed sockets (the restored "
                     "process finds them gone), as CRIU's");
      app_->add_option("--action-script", o_.action_scripts,
                       "run SCRIPT at pre-dump, network-lock and post-dump "
                       "(CRTOOLS_SCRIPT_ACTION), as CRIU's")
          ->type_name("SCRIPT");
      app_->add_option("--manage-cgroups", manage_cgroups_,
                       "ignore: record no cgroups; any other mode (restore's choice) records "
                       "the tree's cgroups and their settings, as CRIU's")
          ->expected(0, 1)
          ->type_name("MODE");
      app_->add_option("--ghost-limit", o_.ghost_limit,
                       "the most data a deleted file held open may have to be saved in the "
                       "images (bytes, or with K, M, G; default 1M, as CRIU)")
          ->transform(CLI::AsSizeValue(false))
          ->type_name("SIZE");
      app_->add_flag("--compress", compress_, "compress pages with zstd");
      app_->add_option("--compress-level", o_.zstd_level, "zstd level (implies --compress)")
          ->check(CLI::Range(1, 19));
      app_->add_option("--prev-images-dir", o_.prev_images_dir,
                       "the previous pass of an iterative dump (relative to -D, as CRIU): save "
                       "only the pages written since")
          ->type_name("DIR");
      app_->add_flag("--track-mem", o_.track_mem,
                     "with --prev-images-dir: use the write tracking pre-dump armed");
    }
    app_->add_option("--freeze-cgroup", o_.freeze_cgroup,
                     "freeze the tree through this cgroup (cgroup2, or the v1 freezer's) while "
                     "its tasks are seized: none forks unseen, as CRIU's")
        ->type_name("DIR");
    // --page-server, as CRIU's.
    app_->add_flag("--page-server", server_,
                   "send the images to a page server instead of -D "
                   "(-D keeps the small files the next pass needs)");
    app_->add_option("--address", address_, "the page server's address")->type_name("ADDR");
    app_->add_option("--port", port_, "the page server's port")->type_name("PORT");
    AddTlsOptions(app_, &tls_);
  }

  int Run() override {
    if (ext_unix_opt_ && ext_unix_opt_->count()) {
      // (-x alone: CLI11 gives one empty value, or none)
      o_.ext_unix_sk_all = true;
      for (const std::string& list : ext_unix_) {
        if (list.empty()) continue;
        o_.ext_unix_sk_all = false;
        std::stringstream in(list);
        for (std::string ino; std::getline(in, ino, ',');) {
          char* end = nullptr;
          unsigned long v = strtoul(ino.c_str(), &end, 10);
          if (ino.empty() || *end) return Usage("--ext-unix-sk " + list + ": not INODE,...");
          o_.ext_unix_sk.insert(v);
        }
      }
    }
    for (const std::string& key : externals_)
      if (crl::Status st = crl::AddDumpExternal(key, &o_); !st.ok())
        return Usage("--external " + st.error().message);
    for (const std::string& map : ext_mount_map_)
      if (crl::Status st = crl::AddDumpExtMountMap(map, &o_); !st.ok())
        return Usage("--ext-mount-map " + st.error().message);
    if (!manage_cgroups_.empty()) {
      auto mode = crl::ParseCgroupMode(manage_cgroups_);
      if (!mode.ok()) return Usage(mode.error().message);
      o_.record_cgroups = *mode != crl::CgroupMode::kIgnore;
    }
    if (compress_ && o_.zstd_level == 0) o_.zstd_level = 1;
    if (o_.zstd_level && !o_.prev_images_dir.empty())
      return Usage("--compress with --prev-images-dir is not supported yet");
    if (!archive_.empty()) {
      if (server_) return Usage("--archive and --page-server: the images go to one of them");
      if (!o_.prev_images_dir.empty())
        return Usage(
            "--archive with --prev-images-dir: an archive holds a whole dump, not a "
            "pass that needs its parent directory");
      return Exit(IntoArchive());
    }
    if (o_.images_dir.empty()) return Usage("dump needs -D DIR or --archive FILE");
    if (!server_) return Exit(DumpStatus(crl::Dump(o_)));
    if (address_.empty() || port_ <= 0) return Usage("--page-server needs --address and --port");
    return Exit(ThroughPageServer());
  }

 private:
  crl::Status ThroughPageServer() {
    auto sender = TRY(crl::PageServerSender::Connect(address_, port_, 30, tls_));
    // The server gets the directory under the name -D has here.
    std::string name = o_.images_dir;
    while (name.size() > 1 && name.back() == '/') name.pop_back();
    name = name.substr(name.rfind('/') + 1);
    TRY(sender->Open(name));
    crl::LocalImageOutput local(o_.images_dir);
    crl::TeeImageOutput tee(&local, sender.get());
    o_.output = &tee;
    TRY(DumpStatus(crl::Dump(o_)));
    return sender->Done();
  }

  crl::Status IntoArchive() {
    auto out = TRY(crl::ArchiveImageOutput::Create(archive_));
    o_.output = out.get();
    return DumpStatus(crl::Dump(o_));
  }

  std::string images_dir() const override { return o_.images_dir; }
  bool makes_images_dir() const override { return true; }
  crl::DumpOptions o_;
  std::string manage_cgroups_;
  std::vector<std::string> externals_, ext_unix_, ext_mount_map_;
  CLI::Option* ext_unix_opt_ = nullptr;
  bool compress_ = false, track_mem_ignored_ = false, server_ = false;
  std::string address_, archive_;
  int port_ = 0;
  crl::TlsOptions tls_;
};

class PageServerCommand : public Command {
 public:
  explicit PageServerCommand(CLI::App& root)
      : Command(root.add_subcommand("page-server", "receive images over TCP (and restore them)")) {
    app_->add_option("--port", o_.port, "TCP port to listen on")->required()->type_name("PORT");
    app_->add_option("--address", o_.address,
                     "address to listen on (default: 127.0.0.1 without --tls, all with it)")
        ->type_name("ADDR");
    AddTlsOptions(app_, &o_.tls);
    app_->add_flag("--allow-unauthenticated-restore", o_.allow_unauthenticated_restore,
                   "with --restore but no --tls: restore what any peer sends (a network you "
                   "trust only)");
    app_->add_option("-D,--images-dir", o_.images_dir, "where image directories go")
        ->required()
        ->type_name("DIR");
    app_->add_option("--archive", o_.archive,
                     "write each image directory received as one archive -D/NAME.SUFFIX instead "
                     "(restore --archive reads it; not with --restore)")
        ->check(CLI::IsMember({".tar", ".tar.zst", ".tar.gz"}))
        ->type_name("SUFFIX");
    app_->add_flag("--daemon", o_.daemon, "keep serving after a client is done");
    app_->add_flag("--restore", o_.restore,
                   "restore on request: the destination of `criu-lite migrate`");
    app_->add_option("--timeout", o_.timeout, "seconds without progress before giving up");
    app_->add_option("--status-file", o_.status_file, "create FILE once listening")
        ->type_name("FILE");
    app_->add_option("--action-script", o_.action_scripts,
                     "with --restore: the restore's --action-script")
        ->type_name("SCRIPT");
    app_->add_option("--manage-cgroups", o_.manage_cgroups,
                     "with --restore: the restore's --manage-cgroups")
        ->check([](const std::string& m) {
          auto r = crl::ParseCgroupMode(m);
          return r.ok() ? std::string() : r.error().message;
        })
        ->type_name("MODE");
    app_->add_option("--cgroup-root", o_.cgroup_roots,
                     "with --restore: the restore's --cgroup-root")
        ->type_name("[CONTROLLER:]/NEWROOT");
    app_->add_option("--root", o_.root, "with --restore: the restore's --root (a container's)")
        ->type_name("DIR");
    app_->add_option("--external", o_.externals,
                     "with --restore: the restore's --external mnt[KEY]:PATH or "
                     "veth[IF]:NAME[@BRIDGE], each")
        ->type_name("mnt[KEY]:PATH");
    o_.pages = "lazy";
    app_->add_option("--pages", o_.pages,
                     "page placement for --restore (read, writev, lazy; default lazy: the "
                     "shortest freeze; or vm-mmap: received pages are held in memory, not "
                     "written to files, and the restored tasks take them with "
                     "process_vm_mmap, a kernel built by linux-patches/build-kernel.sh)")
        ->check(CLI::IsMember({"read", "writev", "lazy", "vm-mmap"}));
  }
  int Run() override {
    if (!o_.archive.empty() && o_.restore)
      return Usage("page-server --archive with --restore: restore reads image directories");
    if (o_.pages == "vm-mmap" && !o_.restore)
      return Usage("page-server --pages=vm-mmap holds pages for a restore: it needs --restore");
    if (o_.pages == "vm-mmap" && !crl::HasProcessVmMmap())
      return Usage(
          "--pages=vm-mmap: this kernel has no process_vm_mmap (no "
          "/proc/sys/vm/process_vm_mmap_nr: it needs the kernel linux-patches/build-kernel.sh "
          "builds); --pages=read is the nearest");
    return Exit(crl::RunPageServer(o_));
  }

 private:
  std::string images_dir() const override { return o_.images_dir; }
  crl::PageServerOptions o_;
};

class MigrateCommand : public Command {
 public:
  explicit MigrateCommand(CLI::App& root)
      : Command(root.add_subcommand("migrate", "move a running tree to another host")) {
    app_->add_option("-t,--tree", o_.pid, "PID of the tree's root")->required()->type_name("PID");
    app_->add_option("--to", to_, "HOST:PORT of `criu-lite page-server --restore`")->required();
    app_->add_option("--max-iters", o_.max_iters,
                     "pre-copy passes at most (0: stop-and-copy; default 8)");
    app_->add_option("--downtime-target", o_.downtime_target_ms,
                     "stop pre-copy once the last delta would take less (ms; default 300)");
    app_->add_option("--min-pages", o_.min_pages,
                     "stop pre-copy once a pass writes fewer pages (default 1024)");
    app_->add_option("--stats", o_.stats_file, "write the figures as JSON to FILE")
        ->type_name("FILE");
    app_->add_option("--timeout", o_.timeout, "seconds without progress before giving up");
    app_->add_flag("--tcp-established", o_.tcp_established,
                   "carry established TCP connections (TCP_REPAIR), their packets dropped "
                   "from the freeze until the destination has them, as dump's");
    app_->add_flag("--tcp-close", o_.tcp_close,
                   "carry established TCP connections as closed sockets, as dump's");
    app_->add_option("--action-script", o_.action_scripts,
                     "run SCRIPT at the final pass's pre-dump, network-lock and post-dump, as "
                     "dump's")
        ->type_name("SCRIPT");
    app_->add_option("--freeze-cgroup", o_.freeze_cgroup,
                     "freeze the tree through this cgroup while each pass seizes it, as dump's")
        ->type_name("DIR");
    app_->add_option("--external", externals_,
                     "mnt[MOUNTPOINT]:KEY: a mount of the root's mount namespace the "
                     "destination gives (its page server's --external mnt[KEY]:PATH), as dump's")
        ->type_name("mnt[MOUNTPOINT]:KEY");
    app_->add_option("--ext-mount-map", ext_mount_map_,
                     "the same as --external mnt[MOUNTPOINT]:KEY")
        ->type_name("MOUNTPOINT:KEY");
    AddEmptyNsOption(app_, &o_.empty_net,
                     "net: the final dump records the root's network namespace empty, as "
                     "dump's");
    AddTlsOptions(app_, &o_.tls);
  }
  int Run() override {
    for (const std::string& key : externals_) {
      auto m = crl::ParseMountExternal(key, "MOUNTPOINT]:KEY");
      if (!m.ok()) return Usage("--external " + m.error().message);
      o_.ext_mounts[m->first] = m->second;
    }
    for (const std::string& map : ext_mount_map_) {
      auto m = crl::ParseExtMountMap(map, "MOUNTPOINT:KEY");
      if (!m.ok()) return Usage("--ext-mount-map " + m.error().message);
      o_.ext_mounts[m->first] = m->second;
    }
    if (o_.tcp_established && o_.tcp_close)
      return Usage("--tcp-established and --tcp-close exclude each other");
    size_t colon = to_.rfind(':');
    if (colon == std::string::npos) return Usage("--to wants HOST:PORT, got '" + to_ + "'");
    o_.host = to_.substr(0, colon);
    o_.port = atoi(to_.c_str() + colon + 1);
    return Exit(crl::Migrate(o_));
  }

 private:
  crl::MigrateOptions o_;
  std::string to_;
  std::vector<std::string> externals_, ext_mount_map_;
};

class RestoreCommand : public Command {
 public:
  explicit RestoreCommand(CLI::App& root)
      : Command(root.add_subcommand("restore", "restore a process from an image directory")) {
    auto* dir = app_->add_option("-D,--images-dir", o_.images_dir, "directory holding the images")
                    ->type_name("DIR");
    app_->add_option("--archive", o_.archive,
                     "restore from an archive dump --archive made instead of -D (unpacked into a "
                     "private directory under $TMPDIR, removed once the tree runs)")
        ->type_name("FILE")
        ->excludes(dir);
    app_->add_flag("--exec-cmd", exec_cmd_,
                   "once the tree runs, become the command given after -- (criu-lite execs it): "
                   "the restored root is its child; implies -d, as CRIU's");
    app_->add_option("command", exec_args_, "with --exec-cmd: the command and its arguments");
    app_->add_flag("-d,--restore-detached", o_.detached,
                   "return once the process runs (default: wait for it and exit with its "
                   "status)");
    app_->add_flag("-j,--shell-job", o_.shell_job,
                   "give the process criu-lite's own stdin/stdout/stderr where it had a "
                   "terminal or pipe");
    app_->add_flag("--restore-sibling", o_.sibling,
                   "make the restored root a sibling of criu-lite (a child of criu-lite's "
                   "parent), as CRIU's --restore-sibling; returns once it runs");
    app_->add_option("--pidfile", o_.pidfile, "write the restored process's PID to FILE")
        ->type_name("FILE");
    app_->add_flag("--file-locks", file_locks_ignored_,
                   "accepted for CRIU compatibility: locks in the images are always taken back");
    app_->add_flag("--tcp-established", tcp_ignored_,
                   "accepted for CRIU compatibility: connections in the images are always "
                   "taken back");
    app_->add_option("--inherit-fd", inherit_fds_,
                     "use criu-lite's fd N for every fd of the tree that was RESOURCE at dump: "
                     "pipe:[INO], socket:[INO] or a file's path; or KEY, the network namespace "
                     "the dump named with --external net[INODE]:KEY (as CRIU's)")
        ->type_name("fd[N]:RESOURCE");
    app_->add_option("--action-script", o_.action_scripts,
                     "run SCRIPT at pre-restore, post-restore, network-unlock and post-resume "
                     "(CRTOOLS_SCRIPT_ACTION), as CRIU's")
        ->type_name("SCRIPT");
    app_->add_option("--manage-cgroups", manage_cgroups_,
                     "what to do with the tree's cgroups: soft (the default: create missing "
                     "ones, with their settings), full (also write the settings of existing "
                     "ones), strict (all must be created), props (settings only, into existing "
                     "cgroups), none (existing cgroups, no settings), ignore (stay in "
                     "criu-lite's), as CRIU's")
        ->expected(0, 1)
        ->type_name("MODE");
    app_->add_option("--cgroup-root", o_.cgroup_roots,
                     "put the tree's cgroups below NEWROOT instead of below the root task's "
                     "cgroup at dump: in CONTROLLER's hierarchy (cgroup2: the unified one), or "
                     "without one in every "
                     "hierarchy no other --cgroup-root names (repeatable), as CRIU's")
        ->type_name("[CONTROLLER:]/NEWROOT");
    app_->add_option("--root", o_.root,
                     "the directory that is the root of the tree's mount namespace (a "
                     "container's root file system, as after pivot_root), as CRIU's")
        ->type_name("DIR");
    app_->add_option("--external", externals_,
                     "mnt[KEY]:PATH: bind PATH where the dump recorded the caller's mount KEY "
                     "(--external mnt[MOUNTPOINT]:KEY at dump); veth[IF]:NAME[@BRIDGE]: the "
                     "other end of the tree's veth IF is NAME here (in BRIDGE); as CRIU's")
        ->type_name("mnt[KEY]:PATH|veth[IF]:NAME[@BRIDGE]");
    app_->add_option("--ext-mount-map", ext_mount_map_,
                     "the same as --external mnt[KEY]:PATH, as CRIU's")
        ->type_name("KEY:PATH");
    AddEmptyNsOption(app_, &o_.empty_net,
                     "net: make the tree's network namespace empty (loopback alone) and let "
                     "the setup-namespaces action script set it up before the tree's sockets "
                     "are made in it, as CRIU's");
    app_->add_option("--pages", pages_,
                     "how pages get into the process: read (it reads them from the page file "
                     "itself: one copy), writev (criu-lite writes them: the baseline), lazy "
                     "(the tree runs at once; a daemon fills its memory on demand and in the "
                     "background) or vm-mmap (it takes them from criu-lite's memory with "
                     "process_vm_mmap, no copy: a kernel built by linux-patches/build-kernel.sh)")
        ->check(CLI::IsMember({"read", "writev", "lazy", "vm-mmap"}));
    app_->add_option("--lazy-fill-rate", o_.lazy_fill_mib_s,
                     "with --pages=lazy: place at most this many MiB/s in the background "
                     "(faults are always served at once; default 0: no limit)")
        ->type_name("MIB");
    app_->add_flag("--no-huge-pages{false}", o_.huge_pages,
                   "leave memory the tree had in transparent huge pages in small pages (by "
                   "default it is made huge again once its pages are placed, so that the "
                   "restored tree runs as fast as before; never with --pages=lazy)");
    app_->add_option("--handover-fd", o_.handover_fd,
                     "a migration's destination: say on FD when the tree is ready and run it "
                     "only after reading 'G' there (the page server passes it)")
        ->type_name("FD")
        ->group("");
    app_->add_option("--handover-timeout", o_.handover_timeout, "seconds to wait for 'G'")
        ->group("");
    app_->add_option("--page-holder", page_holders_,
                     "with --pages=vm-mmap: the page holder of page file NAME is at the other "
                     "end of socket FD (the page server passes them)")
        ->type_name("NAME=FD")
        ->group("");
  }
  int Run() override {
    if (o_.images_dir.empty() && o_.archive.empty())
      return Usage("restore needs -D DIR or --archive FILE");
    // CLI checked the name against the same list.
    o_.pages = crl::ParsePagePlacement(pages_).value_or(crl::PagePlacement::kRead);
    if (!manage_cgroups_.empty()) {
      auto mode = crl::ParseCgroupMode(manage_cgroups_);
      if (!mode.ok()) return Usage(mode.error().message);
      o_.cgroups = *mode;
    }
    for (const std::string& e : externals_)
      if (crl::Status st = crl::AddRestoreExternal(e, &o_); !st.ok())
        return Usage("--external " + st.error().message);
    for (const std::string& map : ext_mount_map_)
      if (crl::Status st = crl::AddRestoreExtMountMap(map, &o_); !st.ok())
        return Usage("--ext-mount-map " + st.error().message);
    for (const std::string& spec : inherit_fds_) {
      int fd = -1, used = 0;
      if (sscanf(spec.c_str(), "fd[%d]:%n", &fd, &used) != 1 || used == 0 ||
          spec.size() == static_cast<size_t>(used)) {
        fprintf(stderr, "criu-lite: --inherit-fd %s: not fd[N]:RESOURCE\n", spec.c_str());
        return 1;
      }
      if (fcntl(fd, F_GETFD) < 0) {
        fprintf(stderr, "criu-lite: --inherit-fd %s: fd %d is not open in criu-lite\n",
                spec.c_str(), fd);
        return 1;
      }
      o_.inherit_fds[spec.substr(used)] = fd;
    }
    for (const std::string& spec : page_holders_) {
      size_t eq = spec.find('=');
      int fd = -1;
      if (eq == std::string::npos || sscanf(spec.c_str() + eq + 1, "%d", &fd) != 1 ||
          fcntl(fd, F_GETFD) < 0)
        return Usage("--page-holder " + spec + ": not NAME=FD of an open fd");
      o_.page_holders[spec.substr(0, eq)] = fd;
    }
    if (!o_.page_holders.empty() && o_.pages != crl::PagePlacement::kVmMmap)
      return Usage("--page-holder is for --pages=vm-mmap");
    if (exec_cmd_ == exec_args_.empty())
      return Usage("--exec-cmd needs the command after --, and a command needs --exec-cmd");
    // CRIU's --exec-cmd: the restored tree runs on as the command's child.
    if (exec_cmd_) o_.detached = true;
    // Without -d the restored process is criu-lite's child; keep its output
    // ordered with ours.
    fflush(nullptr);
    auto r = crl::Restore(o_);
    if (!r.ok()) return Fail(r.error());
    if (!exec_cmd_) return *r;
    std::vector<char*> argv;
    for (std::string& a : exec_args_) argv.push_back(a.data());
    argv.push_back(nullptr);
    execvp(argv[0], argv.data());
    return Fail(crl::ErrnoError("--exec-cmd: execvp(%s) (the restored tree runs on)", argv[0]));
  }

 private:
  std::string images_dir() const override { return o_.images_dir; }
  bool exec_cmd_ = false;
  std::vector<std::string> exec_args_;
  crl::RestoreOptions o_;
  std::string manage_cgroups_;
  std::string pages_ = "read";
  std::vector<std::string> inherit_fds_, externals_, ext_mount_map_, page_holders_;
  bool file_locks_ignored_ = false;
  bool tcp_ignored_ = false;
};

class CheckCommand : public Command {
 public:
  explicit CheckCommand(CLI::App& root)
      : Command(root.add_subcommand("check", "show which kernel interfaces criu-lite will use")) {}
  int Run() override {
    printf("%-28s %-18s %-5s %s\n", "need", "interface", "here", "criu-lite uses");
    for (const auto& r : crl::CheckTable())
      printf("%-28s %-18s %-5s %s\n", r.need.c_str(), r.interface.c_str(), r.status.c_str(),
             r.path.c_str());
    if (!crl::Kernel().prctl_set_mm_map)
      return Usage("this kernel cannot restore (no PR_SET_MM_MAP)");
    return 0;
  }
};

// A page holder of `page-server --pages=vm-mmap` (images/page_holder.h),
// which starts it; not for people.
class PageHolderCommand : public Command {
 public:
  explicit PageHolderCommand(CLI::App& root)
      : Command(root.add_subcommand("page-holder", "hold a task's pages for a page server")) {
    app_->group("");
  }
  int Run() override { return crl::RunPageHolder(3); }
};

// CRIU's RPC service, as container runtimes start it (`criu swrk FD`).
class SwrkCommand : public Command {
 public:
  explicit SwrkCommand(CLI::App& root)
      : Command(root.add_subcommand("swrk",
                                    "serve CRIU's RPC on a connected SOCK_SEQPACKET socket, as "
                                    "container runtimes start criu")) {
    app_->add_option("fd", fd_, "the socket's fd")->required()->type_name("FD");
  }
  int Run() override {
    int type = 0;
    socklen_t len = sizeof type;
    if (getsockopt(fd_, SOL_SOCKET, SO_TYPE, &type, &len) < 0 || type != SOCK_SEQPACKET)
      return Usage("swrk " + std::to_string(fd_) + ": not a SOCK_SEQPACKET socket");
    return crl::ServeRpc(fd_);
  }

 private:
  int fd_ = -1;
};

class ShowCommand : public Command {
 public:
  explicit ShowCommand(CLI::App& root)
      : Command(root.add_subcommand("show", "print image files as JSON")) {
    app_->add_option("files", files_,
                     "image files (with --archive: names in it; default: all but page data)");
    app_->add_option("--archive", archive_, "read the files inside this archive of a dump")
        ->type_name("FILE");
  }
  int Run() override {
    if (archive_.empty() && files_.empty()) return Usage("show needs image files or --archive");
    std::vector<std::string> paths = files_;
    std::optional<crl::TempImageDir> tmp;
    if (!archive_.empty()) {
      auto dir = crl::TempImageDir::Create();
      if (!dir.ok()) return Fail(dir.error());
      tmp.emplace(std::move(*dir));
      std::set<std::string> names(files_.begin(), files_.end());
      auto want = [&](const std::string& n) {
        return names.empty() ? n.rfind("pages-", 0) != 0 : names.count(n) > 0;
      };
      if (crl::Status st = crl::UnpackImageArchive(archive_, tmp->path(), want); !st.ok())
        return Fail(st.error());
      paths.clear();
      for (const auto& e : std::filesystem::directory_iterator(tmp->path()))
        paths.push_back(e.path().string());
      std::sort(paths.begin(), paths.end());
      for (const std::string& n : names)
        if (!std::count(paths.begin(), paths.end(), tmp->path() + "/" + n))
          return Usage(archive_ + " has no " + n);
    }
    for (const auto& f : paths) {
      auto json = crl::ImageToJson(f);
      if (!json.ok()) return Fail(json.error());
      fputs(json->c_str(), stdout);
    }
    return 0;
  }

 private:
  std::vector<std::string> files_;
  std::string archive_;
};

// Options every command takes: the log and, for tests, kernel features to
// pretend absent.
struct GlobalOptions {
  int verbosity = 0;
  std::string log_file, work_dir;
  std::vector<std::string> disable;

  void Add(CLI::App& app) {
    app.add_flag("-v,--verbose", verbosity, "more log output; repeat for more (-vv: debug)");
    app.add_option("-o,--log-file", log_file,
                   "write the log to FILE (errors also go to stderr); a relative FILE is in the "
                   "work directory, as CRIU's")
        ->type_name("FILE");
    app.add_option("-W,--work-dir", work_dir,
                   "the work directory, where a relative --log-file goes (default: -D), as "
                   "CRIU's")
        ->type_name("DIR");
    app.add_option("--disable-kernel-feature", disable,
                   "take the fallback path as if the kernel lacked FEATURE (" +
                       crl::DisableableFeatures() + "); for testing")
        ->group("Testing");
  }
  bool Apply(const Command& cmd) const {
    crl::SetLogLevel(1 + verbosity);
    std::string log = log_file;
    std::string base = work_dir.empty() ? cmd.images_dir() : work_dir;
    if (!log.empty() && log[0] != '/' && !base.empty()) {
      // A dump's -D may not exist yet: the dump makes it anyway.
      if (work_dir.empty() && cmd.makes_images_dir()) mkdir(base.c_str(), 0755);
      log = base + "/" + log;
    }
    if (!log.empty() && !crl::SetLogFile(log.c_str())) {
      fprintf(stderr, "criu-lite: cannot open log file %s: %m\n", log.c_str());
      return false;
    }
    for (const auto& f : disable) {
      if (!crl::DisableFeature(f)) {
        Usage("unknown kernel feature '" + f + "' (" + crl::DisableableFeatures() + ")");
        return false;
      }
      crl::Log(crl::LogLevel::kInfo, "taking the fallback path for %s", f.c_str());
    }
    return true;
  }
};

}  // namespace

int main(int argc, char** argv) {
  // First: a stop signal from here on ends criu-lite through its clean-up.
  crl::CatchStopSignals();
  // A record that does not parse is reported once, as an error naming the
  // file; protobuf's own log lines would only add noise to stderr.
  google::protobuf::SetLogHandler(nullptr);
  CLI::App app{"criu-lite: checkpoint and restore Linux processes"};
  app.name("criu-lite");
  app.require_subcommand(1);
  app.fallthrough();
  app.set_version_flag("-V,--version", CRIU_LITE_VERSION);
  GlobalOptions global;
  global.Add(app);
  std::vector<std::unique_ptr<Command>> commands;
  commands.push_back(std::make_unique<DumpCommand>(app, false));
  commands.push_back(std::make_unique<DumpCommand>(app, true));
  commands.push_back(std::make_unique<PageServerCommand>(app));
  commands.push_back(std::make_unique<MigrateCommand>(app));
  commands.push_back(std::make_unique<RestoreCommand>(app));
  commands.push_back(std::make_unique<CheckCommand>(app));
  commands.push_back(std::make_unique<ShowCommand>(app));
  commands.push_back(std::make_unique<SwrkCommand>(app));
  commands.push_back(std::make_unique<PageHolderCommand>(app));
  // CRIU's -vN (N: 0 none .. 4 debug; 2, warnings, its default) as -v's
  // count here (0: warnings, 1: info, 2: debug).
  std::vector<std::string> args;  // CLI11 takes them last first
  bool after_dashes = false;
  for (int i = argc - 1; i >= 1; i--) args.push_back(argv[i]);
  for (auto it = args.rbegin(); it != args.rend(); ++it) {
    after_dashes |= *it == "--";
    if (!after_dashes && it->size() == 3 && it->compare(0, 2, "-v") == 0 && isdigit((*it)[2])) {
      int n = (*it)[2] - '0';
      *it = n <= 2 ? "-v0" : n == 3 ? "-v" : "-vv";
    }
  }
  std::erase(args, std::string("-v0"));
  try {
    app.parse(args);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  }
  for (const auto& c : commands)
    if (c->chosen()) return global.Apply(*c) ? c->Run() : 1;
  return 1;
}
