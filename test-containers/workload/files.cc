// Files: offsets and flags, pipes and sockets with data in flight,
// eventfds, timerfds, memfds.
#include "test-containers/workload/workload.h"

namespace wl {

// ---- files -------------------------------------------------------------------
int Files() {
  std::string data_path = g_dir + "/input.dat", log_path = g_dir + "/append.log";
  std::string content;
  for (int i = 0; i < 10000; i++) content += static_cast<char>('a' + Mix(i) % 26);
  {
    int f = open(data_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (write(f, content.data(), content.size()) != static_cast<ssize_t>(content.size())) return 2;
    close(f);
    f = open(log_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (write(f, "before\n", 7) != 7) return 2;
    close(f);
  }
  int in = open(data_path.c_str(), O_RDONLY);
  char buf[4096];
  if (read(in, buf, 1234) != 1234) return 2;
  int app = open(log_path.c_str(), O_WRONLY | O_APPEND | O_CLOEXEC);
  int devnull = open("/dev/null", O_RDWR);
  int dir = open(g_dir.c_str(), O_RDONLY | O_DIRECTORY);
  int high = dup2(in, 100) == 100 ? 100 : -1;  // shares the offset with `in`
  int rw = open(data_path.c_str(), O_RDWR | O_NONBLOCK);
  lseek(rw, 5000, SEEK_SET);
  // Names that are not UTF-8 (Latin-1 e-acute): the task's name, the
  // directory it works in, a file it has open and mapped.
  std::string latin_dir = g_dir + "/caf\xe9", latin_file = latin_dir + "/r\xe9sum\xe9.txt";
  const char kLatinComm[] = "service-caf\xe9";
  mkdir(latin_dir.c_str(), 0755);
  int lf = open(latin_file.c_str(), O_RDWR | O_CREAT | O_TRUNC, 0644);
  if (lf < 0 || ftruncate(lf, 4096) < 0 || pwrite(lf, "caf\xe9", 4, 0) != 4) return 2;
  auto* lmap = static_cast<const char*>(mmap(nullptr, 4096, PROT_READ, MAP_SHARED, lf, 0));
  if (lmap == MAP_FAILED || chdir(latin_dir.c_str()) < 0) return 2;
  prctl(PR_SET_NAME, kLatinComm);
  InstallCheckHandler();
  Ready();
  WaitForCheck();

  char comm[17] = {};
  prctl(PR_GET_NAME, comm);
  EXPECT(strcmp(comm, kLatinComm) == 0, "the task's name is '%s'", comm);
  char cwd[4096] = {};
  EXPECT(getcwd(cwd, sizeof cwd) && latin_dir == cwd, "the working directory is '%s'", cwd);
  char link[4096] = {};
  EXPECT(readlink(("/proc/self/fd/" + std::to_string(lf)).c_str(), link, sizeof link - 1) > 0 &&
             latin_file == link,
         "the Latin-1 file is now '%s'", link);
  EXPECT(memcmp(lmap, "caf\xe9", 4) == 0, "the Latin-1 file's mapping differs");

  EXPECT(read(in, buf, 100) == 100 && memcmp(buf, content.data() + 1234, 100) == 0,
         "reading on did not continue at offset 1234");
  EXPECT(lseek(high, 0, SEEK_CUR) >= 1234, "fd 100 lost its offset");
  EXPECT(write(app, "after\n", 6) == 6, "write to the O_APPEND file failed");
  EXPECT((fcntl(app, F_GETFL) & O_APPEND) && (fcntl(app, F_GETFD) & FD_CLOEXEC),
         "O_APPEND file lost O_APPEND or FD_CLOEXEC");
  EXPECT(!(fcntl(in, F_GETFD) & FD_CLOEXEC), "fd %d gained FD_CLOEXEC", in);
  {
    int f = open(log_path.c_str(), O_RDONLY);
    ssize_t n = read(f, buf, sizeof buf);
    EXPECT(n == 13 && memcmp(buf, "before\nafter\n", 13) == 0, "append log holds '%.*s'",
           int(n > 0 ? n : 0), buf);
    close(f);
  }
  EXPECT(write(devnull, "x", 1) == 1, "/dev/null is not writable");
  struct stat st;
  EXPECT(fstat(dir, &st) == 0 && S_ISDIR(st.st_mode), "directory fd lost");
  EXPECT((fcntl(rw, F_GETFL) & O_ACCMODE) == O_RDWR && (fcntl(rw, F_GETFL) & O_NONBLOCK),
         "O_RDWR|O_NONBLOCK fd lost flags");
  EXPECT(lseek(rw, 0, SEEK_CUR) == 5000, "O_RDWR fd offset is %ld", lseek(rw, 0, SEEK_CUR));
  Report();
}

// ---- pipeline ------------------------------------------------------------------
// producer -> pipe -> relay -> pipe -> consumer (the root), with data in
// flight in both pipes at the dump. The consumer checks that the sequence
// numbers it receives never skip or repeat, across the restore.
int Pipeline() {
  int p1[2], p2[2];
  if (pipe(p1) < 0 || pipe(p2) < 0) return 2;
  pid_t producer = fork();
  if (producer == 0) {
    close(p1[0]);
    close(p2[0]);
    close(p2[1]);
    for (uint64_t seq = 0;; seq++) {
      if (write(p1[1], &seq, 8) != 8) _exit(g_check ? 0 : 1);
      if (seq % 64 == 0) usleep(1000);
    }
  }
  pid_t relay = fork();
  if (relay == 0) {
    close(p1[1]);
    close(p2[0]);
    uint64_t buf[64];
    for (;;) {
      ssize_t n = read(p1[0], buf, sizeof buf);
      if (n <= 0) _exit(0);
      if (write(p2[1], buf, n) != n) _exit(0);
      usleep(3000);  // slower than the producer: data piles up in p1
    }
  }
  close(p1[0]);
  close(p1[1]);
  close(p2[1]);
  InstallCheckHandler();
  uint64_t expect = 0, got;
  auto consume = [&](int n) {
    for (int i = 0; i < n; i++) {
      ssize_t r = read(p2[0], &got, 8);
      if (r < 0 && errno == EINTR) {
        i--;
        continue;
      }
      if (r != 8) {
        Fail("read %zd bytes", r);
        return;
      }
      if (got != expect) {
        Fail("got record %lu, want %lu", got, expect);
        return;
      }
      expect++;
    }
  };
  consume(1000);
  Ready();
  WaitForCheck();
  consume(5000);
  kill(producer, SIGKILL);
  kill(relay, SIGKILL);
  waitpid(producer, nullptr, 0);
  waitpid(relay, nullptr, 0);
  Report();
}

// ---- sockets -------------------------------------------------------------------
// Unix socket pairs (stream and datagram) with messages queued, an eventfd
// in semaphore mode, and a file whose offset parent and child share.
int Sockets() {
  int st[2], dg[2];
  if (socketpair(AF_UNIX, SOCK_STREAM, 0, st) < 0 || socketpair(AF_UNIX, SOCK_DGRAM, 0, dg) < 0)
    return 2;
  int efd = eventfd(5, EFD_SEMAPHORE | EFD_NONBLOCK);
  std::string fpath = g_dir + "/shared-offset.dat";
  {
    int f = open(fpath.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    for (int i = 0; i < 256; i++) {
      char c = static_cast<char>(i);
      if (write(f, &c, 1) != 1) return 2;
    }
    close(f);
  }
  int shared_fd = open(fpath.c_str(), O_RDONLY);
  char buf[256];
  if (read(shared_fd, buf, 50) != 50) return 2;
  pid_t child = fork();
  if (child == 0) {
    close(st[0]);
    close(dg[0]);
    InstallCheckHandler();
    WaitForCheck();
    ssize_t n = recv(st[1], buf, sizeof buf, MSG_DONTWAIT);
    EXPECT(n == 16 && memcmp(buf, "stream-data-1234", 16) == 0, "stream queue: %zd bytes", n);
    for (int i = 1; i <= 3; i++) {
      n = recv(dg[1], buf, sizeof buf, MSG_DONTWAIT);
      EXPECT(n == i && buf[0] == 'a' + i - 1, "datagram %d: %zd bytes", i, n);
    }
    EXPECT(recv(dg[1], buf, sizeof buf, MSG_DONTWAIT) < 0, "an extra datagram");
    uint64_t v;
    EXPECT(read(efd, &v, 8) == 8 && v == 1, "eventfd semaphore read");
    EXPECT(read(shared_fd, buf, 10) == 10 && buf[0] == 50, "shared file read at %d", buf[0]);
    if (!g_failures.empty()) WriteFile("fail-child", g_failures);
    _exit(g_failures.empty() ? 0 : 1);
  }
  close(st[1]);
  close(dg[1]);
  if (send(st[0], "stream-data-1234", 16, 0) != 16) return 2;
  for (int i = 1; i <= 3; i++) {
    std::string m(i, static_cast<char>('a' + i - 1));
    if (send(dg[0], m.data(), m.size(), 0) != i) return 2;
  }
  usleep(50000);
  InstallCheckHandler();
  Ready();
  WaitForCheck();
  kill(child, SIGUSR1);
  int status;
  EXPECT(waitpid(child, &status, 0) == child && WIFEXITED(status) && WEXITSTATUS(status) == 0,
         "child failed (%x)", status);
  EXPECT(lseek(shared_fd, 0, SEEK_CUR) == 60, "shared offset is %ld, want 60",
         lseek(shared_fd, 0, SEEK_CUR));
  uint64_t v;
  int reads = 0;
  while (read(efd, &v, 8) == 8) reads++;
  EXPECT(reads == 4, "eventfd had %d left, want 4", reads);
  Report();
}

// ---- timerfd -------------------------------------------------------------------
// Four timerfds: one ticking every 20 ms (non-blocking), a one-shot due in
// 1000 s, a one-shot that expired unread (one pending expiration), and an
// absolute CLOCK_REALTIME one due in 500 s. After restore each is as it
// was, less the time the checkpoint took.
int64_t RemainingNs(int tfd) {
  itimerspec its{};
  if (timerfd_gettime(tfd, &its) < 0) return -1;
  return its.it_value.tv_sec * 1000000000ll + its.it_value.tv_nsec;
}

int Timerfd() {
  int ticking = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK);
  int later = timerfd_create(CLOCK_MONOTONIC, 0);
  int expired = timerfd_create(CLOCK_REALTIME, TFD_NONBLOCK);
  int absolute = timerfd_create(CLOCK_REALTIME, 0);
  if (ticking < 0 || later < 0 || expired < 0 || absolute < 0) return 2;
  itimerspec t{{0, 20000000}, {0, 20000000}};
  itimerspec l{{0, 0}, {1000, 0}};
  itimerspec e{{0, 0}, {0, 1000000}};
  timespec now;
  clock_gettime(CLOCK_REALTIME, &now);
  itimerspec a{{0, 0}, {now.tv_sec + 500, now.tv_nsec}};
  if (timerfd_settime(ticking, 0, &t, nullptr) < 0 || timerfd_settime(later, 0, &l, nullptr) < 0 ||
      timerfd_settime(expired, 0, &e, nullptr) < 0 ||
      timerfd_settime(absolute, TFD_TIMER_ABSTIME, &a, nullptr) < 0)
    return 2;
  usleep(20000);  // EXPIRED has expired: one expiration waits to be read
  InstallCheckHandler();
  Ready();
  WaitForCheck();
  EXPECT(fcntl(ticking, F_GETFL) & O_NONBLOCK, "the ticking timerfd lost O_NONBLOCK");
  uint64_t n = 0;
  pollfd p{ticking, POLLIN, 0};
  EXPECT(poll(&p, 1, 1000) == 1 && read(ticking, &n, 8) == 8 && n >= 1,
         "the 20 ms timerfd does not tick (%lu)", n);
  int64_t left = RemainingNs(later);
  EXPECT(left > 900ll * 1000000000 && left <= 1000ll * 1000000000,
         "the 1000 s timerfd has %ld ns left", left);
  n = 0;
  EXPECT(read(expired, &n, 8) == 8 && n == 1, "the expired timerfd reads %lu, want 1", n);
  left = RemainingNs(absolute);
  EXPECT(left > 400ll * 1000000000 && left <= 500ll * 1000000000,
         "the absolute timerfd has %ld ns left", left);
  Report();
}

// ---- signalfd ------------------------------------------------------------------
// A non-blocking signalfd for SIGUSR2 and SIGRTMIN+1 (both blocked) with
// SIGUSR2 and a queued SIGRTMIN+1 carrying a value waiting for it, and a
// blocking one for SIGHUP with nothing waiting. After restore the first
// reads both signals (the value too) and no more, each shows the mask it
// had, and the second reads a SIGHUP sent now.
std::string FdinfoField(int fd, const char* key) {
  std::ifstream in("/proc/self/fdinfo/" + std::to_string(fd));
  std::string all((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  size_t at = all.find(key);
  return at == std::string::npos ? "" : all.substr(at, all.find('\n', at) - at);
}

signalfd_siginfo ReadSignal(int fd) {
  signalfd_siginfo si{};
  if (read(fd, &si, sizeof si) != sizeof si) si.ssi_signo = 0;
  return si;
}

int Signalfd() {
  sigset_t two, hup, all;
  sigemptyset(&two);
  sigaddset(&two, SIGUSR2);
  sigaddset(&two, SIGRTMIN + 1);
  sigemptyset(&hup);
  sigaddset(&hup, SIGHUP);
  all = two;
  sigaddset(&all, SIGHUP);
  sigprocmask(SIG_BLOCK, &all, nullptr);
  int fd = signalfd(-1, &two, SFD_NONBLOCK);
  int quiet = signalfd(-1, &hup, 0);
  if (fd < 0 || quiet < 0) return 2;
  kill(getpid(), SIGUSR2);
  sigval v{};
  v.sival_int = 42;
  if (sigqueue(getpid(), SIGRTMIN + 1, v) < 0) return 2;
  std::string mask = FdinfoField(fd, "sigmask:"), quiet_mask = FdinfoField(quiet, "sigmask:");
  InstallCheckHandler();
  Ready();
  WaitForCheck();
  EXPECT(FdinfoField(fd, "sigmask:") == mask, "signalfd mask %s, was %s",
         FdinfoField(fd, "sigmask:").c_str(), mask.c_str());
  EXPECT(FdinfoField(quiet, "sigmask:") == quiet_mask, "the SIGHUP signalfd's mask changed");
  EXPECT(fcntl(fd, F_GETFL) & O_NONBLOCK, "the signalfd lost O_NONBLOCK");
  // Read lowest signal number first.
  signalfd_siginfo a = ReadSignal(fd), b = ReadSignal(fd);
  EXPECT(a.ssi_signo == SIGUSR2, "the signalfd read signal %u, want SIGUSR2", a.ssi_signo);
  EXPECT(b.ssi_signo == static_cast<uint32_t>(SIGRTMIN + 1) && b.ssi_int == 42,
         "the signalfd read signal %u with value %d, want SIGRTMIN+1 with 42", b.ssi_signo,
         b.ssi_int);
  errno = 0;
  EXPECT(ReadSignal(fd).ssi_signo == 0 && errno == EAGAIN, "more signals than were waiting");
  kill(getpid(), SIGHUP);
  pollfd p{quiet, POLLIN, 0};
  EXPECT(poll(&p, 1, 1000) == 1 && ReadSignal(quiet).ssi_signo == SIGHUP,
         "the SIGHUP signalfd does not read a SIGHUP sent after restore");
  Report();
}

// ---- memfd ---------------------------------------------------------------------
// A memfd shared by a parent and a child that mapped it after the fork (so
// not inherited), an open fd on it at an offset, and a private mapping of it
// with a page of its own.
int Memfd() {
  const size_t kLen = 1 << 20;
  int fd = memfd_create("crl-test", MFD_CLOEXEC);
  if (fd < 0 || ftruncate(fd, kLen) < 0) return 2;
  auto* parent_map =
      static_cast<uint64_t*>(mmap(nullptr, kLen, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0));
  Fill(parent_map, kLen / 2, 1000);  // the second half stays zero
  auto* priv = static_cast<char*>(mmap(nullptr, kLen, PROT_READ | PROT_WRITE, MAP_PRIVATE, fd, 0));
  Fill(priv + 4096, 4096, 1001);  // a private copy of page 1
  lseek(fd, 100, SEEK_SET);
  // A second, sealed memfd that cannot be executed (mode 0666, F_SEAL_EXEC).
  int sealed =
      memfd_create("crl-sealed", MFD_CLOEXEC | MFD_ALLOW_SEALING | 0x0008U /* NOEXEC_SEAL */);
  if (sealed < 0) sealed = memfd_create("crl-sealed", MFD_CLOEXEC | MFD_ALLOW_SEALING);  // < 6.3
  if (sealed < 0 || ftruncate(sealed, 8192) < 0 || fchmod(sealed, 0640) < 0 ||
      fcntl(sealed, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW) < 0)
    return 2;
  int sealed_seals = fcntl(sealed, F_GET_SEALS);
  pid_t child = fork();
  if (child == 0) {
    auto* mine = static_cast<volatile uint64_t*>(
        mmap(nullptr, kLen, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0));
    InstallCheckHandler();
    WaitForCheck();
    bool ok = Verify(const_cast<uint64_t*>(mine), kLen / 2, 1000);
    mine[kLen / 8 - 1] = 0xabcdef;  // the last word: seen by the parent?
    _exit(ok ? 0 : 1);
  }
  usleep(100000);
  InstallCheckHandler();
  Ready();
  WaitForCheck();
  kill(child, SIGUSR1);
  int st;
  EXPECT(waitpid(child, &st, 0) == child && WIFEXITED(st) && WEXITSTATUS(st) == 0,
         "child saw different memfd contents");
  EXPECT(parent_map[kLen / 8 - 1] == 0xabcdef,
         "the child's write to the memfd is not seen: not one object");
  EXPECT(Verify(parent_map, kLen / 2, 1000), "memfd contents differ");
  EXPECT(Verify(priv, 4096, 1000) && Verify(priv + 4096, 4096, 1001),
         "private memfd mapping differs");
  EXPECT(lseek(fd, 0, SEEK_CUR) == 100, "memfd offset is %ld", lseek(fd, 0, SEEK_CUR));
  uint64_t w = 0;
  EXPECT(pread(fd, &w, 8, kLen - 8) == 8 && w == 0xabcdef, "the fd does not see the mapping");
  EXPECT(fcntl(sealed, F_GET_SEALS) == sealed_seals, "seals 0x%x, not 0x%x",
         fcntl(sealed, F_GET_SEALS), sealed_seals);
  EXPECT(fcntl(fd, F_GET_SEALS) == F_SEAL_SEAL, "an unsealable memfd became sealable");
  EXPECT(ftruncate(sealed, 4096) < 0 && errno == EPERM, "a memfd sealed against shrinking shrank");
  struct stat sst;
  EXPECT(fstat(sealed, &sst) == 0 && (sst.st_mode & 07777) == 0640, "memfd mode 0%o",
         sst.st_mode & 07777);
  Report();
}

}  // namespace wl

// ---- deleted files -------------------------------------------------------------
namespace wl {

// Deleted files held open: a log written at an offset then deleted (opened
// twice: one read-only at its start, one O_APPEND sharing nothing with it);
// a sparse file of 1 GiB with two islands of data; a file in a directory
// that was removed; a file mapped shared and privately, then closed and
// deleted; an unlinked FIFO with bytes in it. After restore each has its bytes, offsets and flags,
// the sparse one stays sparse, two fds of one file are still one file, and nothing was left behind
// in the directories.
int Ghosts() {
  std::string log = g_dir + "/app.log", sparse = g_dir + "/sparse", sub = g_dir + "/gone",
              inner = sub + "/inner";
  int w = open(log.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0640);
  int r = open(log.c_str(), O_RDONLY);
  if (w < 0 || r < 0 || write(w, "line one\nline two\n", 18) != 18) return 2;
  lseek(r, 5, SEEK_SET);
  unlink(log.c_str());
  int s = open(sparse.c_str(), O_RDWR | O_CREAT, 0600);
  if (s < 0 || ftruncate(s, 1ll << 30) < 0 || pwrite(s, "head", 4, 4096) != 4 ||
      pwrite(s, "tail", 4, (1ll << 30) - 8192) != 4)
    return 2;
  unlink(sparse.c_str());
  if (mkdir(sub.c_str(), 0700) < 0) return 2;
  int in = open(inner.c_str(), O_RDWR | O_CREAT, 0604);
  if (in < 0 || write(in, "inside", 6) != 6) return 2;
  unlink(inner.c_str());
  rmdir(sub.c_str());
  // A deleted file mapped shared (and then closed: the mapping holds it),
  // and privately with a page of its own, as a library upgraded under a
  // running process.
  std::string mapped = g_dir + "/mapped.so";
  int mfd = open(mapped.c_str(), O_RDWR | O_CREAT, 0755);
  if (mfd < 0 || ftruncate(mfd, 3 * 4096) < 0 || pwrite(mfd, "code", 4, 4096) != 4) return 2;
  auto* shared_map =
      static_cast<char*>(mmap(nullptr, 3 * 4096, PROT_READ | PROT_WRITE, MAP_SHARED, mfd, 0));
  auto* private_map =
      static_cast<char*>(mmap(nullptr, 3 * 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE, mfd, 0));
  if (shared_map == MAP_FAILED || private_map == MAP_FAILED) return 2;
  close(mfd);
  unlink(mapped.c_str());
  shared_map[2 * 4096] = 's';  // into the file
  private_map[0] = 'p';        // a page of the process's own
  // An unlinked FIFO with bytes in it.
  std::string fifo = g_dir + "/fifo";
  if (mkfifo(fifo.c_str(), 0620) < 0) return 2;
  int ff = open(fifo.c_str(), O_RDWR | O_NONBLOCK);
  if (ff < 0 || write(ff, "fifo data", 9) != 9) return 2;
  struct stat fifo_st {};
  fstat(ff, &fifo_st);
  unlink(fifo.c_str());
  InstallCheckHandler();
  Ready();
  WaitForCheck();
  char buf[64] = {};
  EXPECT(pread(r, buf, 18, 0) == 18 && std::string(buf, 18) == "line one\nline two\n",
         "the deleted log reads '%s'", buf);
  EXPECT(lseek(r, 0, SEEK_CUR) == 5, "the log's reader is at %ld", (long)lseek(r, 0, SEEK_CUR));
  EXPECT(fcntl(w, F_GETFL) & O_APPEND, "the log's writer lost O_APPEND");
  EXPECT(
      write(w, "three\n", 6) == 6 && pread(r, buf, 6, 18) == 6 && std::string(buf, 6) == "three\n",
      "the log's two fds are no longer one file");
  struct stat st {};
  EXPECT(fstat(w, &st) == 0 && st.st_nlink == 0 && (st.st_mode & 07777) == 0640,
         "the log: %lu links, mode %o", (unsigned long)st.st_nlink, st.st_mode & 07777);
  EXPECT(fstat(s, &st) == 0 && st.st_size == (1ll << 30) && st.st_blocks < 1024,
         "the sparse file: size %ld, %ld blocks", (long)st.st_size, (long)st.st_blocks);
  EXPECT(pread(s, buf, 4, 4096) == 4 && std::string(buf, 4) == "head" &&
             pread(s, buf, 4, (1ll << 30) - 8192) == 4 && std::string(buf, 4) == "tail",
         "the sparse file lost its data");
  EXPECT(pread(in, buf, 6, 0) == 6 && std::string(buf, 6) == "inside",
         "the file of the removed directory reads '%s'", buf);
  EXPECT(access(sub.c_str(), F_OK) < 0 && access(log.c_str(), F_OK) < 0 &&
             access(mapped.c_str(), F_OK) < 0,
         "restore left the removed directory, the log or the mapped file behind");
  EXPECT(memcmp(shared_map + 4096, "code", 4) == 0 && shared_map[2 * 4096] == 's',
         "the deleted file mapped shared lost its bytes");
  EXPECT(private_map[0] == 'p' && memcmp(private_map + 4096, "code", 4) == 0 &&
             private_map[2 * 4096] == 's',
         "the private mapping of the deleted file differs");
  EXPECT(read(ff, buf, sizeof buf) == 9 && memcmp(buf, "fifo data", 9) == 0,
         "the unlinked FIFO lost its bytes");
  EXPECT(write(ff, "more", 4) == 4 && read(ff, buf, sizeof buf) == 4,
         "the unlinked FIFO no longer passes bytes");
  EXPECT(fstat(ff, &st) == 0 && st.st_mode == fifo_st.st_mode && access(fifo.c_str(), F_OK) < 0,
         "the unlinked FIFO: mode %o, was %o", st.st_mode, fifo_st.st_mode);
  shared_map[4096 + 8] = 'x';  // page 1: the private mapping still reads the file there
  EXPECT(private_map[4096 + 8] == 'x', "the two mappings are no longer of one file");
  Report();
}

}  // namespace wl

// ---- file locks ----------------------------------------------------------------
namespace wl {
namespace {

// The lock another description (in a child, for POSIX locks, which are the
// process's) would run into over [START, START+LEN): "W PID", "R PID" or
// "-" for none.
std::string Conflict(const std::string& path, int cmd, short type, off_t start, off_t len) {
  int fds[2];
  if (pipe(fds) < 0) return "pipe";
  pid_t c = fork();
  if (c == 0) {
    int other = open(path.c_str(), O_RDWR);
    struct flock l {};
    l.l_type = type;
    l.l_whence = SEEK_SET;
    l.l_start = start;
    l.l_len = len;
    std::string out = "?";
    if (other >= 0 && fcntl(other, cmd, &l) == 0)
      out = l.l_type == F_UNLCK ? "-" : Format2("%c %d", l.l_type == F_WRLCK ? 'W' : 'R', l.l_pid);
    if (write(fds[1], out.data(), out.size())) _exit(0);
    _exit(0);
  }
  close(fds[1]);
  char buf[64] = {};
  ssize_t n = read(fds[0], buf, sizeof buf - 1);
  close(fds[0]);
  waitpid(c, nullptr, 0);
  return std::string(buf, n > 0 ? n : 0);
}

}  // namespace

// Locks (dumped with --file-locks): a shared flock on one file through a
// description two fds share; POSIX locks on another (write over bytes 0-9,
// read from 100 to the end) and a child's own POSIX lock over 50-59; an
// OFD write lock over 5-14 of a third. After restore each still excludes
// what it excluded, with the same owner, and nothing more.
int Locks() {
  std::string a = g_dir + "/flocked", b = g_dir + "/posix", c = g_dir + "/ofd";
  int fa = open(a.c_str(), O_RDWR | O_CREAT, 0644), fb = open(b.c_str(), O_RDWR | O_CREAT, 0644),
      fc = open(c.c_str(), O_RDWR | O_CREAT, 0644);
  if (fa < 0 || fb < 0 || fc < 0 || flock(fa, LOCK_SH) < 0 || dup2(fa, 20) < 0) return 2;
  struct flock l {};
  l.l_whence = SEEK_SET;
  l.l_type = F_WRLCK;
  l.l_len = 10;
  if (fcntl(fb, F_SETLK, &l) < 0) return 2;
  l.l_type = F_RDLCK;
  l.l_start = 100;
  l.l_len = 0;
  if (fcntl(fb, F_SETLK, &l) < 0) return 2;
  l.l_type = F_WRLCK;
  l.l_start = 5;
  l.l_len = 10;
  if (fcntl(fc, F_OFD_SETLK, &l) < 0) return 2;
  int ready[2];
  if (pipe(ready) < 0) return 2;
  pid_t kid = fork();
  if (kid == 0) {
    struct flock k {};
    k.l_type = F_WRLCK;
    k.l_whence = SEEK_SET;
    k.l_start = 50;
    k.l_len = 10;
    if (fcntl(fb, F_SETLK, &k) < 0) _exit(2);
    close(ready[1]);
    for (;;) pause();
  }
  close(ready[1]);
  char byte;
  if (read(ready[0], &byte, 1) != 0) return 2;  // the child has its lock
  InstallCheckHandler();
  Ready();
  WaitForCheck();
  int other = open(a.c_str(), O_RDWR);
  EXPECT(flock(other, LOCK_EX | LOCK_NB) < 0 && errno == EWOULDBLOCK, "the flock was lost");
  EXPECT(flock(other, LOCK_SH | LOCK_NB) == 0, "the flock became exclusive");
  close(other);
  std::string me = Format2("%d", getpid()), child = Format2("%d", kid);
  std::string got;
  EXPECT((got = Conflict(b, F_GETLK, F_RDLCK, 0, 10)) == "W " + me, "POSIX 0-9: %s", got.c_str());
  EXPECT((got = Conflict(b, F_GETLK, F_WRLCK, 200, 10)) == "R " + me, "POSIX 200: %s", got.c_str());
  EXPECT((got = Conflict(b, F_GETLK, F_WRLCK, 20, 10)) == "-", "POSIX 20-29: %s", got.c_str());
  EXPECT((got = Conflict(b, F_GETLK, F_RDLCK, 50, 10)) == "W " + child, "the child's 50-59: %s",
         got.c_str());
  EXPECT((got = Conflict(c, F_OFD_GETLK, F_RDLCK, 5, 10)) == "W -1", "OFD 5-14: %s", got.c_str());
  EXPECT((got = Conflict(c, F_OFD_GETLK, F_WRLCK, 0, 5)) == "-", "OFD 0-4: %s", got.c_str());
  EXPECT(kill(kid, SIGKILL) == 0 && waitpid(kid, nullptr, 0) == kid, "child gone");
  Report();
}

}  // namespace wl

// ---- pseudo-terminals ----------------------------------------------------------
namespace wl {
namespace {

volatile sig_atomic_t g_sigint = 0;

// What the master reads within a second, packet headers dropped, until
// WANT shows up.
std::string ReadMaster(int master, const std::string& want) {
  std::string got;
  for (int ms = 0; ms < 2000 && got.find(want) == std::string::npos; ms++) {
    pollfd p{master, POLLIN, 0};
    char buf[256];
    ssize_t n = poll(&p, 1, 1) == 1 && (p.revents & POLLIN) ? read(master, buf, sizeof buf) : 0;
    if (n > 1 && buf[0] == 0) got.append(buf + 1, n - 1);  // TIOCPKT_DATA
    if (n <= 0) usleep(1000);
  }
  return got;
}

// The child: a session leader whose controlling terminal is the slave,
// answering each line with "echo:LINE" and a SIGINT with "sigint".
[[noreturn]] void Answer(const char* slave) {
  setsid();
  for (int i = 3; i < 64; i++) close(i);  // the parent's ptys are not the child's business
  int fd = open(slave, O_RDWR);           // the controlling terminal, being the first
  if (fd < 0 || ioctl(fd, TIOCSCTTY, 0) < 0) _exit(2);
  struct sigaction sa {};
  sa.sa_handler = [](int) { g_sigint = 1; };
  sigaction(SIGINT, &sa, nullptr);
  // SIGINT is let in only while it waits (ppoll): one arriving between a
  // look at the flag and the wait would otherwise go unanswered.
  sigset_t intr, waiting;
  sigemptyset(&intr);
  sigaddset(&intr, SIGINT);
  sigprocmask(SIG_BLOCK, &intr, &waiting);
  sigdelset(&waiting, SIGINT);
  if (write(fd, "up\n", 3) != 3) _exit(2);
  for (;;) {
    char line[128];
    pollfd p{fd, POLLIN, 0};
    ssize_t n = ppoll(&p, 1, nullptr, &waiting) == 1 ? read(fd, line, sizeof line) : 0;
    if (g_sigint) {
      g_sigint = 0;
      if (write(fd, "sigint\n", 7) != 7) _exit(2);
    }
    if (n > 0) {
      std::string out = "echo:" + std::string(line, n);
      if (write(fd, out.data(), out.size()) != (ssize_t)out.size()) _exit(2);
    }
  }
}

}  // namespace

// A pty pair (packet mode, 33x120, canonical with ISIG and no echo) whose
// slave is the controlling terminal of a child in its own session, and a
// second pty left locked. After restore: the same numbers and state, the
// child still answers a line, and ^C typed on the master interrupts it.
int Pty() {
  int master = posix_openpt(O_RDWR | O_NOCTTY), locked = posix_openpt(O_RDWR | O_NOCTTY);
  if (master < 0 || locked < 0 || grantpt(master) < 0 || unlockpt(master) < 0) return 2;
  std::string slave = ptsname(master);
  int s = open(slave.c_str(), O_RDWR | O_NOCTTY);
  termios t{};
  if (s < 0 || tcgetattr(s, &t) < 0) return 2;
  t.c_lflag = ICANON | ISIG;
  t.c_oflag = 0;
  t.c_cc[VINTR] = 3;
  winsize ws{33, 120, 0, 0};
  int one = 1;
  if (tcsetattr(s, TCSANOW, &t) < 0 || ioctl(master, TIOCSWINSZ, &ws) < 0 ||
      ioctl(master, TIOCPKT, &one) < 0)
    return 2;
  pid_t child = fork();
  if (child == 0) Answer(slave.c_str());
  if (ReadMaster(master, "up\n").find("up\n") == std::string::npos) return 2;
  close(s);  // held until the child had the slave open: the master reads EIO without
  int index = -1, locked_index = -1;
  ioctl(master, TIOCGPTN, &index);
  ioctl(locked, TIOCGPTN, &locked_index);
  InstallCheckHandler();
  Ready();
  WaitForCheck();
  int now = -1, packet = 0, lock = -1, lock2 = -1;
  EXPECT(ioctl(master, TIOCGPTN, &now) == 0 && now == index, "the pty is %d, was %d", now, index);
  EXPECT(ioctl(locked, TIOCGPTN, &now) == 0 && now == locked_index, "the locked pty is %d, was %d",
         now, locked_index);
  EXPECT(ioctl(master, TIOCGPTLCK, &lock) == 0 && lock == 0 &&
             ioctl(locked, TIOCGPTLCK, &lock2) == 0 && lock2 == 1,
         "locks %d and %d, want 0 and 1", lock, lock2);
  EXPECT(ioctl(master, TIOCGPKT, &packet) == 0 && packet == 1, "packet mode is off");
  winsize now_ws{};
  EXPECT(ioctl(master, TIOCGWINSZ, &now_ws) == 0 && now_ws.ws_row == 33 && now_ws.ws_col == 120,
         "window %dx%d", now_ws.ws_row, now_ws.ws_col);
  termios now_t{};
  EXPECT(tcgetattr(master, &now_t) == 0 && now_t.c_lflag == t.c_lflag && now_t.c_cc[VINTR] == 3,
         "termios lflag 0x%x", now_t.c_lflag);
  EXPECT(write(master, "hello\n", 6) == 6, "write to the master");
  std::string got = ReadMaster(master, "echo:hello\n");
  EXPECT(got == "echo:hello\n", "the child answered '%s'", got.c_str());
  EXPECT(write(master, "\x03", 1) == 1, "^C");
  got = ReadMaster(master, "sigint\n");
  EXPECT(got == "sigint\n", "after ^C the child wrote '%s'", got.c_str());
  EXPECT(kill(child, SIGKILL) == 0 && waitpid(child, nullptr, 0) == child, "child gone");
  Report();
}

// A container's init on a terminal whose master is outside the tree (runc
// run with --console-socket): stdin/out/err the slave, its session's
// controlling terminal, /dev/console a bind of it; set to 40x132 without
// echo. After restore: the same pty, still the controlling terminal with it
// in the foreground, the same size and modes, /dev/console the same device,
// and lines go both ways: it writes "pong" and reads the "ping" typed at the
// master the caller holds now.
int Console() {
  struct stat in {};
  const char* name = ttyname(0);
  if (!isatty(0) || !isatty(1) || fstat(0, &in) < 0 || !name) return 2;
  std::string was = name;
  termios t{};
  if (tcgetattr(0, &t) < 0) return 2;
  t.c_lflag &= ~ECHO;
  winsize ws{40, 132, 0, 0};
  if (tcsetattr(0, TCSANOW, &t) < 0 || ioctl(0, TIOCSWINSZ, &ws) < 0) return 2;
  InstallCheckHandler();
  Ready();
  WaitForCheck();
  struct stat now {
  }, console{};
  EXPECT(fstat(0, &now) == 0 && now.st_rdev == in.st_rdev, "stdin is another device");
  name = ttyname(0);
  EXPECT(name && was == name, "the terminal is %s, was %s", name ? name : "none", was.c_str());
  EXPECT(getsid(0) == getpid() && tcgetsid(0) == getpid(),
         "not the controlling terminal of its session (%d)", tcgetsid(0));
  EXPECT(tcgetpgrp(0) == getpgrp(), "the foreground group is %d, not its own", tcgetpgrp(0));
  EXPECT(stat("/dev/console", &console) == 0 && console.st_rdev == in.st_rdev,
         "/dev/console is not its terminal");
  winsize now_ws{};
  EXPECT(ioctl(0, TIOCGWINSZ, &now_ws) == 0 && now_ws.ws_row == 40 && now_ws.ws_col == 132,
         "window %dx%d", now_ws.ws_row, now_ws.ws_col);
  termios now_t{};
  EXPECT(tcgetattr(0, &now_t) == 0 && now_t.c_lflag == t.c_lflag, "termios lflag 0x%x, was 0x%x",
         now_t.c_lflag, t.c_lflag);
  EXPECT(write(1, "pong\n", 5) == 5, "writing to the terminal");
  char line[16] = {};
  EXPECT(read(0, line, sizeof line - 1) == 5 && strcmp(line, "ping\n") == 0,
         "read '%s' from the terminal", line);
  Report();
}

}  // namespace wl
