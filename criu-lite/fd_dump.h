// Recording a task's open files. Every fd is either recorded so that restore
// can reopen it, or the dump fails naming the fd and its kind: never a
// silent drop.
#pragma once

#include <sys/types.h>

#include "images/criu_lite.pb.h"
#include "kernel/result.h"

namespace crl {

Status DumpFds(pid_t pid, bool shell_job, img::Fds* fds);

}  // namespace crl
