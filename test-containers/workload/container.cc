// The init of a container: what a program in one holds in the mounts the
// runtime made for it, checked from inside.
#include <fcntl.h>
#include <linux/magic.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/statvfs.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstring>

#include "test-containers/workload/workload.h"

namespace wl {
namespace {

constexpr size_t kDataBytes = 64 * 1024;
constexpr off_t kOffset = 1234;

struct Kind {
  const char* path;
  long magic;
};
const Kind kMounts[] = {
    {"/proc", PROC_SUPER_MAGIC},
    {"/sys", SYSFS_MAGIC},
    {"/sys/fs/cgroup", CGROUP2_SUPER_MAGIC},
    {"/dev", TMPFS_MAGIC},
    {"/dev/pts", DEVPTS_SUPER_MAGIC},
    {"/dev/mqueue", 0x19800202 /* MQUEUE_MAGIC */},
    {"/dev/shm", TMPFS_MAGIC},
    {"/tmp", TMPFS_MAGIC},
};

std::string ReadAll(const char* path) {
  std::string out;
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  char buf[4096];
  for (ssize_t n; fd >= 0 && (n = read(fd, buf, sizeof buf)) > 0;) out.append(buf, n);
  if (fd >= 0) close(fd);
  return out;
}

size_t MountCount() {
  std::string text = ReadAll("/proc/self/mountinfo");
  size_t n = 0;
  for (char c : text) n += c == '\n';
  return n;
}

void CheckMounts(size_t count) {
  for (const Kind& k : kMounts) {
    struct statfs fs {};
    EXPECT(statfs(k.path, &fs) == 0 && fs.f_type == k.magic,
           "%s is not the file system it was (%lx)", k.path, static_cast<long>(fs.f_type));
  }
  struct statvfs sys {};
  EXPECT(statvfs("/sys", &sys) == 0 && (sys.f_flag & ST_RDONLY), "/sys is not read-only");
  EXPECT(statvfs("/tmp", &sys) == 0 && (sys.f_flag & ST_NODEV) && !(sys.f_flag & ST_RDONLY),
         "/tmp lost nodev or became read-only");
  EXPECT(MountCount() == count, "%zu mounts, %zu before", MountCount(), count);
}

}  // namespace

int Container() {
  if (getpid() != 1) return 2;
  char host[64] = {};
  gethostname(host, sizeof host - 1);
  std::string hostname = host;
  std::string launcher = ReadAll("/tmp/made-by-the-launcher");
  if (launcher.empty()) return 2;
  // A file on the tmpfs, open at an offset and mapped shared, made after
  // one that is gone (a gap in the tmpfs's inode numbers).
  int gone = open("/tmp/gone", O_WRONLY | O_CREAT, 0600);
  if (gone < 0 || close(gone) < 0 || unlink("/tmp/gone") < 0) return 2;
  int fd = open("/tmp/data", O_RDWR | O_CREAT | O_TRUNC, 0640);
  if (fd < 0 || ftruncate(fd, kDataBytes) < 0) return 2;
  auto* map =
      static_cast<uint8_t*>(mmap(nullptr, kDataBytes, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0));
  if (map == MAP_FAILED) return 2;
  Fill(map, kDataBytes, 15);
  lseek(fd, kOffset, SEEK_SET);
  int null = open("/dev/null", O_WRONLY);
  if (null < 0 || mkdir("/tmp/work", 0700) < 0) return 2;
  size_t mounts = MountCount();
  struct stat data {};
  fstat(fd, &data);
  // A pty of the container's devpts, its master here, its slave the
  // controlling terminal of the child's session; and a message queue of
  // the container's IPC namespace, seen in its /dev/mqueue.
  int master = open("/dev/ptmx", O_RDWR | O_NOCTTY | O_CLOEXEC);
  int index = -1, unlock = 0;
  if (master < 0 || ioctl(master, TIOCSPTLCK, &unlock) < 0 || ioctl(master, TIOCGPTN, &index) < 0)
    return 2;
  std::string slave = "/dev/pts/" + std::to_string(index);
  int queue = mq_open("/jobs", O_RDWR | O_CREAT | O_CLOEXEC, 0600, nullptr);
  if (queue < 0 || mq_send(queue, "job-1", 5, 2) < 0) return 2;
  int sync[2];
  if (pipe(sync) < 0) return 2;
  pid_t kid = fork();
  if (kid == 0) {
    // Without O_NOCTTY: a session leader's first terminal becomes its own.
    int tty = setsid() < 0 ? -1 : open(slave.c_str(), O_RDWR);
    if (tty < 0 || chdir("/tmp/work") < 0 || write(sync[1], "k", 1) != 1) _exit(2);
    InstallCheckHandler();
    WaitForCheck();
    char cwd[256] = {}, line[16] = {};
    bool ok = getcwd(cwd, sizeof cwd) && strcmp(cwd, "/tmp/work") == 0 && getppid() == 1;
    ok = ok && tcgetsid(tty) == getpid() && read(tty, line, sizeof line - 1) == 5 &&
         strcmp(line, "ping\n") == 0;
    _exit(ok ? 0 : 1);
  }
  char c;
  if (read(sync[0], &c, 1) != 1) return 2;
  volatile bool stop = false;
  std::thread spinner([&] {
    while (!stop) usleep(1000);
  });
  InstallCheckHandler();
  Ready();
  WaitForCheck();
  stop = true;
  spinner.join();
  EXPECT(getpid() == 1, "PID %d, not 1", getpid());
  EXPECT(kid == 2, "the child is PID %d", kid);
  gethostname(host, sizeof host - 1);
  EXPECT(hostname == host, "host name %s, was %s", host, hostname.c_str());
  EXPECT(ReadAll("/tmp/made-by-the-launcher") == launcher, "the tmpfs lost the launcher's file");
  struct stat now {};
  EXPECT(stat("/tmp/data", &now) == 0 && now.st_ino == data.st_ino,
         "/tmp/data is inode %lu, was %lu", now.st_ino, data.st_ino);
  EXPECT(lseek(fd, 0, SEEK_CUR) == kOffset, "/tmp/data is at offset %ld", lseek(fd, 0, SEEK_CUR));
  EXPECT(Verify(map, kDataBytes, 15), "the mapping of /tmp/data changed");
  uint8_t b = 0;
  map[kOffset] = 0x5a;
  EXPECT(pread(fd, &b, 1, kOffset) == 1 && b == 0x5a, "the mapping is no longer the file's");
  EXPECT(write(null, "x", 1) == 1, "/dev/null takes no write");
  int ptmx = open("/dev/ptmx", O_RDWR | O_NOCTTY);
  EXPECT(ptmx >= 0, "/dev/ptmx (devpts) does not open: %s", strerror(errno));
  char self[16] = {};
  EXPECT(readlink("/proc/self", self, sizeof self - 1) > 0 && strcmp(self, "1") == 0,
         "/proc is not the container's: /proc/self is %s", self);
  CheckMounts(mounts);
  int now_index = -1;
  EXPECT(ioctl(master, TIOCGPTN, &now_index) == 0 && now_index == index, "the pty is %d, was %d",
         now_index, index);
  struct stat pts {};
  EXPECT(stat(slave.c_str(), &pts) == 0, "%s is gone from the container's devpts", slave.c_str());
  EXPECT(write(master, "ping\n", 5) == 5, "the pty's master takes no write");
  char job[8192] = {};
  unsigned prio = 0;
  struct stat named {};
  EXPECT(stat("/dev/mqueue/jobs", &named) == 0, "/dev/mqueue does not show the queue");
  EXPECT(mq_receive(queue, job, sizeof job, &prio) == 5 && prio == 2 && strcmp(job, "job-1") == 0,
         "the queue lost its message");
  int st;
  kill(kid, SIGUSR1);
  EXPECT(waitpid(kid, &st, 0) == kid && WIFEXITED(st) && WEXITSTATUS(st) == 0,
         "the child's check failed");
  Report();
}

}  // namespace wl
