// criu-lite: checkpoint/restore for Linux processes. The command line follows
// CRIU's where the same thing is meant, so that scripts carry over.
#include <google/protobuf/stubs/logging.h>

#include <CLI/CLI.hpp>
#include <cstdio>
#include <iostream>

#include "criu-lite/dump.h"
#include "criu-lite/migrate.h"
#include "images/image_file.h"
#include "kernel/interrupt.h"
#include "kernel/kernel_probe.h"
#include "kernel/log.h"
#include "pageserver/receiver.h"
#include "pageserver/sender.h"
#include "restore/restore.h"

namespace {

int Fail(const crl::Error& e) {
  crl::Log(crl::LogLevel::kError, "%s", e.message.c_str());
  return 1;
}

crl::PagePlacement ParsePlacement(const std::string& s) {
  if (s == "writev") return crl::PagePlacement::kWritev;
  if (s == "lazy") return crl::PagePlacement::kLazy;
  return crl::PagePlacement::kRead;
}

int RunCheck() {
  auto rows = crl::CheckTable();
  printf("%-28s %-18s %-5s %s\n", "need", "interface", "here", "criu-lite uses");
  for (const auto& r : rows)
    printf("%-28s %-18s %-5s %s\n", r.need.c_str(), r.interface.c_str(), r.status.c_str(),
           r.path.c_str());
  if (!crl::Kernel().prctl_set_mm_map) {
    fprintf(stderr, "criu-lite: this kernel cannot restore (no PR_SET_MM_MAP)\n");
    return 1;
  }
  return 0;
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
  int verbosity = 0;
  std::string log_file;
  app.add_flag("-v,--verbose", verbosity, "more log output; repeat for more (-vv: debug)");
  app.add_option("-o,--log-file", log_file, "write the log to FILE (errors also go to stderr)")
      ->type_name("FILE");
  std::vector<std::string> disable;
  app.add_option("--disable-kernel-feature", disable,
                 "take the fallback path as if the kernel lacked FEATURE "
                 "(pagemap-scan, procmap-query, clone3); for testing")
      ->group("Testing");

  crl::DumpOptions dopts;
  bool compress = false;
  auto* dump = app.add_subcommand("dump", "checkpoint a running process into an image directory");
  dump->add_option("-t,--tree", dopts.pid, "PID of the process to dump")
      ->required()
      ->type_name("PID");
  dump->add_option("-D,--images-dir", dopts.images_dir, "directory to write the images to")
      ->required()
      ->type_name("DIR");
  dump->add_flag("-R,--leave-running", dopts.leave_running,
                 "let the process run on after the dump (default: kill it)");
  dump->add_flag("-j,--shell-job", dopts.shell_job,
                 "the process's stdin/stdout/stderr are a terminal or pipe that restore provides");
  dump->add_flag("--compress", compress, "compress pages with zstd");
  dump->add_option("--compress-level", dopts.zstd_level, "zstd level (implies --compress)")
      ->check(CLI::Range(1, 19));

  dump->add_option("--prev-images-dir", dopts.prev_images_dir,
                   "the previous pass of an iterative dump (relative to -D, as CRIU): save only "
                   "the pages written since")
      ->type_name("DIR");
  dump->add_flag("--track-mem", dopts.track_mem,
                 "with --prev-images-dir: use the write tracking pre-dump armed");

  crl::DumpOptions popts;
  popts.pre_dump = true;
  popts.leave_running = true;
  auto* pre = app.add_subcommand(
      "pre-dump", "copy a tree's memory while it runs and track what it writes next");
  pre->add_option("-t,--tree", popts.pid, "PID of the tree's root")->required()->type_name("PID");
  pre->add_option("-D,--images-dir", popts.images_dir, "directory to write the pages to")
      ->required()
      ->type_name("DIR");
  pre->add_option("--prev-images-dir", popts.prev_images_dir,
                  "the previous pre-dump (relative to -D): copy only what was written since")
      ->type_name("DIR");
  bool pre_track_mem = false;
  pre->add_flag("--track-mem", pre_track_mem,
                "accepted for CRIU compatibility: pre-dump always tracks");

  // --page-server for dump and pre-dump, as CRIU's.
  struct PageServerTarget {
    bool on = false;
    std::string address;
    int port = 0;
    crl::TlsOptions tls;
  } dps, pps;
  for (auto [cmd, t] : {std::make_pair(dump, &dps), std::make_pair(pre, &pps)}) {
    cmd->add_flag("--page-server", t->on,
                  "send the images to a page server instead of -D "
                  "(-D keeps the small files the next pass needs)");
    cmd->add_option("--address", t->address, "the page server's address")->type_name("ADDR");
    cmd->add_option("--port", t->port, "the page server's port")->type_name("PORT");
    AddTlsOptions(cmd, &t->tls);
  }

  crl::PageServerOptions sopts;
  std::string spages = "lazy";
  auto* server = app.add_subcommand("page-server", "receive images over TCP (and restore them)");
  server->add_option("--port", sopts.port, "TCP port to listen on")->required()->type_name("PORT");
  server
      ->add_option("--address", sopts.address,
                   "address to listen on (default: 127.0.0.1 without --tls, all with it)")
      ->type_name("ADDR");
  AddTlsOptions(server, &sopts.tls);
  server->add_flag("--allow-unauthenticated-restore", sopts.allow_unauthenticated_restore,
                   "with --restore but no --tls: restore what any peer sends (a network you "
                   "trust only)");
  server->add_option("-D,--images-dir", sopts.images_dir, "where image directories go")
      ->required()
      ->type_name("DIR");
  server->add_flag("--daemon", sopts.daemon, "keep serving after a client is done");
  server->add_flag("--restore", sopts.restore,
                   "restore on request: the destination of `criu-lite migrate`");
  server->add_option("--timeout", sopts.timeout, "seconds without progress before giving up");
  server->add_option("--status-file", sopts.status_file, "create FILE once listening")
      ->type_name("FILE");
  server
      ->add_option("--pages", spages,
                   "page placement for --restore (read, writev, lazy; default lazy: the "
                   "shortest freeze)")
      ->check(CLI::IsMember({"read", "writev", "lazy"}));

  crl::MigrateOptions mopts;
  std::string to;
  auto* migrate = app.add_subcommand("migrate", "move a running tree to another host");
  migrate->add_option("-t,--tree", mopts.pid, "PID of the tree's root")
      ->required()
      ->type_name("PID");
  migrate->add_option("--to", to, "HOST:PORT of `criu-lite page-server --restore`")->required();
  migrate->add_option("--max-iters", mopts.max_iters,
                      "pre-copy passes at most (0: stop-and-copy; default 8)");
  migrate->add_option("--downtime-target", mopts.downtime_target_ms,
                      "stop pre-copy once the last delta would take less (ms; default 300)");
  migrate->add_option("--min-pages", mopts.min_pages,
                      "stop pre-copy once a pass writes fewer pages (default 1024)");
  migrate->add_option("--stats", mopts.stats_file, "write the figures as JSON to FILE")
      ->type_name("FILE");
  migrate->add_option("--timeout", mopts.timeout, "seconds without progress before giving up");
  AddTlsOptions(migrate, &mopts.tls);

  crl::RestoreOptions ropts;
  std::string pages = "read";
  auto* restore = app.add_subcommand("restore", "restore a process from an image directory");
  restore->add_option("-D,--images-dir", ropts.images_dir, "directory holding the images")
      ->required()
      ->type_name("DIR");
  restore->add_flag("-d,--restore-detached", ropts.detached,
                    "return once the process runs (default: wait for it and exit with its status)");
  restore->add_flag("-j,--shell-job", ropts.shell_job,
                    "give the process criu-lite's own stdin/stdout/stderr where it had a "
                    "terminal or pipe");
  restore->add_flag("--restore-sibling", ropts.sibling,
                    "make the restored root a sibling of criu-lite (a child of criu-lite's "
                    "parent), as CRIU's --restore-sibling; returns once it runs");
  restore->add_option("--pidfile", ropts.pidfile, "write the restored process's PID to FILE")
      ->type_name("FILE");
  restore
      ->add_option("--pages", pages,
                   "how pages get into the process: read (it reads them from the page file "
                   "itself: one copy), writev (criu-lite writes them: the baseline) or lazy "
                   "(the tree runs at once; a daemon fills its memory on demand and in the "
                   "background)")
      ->check(CLI::IsMember({"read", "writev", "lazy"}));
  restore
      ->add_option("--lazy-fill-rate", ropts.lazy_fill_mib_s,
                   "with --pages=lazy: place at most this many MiB/s in the background "
                   "(faults are always served at once; default 0: no limit)")
      ->type_name("MIB");

  restore
      ->add_option("--handover-fd", ropts.handover_fd,
                   "a migration's destination: say on FD when the tree is ready and run it "
                   "only after reading 'G' there (the page server passes it)")
      ->type_name("FD")
      ->group("");
  restore->add_option("--handover-timeout", ropts.handover_timeout, "seconds to wait for 'G'")
      ->group("");
  auto* check = app.add_subcommand("check", "show which kernel interfaces criu-lite will use");
  std::vector<std::string> show_files;
  auto* show = app.add_subcommand("show", "print image files as JSON");
  show->add_option("files", show_files, "image files")->required();

  CLI11_PARSE(app, argc, argv);
  crl::SetLogLevel(1 + verbosity);
  if (!log_file.empty() && !crl::SetLogFile(log_file.c_str())) {
    fprintf(stderr, "criu-lite: cannot open log file %s: %m\n", log_file.c_str());
    return 1;
  }
  for (const auto& f : disable) {
    if (!crl::DisableFeature(f)) {
      fprintf(stderr,
              "criu-lite: unknown kernel feature '%s' (pagemap-scan, procmap-query, clone3)\n",
              f.c_str());
      return 1;
    }
    crl::Log(crl::LogLevel::kInfo, "taking the fallback path for %s", f.c_str());
  }

  if (*check) return RunCheck();
  if (*show) {
    for (const auto& f : show_files) {
      auto json = crl::ImageToJson(f);
      if (!json.ok()) return Fail(json.error());
      fputs(json->c_str(), stdout);
    }
    return 0;
  }
  // Runs a dump or pre-dump, through a page server when asked.
  auto run_dump = [&](crl::DumpOptions& o, const PageServerTarget& t) -> int {
    if (!t.on) {
      crl::Status s = crl::Dump(o);
      return s.ok() ? 0 : Fail(s.error());
    }
    if (t.address.empty() || t.port <= 0) {
      fprintf(stderr, "criu-lite: --page-server needs --address and --port\n");
      return 1;
    }
    auto sender = crl::PageServerSender::Connect(t.address, t.port, 30, t.tls);
    if (!sender.ok()) return Fail(sender.error());
    // The server gets the directory under the name -D has here.
    std::string name = o.images_dir;
    while (name.size() > 1 && name.back() == '/') name.pop_back();
    name = name.substr(name.rfind('/') + 1);
    crl::Status s = (*sender)->Open(name);
    crl::LocalImageOutput local(o.images_dir);
    crl::TeeImageOutput tee(&local, sender->get());
    o.output = &tee;
    if (s.ok()) s = crl::Dump(o);
    if (s.ok()) s = (*sender)->Done();
    return s.ok() ? 0 : Fail(s.error());
  };
  if (*server) {
    sopts.pages = spages;
    crl::Status s = crl::RunPageServer(sopts);
    return s.ok() ? 0 : Fail(s.error());
  }
  if (*migrate) {
    size_t colon = to.rfind(':');
    if (colon == std::string::npos) {
      fprintf(stderr, "criu-lite: --to wants HOST:PORT, got '%s'\n", to.c_str());
      return 1;
    }
    mopts.host = to.substr(0, colon);
    mopts.port = atoi(to.c_str() + colon + 1);
    crl::Status s = crl::Migrate(mopts);
    return s.ok() ? 0 : Fail(s.error());
  }
  if (*pre) return run_dump(popts, pps);
  if (*dump) {
    if (compress && dopts.zstd_level == 0) dopts.zstd_level = 1;
    if (dopts.zstd_level && !dopts.prev_images_dir.empty()) {
      fprintf(stderr, "criu-lite: --compress with --prev-images-dir is not supported yet\n");
      return 1;
    }
    return run_dump(dopts, dps);
  }
  if (*restore) {
    ropts.pages = ParsePlacement(pages);
    // Without -d the restored process is criu-lite's child; keep its output
    // ordered with ours.
    fflush(nullptr);
    auto r = crl::Restore(ropts);
    if (!r.ok()) return Fail(r.error());
    return *r;
  }
  return 1;
}
