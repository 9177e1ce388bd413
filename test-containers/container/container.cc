// A minimal container launcher, the way runtimes make one: new PID, mount,
// UTS, IPC, network and cgroup namespaces, a root file system the caller
// gives (busybox and a static workload), pivot_root into it (or, from
// an initial ramfs, a move over / and chroot), its own /proc,
// /sys, /dev (a tmpfs with device nodes, a devpts instance, mqueue, shm),
// a /tmp tmpfs, cgroup2 at /sys/fs/cgroup, and host directories bound in.
//
//   container --rootfs DIR [--hostname NAME] [--cgroup DIR] [--pidfile FILE]
//             [--bind HOST:INSIDE]... [--stdio PATH]
//             [--veth HOSTIF[@BRIDGE]:ADDR/PREFIX[,GATEWAY]] -- PROGRAM ARGS...
//
// The launcher stays outside as the init's parent and exits with its status
// (as `unshare --fork` does); --pidfile gets the init's host PID before the
// program runs. --cgroup DIR (a cgroup2 directory, made if missing): the
// init is put there before it makes its cgroup namespace. --stdio PATH (a
// path inside): the program's stdout and stderr go there, its stdin is the
// container's /dev/null, as a runtime gives them (without it the program
// keeps the launcher's). --veth: a veth pair to the host, as a runtime's
// network plugin makes one: HOSTIF outside (in BRIDGE if given, up), eth0
// inside with ADDR/PREFIX (and a default route via GATEWAY), made with
// iproute2's ip before the program runs.
#include <fcntl.h>
#include <net/if.h>
#include <sched.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <utility>
#include <vector>

namespace {

struct Options {
  std::string rootfs, hostname = "crl-container", cgroup, pidfile, stdio, veth;
  std::vector<std::pair<std::string, std::string>> binds;  // host, inside
  std::vector<char*> argv;
};

[[noreturn]] void Die(const char* what) {
  fprintf(stderr, "container: %s: %s\n", what, strerror(errno));
  _exit(125);
}

void Check(bool ok, const char* what) {
  if (!ok) Die(what);
}

void Mount(const char* src, const std::string& dst, const char* type, unsigned long flags,
           const char* data) {
  mkdir(dst.c_str(), 0755);
  if (mount(src, dst.c_str(), type, flags, data) < 0) Die(("mount " + dst).c_str());
}

void WriteFile(const std::string& path, const std::string& text) {
  int fd = open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  Check(fd >= 0 && write(fd, text.data(), text.size()) == ssize_t(text.size()), path.c_str());
  close(fd);
}

// /dev as runtimes make it: a small tmpfs with the usual nodes and links.
void MakeDev(const std::string& root) {
  std::string dev = root + "/dev";
  Mount("tmpfs", dev, "tmpfs", MS_NOSUID | MS_STRICTATIME, "mode=755,size=65536k");
  struct Node {
    const char* name;
    int major, minor;
  };
  for (Node n : {Node{"null", 1, 3}, Node{"zero", 1, 5}, Node{"full", 1, 7}, Node{"random", 1, 8},
                 Node{"urandom", 1, 9}, Node{"tty", 5, 0}})
    Check(mknod((dev + "/" + n.name).c_str(), S_IFCHR | 0666, makedev(n.major, n.minor)) == 0,
          n.name);
  for (const char* n : {"null", "zero", "full", "random", "urandom", "tty"})
    chmod((dev + "/" + n).c_str(), 0666);
  Mount("devpts", dev + "/pts", "devpts", MS_NOSUID | MS_NOEXEC,
        "newinstance,ptmxmode=0666,mode=0620,gid=5");
  Check(symlink("pts/ptmx", (dev + "/ptmx").c_str()) == 0, "/dev/ptmx");
  Check(symlink("/proc/self/fd", (dev + "/fd").c_str()) == 0, "/dev/fd");
  Mount("shm", dev + "/shm", "tmpfs", MS_NOSUID | MS_NODEV | MS_NOEXEC, "mode=1777,size=65536k");
  Mount("mqueue", dev + "/mqueue", "mqueue", MS_NOSUID | MS_NODEV | MS_NOEXEC, nullptr);
}

void LoopbackUp() {
  int s = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  ifreq ifr{};
  strcpy(ifr.ifr_name, "lo");
  Check(s >= 0 && ioctl(s, SIOCGIFFLAGS, &ifr) == 0, "lo");
  ifr.ifr_flags |= IFF_UP;
  Check(ioctl(s, SIOCSIFFLAGS, &ifr) == 0, "lo up");
  close(s);
}

// The init: waits for the launcher (its cgroup), then builds the container
// and runs the program in it.
int Init(const Options& o, int go) {
  char c;
  Check(read(go, &c, 1) == 1, "waiting for the launcher");
  close(go);
  if (!o.cgroup.empty()) Check(unshare(CLONE_NEWCGROUP) == 0, "unshare(CLONE_NEWCGROUP)");
  Check(sethostname(o.hostname.c_str(), o.hostname.size()) == 0, "sethostname");
  LoopbackUp();
  const std::string& r = o.rootfs;
  Check(mount(nullptr, "/", nullptr, MS_REC | MS_PRIVATE, nullptr) == 0, "making / private");
  Check(mount(r.c_str(), r.c_str(), nullptr, MS_BIND, nullptr) == 0, "binding the root");
  Mount("proc", r + "/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, nullptr);
  Mount("sysfs", r + "/sys", "sysfs", MS_NOSUID | MS_NODEV | MS_NOEXEC | MS_RDONLY, nullptr);
  Mount("cgroup2", r + "/sys/fs/cgroup", "cgroup2", MS_NOSUID | MS_NODEV | MS_NOEXEC, nullptr);
  MakeDev(r);
  Mount("tmpfs", r + "/tmp", "tmpfs", MS_NOSUID | MS_NODEV, "mode=1777,size=65536k");
  WriteFile(r + "/tmp/made-by-the-launcher", "a file on the container's tmpfs\n");
  for (const auto& [host, inside] : o.binds) {
    mkdir((r + inside).c_str(), 0755);
    Check(mount(host.c_str(), (r + inside).c_str(), nullptr, MS_BIND, nullptr) == 0,
          ("binding " + host).c_str());
  }
  Check(chdir(r.c_str()) == 0, "chdir(rootfs)");
  if (syscall(SYS_pivot_root, ".", ".") == 0) {
    Check(umount2(".", MNT_DETACH) == 0, "unmounting the old root");
  } else {
    // The initial ramfs (a VM's root) cannot be pivoted away from: moved
    // over and chrooted into, as runc does without pivot_root.
    Check(errno == EINVAL, "pivot_root");
    Check(mount(".", "/", nullptr, MS_MOVE, nullptr) == 0 && chroot(".") == 0,
          "moving the root over /");
  }
  Check(chdir("/") == 0, "chdir(/)");
  if (!o.stdio.empty()) {
    int in = open("/dev/null", O_RDONLY);
    int out = open(o.stdio.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
    Check(in >= 0 && out >= 0 && dup2(in, 0) == 0 && dup2(out, 1) == 1 && dup2(out, 2) == 2,
          o.stdio.c_str());
    close(in);
    close(out);
  }
  execv(o.argv[0], o.argv.data());
  Die(o.argv[0]);
}

Options Parse(int argc, char** argv) {
  Options o;
  int i = 1;
  for (; i < argc && strcmp(argv[i], "--") != 0; i++) {
    std::string a = argv[i];
    if (i + 1 >= argc) break;
    std::string v = argv[++i];
    if (a == "--rootfs") {
      o.rootfs = v;
    } else if (a == "--hostname") {
      o.hostname = v;
    } else if (a == "--cgroup") {
      o.cgroup = v;
    } else if (a == "--stdio") {
      o.stdio = v;
    } else if (a == "--veth" && v.find(':') != std::string::npos) {
      o.veth = v;
    } else if (a == "--pidfile") {
      o.pidfile = v;
    } else if (a == "--bind" && v.find(':') != std::string::npos) {
      o.binds.push_back({v.substr(0, v.find(':')), v.substr(v.find(':') + 1)});
    } else {
      fprintf(stderr, "container: bad option %s %s\n", a.c_str(), v.c_str());
      exit(125);
    }
  }
  for (i++; i < argc; i++) o.argv.push_back(argv[i]);
  o.argv.push_back(nullptr);
  if (o.rootfs.empty() || o.argv.size() < 2) {
    fprintf(stderr,
            "usage: container --rootfs DIR [--hostname NAME] [--cgroup DIR] [--pidfile FILE] "
            "[--bind HOST:INSIDE]... [--stdio PATH] [--veth HOSTIF[@BRIDGE]:ADDR/PREFIX[,GATEWAY]] "
            "-- PROGRAM ARGS...\n");
    exit(125);
  }
  char real[4096];
  Check(realpath(o.rootfs.c_str(), real) != nullptr, o.rootfs.c_str());
  o.rootfs = real;
  return o;
}

// Runs ARGS (PATH searched), dying if it fails.
void Run(std::vector<std::string> args) {
  pid_t pid = fork();
  Check(pid >= 0, "fork");
  if (pid == 0) {
    std::vector<char*> argv;
    for (std::string& a : args) argv.push_back(a.data());
    argv.push_back(nullptr);
    execvp(argv[0], argv.data());
    _exit(127);
  }
  int status;
  while (waitpid(pid, &status, 0) < 0)
    if (errno != EINTR) Die("waitpid");
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
    std::string line;
    for (const std::string& a : args) line += " " + a;
    fprintf(stderr, "container:%s failed\n", line.c_str());
    exit(125);
  }
}

// The --veth pair of INIT's network namespace.
void MakeVeth(const std::string& spec, pid_t init) {
  std::string outside = spec.substr(0, spec.find(':')), inside = spec.substr(spec.find(':') + 1);
  std::string bridge, gateway;
  if (size_t at = outside.find('@'); at != std::string::npos) {
    bridge = outside.substr(at + 1);
    outside.resize(at);
  }
  if (size_t comma = inside.find(','); comma != std::string::npos) {
    gateway = inside.substr(comma + 1);
    inside.resize(comma);
  }
  std::string net = "--net=/proc/" + std::to_string(init) + "/ns/net";
  Run({"ip", "link", "add", outside, "type", "veth", "peer", "name", "eth0", "netns",
       std::to_string(init)});
  if (!bridge.empty()) Run({"ip", "link", "set", outside, "master", bridge});
  Run({"ip", "link", "set", outside, "up"});
  Run({"nsenter", net, "ip", "addr", "add", inside, "dev", "eth0"});
  Run({"nsenter", net, "ip", "link", "set", "eth0", "up"});
  if (!gateway.empty()) Run({"nsenter", net, "ip", "route", "add", "default", "via", gateway});
}

}  // namespace

int main(int argc, char** argv) {
  Options o = Parse(argc, argv);
  int go[2];
  Check(pipe2(go, O_CLOEXEC) == 0, "pipe");
  int flags = CLONE_NEWPID | CLONE_NEWNS | CLONE_NEWUTS | CLONE_NEWIPC | CLONE_NEWNET;
  pid_t init =
      static_cast<pid_t>(syscall(SYS_clone, flags | SIGCHLD, nullptr, nullptr, nullptr, 0));
  Check(init >= 0, "clone");
  if (init == 0) {
    close(go[1]);
    _exit(Init(o, go[0]));
  }
  close(go[0]);
  if (!o.cgroup.empty()) {
    mkdir(o.cgroup.c_str(), 0755);
    WriteFile(o.cgroup + "/cgroup.procs", std::to_string(init));
  }
  if (!o.veth.empty()) MakeVeth(o.veth, init);
  if (!o.pidfile.empty()) {
    // Whole or not at all, for whoever waits for it.
    WriteFile(o.pidfile + ".tmp", std::to_string(init) + "\n");
    Check(rename((o.pidfile + ".tmp").c_str(), o.pidfile.c_str()) == 0, o.pidfile.c_str());
  }
  Check(write(go[1], "g", 1) == 1, "starting the init");
  close(go[1]);
  int status;
  while (waitpid(init, &status, 0) < 0)
    if (errno != EINTR) Die("waitpid");
  return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}
