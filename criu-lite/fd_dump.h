// Recording the tree's open files. Every fd is either recorded so that
// restore can reopen it, or the dump fails naming the fd and its kind: never
// a silent drop.
#pragma once

#include <sys/types.h>

#include <vector>

#include "images/criu_lite.pb.h"
#include "kernel/result.h"

namespace crl {

// One process's fds as /proc shows them (kinds resolved tree-wide later).
Status DumpFds(pid_t pid, img::Fds* fds);

struct ProcessFds {
  pid_t pid;
  img::Fds* fds;
};

// Tree-wide: decides what each fd becomes (a pipe whose both ends are in the
// tree is a PIPE; one whose other end is outside is restore's stdio with
// --shell-job, an error otherwise...), finds fds that share one open file
// description (kcmp), and captures data in flight in pipes and sockets
// without consuming it.
// Saves a memfd's contents once (ACCESS_PATH opens it: /proc/PID/fd/N or
// /proc/PID/map_files/RANGE).
Status SaveMemfd(const std::string& access_path, const std::string& link, uint64_t ino,
                 img::Shared* shared);

Status ResolveTreeFds(const std::vector<ProcessFds>& procs, bool shell_job, img::Shared* shared);

}  // namespace crl
