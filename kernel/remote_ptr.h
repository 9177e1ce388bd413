// An address in another process's address space, of a T there. Its own type
// so that it can never be dereferenced here by mistake, and typed so that
// what is pushed, read back or handed to a remote syscall is what was meant
// (rr's remote_ptr). remote_ptr<void> (RemotePtr) is an address of bytes;
// any typed pointer converts to it.
#pragma once

#include <cstdint>
#include <type_traits>

namespace crl {

template <typename T>
class remote_ptr {
 public:
  constexpr remote_ptr() = default;
  constexpr explicit remote_ptr(uint64_t addr) : addr_(addr) {}
  template <typename U>
  requires(std::is_void_v<T> && !std::is_void_v<U>) constexpr remote_ptr(remote_ptr<U> p)
      : addr_(p.addr()) {}

  constexpr uint64_t addr() const { return addr_; }
  constexpr bool null() const { return addr_ == 0; }
  // N bytes on for remote_ptr<void>, N elements on for a typed pointer.
  constexpr remote_ptr operator+(uint64_t n) const { return remote_ptr(addr_ + n * kStride); }
  // The same address, seen as holding a U.
  template <typename U>
  constexpr remote_ptr<U> As() const {
    return remote_ptr<U>(addr_);
  }
  friend constexpr bool operator==(remote_ptr a, remote_ptr b) { return a.addr_ == b.addr_; }

 private:
  static constexpr uint64_t kStride = [] {
    if constexpr (std::is_void_v<T>)
      return 1;
    else
      return sizeof(T);
  }();
  uint64_t addr_ = 0;
};

using RemotePtr = remote_ptr<void>;

// One argument of a remote syscall: an integer, or a remote pointer (its
// address). Local pointers do not convert: they mean nothing in the task.
class SyscallArg {
 public:
  template <typename I>
  requires(std::is_integral_v<I> || std::is_enum_v<I>) constexpr SyscallArg(I v)
      : v_(static_cast<uint64_t>(v)) {}
  template <typename T>
  constexpr SyscallArg(remote_ptr<T> p) : v_(p.addr()) {}
  constexpr uint64_t value() const { return v_; }

 private:
  uint64_t v_;
};

}  // namespace crl
