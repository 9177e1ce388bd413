#include "kernel/proc_parsers.h"

#include <dirent.h>
#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <charconv>
#include <cstring>

#include "base/scoped_fd.h"

namespace crl {
namespace {

std::string_view NextLine(std::string_view& text) {
  size_t nl = text.find('\n');
  std::string_view line = text.substr(0, nl);
  text.remove_prefix(nl == std::string_view::npos ? text.size() : nl + 1);
  return line;
}

std::string_view NextField(std::string_view& s) {
  size_t b = s.find_first_not_of(" \t");
  if (b == std::string_view::npos) {
    s = {};
    return {};
  }
  s.remove_prefix(b);
  size_t e = s.find_first_of(" \t");
  std::string_view f = s.substr(0, e);
  s.remove_prefix(e == std::string_view::npos ? s.size() : e);
  return f;
}

template <typename T>
bool ParseNum(std::string_view s, T& out, int base = 10) {
  if (s.empty()) return false;
  auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), out, base);
  return ec == std::errc() && p == s.data() + s.size();
}

std::string_view Trim(std::string_view s) {
  size_t b = s.find_first_not_of(" \t");
  if (b == std::string_view::npos) return {};
  size_t e = s.find_last_not_of(" \t");
  return s.substr(b, e - b + 1);
}

}  // namespace

Result<std::vector<MapsEntry>> ParseProcMaps(std::string_view text) {
  std::vector<MapsEntry> out;
  int lineno = 0;
  while (!text.empty()) {
    std::string_view line = NextLine(text);
    ++lineno;
    if (line.empty()) continue;
    MapsEntry e;
    std::string_view rest = line;
    std::string_view range = NextField(rest), perms = NextField(rest), off = NextField(rest),
                     dev = NextField(rest), ino = NextField(rest);
    size_t dash = range.find('-'), colon = dev.find(':');
    if (dash == std::string_view::npos || perms.size() != 4 || colon == std::string_view::npos ||
        !ParseNum(range.substr(0, dash), e.start, 16) ||
        !ParseNum(range.substr(dash + 1), e.end, 16) || !ParseNum(off, e.offset, 16) ||
        !ParseNum(dev.substr(0, colon), e.dev_major, 16) ||
        !ParseNum(dev.substr(colon + 1), e.dev_minor, 16) || !ParseNum(ino, e.inode)) {
      return MakeError("maps line %d is malformed: '%.*s'", lineno, int(line.size()), line.data());
    }
    e.read = perms[0] == 'r';
    e.write = perms[1] == 'w';
    e.exec = perms[2] == 'x';
    e.shared = perms[3] == 's';
    // The path is the rest of the line after the padding; it may contain spaces.
    size_t b = rest.find_first_not_of(' ');
    if (b != std::string_view::npos) e.path = std::string(rest.substr(b));
    out.push_back(std::move(e));
  }
  return out;
}

bool HasFlagCode(std::string_view codes, std::string_view code) {
  for (std::string_view f = NextField(codes); !f.empty(); f = NextField(codes))
    if (f == code) return true;
  return false;
}

Result<std::vector<SmapsFlags>> ParseSmapsVmFlags(std::string_view text) {
  std::vector<SmapsFlags> out;
  TRY(ParseSmapsVmFlagsInto(text, &out));
  return out;
}

Status ParseSmapsVmFlagsInto(std::string_view text, std::vector<SmapsFlags>* outp) {
  std::vector<SmapsFlags>& out = *outp;
  while (!text.empty()) {
    std::string_view line = NextLine(text);
    if (line.empty()) continue;
    if (line.substr(0, 8) == "VmFlags:") {
      if (out.empty()) return MakeError("smaps has VmFlags before any mapping");
      std::string_view rest = line.substr(8);
      for (std::string_view f = NextField(rest); !f.empty(); f = NextField(rest)) {
        if (!out.back().flags.empty()) out.back().flags += ' ';
        out.back().flags += f;
      }
      continue;
    }
    // A mapping header starts with "start-end "; field lines start with "Name:".
    size_t dash = line.find('-'), sp = line.find(' ');
    if (dash != std::string_view::npos && sp != std::string_view::npos && dash < sp) {
      SmapsFlags s;
      if (!ParseNum(line.substr(0, dash), s.start, 16))
        return MakeError("smaps header is malformed: '%.*s'", int(line.size()), line.data());
      out.push_back(std::move(s));
    }
  }
  return Ok{};
}

Result<ProcStat> ParseProcStat(std::string_view text) {
  ProcStat st;
  size_t open = text.find('('), close = text.rfind(')');
  if (open == std::string_view::npos || close == std::string_view::npos || close < open)
    return MakeError("stat has no (comm)");
  if (!ParseNum(Trim(text.substr(0, open)), st.pid)) return MakeError("stat has a bad pid");
  st.comm = std::string(text.substr(open + 1, close - open - 1));
  std::string_view rest = text.substr(close + 1);
  // Fields after comm, numbered as in proc(5): field 3 is the state.
  std::vector<std::string_view> f;
  for (std::string_view x = NextField(rest); !x.empty(); x = NextField(rest)) {
    if (x.back() == '\n') x.remove_suffix(1);
    f.push_back(x);
  }
  if (f.size() < 50) return MakeError("stat has %zu fields after comm, want at least 50", f.size());
  auto field = [&](int n) { return f[n - 3]; };
  st.state = field(3)[0];
  bool ok = ParseNum(field(4), st.ppid) && ParseNum(field(5), st.pgrp) &&
            ParseNum(field(6), st.session) && ParseNum(field(7), st.tty_nr) &&
            ParseNum(field(8), st.tpgid) && ParseNum(field(9), st.flags) &&
            ParseNum(field(20), st.num_threads) && ParseNum(field(22), st.start_time) &&
            ParseNum(field(26), st.start_code) && ParseNum(field(27), st.end_code) &&
            ParseNum(field(28), st.start_stack) && ParseNum(field(45), st.start_data) &&
            ParseNum(field(46), st.end_data) && ParseNum(field(47), st.start_brk) &&
            ParseNum(field(48), st.arg_start) && ParseNum(field(49), st.arg_end) &&
            ParseNum(field(50), st.env_start) && ParseNum(field(51), st.env_end) &&
            ParseNum(field(52), st.exit_code);
  if (!ok) return MakeError("stat has a malformed numeric field");
  return st;
}

Result<ProcStatus> ParseProcStatus(std::string_view text) {
  ProcStatus st;
  bool have_tgid = false;
  while (!text.empty()) {
    std::string_view line = NextLine(text);
    size_t colon = line.find(':');
    if (colon == std::string_view::npos) continue;
    std::string_view key = line.substr(0, colon), val = Trim(line.substr(colon + 1));
    bool ok = true;
    if (key == "Umask") {
      ok = ParseNum(val, st.umask, 8);
    } else if (key == "SigBlk") {
      ok = ParseNum(val, st.sig_blocked, 16);
    } else if (key == "SigPnd") {
      ok = ParseNum(val, st.sig_pending, 16);
    } else if (key == "ShdPnd") {
      ok = ParseNum(val, st.sig_shared_pending, 16);
    } else if (key == "SigIgn") {
      ok = ParseNum(val, st.sig_ignored, 16);
    } else if (key == "SigCgt") {
      ok = ParseNum(val, st.sig_caught, 16);
    } else if (key == "Tgid") {
      ok = ParseNum(val, st.tgid);
      have_tgid = ok;
    } else if (key == "NSpid" || key == "NSpgid" || key == "NSsid") {
      std::vector<pid_t>& out = key == "NSpid" ? st.nspid : key == "NSpgid" ? st.nspgid : st.nssid;
      for (std::string_view x = NextField(val); !x.empty(); x = NextField(val)) {
        pid_t p;
        if (!(ok = ParseNum(x, p))) break;
        out.push_back(p);
      }
    } else if (key == "Uid" || key == "Gid") {
      uint32_t* dst = key == "Uid" ? st.uid : st.gid;
      for (int i = 0; i < 4 && ok; i++) ok = ParseNum(NextField(val), dst[i]);
    } else if (key == "Groups") {
      for (std::string_view x = NextField(val); !x.empty() && ok; x = NextField(val)) {
        uint32_t g;
        if ((ok = ParseNum(x, g))) st.groups.push_back(g);
      }
    } else if (key == "CapInh") {
      ok = ParseNum(val, st.cap_inh, 16);
    } else if (key == "CapPrm") {
      ok = ParseNum(val, st.cap_prm, 16);
    } else if (key == "CapEff") {
      ok = ParseNum(val, st.cap_eff, 16);
    } else if (key == "CapBnd") {
      ok = ParseNum(val, st.cap_bnd, 16);
    } else if (key == "CapAmb") {
      ok = ParseNum(val, st.cap_amb, 16);
    } else if (key == "NoNewPrivs") {
      int v = 0;
      ok = ParseNum(val, v);
      st.no_new_privs = v != 0;
    } else if (key == "Seccomp") {
      ok = ParseNum(val, st.seccomp);
    } else if (key == "Seccomp_filters") {
      ok = ParseNum(val, st.seccomp_filters);
    }
    if (!ok)
      return MakeError("status field %.*s is malformed: '%.*s'", int(key.size()), key.data(),
                       int(val.size()), val.data());
  }
  if (!have_tgid) return MakeError("status has no Tgid");
  return st;
}

Result<FdInfo> ParseFdInfo(std::string_view text) {
  FdInfo fi;
  bool have_pos = false, have_flags = false;
  while (!text.empty()) {
    std::string_view line = NextLine(text);
    size_t colon = line.find(':');
    if (colon == std::string_view::npos) continue;
    std::string_view key = line.substr(0, colon), val = Trim(line.substr(colon + 1));
    if (key == "pos") {
      if (!(have_pos = ParseNum(val, fi.pos))) return MakeError("fdinfo pos is malformed");
    } else if (key == "flags") {
      if (!(have_flags = ParseNum(val, fi.flags, 8))) return MakeError("fdinfo flags is malformed");
    } else if (key == "mnt_id") {
      if (!ParseNum(val, fi.mnt_id)) return MakeError("fdinfo mnt_id is malformed");
    }
  }
  if (!have_pos || !have_flags) return MakeError("fdinfo lacks pos or flags");
  return fi;
}

std::vector<uint64_t> ParseAuxv(std::string_view bytes) {
  std::vector<uint64_t> out(bytes.size() / 8);
  memcpy(out.data(), bytes.data(), out.size() * 8);
  // Keep up to and including the AT_NULL pair.
  for (size_t i = 0; i + 1 < out.size(); i += 2) {
    if (out[i] == 0) {
      out.resize(i + 2);
      break;
    }
  }
  return out;
}

std::optional<std::string> FdLinkKind(std::string_view link) {
  if (link.empty() || link[0] == '/') return std::nullopt;
  size_t colon = link.find(':');
  if (colon == std::string_view::npos) return std::nullopt;
  std::string kind(link.substr(0, colon));
  if (kind == "anon_inode") {
    // anon_inode:[eventfd] or anon_inode:inotify
    std::string_view rest = link.substr(colon + 1);
    if (!rest.empty() && rest.front() == '[') rest = rest.substr(1, rest.size() - 2);
    return "anon_inode:" + std::string(rest);
  }
  return kind;
}

Result<std::vector<int>> ListNumbered(const std::string& dir) {
  DIR* d = opendir(dir.c_str());
  if (!d) return ErrnoError("opendir(%s)", dir.c_str());
  std::vector<int> out;
  while (dirent* e = readdir(d))
    if (e->d_name[0] >= '0' && e->d_name[0] <= '9') out.push_back(atoi(e->d_name));
  closedir(d);
  std::sort(out.begin(), out.end());
  return out;
}

std::vector<std::string> Split(std::string_view s, char sep) {
  std::vector<std::string> out;
  for (size_t p = 0;;) {
    size_t q = s.find(sep, p);
    out.emplace_back(s.substr(p, q == std::string_view::npos ? std::string_view::npos : q - p));
    if (q == std::string_view::npos) break;
    p = q + 1;
  }
  return out;
}

Result<std::string> ReadFileToString(const std::string& path) {
  ScopedFd fd(open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (!fd.valid()) return ErrnoError("open(%s)", path.c_str());
  std::string out;
  char buf[65536];
  for (;;) {
    ssize_t n = read(fd.get(), buf, sizeof buf);
    if (n < 0) {
      if (errno == EINTR) continue;
      return ErrnoError("read(%s)", path.c_str());
    }
    if (n == 0) break;
    out.append(buf, n);
  }
  return out;
}

Status WriteKernelFile(const std::string& path, const std::string& text) {
  ScopedFd fd(open(path.c_str(), O_WRONLY | O_CLOEXEC));
  if (!fd.valid()) return ErrnoError("open(%s)", path.c_str());
  // One write: a kernel file takes its value whole or refuses it.
  ssize_t n;
  do n = write(fd.get(), text.data(), text.size());
  while (n < 0 && errno == EINTR);
  if (n < 0) return ErrnoError("writing '%s' to %s", text.c_str(), path.c_str());
  if (size_t(n) != text.size())
    return MakeError("writing '%s' to %s: only %zd bytes taken", text.c_str(), path.c_str(), n);
  return Ok{};
}

}  // namespace crl

namespace crl {

Result<std::vector<ProcLimit>> ParseProcLimits(std::string_view text) {
  // "Limit                     Soft Limit           Hard Limit           Units"
  // "Max cpu time              unlimited            unlimited            seconds"
  // Names in RLIMIT_* order; their column is 26 characters wide.
  static const char* const kNames[] = {
      "Max cpu time",       "Max file size",     "Max data size",         "Max stack size",
      "Max core file size", "Max resident set",  "Max processes",         "Max open files",
      "Max locked memory",  "Max address space", "Max file locks",        "Max pending signals",
      "Max msgqueue size",  "Max nice priority", "Max realtime priority", "Max realtime timeout"};
  std::vector<ProcLimit> out;
  auto value = [](std::string_view v, uint64_t* dst) {
    if (v == "unlimited") {
      *dst = ~0ull;
      return true;
    }
    return ParseNum(v, *dst);
  };
  while (!text.empty()) {
    std::string_view line = NextLine(text);
    if (line.rfind("Limit ", 0) == 0 || line.empty()) continue;
    int res = -1;
    for (int i = 0; i < int(std::size(kNames)); i++)
      if (line.rfind(kNames[i], 0) == 0 && line.size() > 26) res = i;
    if (res < 0) return MakeError("unknown limit '%.*s'", int(line.size()), line.data());
    std::string_view rest = line.substr(26);
    ProcLimit l{res, 0, 0};
    if (!value(NextField(rest), &l.cur) || !value(NextField(rest), &l.max))
      return MakeError("malformed limit '%.*s'", int(line.size()), line.data());
    out.push_back(l);
  }
  if (out.size() != std::size(kNames))
    return MakeError("limits lists %zu resources, not %zu", out.size(), std::size(kNames));
  return out;
}

}  // namespace crl

namespace crl {

Result<std::vector<ProcTimer>> ParseProcTimers(std::string_view text) {
  // "ID: 1\nsignal: 38/0000000000001234\nnotify: signal/pid.7827\nClockID: 1\n"
  std::vector<ProcTimer> out;
  while (!text.empty()) {
    std::string_view line = NextLine(text);
    size_t colon = line.find(':');
    if (colon == std::string_view::npos) continue;
    std::string_view key = line.substr(0, colon), val = Trim(line.substr(colon + 1));
    auto bad = [&]() {
      return MakeError("timers: malformed line '%.*s'", int(line.size()), line.data());
    };
    if (key == "ID") {
      out.emplace_back();
      if (!ParseNum(val, out.back().id)) return bad();
      continue;
    }
    if (out.empty()) return bad();
    ProcTimer& t = out.back();
    if (key == "signal") {
      size_t slash = val.find('/');
      if (slash == std::string_view::npos || !ParseNum(val.substr(0, slash), t.signo) ||
          !ParseNum(val.substr(slash + 1), t.sival, 16))
        return bad();
    } else if (key == "notify") {
      // "signal/pid.N", "none/pid.N", "signal/tid.N" (SIGEV_THREAD_ID)
      size_t slash = val.find('/'), dot = val.find('.');
      if (slash == std::string_view::npos || dot == std::string_view::npos || dot < slash)
        return bad();
      std::string_view how = val.substr(0, slash), whom = val.substr(slash + 1, dot - slash - 1);
      if (how == "signal")
        t.notify = 0;
      else if (how == "none")
        t.notify = 1;
      else if (how == "thread")
        t.notify = 2;
      else
        return bad();
      if (whom == "tid")
        t.notify |= 4;
      else if (whom != "pid")
        return bad();
      if (!ParseNum(val.substr(dot + 1), t.notify_pid)) return bad();
    } else if (key == "ClockID") {
      if (!ParseNum(val, t.clock)) return bad();
    }
  }
  return out;
}

}  // namespace crl
