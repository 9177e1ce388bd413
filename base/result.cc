#include "base/result.h"

#include <cerrno>
#include <cstdlib>
#include <cstring>

namespace crl {

std::string VFormat(const char* fmt, va_list ap) {
  va_list ap2;
  va_copy(ap2, ap);
  int n = vsnprintf(nullptr, 0, fmt, ap2);
  va_end(ap2);
  std::string s(n > 0 ? n : 0, '\0');
  if (n > 0) vsnprintf(s.data(), n + 1, fmt, ap);
  return s;
}

std::string Format(const char* fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  std::string s = VFormat(fmt, ap);
  va_end(ap);
  return s;
}

Error ErrnoError(const char* fmt, ...) {
  int err = errno;
  va_list ap;
  va_start(ap, fmt);
  std::string s = VFormat(fmt, ap);
  va_end(ap);
  return Error{s + " failed: " + strerror(err)};
}

Error ErrnoError(int err, const char* fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  std::string s = VFormat(fmt, ap);
  va_end(ap);
  return Error{s + " failed: " + strerror(err)};
}

Error MakeError(const char* fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  std::string s = VFormat(fmt, ap);
  va_end(ap);
  return Error{s};
}

Error CodedError(ErrorCode code, const char* fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  std::string s = VFormat(fmt, ap);
  va_end(ap);
  return Error{s, code};
}

void CheckFailed(const char* file, int line, const char* cond, const std::string& msg) {
  fprintf(stderr, "criu-lite: internal error at %s:%d: check '%s' failed: %s\n", file, line, cond,
          msg.c_str());
  abort();
}

}  // namespace crl
