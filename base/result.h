// Result<T>: a value or an error message, for failures the caller can recover
// from or report. (std::expected is C++23; g++ 12 in C++20 mode lacks it.)
#pragma once

#include <cstdarg>
#include <cstdio>
#include <string>
#include <utility>
#include <variant>

namespace crl {

std::string Format(const char* fmt, ...) __attribute__((format(printf, 1, 2)));
std::string VFormat(const char* fmt, va_list ap);

// What kind of failure an Error is, for the few callers that recover from
// one kind and report the others: they branch on this, never on the text.
enum class ErrorCode {
  kFailed,     // anything: report it
  kUntracked,  // a range has no written-page state: copy it whole
  kPidInUse,   // restore: a PID to recreate belongs to another process
};

struct Error {
  std::string message;
  ErrorCode code = ErrorCode::kFailed;
  bool Is(ErrorCode c) const { return code == c; }
};

// "CALL failed: strerror(errno)" with the call described printf-style.
Error ErrnoError(const char* fmt, ...) __attribute__((format(printf, 1, 2)));
Error ErrnoError(int err, const char* fmt, ...) __attribute__((format(printf, 2, 3)));
Error MakeError(const char* fmt, ...) __attribute__((format(printf, 1, 2)));
Error CodedError(ErrorCode code, const char* fmt, ...) __attribute__((format(printf, 2, 3)));

template <typename T>
class [[nodiscard]] Result {
 public:
  Result(T value) : v_(std::move(value)) {}
  Result(Error e) : v_(std::move(e)) {}
  bool ok() const { return v_.index() == 0; }
  explicit operator bool() const { return ok(); }
  T& value() & { return std::get<0>(v_); }
  T&& value() && { return std::get<0>(std::move(v_)); }
  const T& value() const& { return std::get<0>(v_); }
  T& operator*() & { return value(); }
  const T& operator*() const& { return value(); }
  T* operator->() { return &value(); }
  const T* operator->() const { return &value(); }
  const Error& error() const { return std::get<1>(v_); }
  // The value, or DFLT where there is none (for a caller to whom a failure
  // means "nothing", said where it is called).
  T value_or(T dflt) && { return ok() ? std::get<0>(std::move(v_)) : std::move(dflt); }
  // Prefixes the error with context: "restoring fd 3: open(...) failed".
  Result&& Context(const std::string& what) && {
    if (!ok()) std::get<1>(v_).message = what + ": " + std::get<1>(v_).message;
    return std::move(*this);
  }

 private:
  std::variant<T, Error> v_;
};

struct Ok {};
using Status = Result<Ok>;

}  // namespace crl

// Propagates an error to the caller; otherwise yields the value.
#define TRY(expr)                            \
  ({                                         \
    auto _try_r = (expr);                    \
    if (!_try_r.ok()) return _try_r.error(); \
    std::move(_try_r).value();               \
  })

// Fatal invariant check: a bug in criu-lite, not a user error.
#define CRL_CHECK(cond, ...)                                                                \
  do {                                                                                      \
    if (!(cond)) ::crl::CheckFailed(__FILE__, __LINE__, #cond, ::crl::Format(__VA_ARGS__)); \
  } while (0)

namespace crl {
[[noreturn]] void CheckFailed(const char* file, int line, const char* cond, const std::string& msg);
}
