#include "tests/e2e/harness.h"

#include <dirent.h>
#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <csignal>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <regex>
#include <set>
#include <thread>

#include "tests/e2e/state_diff.h"

namespace crl::test {
namespace {

void CloseFrom(int first) {
  for (int fd = first; fd < 1024; fd++) close(fd);
}

[[noreturn]] void ExecWith(const std::vector<std::string>& argv, int in, int out, int err) {
  if (in >= 0) dup2(in, 0);
  if (out >= 0) dup2(out, 1);
  if (err >= 0) dup2(err, 2);
  CloseFrom(3);
  std::vector<char*> a;
  for (const auto& s : argv) a.push_back(const_cast<char*>(s.c_str()));
  a.push_back(nullptr);
  execv(a[0], a.data());
  _exit(127);
}

}  // namespace

TestDir::TestDir() {
  char tmpl[] = "/tmp/criu-lite-e2e-XXXXXX";
  path_ = mkdtemp(tmpl);
}

TestDir::~TestDir() {
  // Only a workload that is still one of ours (same command line): its PID
  // may have been reused if it ended long ago.
  for (pid_t w : workloads_)
    if (ReadFile("/proc/" + std::to_string(w) + "/cmdline").find(path_) != std::string::npos)
      for (pid_t p : TreePids(w)) kill(p, SIGKILL);
  for (pid_t w : workloads_) waitpid(w, nullptr, WNOHANG);
  if (!::testing::Test::HasFailure())
    std::system(("rm -rf " + path_).c_str());
  else
    fprintf(stderr, "test files kept in %s\n", path_.c_str());
}

std::string MakeContainerRoot(const TestDir& dir) {
  namespace fs = std::filesystem;
  std::string root = dir / "rootfs";
  for (const char* d : {"bin", "proc", "sys", "dev", "tmp", "check", "etc"})
    fs::create_directories(root + "/" + d);
  fs::copy_file("/bin/busybox", root + "/bin/busybox");
  fs::copy_file(WORKLOAD_STATIC_BIN, root + "/bin/workload");
  for (const char* tool : {"sh", "ls", "cat", "sleep"})
    fs::create_symlink("busybox", root + "/bin/" + tool);
  std::ofstream(root + "/etc/hostname") << "crl-container\n";
  return root;
}

bool RootIsRamfs() { return ReadFile("/proc/self/mounts").find(" / rootfs ") != std::string::npos; }

std::string ReadFile(const std::string& path) {
  // Plain reads: a /proc file whose task vanishes mid-read ends the text
  // there (ESRCH), where a stream would throw.
  std::string out;
  int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return out;
  char buf[65536];
  for (ssize_t n; (n = read(fd, buf, sizeof buf)) > 0;) out.append(buf, n);
  close(fd);
  return out;
}

bool WaitForFile(const std::string& path, int timeout_ms) {
  for (int i = 0; i < timeout_ms / 10; i++) {
    if (access(path.c_str(), F_OK) == 0) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  return false;
}

pid_t StartProgram(const TestDir& dir, const std::vector<std::string>& argv, int stdin_fd) {
  pid_t pid = fork();
  if (pid > 0) dir.Own(pid);
  if (pid == 0)
    ExecWith(argv, stdin_fd >= 0 ? stdin_fd : open("/dev/null", O_RDONLY),
             open((dir / "out").c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644),
             open((dir / "err").c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644));
  return pid;
}

pid_t StartWorkload(const TestDir& dir, const std::string& scenario,
                    const std::vector<std::string>& args, int stdin_fd) {
  std::vector<std::string> argv = {WORKLOAD_BIN, scenario, "--dir", dir.path()};
  argv.insert(argv.end(), args.begin(), args.end());
  unlink((dir / "ready").c_str());
  pid_t pid = fork();
  if (pid > 0) dir.Own(pid);
  if (pid == 0) {
    int in = stdin_fd >= 0 ? stdin_fd : open("/dev/null", O_RDONLY);
    int out = open((dir / "out").c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
    ExecWith(argv, in, out, out);
  }
  for (int i = 0; i < 6000 && access((dir / "ready").c_str(), F_OK) != 0; i++) {
    // A workload that exits instead (it could not set up) is not waited for:
    // looked at, not reaped, so that the caller can read its status.
    siginfo_t si{};
    if (waitid(P_PID, pid, &si, WEXITED | WNOHANG | WNOWAIT) == 0 && si.si_pid == pid) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  if (access((dir / "ready").c_str(), F_OK) != 0)
    ADD_FAILURE() << "workload " << scenario << " never got ready";
  else
    SettleTree(pid, 500);
  return pid;
}

// A workload writes DIR/ready a few instructions before it blocks: the
// signal mask /proc shows in between (SIGUSR1 blocked before sigsuspend())
// is not the one it shows while waiting. Give every thread of the tree the
// time to block in a syscall, so that what a test records first is what the
// tree looks like while it waits; a busy workload is simply waited for the
// bound.
void SettleTree(pid_t root, int timeout_ms) {
  for (int waited = 0; waited < timeout_ms; waited += 2) {
    bool settled = true;
    for (pid_t pid : TreePids(root)) {
      std::error_code ec;
      for (const auto& task :
           std::filesystem::directory_iterator("/proc/" + std::to_string(pid) + "/task", ec))
        if (ReadFile(task.path() / "syscall").rfind("running", 0) == 0) settled = false;
    }
    if (settled) return;
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
  }
}

namespace {

// Runs criu-lite with ARGS (ENV added to its environment, stdin from
// STDIN_FD or /dev/null), sends it SIG after DELAY_US if DELAY_US >= 0 and it
// has not ended, and waits for it. With REAP non-empty, every child of ours
// that dies meanwhile is reaped: while a dump kills a tree, its tasks die and
// some are reparented to us (a subreaper), and their PIDs must get free.
CmdResult Spawn(const std::vector<std::string>& args, const std::vector<std::string>& env,
                int stdin_fd, int delay_us, int sig, const std::vector<pid_t>& reap) {
  static int n = 0;
  std::string err_path =
      "/tmp/criu-lite-e2e-stderr-" + std::to_string(getpid()) + "-" + std::to_string(n++);
  std::string out_path = err_path + ".out";
  std::vector<std::string> argv = {CRIU_LITE_BIN};
  argv.insert(argv.end(), args.begin(), args.end());
  // CRL_TEST_PAGES=MODE: every restore that names no placement uses MODE,
  // and every page server that restores (the suite run again with
  // --pages=vm-mmap on the patched kernel).
  const char* pages = getenv("CRL_TEST_PAGES");
  bool restores = !args.empty() &&
                  (args[0] == "restore" || (args[0] == "page-server" &&
                                            std::count(args.begin(), args.end(), "--restore") > 0));
  if (pages && *pages && restores && std::find(args.begin(), args.end(), "--pages") == args.end() &&
      std::none_of(args.begin(), args.end(),
                   [](const std::string& a) { return a.rfind("--pages=", 0) == 0; })) {
    argv.push_back("--pages");
    argv.push_back(pages);
  }
  auto start = std::chrono::steady_clock::now();
  pid_t pid = fork();
  if (pid == 0) {
    for (const std::string& e : env) putenv(strdup(e.c_str()));
    int err = open(err_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    int out = open(out_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    int in = stdin_fd >= 0 ? stdin_fd : open("/dev/null", O_RDONLY);
    ExecWith(argv, in, out, err);
  }
  CmdResult r;
  bool sent = delay_us < 0;
  for (;;) {
    int status;
    pid_t w = waitpid(reap.empty() ? pid : -1, &status, WNOHANG);
    if (w == pid) {
      r.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
      break;
    }
    if (w > 0) continue;
    if (!sent && std::chrono::steady_clock::now() - start >= std::chrono::microseconds(delay_us)) {
      kill(pid, sig);
      sent = true;
    }
    std::this_thread::sleep_for(std::chrono::microseconds(sent ? 2000 : 100));
  }
  // The dump saw them die before it exited: they are there to reap now.
  if (!reap.empty())
    while (waitpid(-1, nullptr, WNOHANG) > 0) {
    }
  r.err = ReadFile(err_path);
  r.out = ReadFile(out_path);
  unlink(err_path.c_str());
  unlink(out_path.c_str());
  return r;
}

}  // namespace

CmdResult RunCriuLite(const std::vector<std::string>& args, std::vector<pid_t> reap, int stdin_fd) {
  RecordBeforeDump(args);
  CmdResult r = Spawn(args, {}, stdin_fd, -1, 0, reap);
  if (r.ok())
    CompareAfterRestore(args);
  else
    ForgetDump(args);
  return r;
}

bool KernelHas(const std::string& check_line_start) {
  CmdResult r = RunCriuLite({"check"});
  size_t p = r.out.find(check_line_start);
  if (p == std::string::npos) return false;
  std::string line = r.out.substr(p, r.out.find('\n', p) - p);
  return line.find(" yes ") != std::string::npos;
}

CmdResult RunCriuLiteInterrupted(const std::vector<std::string>& args, int delay_us, int sig,
                                 const std::vector<std::string>& env, std::vector<pid_t> reap) {
  return Spawn(args, env, -1, delay_us, sig, reap);
}

std::set<int> OpenWindows(const std::string& log, bool guarded) {
  std::set<int> open;
  static const std::regex line(
      "(unguarded )?remote-syscall window (opens|closed) in thread ([0-9]+)");
  for (std::sregex_iterator it(log.begin(), log.end(), line), end; it != end; ++it) {
    int tid = std::stoi((*it)[3]);
    if ((*it)[2] == "opens") {
      if ((*it)[1].matched != guarded) open.insert(tid);
    } else {
      open.erase(tid);
    }
  }
  return open;
}

std::string CheckWorkload(pid_t pid, const TestDir& dir, int timeout_ms) {
  unlink((dir / "result").c_str());
  if (kill(pid, SIGUSR1) < 0) return "workload " + std::to_string(pid) + " is gone";
  auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
  int status = 0;
  for (;;) {
    pid_t w = waitpid(pid, &status, WNOHANG);
    if (w == pid) break;
    if (w < 0 && errno == ECHILD) {
      // Not our child (restored without our subreaper): wait for the result file.
      if (WaitForFile(dir / "result", timeout_ms)) break;
      return "no result from " + std::to_string(pid);
    }
    if (std::chrono::steady_clock::now() > deadline) {
      kill(pid, SIGKILL);
      waitpid(pid, nullptr, 0);
      return "workload " + std::to_string(pid) +
             " did not answer; output: " + ReadFile(dir / "out");
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  if (WIFSIGNALED(status))
    return "workload died of signal " + std::to_string(WTERMSIG(status)) +
           "; output: " + ReadFile(dir / "out");
  std::string result = ReadFile(dir / "result");
  while (!result.empty() && result.back() == '\n') result.pop_back();
  return result.empty() ? "empty result, output: " + ReadFile(dir / "out") : result;
}

char TaskState(pid_t pid) {
  std::string stat = ReadFile("/proc/" + std::to_string(pid) + "/stat");
  size_t p = stat.rfind(')');
  return p == std::string::npos || p + 2 >= stat.size() ? 0 : stat[p + 2];
}

pid_t TracerPid(pid_t pid) {
  std::string status = ReadFile("/proc/" + std::to_string(pid) + "/status");
  size_t t = status.find("TracerPid:\t");
  return t == std::string::npos ? -1 : atoi(status.c_str() + t + 11);
}

bool WaitInSyscall(pid_t pid, long nr, int timeout_ms) {
  std::string want = std::to_string(nr) + " ";
  for (int i = 0; i < timeout_ms / 5; i++) {
    if (ReadFile("/proc/" + std::to_string(pid) + "/syscall").rfind(want, 0) == 0) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  return false;
}

bool Alive(pid_t pid) { return kill(pid, 0) == 0 && TaskState(pid) != 'Z'; }

std::vector<pid_t> TreePids(pid_t root) {
  std::vector<pid_t> pending = {root};
  std::set<pid_t> seen;
  while (!pending.empty()) {
    pid_t pid = pending.back();
    pending.pop_back();
    if (kill(pid, 0) < 0 || !seen.insert(pid).second) continue;
    std::string tasks = "/proc/" + std::to_string(pid) + "/task";
    DIR* d = opendir(tasks.c_str());
    if (!d) continue;
    while (dirent* e = readdir(d)) {
      if (e->d_name[0] == '.') continue;
      std::string c = ReadFile(tasks + "/" + e->d_name + "/children");
      for (char* p = c.data(); *p;) {
        char* end;
        long k = strtol(p, &end, 10);
        if (end == p) break;
        pending.push_back(k);
        p = end;
      }
    }
    closedir(d);
  }
  return std::vector<pid_t>(seen.begin(), seen.end());
}

void KillAndReap(pid_t pid) {
  kill(pid, SIGKILL);
  waitpid(pid, nullptr, 0);
}

}  // namespace crl::test

// Restored processes lose their parent (criu-lite -d exits): make them ours.
int main(int argc, char** argv) {
  // `--record-tree PID`: the state-diff record of a tree, as text, seen from
  // the namespaces this runs in.
  if (argc == 3 && std::string(argv[1]) == "--record-tree") {
    std::string text = crl::test::SerializeTree(crl::test::RecordTree(atoi(argv[2])));
    fwrite(text.data(), 1, text.size(), stdout);
    return 0;
  }
  prctl(PR_SET_CHILD_SUBREAPER, 1);
  signal(SIGPIPE, SIG_IGN);
  ::testing::InitGoogleTest(&argc, argv);
  if (geteuid() != 0) {
    fprintf(stderr,
            "SKIPPED: end-to-end tests need root (ptrace, clone3 set_tid, PR_SET_MM_MAP)\n");
    return 0;
  }
  return RUN_ALL_TESTS();
}
