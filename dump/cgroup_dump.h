// The cgroups of a dumped tree: each cgroup its tasks are in, read where its
// hierarchy is mounted here, with the settings restore writes back under
// --manage-cgroups=props, soft (the cgroups it creates), full and strict.
#pragma once

#include <vector>

#include "base/result.h"
#include "images/criu_lite.pb.h"

namespace crl {

// Each distinct cgroup of CORES' /proc/PID/cgroup lines, but a hierarchy's
// root (which has no settings of its own to carry) and a hierarchy not
// mounted here (its lines are kept; restore says where it lacks it).
Result<std::vector<img::CgroupDir>> RecordCgroups(const std::vector<const img::TaskCore*>& cores);

}  // namespace crl
