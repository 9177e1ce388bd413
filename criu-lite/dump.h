// `criu-lite dump`: freeze a process, record it into an image directory,
// then kill it or (--leave-running) let it go on.
#pragma once

#include <sys/types.h>

#include <string>

#include "kernel/result.h"

namespace crl {

struct DumpOptions {
  pid_t pid = 0;
  std::string images_dir;
  bool leave_running = false;
  bool shell_job = false;
  int zstd_level = 0;  // 0: raw pages
};

Status Dump(const DumpOptions& opts);

}  // namespace crl
