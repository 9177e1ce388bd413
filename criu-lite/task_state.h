// Collecting a stopped task's state: registers, signals, timers, limits,
// credentials, mm fields. What /proc does not show is asked of the task
// itself with remote syscalls.
#pragma once

#include <vector>

#include "criu-lite/seized_tree.h"
#include "images/criu_lite.pb.h"
#include "kernel/result.h"
#include "kernel/vma_list.h"

namespace crl {

Status CollectTaskCore(const SeizedProcess& task, const std::vector<VmaInfo>& vmas,
                       img::TaskCore* core);
Status CollectMmFields(const SeizedProcess& task, const std::vector<VmaInfo>& vmas,
                       img::MmState* mm);

}  // namespace crl
