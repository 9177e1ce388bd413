// Leveled logging to stderr or a log file (-v, -o).
#pragma once

namespace crl {

enum class LogLevel { kError = 0, kWarn = 1, kInfo = 2, kDebug = 3 };

void SetLogLevel(int level);
// Sends log lines to FILE (appending); errors still go to stderr too.
bool SetLogFile(const char* path);
// Whether errors also go to stderr while there is a log file (yes by
// default; not where stderr is someone else's, as a restored container's).
void SetErrorsToStderr(bool on);
// The log file's descriptor, or -1 (a daemon keeps it open, closing the rest).
int LogFileFd();
bool LogEnabled(LogLevel level);
void Log(LogLevel level, const char* fmt, ...) __attribute__((format(printf, 2, 3)));

}  // namespace crl

#define LOG_ERROR(...) ::crl::Log(::crl::LogLevel::kError, __VA_ARGS__)
#define LOG_WARN(...) ::crl::Log(::crl::LogLevel::kWarn, __VA_ARGS__)
#define LOG_INFO(...) ::crl::Log(::crl::LogLevel::kInfo, __VA_ARGS__)
#define LOG_DEBUG(...)                                  \
  do {                                                  \
    if (::crl::LogEnabled(::crl::LogLevel::kDebug))     \
      ::crl::Log(::crl::LogLevel::kDebug, __VA_ARGS__); \
  } while (0)
