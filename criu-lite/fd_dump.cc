#include "criu-lite/fd_dump.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include <algorithm>
#include <climits>
#include <cstring>
#include <map>
#include <set>

#include "kernel/log.h"
#include "kernel/proc_parsers.h"
#include "kernel/scoped_fd.h"
#include "kernel/uapi.h"
#include "kernel/unix_diag.h"

namespace crl {
namespace {

constexpr int kKcmpFile = 0;  // KCMP_FILE

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

// Kinds only DumpFds uses, before the tree-wide pass settles them.
constexpr int kTerminal = 100;

Result<uint64_t> HexField(const std::string& text, const char* key) {
  size_t p = text.find(key);
  if (p == std::string::npos) return MakeError("no %s", key);
  return strtoull(text.c_str() + p + strlen(key), nullptr, 16);
}

// A copy of task PID's fd in criu-lite: the same open file description.
Result<ScopedFd> TakeFd(pid_t pid, int fd) {
  ScopedFd pidfd(syscall(__NR_pidfd_open, pid, 0));
  if (!pidfd.valid()) return ErrnoError("pidfd_open(%d)", pid);
  ScopedFd out(syscall(__NR_pidfd_getfd, pidfd.get(), fd, 0));
  if (!out.valid()) return ErrnoError("pidfd_getfd(pid=%d, fd=%d)", pid, fd);
  return out;
}

// Kernels before 6.6 do not show an eventfd's semaphore mode in fdinfo; a
// read shows it. With the tree frozen, criu-lite adds 2 to the counter and
// reads once: a semaphore gives 1 (and the extra 1 is read back), a plain
// counter gives all of it (and what was there is written back). The counter
// ends as it was; a poller in the tree wakes, finds nothing new and sleeps.
Result<bool> ProbeEventfdSemaphore(pid_t pid, int fd) {
  ScopedFd e = TRY(TakeFd(pid, fd));
  uint64_t two = 2, got = 0;
  if (write(e.get(), &two, 8) != 8) return ErrnoError("write(eventfd of PID %d fd %d)", pid, fd);
  if (read(e.get(), &got, 8) != 8) return ErrnoError("read(eventfd of PID %d fd %d)", pid, fd);
  if (got == 1) {
    if (read(e.get(), &got, 8) != 8) return ErrnoError("read(eventfd of PID %d fd %d)", pid, fd);
    return true;
  }
  uint64_t was = got - 2;
  if (was && write(e.get(), &was, 8) != 8)
    return ErrnoError("write(eventfd of PID %d fd %d)", pid, fd);
  return false;
}

// Bytes in a pipe, copied out with tee() so that they stay in it.
Result<std::string> PeekPipe(int read_end) {
  int tmp[2];
  if (pipe2(tmp, O_CLOEXEC | O_NONBLOCK) < 0) return ErrnoError("pipe2");
  ScopedFd r(tmp[0]), w(tmp[1]);
  int size = fcntl(read_end, F_GETPIPE_SZ);
  if (size > 0) fcntl(w.get(), F_SETPIPE_SZ, size);
  ssize_t n = tee(read_end, w.get(), INT_MAX, SPLICE_F_NONBLOCK);
  if (n < 0 && errno != EAGAIN) return ErrnoError("tee(pipe)");
  std::string data(n > 0 ? n : 0, '\0');
  if (n > 0 && read(r.get(), data.data(), n) != n) return ErrnoError("read(tee copy)");
  return data;
}

// One message (or, for a stream, the next bytes) of a socket's receive
// queue, peeked at SO_PEEK_OFF. File descriptors in flight with it
// (SCM_RIGHTS) are refused: peeking installs copies of them in criu-lite,
// which are closed at once.
Result<ssize_t> PeekOne(int sock, std::vector<char>& buf) {
  alignas(cmsghdr) char control[CMSG_SPACE(sizeof(int) * 253)];
  iovec iov{buf.data(), buf.size()};
  msghdr msg{};
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  msg.msg_control = control;
  msg.msg_controllen = sizeof control;
  ssize_t n = recvmsg(sock, &msg, MSG_PEEK | MSG_DONTWAIT | MSG_CMSG_CLOEXEC);
  if (n < 0) return n;
  bool rights = msg.msg_flags & MSG_CTRUNC;
  for (cmsghdr* c = CMSG_FIRSTHDR(&msg); c; c = CMSG_NXTHDR(&msg, c)) {
    if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS) continue;
    rights = true;
    size_t count = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
    for (size_t i = 0; i < count; i++) close(reinterpret_cast<int*>(CMSG_DATA(c))[i]);
  }
  if (rights)
    return MakeError(
        "file descriptors are in flight in it (SCM_RIGHTS): criu-lite cannot carry them yet");
  return n;
}

// A socket's receive queue, peeked: all bytes of a stream, or each message,
// walking the queue with SO_PEEK_OFF. An empty message does not move the
// peek offset, so it cannot be walked past: refused, rather than peeked for
// ever (it cannot be told from the end of a shut-down socket either).
Result<std::vector<std::string>> PeekSocket(int sock, int type) {
  std::vector<std::string> out;
  std::vector<char> buf(1 << 20);
  int off = 0;
  if (setsockopt(sock, SOL_SOCKET, SO_PEEK_OFF, &off, sizeof off) < 0)
    return ErrnoError("setsockopt(SO_PEEK_OFF)");
  Status st = [&]() -> Status {
    for (;;) {
      ssize_t n = TRY(PeekOne(sock, buf));
      if (n < 0 && errno == EAGAIN) return Ok{};
      if (n < 0) return ErrnoError("recvmsg(MSG_PEEK)");
      if (type == SOCK_STREAM) {
        if (n == 0) return Ok{};  // the peer shut down its end: nothing more
        if (out.empty()) out.emplace_back();
        out[0].append(buf.data(), n);  // a stream is one chunk
        continue;
      }
      if (n == 0)
        return MakeError("an empty message (or end of stream) is queued: not carried yet");
      out.emplace_back(buf.data(), n);
    }
  }();
  off = -1;  // back to plain peeking: the socket is the task's
  setsockopt(sock, SOL_SOCKET, SO_PEEK_OFF, &off, sizeof off);
  TRY(st);
  return out;
}

}  // namespace

Status DumpFds(pid_t pid, img::Fds* fds) {
  for (int fd : TRY(ListFds(pid))) {
    std::string link_path = Format("/proc/%d/fd/%d", pid, fd);
    char buf[4096];
    ssize_t n = readlink(link_path.c_str(), buf, sizeof buf - 1);
    if (n < 0) return ErrnoError("readlink(%s)", link_path.c_str());
    std::string link(buf, n);
    std::string info_text = TRY(ReadFileToString(Format("/proc/%d/fdinfo/%d", pid, fd)));
    FdInfo info = TRY(ParseFdInfo(info_text).Context(Format("/proc/%d/fdinfo/%d", pid, fd)));
    // fdinfo lists the locks (flock, POSIX, OFD) and leases held through it.
    if (size_t l = info_text.find("lock:\t"); l != std::string::npos) {
      std::string what = info_text.substr(l + 6, info_text.find('\n', l) - l - 6);
      return MakeError(
          "PID %d holds a file lock through fd %d (%s: %s): file locks are not "
          "carried yet",
          pid, fd, link.c_str(), what.c_str());
    }
    struct stat s;
    if (stat(link_path.c_str(), &s) < 0) return ErrnoError("stat(%s)", link_path.c_str());

    img::Fd out;
    out.set_fd(fd);
    out.set_cloexec(info.flags & O_CLOEXEC);
    out.set_flags(info.flags & ~O_CLOEXEC);
    out.set_pos(info.pos);
    out.set_path(link);
    out.set_ino(s.st_ino);
    auto kind = FdLinkKind(link);
    if (kind && *kind == "pipe") {
      out.set_kind(img::Fd::PIPE);
    } else if (kind && *kind == "socket") {
      out.set_kind(img::Fd::UNIX_SOCKET);
    } else if (kind && *kind == "anon_inode:eventfd") {
      out.set_kind(img::Fd::EVENTFD);
      out.set_eventfd_count(TRY(HexField(info_text, "eventfd-count:")));
      auto sem = HexField(info_text, "eventfd-semaphore:");
      out.set_eventfd_semaphore(sem.ok() ? *sem != 0 : TRY(ProbeEventfdSemaphore(pid, fd)));
    } else if (kind) {
      return MakeError("PID %d fd %d is a %s (%s): not supported yet", pid, fd, kind->c_str(),
                       link.c_str());
    } else if (IsTerminal(s)) {
      out.set_kind(static_cast<img::Fd::Kind>(kTerminal));
    } else if (link.rfind("/memfd:", 0) == 0 && S_ISREG(s.st_mode)) {
      out.set_kind(img::Fd::MEMFD);
    } else if (link.size() > 10 && link.compare(link.size() - 10, 10, " (deleted)") == 0) {
      return MakeError("PID %d fd %d is a deleted file (%s): not supported yet", pid, fd,
                       link.c_str());
    } else if (S_ISREG(s.st_mode)) {
      out.set_kind(img::Fd::REGULAR);
    } else if (S_ISDIR(s.st_mode)) {
      out.set_kind(img::Fd::DIRECTORY);
    } else if (S_ISCHR(s.st_mode)) {
      out.set_kind(img::Fd::CHARDEV);
    } else if (S_ISFIFO(s.st_mode)) {
      out.set_kind(img::Fd::FIFO);
    } else {
      return MakeError("PID %d fd %d (%s) is a %s: not supported yet", pid, fd, link.c_str(),
                       S_ISSOCK(s.st_mode) ? "socket" : "special file");
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

Status SaveMemfd(const std::string& access_path, const std::string& link, uint64_t ino,
                 img::Shared* shared) {
  for (const img::MemfdData& m : shared->memfds())
    if (m.ino() == ino) return Ok{};
  ScopedFd fd(open(access_path.c_str(), O_RDONLY | O_CLOEXEC));
  if (!fd.valid()) return ErrnoError("open(%s)", access_path.c_str());
  struct stat st;
  if (fstat(fd.get(), &st) < 0) return ErrnoError("fstat(%s)", access_path.c_str());
  img::MemfdData* m = shared->add_memfds();
  m->set_ino(ino);
  std::string name = link.substr(7);  // after "/memfd:"
  if (name.size() > 10 && name.compare(name.size() - 10, 10, " (deleted)") == 0)
    name.resize(name.size() - 10);
  m->set_name(name);
  m->set_size(st.st_size);
  m->set_mode(st.st_mode & 07777);
  m->set_uid(st.st_uid);
  m->set_gid(st.st_gid);
  int seals = fcntl(fd.get(), F_GET_SEALS);
  if (seals < 0) return ErrnoError("fcntl(%s, F_GET_SEALS)", access_path.c_str());
  m->set_seals(seals);
  std::string data(st.st_size, '\0');
  size_t off = 0;
  while (off < data.size()) {
    ssize_t n = pread(fd.get(), data.data() + off, data.size() - off, off);
    if (n <= 0) return ErrnoError("reading memfd %s", access_path.c_str());
    off += n;
  }
  // Trailing zeros need no room in the image: the size restores them.
  size_t end = data.find_last_not_of('\0');
  data.resize(end == std::string::npos ? 0 : end + 1);
  m->set_data(std::move(data));
  return Ok{};
}

Status ResolveTreeFds(const std::vector<ProcessFds>& procs, bool shell_job, img::Shared* shared) {
  // Which pipe ends and sockets the tree holds.
  std::map<uint64_t, std::pair<bool, bool>> pipe_ends;  // ino -> (read end, write end)
  std::set<uint64_t> sockets;
  bool any_socket = false;
  for (const auto& [pid, fds] : procs)
    for (const img::Fd& f : fds->fds()) {
      if (f.kind() == img::Fd::PIPE || f.kind() == img::Fd::FIFO) {
        int acc = f.flags() & O_ACCMODE;
        if (acc != O_WRONLY) pipe_ends[f.ino()].first = true;
        if (acc != O_RDONLY) pipe_ends[f.ino()].second = true;
      }
      if (f.kind() == img::Fd::UNIX_SOCKET) {
        sockets.insert(f.ino());
        any_socket = true;
      }
    }
  std::map<uint64_t, UnixSocketInfo> diag;
  if (any_socket) diag = TRY(ListUnixSockets());

  // Settle each fd's kind, or refuse it.
  for (const auto& [pid, fds] : procs) {
    for (img::Fd& f : *fds->mutable_fds()) {
      bool stdio = f.fd() <= 2;
      const char* hint = stdio ? "; dump with --shell-job to let the restored task use restore's "
                                 "own stdin/stdout/stderr"
                               : "";
      auto external = [&](const char* what) -> Status {
        if (stdio && shell_job) {
          f.set_kind(img::Fd::INHERITED);  // CRIU's --shell-job
          return Ok{};
        }
        return MakeError("PID %d fd %d is %s (%s)%s", pid, f.fd(), what, f.path().c_str(),
                         stdio ? hint : ": not supported yet");
      };
      if (f.kind() == kTerminal) {
        TRY(external("a terminal"));
      } else if (f.kind() == img::Fd::PIPE) {
        auto [r, w] = pipe_ends[f.ino()];
        if (!(r && w)) TRY(external("a pipe with its other end outside the tree"));
      } else if (f.kind() == img::Fd::UNIX_SOCKET) {
        auto it = diag.find(f.ino());
        if (it == diag.end()) {
          TRY(external("a socket that is not a unix socket"));
          continue;
        }
        const UnixSocketInfo& si = it->second;
        if (!si.name.empty() || !sockets.count(si.peer_ino)) {
          TRY(external(si.name.empty() ? "a unix socket connected outside the tree"
                                       : "a bound unix socket"));
          continue;
        }
        if (si.shutdown || (sockets.count(si.peer_ino) && diag[si.peer_ino].shutdown))
          return MakeError(
              "PID %d fd %d is a unix socket pair with an end shut down (shutdown()): not "
              "carried yet",
              pid, f.fd());
        f.set_sock_type(si.type);
        f.set_peer_ino(si.peer_ino);
      }
    }
  }

  // Open file descriptions: the fds of each inode are sorted by kcmp, which
  // orders the kernel's file objects, so that fds of one description end up
  // side by side: O(n log n) kcmp calls, where comparing each fd with every
  // earlier one took 60 s for 10,000 fds on one inode.
  struct Ref {
    pid_t pid;
    img::Fd* fd;
  };
  std::map<std::pair<uint64_t, uint64_t>, std::vector<Ref>> by_inode;  // (dev, ino)
  for (const auto& [pid, fds] : procs)
    for (img::Fd& f : *fds->mutable_fds())
      by_inode[{f.file().dev(), f.file().ino()}].push_back({pid, &f});
  Status kcmp_error = Ok{};
  auto kcmp = [&](const Ref& a, const Ref& b) -> long {
    long r = syscall(SYS_kcmp, a.pid, b.pid, kKcmpFile, a.fd->fd(), b.fd->fd());
    if (r < 0 && kcmp_error.ok())
      kcmp_error = ErrnoError("kcmp(%d fd %d, %d fd %d)", a.pid, a.fd->fd(), b.pid, b.fd->fd());
    return r;
  };
  uint32_t next_id = 1;
  for (auto& [inode, refs] : by_inode) {
    // kcmp: 0 the same, 1 less, 2 greater (3: no order: not with this kernel).
    std::sort(refs.begin(), refs.end(),
              [&](const Ref& a, const Ref& b) { return kcmp(a, b) == 1; });
    TRY(kcmp_error);
    for (size_t k = 0; k < refs.size(); k++) {
      long same = k ? kcmp(refs[k - 1], refs[k]) : 1;
      TRY(kcmp_error);
      if (same == 3) return MakeError("kcmp cannot order open files on this kernel");
      refs[k].fd->set_file_id(same == 0 ? refs[k - 1].fd->file_id() : next_id++);
    }
  }

  // Who owns each description's signals: asked of criu-lite's own copy of
  // it. An owner outside the tree could not be named again.
  std::set<pid_t> in_tree;
  for (const auto& [pid, fds] : procs) in_tree.insert(pid);
  std::map<uint32_t, std::pair<f_owner_ex, int>> owners;  // by file_id
  for (const auto& [pid, fds] : procs) {
    for (img::Fd& f : *fds->mutable_fds()) {
      if (f.kind() == img::Fd::INHERITED) continue;
      if (!owners.count(f.file_id())) {
        ScopedFd mine = TRY(TakeFd(pid, f.fd()));
        f_owner_ex owner{};
        if (fcntl(mine.get(), F_GETOWN_EX, &owner) < 0)
          return ErrnoError("fcntl(PID %d fd %d, F_GETOWN_EX)", pid, f.fd());
        int sig = fcntl(mine.get(), F_GETSIG);
        if (sig < 0) return ErrnoError("fcntl(PID %d fd %d, F_GETSIG)", pid, f.fd());
        owners[f.file_id()] = {owner, sig};
      }
      auto [owner, sig] = owners[f.file_id()];
      pid_t owner_process = owner.pid;  // a thread's process, a group's leader
      if (owner.type == F_OWNER_TID) {
        auto st = ReadFileToString(Format("/proc/%d/status", owner.pid));
        auto parsed = st.ok() ? ParseProcStatus(*st) : Result<ProcStatus>(st.error());
        owner_process = parsed.ok() ? parsed->tgid : -1;
      }
      if (owner.pid && !in_tree.count(owner_process))
        return MakeError(
            "PID %d fd %d (%s) sends its signals to %d, outside the tree: not "
            "carried",
            pid, f.fd(), f.path().c_str(), owner.pid);
      f.set_owner_type(owner.type);
      f.set_owner_pid(owner.pid);
      f.set_owner_signal(sig);
    }
  }

  // Data in flight, read through criu-lite's own copy of a task's fd.
  std::set<uint64_t> done;
  for (const auto& [pid, fds] : procs) {
    for (img::Fd& f : *fds->mutable_fds()) {
      if (f.kind() == img::Fd::MEMFD) {
        TRY(SaveMemfd(Format("/proc/%d/fd/%d", pid, f.fd()), f.path(), f.ino(), shared));
        continue;
      }
      bool pipe = f.kind() == img::Fd::PIPE || f.kind() == img::Fd::FIFO;
      bool sock = f.kind() == img::Fd::UNIX_SOCKET;
      if (!pipe && !sock) continue;
      ScopedFd mine = TRY(TakeFd(pid, f.fd()));
      if (pipe) {
        int size = fcntl(mine.get(), F_GETPIPE_SZ);
        if (size > 0) f.set_pipe_size(size);
        if ((f.flags() & O_ACCMODE) == O_WRONLY || done.count(f.ino())) continue;
        std::string data = TRY(PeekPipe(mine.get()).Context(Format("PID %d fd %d", pid, f.fd())));
        done.insert(f.ino());
        if (data.empty()) continue;
        img::QueuedData* q = shared->add_queues();
        q->set_ino(f.ino());
        q->add_chunks(std::move(data));
        LOG_INFO("pipe %lu: %zu bytes in flight", f.ino(), q->chunks(0).size());
      } else {
        if (done.count(f.ino())) continue;
        done.insert(f.ino());
        auto chunks =
            TRY(PeekSocket(mine.get(), f.sock_type()).Context(Format("PID %d fd %d", pid, f.fd())));
        if (chunks.empty()) continue;
        img::QueuedData* q = shared->add_queues();
        q->set_ino(f.ino());
        for (auto& c : chunks) q->add_chunks(std::move(c));
      }
    }
  }
  return Ok{};
}

}  // namespace crl
