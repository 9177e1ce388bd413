#include "criu-lite/fd_dump.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <vector>

#include "kernel/proc_parsers.h"

namespace crl {
namespace {

Result<std::vector<int>> ListFds(pid_t pid) {
  std::string path = Format("/proc/%d/fd", pid);
  DIR* d = opendir(path.c_str());
  if (!d) return ErrnoError("opendir(%s)", path.c_str());
  std::vector<int> fds;
  while (dirent* e = readdir(d)) {
    if (e->d_name[0] == '.') continue;
    fds.push_back(atoi(e->d_name));
  }
  closedir(d);
  std::sort(fds.begin(), fds.end());
  return fds;
}

bool IsTerminal(const struct stat& s) {
  if (!S_ISCHR(s.st_mode)) return false;
  unsigned maj = major(s.st_rdev);
  return maj == 4 || maj == 5 || (maj >= 136 && maj <= 143);  // tty, console/ptmx, pts
}

}  // namespace

Status DumpFds(pid_t pid, bool shell_job, img::Fds* fds) {
  for (int fd : TRY(ListFds(pid))) {
    std::string link_path = Format("/proc/%d/fd/%d", pid, fd);
    char buf[4096];
    ssize_t n = readlink(link_path.c_str(), buf, sizeof buf - 1);
    if (n < 0) return ErrnoError("readlink(%s)", link_path.c_str());
    std::string link(buf, n);
    std::string info_text = TRY(ReadFileToString(Format("/proc/%d/fdinfo/%d", pid, fd)));
    FdInfo info = TRY(ParseFdInfo(info_text).Context(Format("/proc/%d/fdinfo/%d", pid, fd)));
    struct stat s;
    if (stat(link_path.c_str(), &s) < 0) return ErrnoError("stat(%s)", link_path.c_str());

    img::Fd out;
    out.set_fd(fd);
    out.set_cloexec(info.flags & O_CLOEXEC);
    out.set_flags(info.flags & ~O_CLOEXEC);
    out.set_pos(info.pos);
    out.set_path(link);
    bool stdio = fd <= 2;
    auto kind = FdLinkKind(link);
    if (stdio && shell_job && (kind || IsTerminal(s))) {
      // CRIU's --shell-job: the restored task gets restore's own stdio here.
      out.set_kind(img::Fd::INHERITED);
    } else if (kind) {
      return MakeError("PID %d fd %d is a %s (%s): not supported yet%s", pid, fd, kind->c_str(),
                       link.c_str(),
                       stdio ? "; dump with --shell-job to let the restored task use restore's "
                               "own stdin/stdout/stderr"
                             : "");
    } else if (IsTerminal(s)) {
      return MakeError("PID %d fd %d is the terminal %s; dump with --shell-job", pid, fd,
                       link.c_str());
    } else if (link.size() > 10 && link.compare(link.size() - 10, 10, " (deleted)") == 0) {
      return MakeError("PID %d fd %d is a deleted file (%s): not supported yet", pid, fd,
                       link.c_str());
    } else if (S_ISREG(s.st_mode)) {
      out.set_kind(img::Fd::REGULAR);
    } else if (S_ISDIR(s.st_mode)) {
      out.set_kind(img::Fd::DIRECTORY);
    } else if (S_ISCHR(s.st_mode)) {
      out.set_kind(img::Fd::CHARDEV);
    } else {
      return MakeError("PID %d fd %d (%s) is a %s: not supported yet", pid, fd, link.c_str(),
                       S_ISFIFO(s.st_mode) ? "FIFO" : S_ISSOCK(s.st_mode) ? "socket" : "special file");
    }
    img::FileId* id = out.mutable_file();
    id->set_dev(s.st_dev);
    id->set_ino(s.st_ino);
    id->set_size(s.st_size);
    id->set_mode(s.st_mode);
    *fds->add_fds() = std::move(out);
  }
  return Ok{};
}

}  // namespace crl
