// Registers to and from their image record, field by field.
#pragma once

#include "images/criu_lite.pb.h"
#include "kernel/registers.h"

namespace crl {

img::GpRegs RegsToImage(const Registers& r);
Registers RegsFromImage(const img::GpRegs& g);

}  // namespace crl
