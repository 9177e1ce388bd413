// `criu-lite swrk FD`: CRIU's RPC service, as container runtimes (runc,
// crun, Podman, CRI-O, containerd) start `criu swrk FD` and drive it. FD is
// a connected SOCK_SEQPACKET socket; each packet is one Request, each answer
// one Response (rpc/criu_rpc.proto). The client's fds (images_dir_fd,
// work_dir_fd) are opened through /proc/PEER/fd/N, the peer being the
// socket's (SO_PEERCRED); inherit_fd's fds are this process's own.
//
// One request is served (DUMP, RESTORE, CHECK, VERSION, FEATURE_CHECK), then
// more while the client sets keep_open; a PRE_DUMP is followed by more
// PRE_DUMPs or the final DUMP on the same socket, as CRIU's.
#pragma once

namespace crl {

// The exit status of `criu-lite swrk`: 0 once the last request succeeded.
int ServeRpc(int fd);

}  // namespace crl
