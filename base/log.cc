#include "base/log.h"

#include <sys/time.h>

#include <cstdarg>
#include <cstdio>
#include <ctime>

namespace crl {
namespace {
int g_level = static_cast<int>(LogLevel::kWarn);
FILE* g_file = nullptr;
bool g_errors_to_stderr = true;
timespec g_start = [] {
  timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return t;
}();
}  // namespace

void SetLogLevel(int level) { g_level = level; }

bool SetLogFile(const char* path) {
  FILE* f = fopen(path, "ae");
  if (!f) return false;
  setvbuf(f, nullptr, _IOLBF, 0);
  g_file = f;
  return true;
}

void SetErrorsToStderr(bool on) { g_errors_to_stderr = on; }

int LogFileFd() { return g_file ? fileno(g_file) : -1; }

bool LogEnabled(LogLevel level) { return static_cast<int>(level) <= g_level; }

void Log(LogLevel level, const char* fmt, ...) {
  bool to_file = g_file && (static_cast<int>(level) <= g_level || level == LogLevel::kError);
  bool to_stderr = (!g_file && static_cast<int>(level) <= g_level) ||
                   (level == LogLevel::kError && (!g_file || g_errors_to_stderr));
  if (!to_file && !to_stderr) return;
  char msg[4096];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  static const char* kNames[] = {"Error", "Warn", "Info", "Debug"};
  if (to_file) {
    timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    double s = (t.tv_sec - g_start.tv_sec) + (t.tv_nsec - g_start.tv_nsec) / 1e9;
    fprintf(g_file, "(%9.6f) %s: %s\n", s, kNames[static_cast<int>(level)], msg);
  }
  if (to_stderr) {
    if (level == LogLevel::kError)
      fprintf(stderr, "criu-lite: %s\n", msg);
    else
      fprintf(stderr, "criu-lite: %s: %s\n", kNames[static_cast<int>(level)], msg);
  }
}

}  // namespace crl
