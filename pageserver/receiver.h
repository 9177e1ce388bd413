// `criu-lite page-server`: receives image directories over TCP and writes
// them exactly as a local dump would, so that restore does not care where
// the pages came from; with --restore it also restores them on request.
#pragma once

#include <string>
#include <vector>

#include "base/result.h"
#include "pageserver/channel.h"

namespace crl {

struct PageServerOptions {
  std::string address;  // default: 127.0.0.1 without TLS, every address with it
  int port = 0;
  std::string images_dir;
  // --archive SUFFIX (.tar, .tar.zst, .tar.gz): each image directory sent
  // is written as the archive DIR/NAME.SUFFIX instead (not with restore).
  std::string archive;
  bool daemon = false;      // keep serving after a client is done
  bool restore = false;     // accept RESTORE requests (the migration destination)
  int timeout = 30;         // seconds without progress before a peer counts as stalled
  std::string status_file;  // created once listening (for scripts and tests)
  // How a restore places pages: restore's --pages (read, writev, lazy),
  // checked by the command line. The page server runs `criu-lite restore`;
  // it does not link restore.
  std::string pages = "lazy";
  std::vector<std::string> action_scripts;  // the restore's --action-script
  std::string manage_cgroups;               // the restore's --manage-cgroups, if given
  std::vector<std::string> cgroup_roots;    // its --cgroup-root, each
  std::string root;                         // its --root (a container's), if given
  std::vector<std::string> externals;       // its --external mnt[KEY]:PATH, each
  TlsOptions tls;
  // --restore without TLS: the network is trusted (a test host, a VM link).
  bool allow_unauthenticated_restore = false;
};

Status RunPageServer(const PageServerOptions& opts);

}  // namespace crl
