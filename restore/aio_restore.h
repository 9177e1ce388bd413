// AIO contexts (io_setup) made again in a restored task: see
// kernel/aio_ring.h for the ring, dump/aio_dump.h for what a dump carries.
#pragma once

#include "base/result.h"
#include "images/criu_lite.pb.h"
#include "restore/puppet.h"

namespace crl {

// Each of MM's contexts, in the puppet P whose memory is in place: the same
// size at the same address (the context's name in the process), with the
// same events waiting between the same head and tail.
Status RestoreAioRings(Puppet& p, const img::MmState& mm);

}  // namespace crl
