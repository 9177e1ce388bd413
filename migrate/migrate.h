// `criu-lite migrate`: live migration of a tree to a page server started
// with --restore on the destination (see pageserver/PROTOCOL.md).
#pragma once

#include <sys/types.h>

#include <map>
#include <string>
#include <vector>

#include "base/result.h"
#include "pageserver/channel.h"

namespace crl {

struct MigrateOptions {
  pid_t pid = 0;
  std::string host;
  int port = 0;
  // Stop rules for the pre-copy passes (in the style of Xen and P.Haul): stop
  // when a pass wrote fewer than min_pages pages, when a pass wrote no fewer
  // than the one before (the dirty set does not converge), when the last
  // delta would go over in less than downtime_target_ms at the bandwidth
  // seen, or after max_iters passes (0: no pre-copy, stop-and-copy).
  int max_iters = 8;
  int downtime_target_ms = 300;
  uint64_t min_pages = 1024;
  int timeout = 30;
  std::string stats_file;  // JSON
  std::string work_dir;    // local state between passes; a temporary one if empty
  // --tcp-established, --tcp-close: as dump's, for the final pass. The
  // source's network lock is lifted once its tree is dead (its connections
  // die silently, in repair mode): an address the connections use must be
  // the destination's by then.
  bool tcp_established = false;
  bool tcp_close = false;
  std::vector<std::string> action_scripts;  // the final pass's (dump's --action-script)
  std::string freeze_cgroup;                // every pass's (dump's --freeze-cgroup)
  std::map<std::string, std::string> ext_mounts;  // the final pass's --external mnt[...]
  bool empty_net = false;                         // the final pass's --empty-ns net
  TlsOptions tls;
};

Status Migrate(const MigrateOptions& opts);

}  // namespace crl
