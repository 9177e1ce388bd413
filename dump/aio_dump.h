// AIO contexts (io_setup): each carried with the completions its process
// has not reaped yet. Requests still in flight cannot be carried (nothing
// outside the kernel can read them back): the dump counts them, waits a
// moment for them to complete with the tree frozen, and refuses the
// process if some never do.
#pragma once

#include <sys/types.h>

#include <vector>

#include "base/result.h"
#include "dump/seized_tree.h"
#include "images/criu_lite.pb.h"
#include "kernel/vma_list.h"

namespace crl {

// The "[aio]" mappings of VMAS are rings; each becomes one of MM's
// aio_rings. TASK is frozen, its context's ring is left as it was.
Status CollectAioRings(const SeizedProcess& task, const std::vector<VmaInfo>& vmas,
                       img::MmState* mm);

bool IsAioRing(const VmaInfo& v);

}  // namespace crl
