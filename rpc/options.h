// CRIU's RPC options (rpc/criu_rpc.proto's Options) as criu-lite's dump and
// restore options: each option a runtime sends is honoured, or the request
// is refused with a message naming it. Pure functions over the message: the
// client's fds come in through a resolver, so that tests need no client.
#pragma once

#include <sys/types.h>

#include <functional>
#include <string>

#include "base/result.h"
#include "dump/dump.h"
#include "restore/restore.h"
#include "rpc/criu_rpc.pb.h"

namespace crl {

// What a request asks of the service itself, beside the dump or restore.
struct RpcSession {
  std::string images_dir;
  // The work directory (work_dir_fd, else the images directory, as CRIU):
  // the log and CRIU's stats files (stats-dump, stats-restore) go there.
  std::string work_dir;
  // Where the log goes (the work directory, else the images directory, as
  // CRIU); "" for no log file.
  std::string log_file;
  int log_level = 1;  // criu-lite's (SetLogLevel), from CRIU's 0..4
  bool log_to_stderr = false;
  bool notify = false;  // notify_scripts: tell the client each action point
};

// The client's fd FD as a directory path here (WHAT names it for errors).
using PeerDirResolver = std::function<Result<std::string>(int fd, const char* what)>;

Result<RpcSession> SessionFromRpc(const rpc::Options& o, const PeerDirResolver& dir_of);

// Options a request of this kind cannot honour, or fields this file does
// not know (a newer CRIU's), refused by name or number.
Status RefuseUnsupportedRpc(const rpc::Options& o, rpc::RequestType type);

Result<DumpOptions> DumpOptionsFromRpc(const rpc::Options& o, const std::string& images_dir,
                                       rpc::RequestType type);
Result<RestoreOptions> RestoreOptionsFromRpc(const rpc::Options& o, const std::string& images_dir);

}  // namespace crl
