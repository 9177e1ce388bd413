// Event objects: epoll (and what it watches), pidfd, inotify, AIO contexts.
#include <sys/epoll.h>
#include <sys/fanotify.h>
#include <sys/inotify.h>

#include <map>
#include <set>
#include <sstream>

#include "test-containers/workload/workload.h"

namespace wl {
namespace {

// An epoll's registrations as fdinfo shows them, without the targets'
// inodes (which a restore renews for pipes and eventfds), sorted (the
// kernel lists them by file address).
std::string Registrations(int ep) {
  std::ifstream in("/proc/self/fdinfo/" + std::to_string(ep));
  std::multiset<std::string> lines;
  for (std::string line; std::getline(in, line);)
    if (line.rfind("tfd:", 0) == 0) lines.insert(line.substr(0, line.find(" ino:")));
  std::string all;
  for (const std::string& l : lines) all += l + "\n";
  return all;
}

// What one epoll_wait(timeout 0) reports: data -> events.
std::map<uint64_t, uint32_t> Ready(int ep) {
  epoll_event ev[16];
  int n = epoll_wait(ep, ev, 16, 0);
  std::map<uint64_t, uint32_t> out;
  for (int i = 0; i < n; i++) out[ev[i].data.u64] = ev[i].events;
  return out;
}

void Add(int ep, int fd, uint32_t events, uint64_t data) {
  epoll_event ev{};
  ev.events = events;
  ev.data.u64 = data;
  if (epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev) < 0) {
    perror("epoll_ctl");
    exit(2);
  }
}

}  // namespace

// ---- epoll ---------------------------------------------------------------------
// One epoll with:
//   1 a pipe with data, level-triggered (EPOLLIN)
//   2 an eventfd edge-triggered whose edge was not collected yet
//   3 an eventfd edge-triggered whose edge was collected, count unread
//   4 a pipe's write end EPOLLONESHOT that already fired
//   5 a socket with a message, level-triggered, registered under fd 200,
//     which was then closed (its file lives on as another fd)
//   6 a second pipe registered under a number that was closed and given to
//     pipe 1's read end, which is registered too (two registrations under
//     one number)
//   7 a nested epoll (watching a ready eventfd)
//   8 an empty pipe, level-triggered, EPOLLEXCLUSIVE: never ready
//   9 an eventfd (count 1) registered and closed, which a child still holds
// After restore its registrations read as before and one epoll_wait
// reports exactly 1, 2, 3 (the edge again: see files/epoll.cc), 5, 6, 7, 9;
// the next reports the level-triggered ones only; 4 fires again once
// re-armed; writing to 8 makes it ready.
int Epoll() {
  int ep = epoll_create1(EPOLL_CLOEXEC);
  int p1[2], p4[2], p6[2], p8[2], sv[2];
  if (ep < 0 || pipe(p1) < 0 || pipe(p4) < 0 || pipe(p6) < 0 || pipe(p8) < 0 ||
      socketpair(AF_UNIX, SOCK_STREAM, 0, sv) < 0)
    return 2;
  int e2 = eventfd(1, EFD_NONBLOCK), e3 = eventfd(1, EFD_NONBLOCK);
  if (write(p1[1], "x", 1) != 1 || write(sv[1], "m", 1) != 1) return 2;
  Add(ep, p1[0], EPOLLIN, 1);
  Add(ep, e2, EPOLLIN | EPOLLET, 2);
  Add(ep, e3, EPOLLIN | EPOLLET, 3);
  Add(ep, p4[1], EPOLLOUT | EPOLLONESHOT, 4);
  Ready(ep);  // collects 1, 2 and 3, and fires 4
  uint64_t one = 1;
  if (write(e2, &one, 8) != 8) return 2;  // a new edge on 2, not collected
  if (dup2(sv[0], 200) < 0) return 2;
  Add(ep, 200, EPOLLIN, 5);
  close(200);
  // Pipe 6 registered under p6's number; then that number is given to a
  // dup of pipe 1's read end, registered too.
  int six = p6[0];
  if (write(p6[1], "y", 1) != 1) return 2;
  int six_kept = dup(six);
  Add(ep, six, EPOLLIN, 6);
  if (dup2(p1[0], six) < 0) return 2;
  Add(ep, six, EPOLLIN, 61);
  int inner = epoll_create1(0), e7 = eventfd(1, 0);
  Add(inner, e7, EPOLLIN, 70);
  Add(ep, inner, EPOLLIN, 7);
  Add(ep, p8[0], EPOLLIN | EPOLLEXCLUSIVE, 8);
  // 9: an eventfd registered and closed, which a child still holds.
  int e9 = eventfd(1, 0);
  Add(ep, e9, EPOLLIN, 9);
  pid_t keeper = fork();
  if (keeper == 0) {
    for (;;) pause();
  }
  close(e9);
  std::string before = Registrations(ep);
  InstallCheckHandler();
  Ready();
  WaitForCheck();
  std::string after = Registrations(ep);
  EXPECT(after == before, "registrations were\n%safter restore\n%s", before.c_str(), after.c_str());
  std::map<uint64_t, uint32_t> first = Ready(ep), second = Ready(ep);
  std::map<uint64_t, uint32_t> want_first = {{1, EPOLLIN}, {2, EPOLLIN}, {3, EPOLLIN},
                                             {5, EPOLLIN}, {6, EPOLLIN}, {61, EPOLLIN},
                                             {7, EPOLLIN}, {9, EPOLLIN}};
  std::map<uint64_t, uint32_t> want_second = {{1, EPOLLIN},  {5, EPOLLIN}, {6, EPOLLIN},
                                              {61, EPOLLIN}, {7, EPOLLIN}, {9, EPOLLIN}};
  auto show = [](const std::map<uint64_t, uint32_t>& m) {
    std::string s;
    for (auto [d, e] : m) s += Format2(" %lu:%x", d, e);
    return s;
  };
  EXPECT(first == want_first, "the first epoll_wait reported%s, want%s", show(first).c_str(),
         show(want_first).c_str());
  EXPECT(second == want_second, "the second epoll_wait reported%s, want%s", show(second).c_str(),
         show(want_second).c_str());
  epoll_event rearm{};
  rearm.events = EPOLLOUT | EPOLLONESHOT;
  rearm.data.u64 = 4;
  EXPECT(epoll_ctl(ep, EPOLL_CTL_MOD, p4[1], &rearm) == 0, "re-arming 4: %s", strerror(errno));
  EXPECT(Ready(ep).count(4), "the re-armed ONESHOT does not fire");
  EXPECT(write(p8[1], "z", 1) == 1 && Ready(ep).count(8), "the empty pipe does not become ready");
  // The closed number's registration is still the socket's: its data comes
  // and goes with the socket's.
  char c;
  EXPECT(read(sv[0], &c, 1) == 1 && c == 'm' && !Ready(ep).count(5),
         "the socket registered under a closed number does not follow the socket");
  EXPECT(read(six_kept, &c, 1) == 1 && c == 'y' && !Ready(ep).count(6),
         "pipe 6 registered under a reused number does not follow pipe 6");
  EXPECT(kill(keeper, SIGKILL) == 0 && waitpid(keeper, nullptr, 0) == keeper, "keeper gone");
  EXPECT(!Ready(ep).count(9), "the child's eventfd is still registered once the child is gone");
  Report();
}

}  // namespace wl

// ---- pidfd ---------------------------------------------------------------------
namespace wl {
namespace {

int PidfdOpen(pid_t pid, unsigned flags) {
  return static_cast<int>(syscall(SYS_pidfd_open, pid, flags));
}
int PidfdSignal(int fd, int sig) {
  return static_cast<int>(syscall(SYS_pidfd_send_signal, fd, sig, nullptr, 0));
}
bool Readable(int fd) {
  pollfd p{fd, POLLIN, 0};
  return poll(&p, 1, 0) == 1 && (p.revents & POLLIN);
}

}  // namespace

// Pidfds for: a live child (non-blocking, and watched by an epoll), a
// zombie child that exited with 7, a child that was reaped, the process
// itself, and one of its threads (PIDFD_THREAD, 6.9+). After restore each
// names the same task: the live child dies of SIGTERM sent through its
// pidfd, which the epoll reports, and waitid through it sees that; the
// zombie's reads its exit code; the reaped one is readable and signals no
// one; the own one and the thread's signal their task.
int Pidfd() {
  pid_t live = fork();
  if (live == 0) {
    for (;;) pause();
  }
  pid_t zombie = fork();
  if (zombie == 0) _exit(7);
  pid_t reaped = fork();
  if (reaped == 0) _exit(0);
  int live_fd = PidfdOpen(live, O_NONBLOCK /* PIDFD_NONBLOCK */), zombie_fd = PidfdOpen(zombie, 0),
      reaped_fd = PidfdOpen(reaped, 0), self_fd = PidfdOpen(getpid(), 0);
  if (live_fd < 0 || zombie_fd < 0 || reaped_fd < 0 || self_fd < 0) return 2;
  waitpid(reaped, nullptr, 0);
  siginfo_t si{};
  waitid(P_PID, zombie, &si, WEXITED | WNOWAIT);  // exited, not reaped
  static std::atomic<pid_t> thread_tid{0};
  pthread_t th;
  pthread_create(
      &th, nullptr,
      [](void*) -> void* {
        thread_tid = gettid();
        for (;;) pause();
      },
      nullptr);
  while (!thread_tid) usleep(1000);
  int thread_fd = PidfdOpen(thread_tid, O_EXCL /* PIDFD_THREAD */);  // -1 before 6.9
  int ep = epoll_create1(0);
  epoll_event ev{};
  ev.events = EPOLLIN;
  ev.data.u64 = 42;
  if (ep < 0 || epoll_ctl(ep, EPOLL_CTL_ADD, live_fd, &ev) < 0) return 2;
  signal(SIGUSR2, [](int) {});
  InstallCheckHandler();
  Ready();
  WaitForCheck();
  EXPECT(FdinfoField(live_fd, "Pid:") == Format2("Pid:\t%d", live), "the live child's pidfd: %s",
         FdinfoField(live_fd, "Pid:").c_str());
  EXPECT(fcntl(live_fd, F_GETFL) & O_NONBLOCK, "the live child's pidfd lost PIDFD_NONBLOCK");
  EXPECT(!Readable(live_fd), "the live child's pidfd is readable before it exits");
  EXPECT(PidfdSignal(live_fd, SIGTERM) == 0, "pidfd_send_signal to the live child: %s",
         strerror(errno));
  epoll_event got{};
  EXPECT(epoll_wait(ep, &got, 1, 2000) == 1 && got.data.u64 == 42,
         "the epoll does not report the live child's exit");
  si = {};
  EXPECT(waitid(static_cast<idtype_t>(3) /* P_PIDFD */, live_fd, &si, WEXITED) == 0 &&
             si.si_pid == live && si.si_code == CLD_KILLED && si.si_status == SIGTERM,
         "waitid through the live child's pidfd: %s", strerror(errno));
  EXPECT(Readable(zombie_fd), "the zombie's pidfd is not readable");
  si = {};
  EXPECT(waitid(static_cast<idtype_t>(3), zombie_fd, &si, WEXITED) == 0 && si.si_pid == zombie &&
             si.si_code == CLD_EXITED && si.si_status == 7,
         "waitid through the zombie's pidfd: pid %d code %d status %d (%s)", si.si_pid, si.si_code,
         si.si_status, strerror(errno));
  EXPECT(FdinfoField(reaped_fd, "Pid:") == "Pid:\t-1", "the reaped child's pidfd: %s",
         FdinfoField(reaped_fd, "Pid:").c_str());
  EXPECT(Readable(reaped_fd), "the reaped child's pidfd is not readable");
  EXPECT(PidfdSignal(reaped_fd, 0) < 0 && errno == ESRCH, "the reaped child's pidfd signals");
  EXPECT(FdinfoField(self_fd, "Pid:") == Format2("Pid:\t%d", getpid()), "the own pidfd: %s",
         FdinfoField(self_fd, "Pid:").c_str());
  EXPECT(PidfdSignal(self_fd, 0) == 0, "the own pidfd does not signal: %s", strerror(errno));
  if (thread_fd >= 0) {
    EXPECT(FdinfoField(thread_fd, "Pid:") == Format2("Pid:\t%d", thread_tid.load()),
           "the thread's pidfd: %s", FdinfoField(thread_fd, "Pid:").c_str());
    EXPECT(fcntl(thread_fd, F_GETFL) & O_EXCL, "the thread's pidfd lost PIDFD_THREAD");
    EXPECT(PidfdSignal(thread_fd, SIGUSR2) == 0, "the thread's pidfd does not signal: %s",
           strerror(errno));
  }
  Report();
}

}  // namespace wl

// ---- inotify -------------------------------------------------------------------
namespace wl {
namespace {

// The events waiting in inotify FD: "wd:mask:name" each.
std::vector<std::string> InotifyEvents(int fd) {
  std::vector<std::string> out;
  alignas(inotify_event) char buf[4096];
  for (;;) {
    ssize_t n = read(fd, buf, sizeof buf);
    if (n <= 0) break;
    for (char* p = buf; p < buf + n;) {
      auto* e = reinterpret_cast<inotify_event*>(p);
      out.push_back(Format2("%d:%x:%s", e->wd, e->mask, e->len ? e->name : ""));
      p += sizeof(inotify_event) + e->len;
    }
  }
  return out;
}

}  // namespace

// An inotify (non-blocking) watching a directory for creations
// (wd 1), a file for changes (wd 3: wd 2, on another file, was removed),
// and a file for one open only (IN_ONESHOT, wd 4); an event queued and
// not read at dump. After restore: no event waiting (queued events are not
// carried), the same watches, and each sees what happens now.
int Inotify() {
  // A directory of its own: the test makes files in the workload's.
  std::string d = g_dir + "/watch", watched = d + "/watched", other = d + "/other",
              once = d + "/once";
  if (mkdir(d.c_str(), 0700) < 0) return 2;
  WriteFile("watch/watched", "a");
  WriteFile("watch/other", "b");
  WriteFile("watch/once", "c");
  int in = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
  if (in < 0) return 2;
  int dir_wd = inotify_add_watch(in, d.c_str(), IN_CREATE | IN_EXCL_UNLINK);
  int other_wd = inotify_add_watch(in, other.c_str(), IN_MODIFY);
  int file_wd = inotify_add_watch(in, watched.c_str(), IN_MODIFY | IN_ATTRIB);
  int once_wd = inotify_add_watch(in, once.c_str(), IN_OPEN | IN_ONESHOT);
  if (dir_wd != 1 || other_wd != 2 || file_wd != 3 || once_wd != 4) return 2;
  inotify_rm_watch(in, other_wd);
  InotifyEvents(in);               // the IN_IGNORED of wd 2
  WriteFile("watch/queued", "q");  // an IN_CREATE queued at dump
  std::string before = FdinfoField(in, "inotify wd:1 "), info3 = FdinfoField(in, "inotify wd:3 ");
  InstallCheckHandler();
  Ready();
  WaitForCheck();
  std::vector<std::string> waiting = InotifyEvents(in);
  EXPECT(waiting.empty(), "%zu events waiting after restore, first %s", waiting.size(),
         waiting.empty() ? "" : waiting[0].c_str());
  EXPECT(FdinfoField(in, "inotify wd:1 ") == before, "watch 1 is %s, was %s",
         FdinfoField(in, "inotify wd:1 ").c_str(), before.c_str());
  EXPECT(FdinfoField(in, "inotify wd:3 ") == info3, "watch 3 is %s, was %s",
         FdinfoField(in, "inotify wd:3 ").c_str(), info3.c_str());
  EXPECT(FdinfoField(in, "inotify wd:2 ").empty(), "watch 2 came back");
  EXPECT(fcntl(in, F_GETFL) & O_NONBLOCK, "the inotify lost O_NONBLOCK");
  WriteFile("watch/new", "n");  // made as new.tmp, then renamed
  std::ofstream(watched, std::ios::app) << "more";
  close(open(once.c_str(), O_RDONLY));
  close(open(once.c_str(), O_RDONLY));  // the ONESHOT has gone
  std::vector<std::string> got = InotifyEvents(in);
  std::vector<std::string> want = {Format2("1:%x:new.tmp", IN_CREATE), Format2("3:%x:", IN_MODIFY),
                                   Format2("4:%x:", IN_OPEN), Format2("4:%x:", IN_IGNORED)};
  std::string g, w;
  for (auto& e : got) g += " " + e;
  for (auto& e : want) w += " " + e;
  EXPECT(g == w, "events after restore:%s, want%s", g.c_str(), w.c_str());
  Report();
}

}  // namespace wl

// ---- fanotify ------------------------------------------------------------------
namespace wl {

// A notification group (non-blocking) with a mark on a file (modify and
// close-write), an ignored mask that survives modification on another,
// and a mark on the filesystem of the test's directory (open). After
// restore: the same marks, no event waiting from before, and a write to
// the marked file is reported with an fd of that file.
int Fanotify() {
  std::string marked = g_dir + "/marked", quiet = g_dir + "/quiet";
  WriteFile("marked", "m");
  WriteFile("quiet", "q");
  int fan = fanotify_init(FAN_CLASS_NOTIF | FAN_NONBLOCK | FAN_CLOEXEC, O_RDONLY);
  if (fan < 0) return 2;
  if (fanotify_mark(fan, FAN_MARK_ADD, FAN_MODIFY | FAN_CLOSE_WRITE, AT_FDCWD, marked.c_str()) <
          0 ||
      fanotify_mark(fan, FAN_MARK_ADD | FAN_MARK_IGNORED_MASK | FAN_MARK_IGNORED_SURV_MODIFY,
                    FAN_OPEN, AT_FDCWD, quiet.c_str()) < 0 ||
      fanotify_mark(fan, FAN_MARK_ADD | FAN_MARK_FILESYSTEM, FAN_OPEN, AT_FDCWD, g_dir.c_str()) < 0)
    return 2;
  auto marks = [fan] {
    std::ifstream in("/proc/self/fdinfo/" + std::to_string(fan));
    std::multiset<std::string> lines;
    for (std::string line; std::getline(in, line);)
      if (line.rfind("fanotify ", 0) == 0) lines.insert(line);
    std::string all;
    for (const std::string& l : lines) all += l + "\n";
    return all;
  };
  std::string before = marks();
  InstallCheckHandler();
  Ready();
  WaitForCheck();
  std::string after = marks();
  EXPECT(after == before, "marks were\n%safter restore\n%s", before.c_str(), after.c_str());
  EXPECT(fcntl(fan, F_GETFL) & O_NONBLOCK, "the group lost FAN_NONBLOCK");
  alignas(fanotify_event_metadata) char buf[8192];
  while (read(fan, buf, sizeof buf) > 0) {
  }  // what the filesystem mark saw meanwhile
  int w = open(marked.c_str(), O_WRONLY | O_APPEND);
  EXPECT(w >= 0 && write(w, "x", 1) == 1, "writing the marked file");
  close(w);
  bool modified = false, closed = false;
  for (int tries = 0; tries < 100 && !(modified && closed); tries++) {
    ssize_t n = read(fan, buf, sizeof buf);
    if (n <= 0) {
      usleep(10000);
      continue;
    }
    for (auto* e = reinterpret_cast<fanotify_event_metadata*>(buf); FAN_EVENT_OK(e, n);
         e = FAN_EVENT_NEXT(e, n)) {
      char link[4096] = {};
      if (e->fd >= 0) {
        if (readlink(Format2("/proc/self/fd/%d", e->fd).c_str(), link, sizeof link - 1) > 0 &&
            marked == link) {
          modified |= (e->mask & FAN_MODIFY) != 0;
          closed |= (e->mask & FAN_CLOSE_WRITE) != 0;
        }
        close(e->fd);
      }
    }
  }
  EXPECT(modified && closed, "the marked file's write: modify %d, close-write %d", modified,
         closed);
  Report();
}

}  // namespace wl

// ---- AIO -------------------------------------------------------------------------
namespace wl {
namespace {

struct AioRing {  // fs/aio.c's struct aio_ring
  unsigned id, nr, head, tail, magic, compat_features, incompat_features, header_length;
};

long AioSubmit(aio_context_t ctx, iocb* cb) { return syscall(SYS_io_submit, ctx, 1, &cb); }
long AioEvents(aio_context_t ctx, long min, long max, io_event* ev, timespec* t) {
  return syscall(SYS_io_getevents, ctx, min, max, ev, t);
}
iocb AioWrite(int fd, const char* text, off_t off, uint64_t data) {
  iocb cb{};
  cb.aio_lio_opcode = IOCB_CMD_PWRITE;
  cb.aio_fildes = fd;
  cb.aio_buf = reinterpret_cast<uint64_t>(text);
  cb.aio_nbytes = strlen(text);
  cb.aio_offset = off;
  cb.aio_data = data;
  return cb;
}
iocb AioPoll(int fd, uint64_t data) {
  iocb cb{};
  cb.aio_lio_opcode = IOCB_CMD_POLL;
  cb.aio_fildes = fd;
  cb.aio_buf = POLLIN;
  cb.aio_data = data;
  return cb;
}

}  // namespace

// Two AIO contexts. The first has gone round its ring more than once and
// holds three completions not reaped yet (two writes to a file, a poll);
// the second is empty. After restore each is the same context (same
// address, size, head and tail), the three completions are reaped in order
// with their results, and both take new requests: a write lands in the
// file, a poll of a pipe completes when the pipe is written.
int Aio() {
  aio_context_t a = 0, b = 0;
  if (syscall(SYS_io_setup, 128, &a) < 0 || syscall(SYS_io_setup, 16, &b) < 0) return 2;
  int file = open((g_dir + "/aio-file").c_str(), O_RDWR | O_CREAT | O_TRUNC, 0600);
  int ready[2], later[2];
  if (file < 0 || pipe(ready) < 0 || pipe(later) < 0 || write(ready[1], "r", 1) != 1) return 2;
  auto* ra = reinterpret_cast<AioRing*>(a);
  io_event ev[8];
  for (unsigned i = 0; i < ra->nr + 50; i++) {  // round the ring once and more
    iocb p = AioPoll(ready[0], i);
    if (AioSubmit(a, &p) != 1 || AioEvents(a, 1, 1, ev, nullptr) != 1) return 2;
  }
  static iocb w1 = AioWrite(file, "first ", 0, 101), w2 = AioWrite(file, "second", 6, 102),
              p1 = AioPoll(ready[0], 103);
  for (iocb* cb : {&w1, &w2, &p1})
    if (AioSubmit(a, cb) != 1) return 2;
  AioRing before_a = *ra, before_b = *reinterpret_cast<AioRing*>(b);
  InstallCheckHandler();
  Ready();
  WaitForCheck();
  auto* rb = reinterpret_cast<AioRing*>(b);
  EXPECT(ra->nr == before_a.nr && ra->head == before_a.head && ra->tail == before_a.tail,
         "context A's ring: %u events, head %u, tail %u; it had %u, %u, %u", ra->nr, ra->head,
         ra->tail, before_a.nr, before_a.head, before_a.tail);
  EXPECT(rb->nr == before_b.nr && rb->head == before_b.head && rb->tail == before_b.tail,
         "context B's ring: %u events, head %u, tail %u; it had %u, %u, %u", rb->nr, rb->head,
         rb->tail, before_b.nr, before_b.head, before_b.tail);
  timespec now{0, 0};
  long n = AioEvents(a, 0, 8, ev, &now);
  EXPECT(n == 3, "context A has %ld completions waiting, not 3 (%s)", n, strerror(errno));
  const uint64_t data[] = {101, 102, 103};
  const iocb* objs[] = {&w1, &w2, &p1};
  const int64_t res[] = {6, 6, POLLIN};
  for (long i = 0; i < std::min(n, 3L); i++)
    EXPECT(ev[i].data == data[i] && ev[i].obj == reinterpret_cast<uint64_t>(objs[i]) &&
               ev[i].res == res[i],
           "completion %ld: data %llu res %lld, expected %lu and %ld", i,
           static_cast<unsigned long long>(ev[i].data), static_cast<long long>(ev[i].res), data[i],
           res[i]);
  static iocb w3 = AioWrite(file, " third", 12, 104), p2 = AioPoll(later[0], 105);
  EXPECT(AioSubmit(a, &w3) == 1 && AioEvents(a, 1, 1, ev, nullptr) == 1 && ev[0].data == 104 &&
             ev[0].res == 6,
         "a new write through context A: %s", strerror(errno));
  EXPECT(AioSubmit(b, &p2) == 1, "a poll through context B: %s", strerror(errno));
  EXPECT(AioEvents(b, 0, 1, ev, &now) == 0,
         "context B's poll completed before its pipe was written");
  EXPECT(write(later[1], "x", 1) == 1, "write");
  timespec second{1, 0};
  EXPECT(AioEvents(b, 1, 1, ev, &second) == 1 && ev[0].data == 105,
         "context B's poll did not complete when its pipe was written");
  char text[32] = {};
  EXPECT(pread(file, text, sizeof text - 1, 0) == 18 && std::string(text) == "first second third",
         "the file has '%s'", text);
  Report();
}

}  // namespace wl
