// CRIU's --action-script: each script runs at named points of a dump or a
// restore, with CRTOOLS_SCRIPT_ACTION set to the point's name (pre-dump,
// network-lock, post-dump; pre-restore, setup-namespaces (the root's
// namespaces exist, nothing runs yet), post-setup-namespaces, post-restore,
// network-unlock, post-resume), CRTOOLS_IMAGE_DIR to the images and, once
// there is one, CRTOOLS_INIT_PID to the tree's root. A script that fails
// fails the dump or the restore at that point (which then lets go of the
// tree as any failure does). What a caller does there is its own: move a
// service address, change a route, tell an orchestrator.
#pragma once

#include <sys/types.h>

#include <functional>
#include <string>
#include <vector>

#include "base/result.h"

namespace crl {

// The same points told to a program instead (CRIU's RPC notifications): it
// answers once it has done its part; an error fails the dump or restore as a
// failing script does. INIT_PID is the tree's root once there is one, or 0.
using ActionNotifier = std::function<Status(const char* action, pid_t init_pid)>;

class ActionScripts {
 public:
  ActionScripts() = default;
  ActionScripts(std::vector<std::string> scripts, std::string image_dir,
                ActionNotifier notifier = nullptr)
      : scripts_(std::move(scripts)),
        image_dir_(std::move(image_dir)),
        notifier_(std::move(notifier)) {}
  void set_init_pid(pid_t pid) { init_pid_ = pid; }
  // Tells the notifier, then runs every script for ACTION, in order, each
  // to its end.
  Status Run(const char* action) const;

 private:
  std::vector<std::string> scripts_;
  std::string image_dir_;
  ActionNotifier notifier_;
  pid_t init_pid_ = 0;
};

}  // namespace crl
