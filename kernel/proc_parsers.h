// Parsers for /proc text: pure functions over the file's contents, so every
// one of them is unit-tested with inline fixtures and no live process.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "base/result.h"

namespace crl {

// One line of /proc/PID/maps.
struct MapsEntry {
  uint64_t start = 0;
  uint64_t end = 0;
  bool read = false, write = false, exec = false, shared = false;
  uint64_t offset = 0;
  uint32_t dev_major = 0, dev_minor = 0;
  uint64_t inode = 0;
  std::string path;  // "" for anonymous; "[heap]", "[stack]", "[vdso]"... or a file
};
Result<std::vector<MapsEntry>> ParseProcMaps(std::string_view text);

// The VmFlags line of each /proc/PID/smaps entry, keyed by the VMA start.
struct SmapsFlags {
  uint64_t start = 0;
  // Two-letter codes as the kernel prints them, "rd wr mr mw me ac": one
  // string, not a vector of them (a process may have 65,000 mappings).
  std::string flags;
};
Result<std::vector<SmapsFlags>> ParseSmapsVmFlags(std::string_view text);
// The same over whole lines of smaps given piece by piece, appending to OUT.
Status ParseSmapsVmFlagsInto(std::string_view lines, std::vector<SmapsFlags>* out);
// Whether space-separated CODES holds CODE.
bool HasFlagCode(std::string_view codes, std::string_view code);

// /proc/PID/stat, the fields criu-lite uses.
struct ProcStat {
  pid_t pid = 0;
  std::string comm;
  char state = '?';
  pid_t ppid = 0, pgrp = 0, session = 0;
  int tty_nr = 0;      // the controlling terminal's device (proc(5)'s encoding), 0: none
  pid_t tpgid = -1;    // its foreground process group
  uint64_t flags = 0;  // PF_*
  int64_t num_threads = 0;
  uint64_t start_time = 0;
  uint64_t start_code = 0, end_code = 0, start_stack = 0;
  uint64_t start_data = 0, end_data = 0, start_brk = 0;
  uint64_t arg_start = 0, arg_end = 0, env_start = 0, env_end = 0;
  int exit_code = 0;
};
Result<ProcStat> ParseProcStat(std::string_view text);
constexpr uint64_t kPfKthread = 0x00200000;  // PF_KTHREAD

// /proc/PID/status, the fields criu-lite uses.
struct ProcStatus {
  uint32_t umask = 022;
  uint64_t sig_blocked = 0;         // SigBlk
  uint64_t sig_pending = 0;         // SigPnd (this thread)
  uint64_t sig_shared_pending = 0;  // ShdPnd
  uint64_t sig_ignored = 0;         // SigIgn
  uint64_t sig_caught = 0;          // SigCgt
  pid_t tgid = 0;
  std::vector<pid_t> nspid;           // NSpid, outermost namespace first
  std::vector<pid_t> nspgid, nssid;   // NSpgid, NSsid: its group and session, the same way
  uint32_t uid[4] = {}, gid[4] = {};  // real, effective, saved, fs
  std::vector<uint32_t> groups;       // supplementary
  uint64_t cap_inh = 0, cap_prm = 0, cap_eff = 0, cap_bnd = 0, cap_amb = 0;
  bool no_new_privs = false;
  int seccomp = 0;  // 0 off, 1 strict, 2 filter
  int seccomp_filters = 0;
};
Result<ProcStatus> ParseProcStatus(std::string_view text);

// /proc/PID/limits: every resource's soft and hard limit, in RLIMIT_* order.
// Readable for any process, where prlimit() on another user's process needs
// CAP_SYS_RESOURCE.
struct ProcLimit {
  int resource = 0;
  uint64_t cur = 0, max = 0;  // RLIM_INFINITY for "unlimited"
};
Result<std::vector<ProcLimit>> ParseProcLimits(std::string_view text);

// /proc/PID/timers: the POSIX timers of a process (timer_create).
struct ProcTimer {
  int id = 0;
  int signo = 0;
  uint64_t sival = 0;    // sigev_value, as a pointer
  int notify = 0;        // SIGEV_SIGNAL, SIGEV_NONE, SIGEV_THREAD, | SIGEV_THREAD_ID
  pid_t notify_pid = 0;  // the process, or with SIGEV_THREAD_ID the thread
  int clock = 0;
};
Result<std::vector<ProcTimer>> ParseProcTimers(std::string_view text);

// /proc/PID/fdinfo/FD.
struct FdInfo {
  uint64_t pos = 0;
  uint32_t flags = 0;  // open flags as the kernel holds them (octal in the file)
  uint32_t mnt_id = 0;
};
Result<FdInfo> ParseFdInfo(std::string_view text);

// /proc/PID/auxv: pairs of native words.
std::vector<uint64_t> ParseAuxv(std::string_view bytes);

// "pipe:[1234]", "socket:[5]", "anon_inode:[eventfd]"... from readlink of an fd.
std::optional<std::string> FdLinkKind(std::string_view link);

// S cut at every SEP (an empty S: one empty piece).
std::vector<std::string> Split(std::string_view s, char sep);

// Reads a whole file (also /proc files whose st_size is 0).
Result<std::string> ReadFileToString(const std::string& path);
// One write of TEXT to an existing kernel file (/proc, cgroupfs).
Status WriteKernelFile(const std::string& path, const std::string& text);

// The numbered entries of a /proc directory (fd/, task/), in order.
Result<std::vector<int>> ListNumbered(const std::string& dir);

}  // namespace crl
