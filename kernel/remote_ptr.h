// An address in another process's address space. Its own type so that it can
// never be dereferenced here by mistake (rr's remote_ptr).
#pragma once

#include <cstdint>

namespace crl {

class RemotePtr {
 public:
  constexpr RemotePtr() = default;
  constexpr explicit RemotePtr(uint64_t addr) : addr_(addr) {}
  constexpr uint64_t addr() const { return addr_; }
  constexpr RemotePtr operator+(uint64_t off) const { return RemotePtr(addr_ + off); }
  constexpr bool null() const { return addr_ == 0; }
  friend constexpr bool operator==(RemotePtr a, RemotePtr b) { return a.addr_ == b.addr_; }

 private:
  uint64_t addr_ = 0;
};

}  // namespace crl
