#include "tests/e2e/state_diff.h"

#include <dirent.h>
#include <fcntl.h>
#include <gtest/gtest.h>
#include <limits.h>
#include <sched.h>
#include <sys/mount.h>
#include <sys/vfs.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <set>
#include <sstream>
#include <thread>

#include "tests/e2e/harness.h"

namespace crl::test {
namespace {

std::string Proc(pid_t pid, const std::string& what) {
  return "/proc/" + std::to_string(pid) + "/" + what;
}

std::string Link(const std::string& path) {
  char buf[PATH_MAX];
  ssize_t n = readlink(path.c_str(), buf, sizeof buf);
  return n < 0 ? "(unreadable)" : std::string(buf, n);
}

std::vector<std::string> ListDir(const std::string& path) {
  std::vector<std::string> out;
  if (DIR* d = opendir(path.c_str())) {
    while (dirent* e = readdir(d))
      if (e->d_name[0] != '.') out.push_back(e->d_name);
    closedir(d);
  }
  return out;
}

std::vector<int> Numbers(const std::vector<std::string>& names) {
  std::vector<int> out;
  for (const auto& n : names) out.push_back(atoi(n.c_str()));
  std::sort(out.begin(), out.end());
  return out;
}

std::vector<std::string> Lines(const std::string& text) {
  std::vector<std::string> out;
  std::istringstream in(text);
  for (std::string l; std::getline(in, l);) out.push_back(l);
  return out;
}

// /proc/PID/stat split after the command name: field 3 (state) is [0].
std::vector<std::string> StatFields(const std::string& stat) {
  std::vector<std::string> out;
  size_t p = stat.rfind(')');
  if (p == std::string::npos) return out;
  std::istringstream in(stat.substr(p + 2));
  for (std::string f; in >> f;) out.push_back(f);
  return out;
}

// Running and sleeping are one thing to a checkpoint: only stopped, traced
// and zombie are states a restore must keep.
std::string StateClass(char c) {
  switch (c) {
    case 'T':
      return "stopped";
    case 't':
      return "traced";
    case 'Z':
      return "zombie";
    case 'X':
      return "dead";
    default:
      return "alive";
  }
}

// Lines of /proc/PID/status that change by themselves (memory use, counters,
// pending signals, which the restored task may have handled by now).
bool VolatileStatus(const std::string& key) {
  static const std::set<std::string> k = {"State",
                                          "VmPeak",
                                          "VmSize",
                                          "VmLck",
                                          "VmPin",
                                          "VmHWM",
                                          "VmRSS",
                                          "RssAnon",
                                          "RssFile",
                                          "RssShmem",
                                          "VmData",
                                          "VmStk",
                                          "VmExe",
                                          "VmLib",
                                          "VmPTE",
                                          "VmSwap",
                                          "HugetlbPages",
                                          "voluntary_ctxt_switches",
                                          "nonvoluntary_ctxt_switches",
                                          "SigQ",
                                          "SigPnd",
                                          "ShdPnd",
                                          "FDSize",
                                          "CoreDumping",
                                          "Name"};
  return k.count(key) > 0;
}

// VmFlags that say how criu-lite (or a tracker) looks at a mapping, not what
// the process asked for: soft-dirty, userfaultfd missing/write-protect.
std::string StableVmFlags(const std::string& flags) {
  static const std::set<std::string> skip = {"sd", "um", "uw"};
  std::istringstream in(flags);
  std::string out;
  for (std::string f; in >> f;)
    if (!skip.count(f)) out += f + " ";
  return out;
}

// Whether any thread of the tree is running.
bool AnyRunning(pid_t root) {
  for (pid_t pid : TreePids(root))
    for (int tid : Numbers(ListDir(Proc(pid, "task")))) {
      std::vector<std::string> st =
          StatFields(ReadFile(Proc(pid, "task/" + std::to_string(tid) + "/stat")));
      if (!st.empty() && st[0] == "R") return true;
    }
  return false;
}

}  // namespace

// A thread's status as it is while the thread sleeps: Settle waited for a
// moment with nothing running, but a thread woken by a timer runs again
// between that moment and this read, and in its handler (or in the loop
// around sigsuspend) its mask is not the one it sleeps with. Two reads that
// agree in everything, context-switch counts included, with the thread
// not running in either, saw no wake-up in between.
std::string QuietStatus(const std::string& path) {
  std::string last = ReadFile(path);
  for (int attempt = 0; attempt < 200; attempt++) {
    std::string now = ReadFile(path);
    if (now == last && now.find("\nState:\tR") == std::string::npos) return now;
    last = now;
    std::this_thread::sleep_for(std::chrono::microseconds(500));
  }
  return last;
}

namespace {

class Recorder {
 public:
  TreeRecord Record(pid_t root) {
    TreeRecord tree;
    tree.root = root;
    // Labels go to objects in PID order, which restore keeps (the order of
    // the children lists is the order of creation, which it need not keep).
    for (pid_t pid : TreePids(root)) RecordProcess(pid, &tree.tasks[pid]);
    return tree;
  }

 private:
  // Anonymous kernel objects get labels in order of first appearance, each
  // kind counted on its own (a namespace seen first does not renumber the
  // shared memory).
  std::string Label(const std::string& kind, const std::string& identity) {
    auto [it, fresh] = labels_.try_emplace(identity, "");
    if (fresh) it->second = kind + "#" + std::to_string(++counts_[kind]);
    return it->second;
  }

  void RecordProcess(pid_t pid, TaskRecord* r) {
    std::vector<std::string> st = StatFields(ReadFile(Proc(pid, "stat")));
    if (st.size() < 50) {
      (*r)["gone"] = "yes";
      return;
    }
    // Field N of stat(5) is st[N - 3].
    auto f = [&](int n) { return st[n - 3]; };
    (*r)["state"] = StateClass(f(3)[0]);
    for (auto [name, n] : std::vector<std::pair<const char*, int>>{{"ppid", 4},
                                                                   {"pgrp", 5},
                                                                   {"session", 6},
                                                                   {"tty_nr", 7},
                                                                   {"exit_signal", 38},
                                                                   {"start_code", 26},
                                                                   {"end_code", 27},
                                                                   {"start_stack", 28},
                                                                   {"start_data", 45},
                                                                   {"end_data", 46},
                                                                   {"start_brk", 47},
                                                                   {"arg_start", 48},
                                                                   {"arg_end", 49},
                                                                   {"env_start", 50},
                                                                   {"env_end", 51},
                                                                   {"exit_code", 52}})
      (*r)[std::string("stat.") + name] = f(n);
    if (f(3) == "Z") return;  // a zombie has nothing more to show
    for (const char* file :
         {"limits", "oom_score_adj", "loginuid", "sessionid", "personality", "cgroup", "timers",
          "timerslack_ns", "cmdline", "environ", "coredump_filter", "comm", "timens_offsets"})
      (*r)[std::string("proc.") + file] = ReadFile(Proc(pid, file));
    for (const char* link : {"cwd", "root", "exe"})
      (*r)[std::string("proc.") + link] = Link(Proc(pid, link));
    // A namespace is the recorder's own ("own") or one of the tree's, by
    // label: one restore made again has another inode.
    for (const auto& ns : ListDir(Proc(pid, "ns"))) {
      std::string link = Link(Proc(pid, "ns/" + ns));
      // (none: the task is on its way out)
      (*r)["ns." + ns] = link.empty()                          ? ""
                         : link == Link("/proc/self/ns/" + ns) ? "own"
                                                               : Label("ns", link);
    }
    RecordMaps(pid, r);
    RecordFds(pid, r);
    for (int tid : Numbers(ListDir(Proc(pid, "task")))) RecordThread(pid, tid, r);
  }

  void RecordThread(pid_t pid, pid_t tid, TaskRecord* r) {
    std::string base = Proc(pid, "task/" + std::to_string(tid) + "/");
    std::string key = "thread." + std::to_string(tid) + ".";
    std::vector<std::string> st = StatFields(ReadFile(base + "stat"));
    if (st.size() < 50) return;
    auto f = [&](int n) { return st[n - 3]; };
    (*r)[key + "state"] = StateClass(f(3)[0]);
    (*r)[key + "priority"] = f(18);
    (*r)[key + "nice"] = f(19);
    (*r)[key + "rt_priority"] = f(40);
    (*r)[key + "policy"] = f(41);
    (*r)[key + "comm"] = ReadFile(base + "comm");
    for (const auto& line : Lines(QuietStatus(base + "status"))) {
      size_t colon = line.find(':');
      if (colon == std::string::npos) continue;
      std::string k = line.substr(0, colon);
      if (VolatileStatus(k)) continue;
      size_t v = line.find_first_not_of(" \t", colon + 1);
      (*r)[key + "status." + k] = v == std::string::npos ? "" : line.substr(v);
    }
  }

  // From smaps: every mapping, its flags, and (for shmem and memfds) which
  // object it maps, as a label. Neighbours that differ in nothing are one
  // range: where the kernel splits or merges them is not the process's
  // state (a tracker's userfaultfd registration splits them, for one).
  void RecordMaps(pid_t pid, TaskRecord* r) {
    struct Range {
      uint64_t start, end, offset;
      std::string perms, id, path, flags;
    };
    std::vector<Range> ranges;
    for (const auto& line : Lines(ReadFile(Proc(pid, "smaps")))) {
      if (line.rfind("VmFlags:", 0) == 0 && !ranges.empty()) {
        ranges.back().flags = StableVmFlags(line.substr(8));
        continue;
      }
      // A mapping line: "start-end perms offset dev inode   path"; other
      // lines ("Rss:   4 kB") start with a key ending in ':'.
      std::istringstream in(line);
      std::string range, perms, offset, dev, ino, path;
      in >> range >> perms >> offset >> dev >> ino;
      if (range.empty() || range.back() == ':' || range.find('-') == std::string::npos) continue;
      std::getline(in >> std::ws, path);
      // A file system without a disk (a tmpfs) has a number the kernel
      // picks when it is mounted: named by where the task has it mounted.
      if (dev.rfind("00:", 0) == 0 && dev != "00:00") dev = DeviceNamed(pid, dev);
      std::string id = dev + ":" + ino;
      bool anonymous_object = !path.empty() && path[0] != '[' &&
                              (path.find(" (deleted)") != std::string::npos ||
                               path.rfind("/memfd:", 0) == 0 || path.rfind("/SYSV", 0) == 0);
      if (anonymous_object) id = Label("shm", id);
      Range m{std::stoull(range, nullptr, 16),
              std::stoull(range.substr(range.find('-') + 1), nullptr, 16),
              std::stoull(offset, nullptr, 16),
              perms,
              id,
              path,
              ""};
      ranges.push_back(m);
    }
    std::vector<Range> merged;
    for (const Range& m : ranges) {
      if (!merged.empty()) {
        Range& last = merged.back();
        bool anon = m.id == "00:00:0";
        if (last.end == m.start && last.perms == m.perms && last.id == m.id &&
            last.path == m.path && last.flags == m.flags &&
            (anon || last.offset + (last.end - last.start) == m.offset)) {
          last.end = m.end;
          continue;
        }
      }
      merged.push_back(m);
    }
    for (const Range& m : merged) {
      char key[64];
      snprintf(key, sizeof key, "maps.%lx-%lx", m.start, m.end);
      (*r)[key] = m.perms + " " + std::to_string(m.offset) + " " + m.id + " " + m.path +
                  " flags: " + m.flags;
    }
  }

  // Mount ID of PID's namespace as "MOUNTPOINT FSTYPE" (or the ID, where
  // it is in none the task sees).
  static std::string MountNamed(pid_t pid, int id) {
    for (const auto& line : Lines(ReadFile(Proc(pid, "mountinfo")))) {
      std::istringstream f(line);
      int mid;
      std::string parent, dev, root, point;
      if (!(f >> mid >> parent >> dev >> root >> point) || mid != id) continue;
      size_t dash = line.find(" - ");
      std::string type = dash == std::string::npos ? "" : line.substr(dash + 3);
      return point + " " + type.substr(0, type.find(' '));
    }
    return std::to_string(id);
  }

  // Device DEV ("00:2f") as the mount point in PID's namespace of the
  // first mount of its whole file system ("mount /tmp"), or DEV itself.
  static std::string DeviceNamed(pid_t pid, const std::string& dev) {
    unsigned major = 0, minor = std::stoul(dev.substr(3), nullptr, 16);
    for (const auto& line : Lines(ReadFile(Proc(pid, "mountinfo")))) {
      std::istringstream f(line);
      std::string id, parent, numbers, root, point;
      if (!(f >> id >> parent >> numbers >> root >> point) || root != "/") continue;
      if (numbers == std::to_string(major) + ":" + std::to_string(minor)) return "mount " + point;
    }
    return dev;
  }

  void RecordFds(pid_t pid, TaskRecord* r) {
    for (int fd : Numbers(ListDir(Proc(pid, "fd")))) {
      std::string key = "fd." + std::to_string(fd);
      std::string target = Link(Proc(pid, "fd/" + std::to_string(fd)));
      // A POSIX message queue is made anew too: its inode number is the
      // kernel's choice.
      struct statfs fs {};
      bool mqueue = statfs(Proc(pid, "fd/" + std::to_string(fd)).c_str(), &fs) == 0 &&
                    fs.f_type == 0x19800202;  // MQUEUE_MAGIC
      bool anonymous = target.empty() || target[0] != '/' ||
                       target.find(" (deleted)") != std::string::npos ||
                       target.rfind("/memfd:", 0) == 0 || mqueue;
      std::string info = ReadFile(Proc(pid, "fdinfo/" + std::to_string(fd)));
      std::string ino;
      for (const auto& line : Lines(info))
        if (line.rfind("ino:", 0) == 0) ino = line.substr(4);
      std::string label = anonymous ? Label("obj", target + ino) : target;
      (*r)[key] = label;
      std::string kept;
      // An epoll's registrations: listed by the kernel in the order of the
      // targets' file addresses, each with the target's inode (which a
      // restore renews for pipes and eventfds): sorted, without it. A
      // fanotify group's marks: in the order they were attached: sorted.
      std::multiset<std::string> targets;
      for (const auto& line : Lines(info)) {
        if (line.rfind("tfd:", 0) == 0) {
          targets.insert(line.substr(0, line.find(" ino:")));
          continue;
        }
        if (line.rfind("fanotify ", 0) == 0 && line.rfind("fanotify flags:", 0) != 0) {
          targets.insert(line);
          continue;
        }
        // Per-object ids (eventfd-id) and anonymous inodes are not state.
        if (line.find("-id:") != std::string::npos) continue;
        if (anonymous && line.rfind("ino:", 0) == 0) continue;
        // A timerfd's time left and pending expirations move with the
        // clock: the workload checks them itself.
        if (line.rfind("it_value:", 0) == 0 || line.rfind("ticks:", 0) == 0) continue;
        // A mount id is the kernel's number for a mount: the mount is
        // named by where it is in the task's namespace and what it is (a
        // restore makes mounts anew, under other numbers). A queue's is
        // that of its ipc namespace's internal mount, made with it.
        if (line.rfind("mnt_id:", 0) == 0 && mqueue) continue;
        if (line.rfind("mnt_id:", 0) == 0) {
          (*r)[key + ".mnt_id"] = MountNamed(pid, atoi(line.c_str() + 7));
          continue;
        }
        kept += line + "|";
      }
      for (const std::string& t : targets) kept += t + "|";
      (*r)[key + ".info"] = kept;
    }
  }

  std::map<std::string, std::string> labels_;
  std::map<std::string, int> counts_;
};

void Settle(pid_t root, int settle_ms) {
  auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(settle_ms);
  while (AnyRunning(root) && std::chrono::steady_clock::now() < deadline)
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
}

std::string Flat(const std::string& s) {
  std::string out = s;
  std::replace(out.begin(), out.end(), '\n', '|');
  std::replace(out.begin(), out.end(), '\0', ' ');
  return out.size() > 300 ? out.substr(0, 300) + "..." : out;
}

bool Allowed(const std::string& key, const std::vector<std::string>& allowed) {
  for (const auto& a : allowed) {
    if (!a.empty() && a[0] == '*') {
      std::string suffix = a.substr(1);
      if (key.size() >= suffix.size() &&
          key.compare(key.size() - suffix.size(), suffix.size(), suffix) == 0)
        return true;
    } else if (key.rfind(a, 0) == 0) {
      return true;
    }
  }
  return false;
}

std::string Escape(const std::string& s) {
  std::string out;
  for (char c : s) {
    if (c == '\\')
      out += "\\\\";
    else if (c == '\n')
      out += "\\n";
    else if (c == '\t')
      out += "\\t";
    else if (c == '\0')
      out += "\\0";
    else
      out += c;
  }
  return out;
}

std::string Unescape(const std::string& s) {
  std::string out;
  for (size_t i = 0; i < s.size(); i++) {
    if (s[i] != '\\' || i + 1 == s.size()) {
      out += s[i];
      continue;
    }
    char n = s[++i];
    out += n == 'n' ? '\n' : n == 't' ? '\t' : n == '0' ? '\0' : n;
  }
  return out;
}

std::vector<std::string> g_allowed;
std::map<std::string, TreeRecord> g_dumps;  // by the image directory's real path

std::string Arg(const std::vector<std::string>& args, std::initializer_list<const char*> names) {
  for (size_t i = 0; i + 1 < args.size(); i++)
    for (const char* n : names)
      if (args[i] == n) return args[i + 1];
  return "";
}

bool Has(const std::vector<std::string>& args, std::initializer_list<const char*> names) {
  for (const auto& a : args)
    for (const char* n : names)
      if (a == n) return true;
  return false;
}

std::string RealDir(const std::string& dir) {
  char real[PATH_MAX];
  return realpath(dir.c_str(), real) ? std::string(real) : dir;
}

// Which images ARGS dump to or restore from: -D's directory, or --archive's
// file (which a dump has not made yet: its directory resolved instead).
std::string ImagesOf(const std::vector<std::string>& args) {
  std::string archive = Arg(args, {"--archive"});
  if (archive.empty()) return RealDir(Arg(args, {"-D", "--images-dir"}));
  size_t slash = archive.rfind('/');
  if (slash == std::string::npos) return RealDir(".") + "/" + archive;
  return RealDir(archive.substr(0, slash)) + archive.substr(slash);
}

}  // namespace

namespace {

// The NSpid fields of PID's status (its PID in each namespace, outermost
// first, as this process's /proc shows it).
std::vector<std::string> NsPids(const std::string& pid) {
  for (const auto& line : Lines(ReadFile("/proc/" + pid + "/status")))
    if (line.rfind("NSpid:", 0) == 0) {
      std::istringstream in(line.substr(6));
      std::vector<std::string> out;
      for (std::string f; in >> f;) out.push_back(f);
      return out;
    }
  return {};
}

// Whether ROOT is the init of a PID namespace below this process's.
bool InitOfAnotherPidNamespace(pid_t root) {
  std::vector<std::string> theirs = NsPids(std::to_string(root)), mine = NsPids("self");
  return theirs.size() > mine.size() && theirs.back() == "1";
}

// The record of ROOT's tree made by a grandchild in ROOT's PID namespace,
// in a mount namespace of its own with that namespace's /proc, sent back as
// text.
TreeRecord RecordInside(pid_t root) {
  int out[2];
  if (pipe2(out, O_CLOEXEC) < 0) return {};
  pid_t child = fork();
  if (child == 0) {
    int ns = open(Proc(root, "ns/pid").c_str(), O_RDONLY | O_CLOEXEC);
    if (ns < 0 || unshare(CLONE_NEWNS) < 0 ||
        mount(nullptr, "/", nullptr, MS_REC | MS_PRIVATE, nullptr) < 0 ||
        setns(ns, CLONE_NEWPID) < 0)
      _exit(2);
    pid_t inside = fork();
    if (inside == 0) {
      if (mount("proc", "/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, nullptr) < 0) _exit(2);
      std::string text = SerializeTree(Recorder().Record(1));
      for (size_t done = 0; done < text.size();) {
        ssize_t n = write(out[1], text.data() + done, text.size() - done);
        if (n <= 0) _exit(3);
        done += n;
      }
      _exit(0);
    }
    int st = 0;
    waitpid(inside, &st, 0);
    _exit(WIFEXITED(st) ? WEXITSTATUS(st) : 4);
  }
  close(out[1]);
  std::string text;
  char buf[65536];
  for (ssize_t n; (n = read(out[0], buf, sizeof buf)) != 0;) {
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) break;
    text.append(buf, n);
  }
  close(out[0]);
  int st = 0;
  while (waitpid(child, &st, 0) < 0 && errno == EINTR) {
  }
  if (!WIFEXITED(st) || WEXITSTATUS(st) != 0)
    ADD_FAILURE() << "state-diff: recording the tree of " << root
                  << " inside its PID namespace failed";
  return ParseTree(text);
}

}  // namespace

TreeRecord RecordTree(pid_t root, int settle_ms) {
  Settle(root, settle_ms);
  TreeRecord tree = InitOfAnotherPidNamespace(root) ? RecordInside(root) : Recorder().Record(root);
  tree.host_root = root;
  return tree;
}

std::vector<std::string> DiffTrees(const TreeRecord& before, const TreeRecord& after,
                                   const std::vector<std::string>& allowed) {
  std::vector<std::string> out;
  for (const auto& [pid, b] : before.tasks) {
    // "children": the root's descendants come and go by themselves.
    if (pid != before.root && Allowed("children", allowed)) continue;
    auto it = after.tasks.find(pid);
    if (it == after.tasks.end()) {
      out.push_back(std::to_string(pid) + ": missing after restore");
      continue;
    }
    const TaskRecord& a = it->second;
    // "root:X" allows X for the root task alone (its parent, say, which is
    // whoever restored it, outside the tree).
    std::vector<std::string> here = allowed;
    if (pid == before.root)
      for (const auto& x : allowed)
        if (x.rfind("root:", 0) == 0) here.push_back(x.substr(5));
    std::set<std::string> keys;
    for (const auto& [k, v] : b) keys.insert(k);
    for (const auto& [k, v] : a) keys.insert(k);
    for (const auto& k : keys) {
      auto bi = b.find(k), ai = a.find(k);
      std::string bv = bi == b.end() ? "(none)" : bi->second;
      std::string av = ai == a.end() ? "(none)" : ai->second;
      if (bv == av || Allowed(k, here)) continue;
      out.push_back(std::to_string(pid) + " " + k + ": '" + Flat(bv) + "' -> '" + Flat(av) + "'");
    }
  }
  for (const auto& [pid, a] : after.tasks)
    if (!before.tasks.count(pid) && !Allowed("children", allowed))
      out.push_back(std::to_string(pid) + ": not there before the dump");
  return out;
}

std::string SerializeTree(const TreeRecord& tree) {
  std::string out = std::to_string(tree.root) + "\n";
  for (const auto& [pid, rec] : tree.tasks)
    for (const auto& [k, v] : rec) out += std::to_string(pid) + "\t" + k + "\t" + Escape(v) + "\n";
  return out;
}

TreeRecord ParseTree(const std::string& text) {
  TreeRecord tree;
  std::vector<std::string> lines = Lines(text);
  if (lines.empty()) return tree;
  tree.root = atoi(lines[0].c_str());
  for (size_t i = 1; i < lines.size(); i++) {
    size_t a = lines[i].find('\t'), b = lines[i].find('\t', a + 1);
    if (a == std::string::npos || b == std::string::npos) continue;
    tree.tasks[atoi(lines[i].c_str())][lines[i].substr(a + 1, b - a - 1)] =
        Unescape(lines[i].substr(b + 1));
  }
  return tree;
}

ExpectStateDiff::ExpectStateDiff(std::vector<std::string> prefixes) : added_(prefixes.size()) {
  g_allowed.insert(g_allowed.end(), prefixes.begin(), prefixes.end());
}
ExpectStateDiff::~ExpectStateDiff() { g_allowed.resize(g_allowed.size() - added_); }
const std::vector<std::string>& ExpectStateDiff::Current() { return g_allowed; }

void RecordBeforeDump(const std::vector<std::string>& args) {
  if (args.empty() || args[0] != "dump") return;
  std::string pid = Arg(args, {"-t", "--tree"});
  if (pid.empty() ||
      (Arg(args, {"-D", "--images-dir"}).empty() && Arg(args, {"--archive"}).empty()))
    return;
  g_dumps[ImagesOf(args)] = RecordTree(atoi(pid.c_str()), 500);
}

void ForgetDump(const std::vector<std::string>& args) {
  if (args.empty() || args[0] != "dump") return;
  g_dumps.erase(ImagesOf(args));
}

void CompareAfterRestore(const std::vector<std::string>& args) {
  if (args.empty() || args[0] != "restore") return;
  // Without -d restore waits for the tree to exit: nothing left to compare.
  if (!Has(args, {"-d", "--restore-detached", "--restore-sibling"})) return;
  auto it = g_dumps.find(ImagesOf(args));
  if (it == g_dumps.end()) return;
  // The init of a PID namespace comes back with another host PID.
  pid_t host_root = 0;
  if (it->second.root != it->second.host_root) {
    std::string pidfile = Arg(args, {"--pidfile"});
    host_root = atoi(ReadFile(pidfile).c_str());
    if (pidfile.empty() || host_root <= 0) {
      ADD_FAILURE() << "state-diff: the restore of a PID namespace's init needs --pidfile here";
      return;
    }
  }
  ExpectTreeAsBefore(it->second, "the restored tree differs from the dumped one", host_root);
}

void ExpectTreeAsBefore(const TreeRecord& before, const std::string& what, pid_t host_root) {
  std::vector<std::string> diff =
      DiffTrees(before, RecordTree(host_root ? host_root : before.host_root), g_allowed);
  if (diff.empty()) return;
  std::string text;
  for (const auto& d : diff) text += "\n  " + d;
  ADD_FAILURE() << "state-diff: " << what << " in " << diff.size() << " place(s):" << text;
}

}  // namespace crl::test
