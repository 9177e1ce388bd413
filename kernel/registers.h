// A thread's general-purpose registers, as ptrace and signal frames hold
// them: a type only, so that code that stores registers (images/) needs
// nothing of ptrace.
#pragma once

#include <sys/user.h>

namespace crl {

using Registers = user_regs_struct;

}  // namespace crl
