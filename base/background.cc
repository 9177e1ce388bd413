#include "base/background.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>
#include <csignal>
#include <cstdlib>
#include <vector>

namespace crl {

void DetachFromTerminal(const std::set<int>& keep) {
  setsid();
  for (int sig : {SIGPIPE, SIGINT, SIGHUP, SIGQUIT, SIGTSTP, SIGTTIN, SIGTTOU})
    signal(sig, SIG_IGN);
  int null = open("/dev/null", O_RDWR | O_CLOEXEC);
  for (int fd = 0; fd < 3; fd++)
    if (!keep.count(fd)) dup2(null, fd);
  if (null > 2 && !keep.count(null)) close(null);
}

void CloseAllBut(const std::set<int>& keep) {
  std::vector<int> open_now;
  if (DIR* d = opendir("/proc/self/fd")) {
    while (dirent* e = readdir(d))
      if (e->d_name[0] != '.' && atoi(e->d_name) != dirfd(d)) open_now.push_back(atoi(e->d_name));
    closedir(d);
  } else {
    for (int fd = 0; fd < 4096; fd++) open_now.push_back(fd);  // no /proc: every number
  }
  for (int fd : open_now)
    if (!keep.count(fd)) close(fd);
}

long GuardWait(int fd) {
  setsid();
  sigset_t all;
  sigfillset(&all);
  sigprocmask(SIG_BLOCK, &all, nullptr);
  if (fd > 0) syscall(SYS_close_range, 0, fd - 1, 0);
  syscall(SYS_close_range, fd + 1, ~0U, 0);
  char c;
  ssize_t n;
  do n = read(fd, &c, 1);
  while (n < 0 && errno == EINTR);
  return n;
}

}  // namespace crl
