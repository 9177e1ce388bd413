// What the scenarios of the self-checking workload share: the check
// protocol (Ready, WaitForCheck, EXPECT, Report), files in the test's
// directory, and page contents nobody can guess. main.cc has the table of
// scenarios; each scenario is a function declared below.
#pragma once

//   lazy      forks, mremaps, drops, remaps and read()s into memory that a
//             lazy restore has not placed yet (--big-mib, 64)
//   reaper    init of a test host's PID namespace (test-containers/hosts.sh)
#include <fcntl.h>
#include <grp.h>
#include <linux/aio_abi.h>
#include <linux/capability.h>
#include <linux/filter.h>
#include <linux/futex.h>
#include <linux/magic.h>
#include <linux/membarrier.h>
#include <linux/seccomp.h>
#include <linux/securebits.h>
#include <mqueue.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <sys/eventfd.h>
#include <sys/file.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/mount.h>
#include <sys/msg.h>
#include <sys/personality.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/sem.h>
#include <sys/shm.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/statvfs.h>
#include <sys/syscall.h>
#include <sys/time.h>
#include <sys/timerfd.h>
#include <sys/utsname.h>
#include <sys/wait.h>
#include <termios.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <csignal>
#include <cstdarg>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <fstream>
#include <functional>
#include <iterator>
#include <string>
#include <thread>
#include <vector>

namespace wl {

extern std::string g_dir;
extern volatile sig_atomic_t g_check;
extern std::string g_failures;

// A failed expectation, reported at the check.
void Fail(const char* fmt, ...) __attribute__((format(printf, 1, 2)));
#define EXPECT(cond, ...)           \
  do {                              \
    if (!(cond)) Fail(__VA_ARGS__); \
  } while (0)

void WriteFile(const std::string& name, const std::string& text);
// Writes DIR/result (PASS or the failures) and exits 0 or 1.
[[noreturn]] void Report();
void OnCheck(int);
// Asks each child to check itself (SIGUSR1) and waits for it to exit 0.
void CheckChildren(const std::vector<pid_t>& kids);
void InstallCheckHandler();
void Ready();
void WaitForCheck();
// The state letter of /proc/PID/stat.
std::string ReadProcStat(pid_t pid);
std::string Format2(const char* fmt, ...) __attribute__((format(printf, 1, 2)));
std::string ReadFileOr(const std::string& name);
uint64_t Mix(uint64_t x);
// The line of /proc/self/fdinfo/FD that starts with KEY, or "".
std::string FdinfoField(int fd, const char* key);
void Fill(void* p, size_t len, uint64_t seed);
bool Verify(const void* p, size_t len, uint64_t seed);
// How many pages of [p, p+len) are resident (mincore).
size_t ResidentPages(const void* p, size_t len);

// The scenarios (main.cc lists them with their options).
int Memory(long big_mib, bool sparse);
int Fpu();
int Cow(long mib);
int Shmem();
int DirtierMain(long mib, int threads, int rate, int procs);
int Hold(long mib);
int Thp(long mib, const std::string& what);
int Vmas(long thousands);
int Lazy(long mib);
int Files();
int Pipeline();
int Sockets();
int Timerfd();
int Signalfd();
int Epoll();
int Pidfd();
int Inotify();
int Aio();
int Inet();
int Tcp();
int Unix();
int UnixConns();
int Netlink();
int Conns(int n);
int Ghosts();
int Locks();
int Pty();
int Console();
int Fanotify();
int Memfd();
int Signals();
int Altstack();
int Itimer();
int Nanosleep(double secs);
int Futex();
int ReadStdin();
int Ptimers();
int Threads();
int Tree();
int Forker();
int Uts();
int IpcNs();
int CgroupNs(const std::string& dir);
int PidNs();
int TimeNs();
int MountNs();
int IpcObjects();
int IpcShm();
int IpcMessageQueues();
int NetNs();
int NetNsBelow();
int Container();
// Unshares a network namespace and brings its loopback up.
bool NewNetNamespaceWithLoopbackUp();
int Runaway(const std::string& cgroup);
int Forest(int procs, int threads, long mib);
int Jobs();
int Counter();
int Identity();
int Seccomp(const std::string& what);
int Refuse(const std::string& what);

}  // namespace wl
