#include "test-containers/workload/workload.h"

namespace wl {

std::string g_dir;
volatile sig_atomic_t g_check = 0;
std::string g_failures;

void Fail(const char* fmt, ...) {
  char buf[512];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(buf, sizeof buf, fmt, ap);
  va_end(ap);
  if (!g_failures.empty()) g_failures += "; ";
  g_failures += buf;
}

void WriteFile(const std::string& name, const std::string& text) {
  std::string path = g_dir + "/" + name, tmp = path + ".tmp";
  int fd = open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) _exit(3);
  if (write(fd, text.data(), text.size()) != static_cast<ssize_t>(text.size())) _exit(3);
  close(fd);
  rename(tmp.c_str(), path.c_str());
}

[[noreturn]] void Report() {
  bool ok = g_failures.empty();
  WriteFile("result", ok ? "PASS\n" : "FAIL: " + g_failures + "\n");
  _exit(ok ? 0 : 1);
}

// A signal sent to the process is taken by any thread that does not block
// it. One that comes while the main thread is between its test of g_check
// and sigsuspend() (where a ptrace detach restarts the call: right after a
// dump that leaves the tree running) goes to another thread, and the main
// thread would wait for ever (seen: the container's spinner thread took it).
// Another thread passes it on to the thread that installed the handler,
// which has it pending then. That thread itself makes no system call here
// (seccomp's strict mode allows none but read, write, exit and sigreturn).
thread_local bool t_waits_for_check = false;
pid_t g_check_tgid = 0, g_check_waiter = 0;

void OnCheck(int) {
  g_check = 1;
  if (t_waits_for_check || g_check_waiter <= 0) return;
  int saved = errno;
  syscall(SYS_tgkill, g_check_tgid, g_check_waiter, SIGUSR1);
  errno = saved;
}

// Asks each child to check itself (SIGUSR1) and waits for it to exit 0.
void CheckChildren(const std::vector<pid_t>& kids) {
  for (pid_t k : kids) {
    kill(k, SIGUSR1);
    int st;
    EXPECT(waitpid(k, &st, 0) == k && WIFEXITED(st) && WEXITSTATUS(st) == 0, "child %d failed", k);
  }
}

void InstallCheckHandler() {
  t_waits_for_check = true;
  g_check_tgid = getpid();
  g_check_waiter = static_cast<pid_t>(syscall(SYS_gettid));
  struct sigaction sa {};
  sa.sa_handler = OnCheck;
  sigaction(SIGUSR1, &sa, nullptr);  // no SA_RESTART: interrupt sleeps
}

void Ready() { WriteFile("ready", std::to_string(getpid()) + "\n"); }

// Waits for the check signal. Not `while (!g_check) pause();`: a signal
// between the test and the pause() would be lost and the pause() wait for
// ever (a parent signalling its child right after a dump -R found it). The
// signal is blocked while the flag is tested; sigsuspend() unblocks it and
// waits in one step.
void WaitForCheck() {
  sigset_t usr1, old;
  sigemptyset(&usr1);
  sigaddset(&usr1, SIGUSR1);
  sigprocmask(SIG_BLOCK, &usr1, &old);
  sigdelset(&old, SIGUSR1);
  while (!g_check) sigsuspend(&old);
  sigprocmask(SIG_SETMASK, &old, nullptr);
}

std::string ReadProcStat(pid_t pid) {
  FILE* f = fopen(("/proc/" + std::to_string(pid) + "/stat").c_str(), "re");
  if (!f) return "?";
  char buf[1024];
  size_t n = fread(buf, 1, sizeof buf - 1, f);
  fclose(f);
  buf[n] = 0;
  char* p = strrchr(buf, ')');
  return p ? std::string(1, p[2]) : "?";
}

std::string Format2(const char* fmt, ...) {
  char buf[512];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(buf, sizeof buf, fmt, ap);
  va_end(ap);
  return buf;
}

std::string ReadFileOr(const std::string& name) {
  FILE* f = fopen((g_dir + "/" + name).c_str(), "re");
  if (!f) return "";
  char buf[512] = {};
  size_t n = fread(buf, 1, sizeof buf - 1, f);
  fclose(f);
  return std::string(buf, n);
}

uint64_t Mix(uint64_t x) {  // splitmix64: page contents nobody can guess
  x += 0x9e3779b97f4a7c15ull;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
  return x ^ (x >> 31);
}

void Fill(void* p, size_t len, uint64_t seed) {
  auto* w = static_cast<uint64_t*>(p);
  for (size_t i = 0; i < len / 8; i++) w[i] = Mix(seed + i);
}

bool Verify(const void* p, size_t len, uint64_t seed) {
  auto* w = static_cast<const uint64_t*>(p);
  for (size_t i = 0; i < len / 8; i++)
    if (w[i] != Mix(seed + i)) return false;
  return true;
}

// How many pages of [p, p+len) are resident (mincore).
size_t ResidentPages(const void* p, size_t len) {
  std::vector<unsigned char> vec((len + 4095) / 4096);
  if (mincore(const_cast<void*>(p), len, vec.data()) != 0) return SIZE_MAX;
  size_t n = 0;
  for (unsigned char c : vec) n += c & 1;
  return n;
}

}  // namespace wl
