#include "images/registers_image.h"

namespace crl {

img::GpRegs RegsToImage(const Registers& r) {
  img::GpRegs g;
#define X(f) g.set_##f(r.f);
  X(r15)
  X(r14)
  X(r13)
  X(r12)
  X(rbp)
  X(rbx)
  X(r11) X(r10) X(r9) X(r8) X(rax) X(rcx) X(rdx) X(rsi) X(rdi) X(orig_rax) X(rip) X(cs) X(eflags)
      X(rsp) X(ss) X(fs_base) X(gs_base) X(ds) X(es) X(fs) X(gs)
#undef X
          return g;
}

Registers RegsFromImage(const img::GpRegs& g) {
  Registers r{};
#define X(f) r.f = g.f();
  X(r15)
  X(r14)
  X(r13)
  X(r12)
  X(rbp)
  X(rbx)
  X(r11) X(r10) X(r9) X(r8) X(rax) X(rcx) X(rdx) X(rsi) X(rdi) X(orig_rax) X(rip) X(cs) X(eflags)
      X(rsp) X(ss) X(fs_base) X(gs_base) X(ds) X(es) X(fs) X(gs)
#undef X
          return r;
}
static_assert(sizeof(Registers) == 27 * 8, "GpRegs mirrors all 27 fields of user_regs_struct");

}  // namespace crl
