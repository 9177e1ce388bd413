// Durations between instants of the monotonic clock, in the units criu-lite's
// figures use (stats records in microseconds, printed figures in seconds).
#pragma once

#include <chrono>
#include <cstdint>

namespace crl {

using Clock = std::chrono::steady_clock;

inline uint64_t UsecBetween(Clock::time_point a, Clock::time_point b) {
  return std::chrono::duration_cast<std::chrono::microseconds>(b - a).count();
}
inline uint64_t NsecBetween(Clock::time_point a, Clock::time_point b) {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(b - a).count();
}
inline double SecsBetween(Clock::time_point a, Clock::time_point b) {
  return std::chrono::duration<double>(b - a).count();
}

}  // namespace crl
