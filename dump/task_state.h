// Collecting a stopped task's state: registers, signals, timers, limits,
// credentials, mm fields. What /proc does not show is asked of the task
// itself with remote syscalls.
#pragma once

#include <vector>

#include "base/result.h"
#include "dump/dump.h"
#include "dump/seized_tree.h"
#include "images/criu_lite.pb.h"
#include "kernel/remote_ptr.h"
#include "kernel/same_cpu.h"
#include "kernel/vma_list.h"

namespace crl {

// Refuses, before anything runs inside it, a task whose state criu-lite
// cannot carry: other namespaces, seccomp, and what it shares with its
// PARENT by clone() flags short of a thread. Namespaces are compared with
// the parent's, the ROOT's with criu-lite's.
Status CheckTaskCarried(const SeizedProcess& task, pid_t parent, bool root);

// Where remote syscalls run in PID: a `syscall` instruction of its vDSO.
Result<RemotePtr> SyscallSite(pid_t pid, const std::vector<VmaInfo>& vmas);

// The namespaces restore makes again for the task (CheckTaskCarried has
// refused those it cannot): a UTS namespace its PARENT in the tree (0 for
// the root: criu-lite) is not in, with its names.
// The largest System V shared memory segment saved is --ghost-limit; the
// root's mount namespace takes --external mnt[...].
Status CollectNamespaces(pid_t pid, pid_t parent, const DumpOptions& opts, img::TaskCore* core);
// PID's PIDs in the PID namespaces below criu-lite's, and those of its
// threads TIDS, its group and session as it sees them (TreeEntry.ns_*):
// nothing where it is in criu-lite's. Zombies too.
Status CollectPidNamespaces(pid_t pid, const std::vector<pid_t>& tids, img::TreeEntry* e);
// The task's core, and its current break (BRK: asked of it in the same
// remote-syscall window, no /proc file shows it). Each thread is on
// criu-lite's CPU (SAME_CPU) while it is asked.
Status CollectTaskCore(const SeizedProcess& task, const std::vector<VmaInfo>& vmas,
                       SameCpu& same_cpu, img::TaskCore* core, uint64_t* brk);
Status CollectMmFields(const SeizedProcess& task, uint64_t brk, img::MmState* mm);

}  // namespace crl
