// What criu-lite refuses to dump, one thing each (--what).
#include <linux/netlink.h>
#include <net/if.h>
#include <netinet/in.h>
#include <sys/epoll.h>
#include <sys/inotify.h>
#include <sys/shm.h>
#include <sys/un.h>

#include "test-containers/workload/workload.h"

namespace wl {

int Refuse(const std::string& what) {
  InstallCheckHandler();
  std::string path = g_dir + "/locked";
  int fd = open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
  if (fd < 0) return 2;
  std::function<void()> check = [] {};
  auto lock_probe = [path](int cmd, short type) {
    // Another description of the file asks whether the lock is still held.
    int other = open(path.c_str(), O_RDWR | O_CLOEXEC);
    struct flock l {};
    l.l_type = type;
    l.l_whence = SEEK_SET;
    bool held = fcntl(other, cmd, &l) == 0 && l.l_type != F_UNLCK;
    close(other);
    return held;
  };
  if (what == "flock") {
    if (flock(fd, LOCK_EX) < 0) return 2;
    check = [path] {
      int other = open(path.c_str(), O_RDWR | O_CLOEXEC);
      EXPECT(flock(other, LOCK_EX | LOCK_NB) < 0 && errno == EWOULDBLOCK, "the flock was lost");
      close(other);
    };
  } else if (what == "posix-lock" || what == "ofd-lock") {
    bool ofd = what == "ofd-lock";
    struct flock l {};
    l.l_type = F_WRLCK;
    l.l_whence = SEEK_SET;
    l.l_len = 10;
    if (fcntl(fd, ofd ? F_OFD_SETLK : F_SETLK, &l) < 0) return 2;
    // A POSIX lock is the process's own: only a child can see it.
    check = [=] {
      if (ofd) {
        EXPECT(lock_probe(F_OFD_GETLK, F_WRLCK), "the OFD lock was lost");
        return;
      }
      pid_t c = fork();
      if (c == 0) _exit(lock_probe(F_GETLK, F_WRLCK) ? 0 : 1);
      int st;
      EXPECT(waitpid(c, &st, 0) == c && WIFEXITED(st) && WEXITSTATUS(st) == 0,
             "the POSIX lock was lost");
    };
  } else if (what == "lease") {
    close(fd);  // a read lease needs the file open for reading only
    int ro = open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fcntl(ro, F_SETLEASE, F_RDLCK) < 0) return 2;
    check = [ro] { EXPECT(fcntl(ro, F_GETLEASE) == F_RDLCK, "the lease was lost"); };
  } else if (what == "scm-rights") {
    int sv[2];
    if (socketpair(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0, sv) < 0) return 2;
    alignas(cmsghdr) char control[CMSG_SPACE(sizeof(int))] = {};
    char byte = 'x';
    iovec iov{&byte, 1};
    msghdr msg{};
    msg.msg_iov = &iov;
    msg.msg_iovlen = 1;
    msg.msg_control = control;
    msg.msg_controllen = sizeof control;
    cmsghdr* c = CMSG_FIRSTHDR(&msg);
    c->cmsg_level = SOL_SOCKET;
    c->cmsg_type = SCM_RIGHTS;
    c->cmsg_len = CMSG_LEN(sizeof(int));
    memcpy(CMSG_DATA(c), &fd, sizeof fd);
    if (sendmsg(sv[0], &msg, 0) != 1) return 2;
    check = [sv] {
      alignas(cmsghdr) char in[CMSG_SPACE(sizeof(int))] = {};
      char b = 0;
      iovec v{&b, 1};
      msghdr m{};
      m.msg_iov = &v;
      m.msg_iovlen = 1;
      m.msg_control = in;
      m.msg_controllen = sizeof in;
      bool got = recvmsg(sv[1], &m, MSG_DONTWAIT) == 1 && CMSG_FIRSTHDR(&m) &&
                 CMSG_FIRSTHDR(&m)->cmsg_type == SCM_RIGHTS;
      EXPECT(got && b == 'x', "the fd in flight was lost");
    };
  } else if (what == "shutdown") {
    int sv[2];
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0) return 2;
    shutdown(sv[0], SHUT_WR);
    check = [sv] {
      char b;
      EXPECT(recv(sv[1], &b, 1, MSG_DONTWAIT) == 0, "the peer's end is no longer shut down");
    };
  } else if (what == "clone-files") {
    pid_t c = syscall(SYS_clone, CLONE_FILES | SIGCHLD, 0, 0, 0, 0);
    if (c == 0) {
      for (;;) pause();
    }
    check = [c] { EXPECT(kill(c, SIGKILL) == 0 && waitpid(c, nullptr, 0) == c, "child gone"); };
  } else if (what == "seccomp-notify") {
    // A filter that hands uname() to a supervisor; the listener stays here.
    sock_filter insns[] = {BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(seccomp_data, nr)),
                           BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, SYS_uname, 0, 1),
                           BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_USER_NOTIF),
                           BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW)};
    sock_fprog prog{4, insns};
    int listener =
        syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, SECCOMP_FILTER_FLAG_NEW_LISTENER, &prog);
    if (listener < 0) return 2;
    check = [] { EXPECT(prctl(PR_GET_SECCOMP) == 2, "the seccomp filter is gone"); };
  } else if (what == "uts-joined") {
    // Two children in one UTS namespace their parent is not in: the second
    // joined the first's with setns.
    static pid_t a, b;
    int sync[2];
    if (pipe(sync) < 0) return 2;
    pid_t parent = getpid();
    // Each child goes with the workload (it exits after its check).
    auto with_parent = [parent] {
      prctl(PR_SET_PDEATHSIG, SIGKILL);
      if (getppid() != parent) _exit(0);
    };
    if ((a = fork()) == 0) {
      with_parent();
      if (unshare(CLONE_NEWUTS) == 0 && sethostname("crl-refused", 11) == 0)
        (void)!write(sync[1], "a", 1);
      for (;;) pause();
    }
    char c;
    if (read(sync[0], &c, 1) != 1) return 2;
    if ((b = fork()) == 0) {
      with_parent();
      int ns = open(("/proc/" + std::to_string(a) + "/ns/uts").c_str(), O_RDONLY);
      if (ns >= 0 && setns(ns, CLONE_NEWUTS) == 0 && close(ns) == 0) (void)!write(sync[1], "b", 1);
      for (;;) pause();
    }
    if (read(sync[0], &c, 1) != 1) return 2;
    check = [] {
      struct stat sa {
      }, sb{}, own{};
      stat(("/proc/" + std::to_string(a) + "/ns/uts").c_str(), &sa);
      stat(("/proc/" + std::to_string(b) + "/ns/uts").c_str(), &sb);
      stat("/proc/self/ns/uts", &own);
      EXPECT(sa.st_ino == sb.st_ino && sa.st_ino != own.st_ino, "the children's uts changed");
    };
  } else if (what == "ipc-sysv" || what == "ipc-mqueue") {
    // An IPC namespace of its own, holding an object.
    if (unshare(CLONE_NEWIPC) < 0) return 2;
    if (what == "ipc-sysv") {
      // Shared memory the workload attached, then unmapped the first page
      // of (a part of an attachment is not carried yet).
      static int id = shmget(IPC_PRIVATE, 2 * 4096, IPC_CREAT | 0600);
      static auto* at = static_cast<char*>(shmat(id, nullptr, 0));
      if (id < 0 || at == reinterpret_cast<char*>(-1) || munmap(at, 4096) < 0) return 2;
      at[4096] = 'x';
      check = [] { EXPECT(at[4096] == 'x', "the shared memory changed"); };
    } else {
      // A queue the workload waits to be notified by (the registration
      // belongs to the process, and is not carried yet).
      static int q = mq_open("/crl", O_CREAT | O_RDWR, 0600, nullptr);
      sigevent ev{};
      ev.sigev_notify = SIGEV_NONE;
      if (q < 0 || mq_notify(q, &ev) < 0) return 2;
      check = [] {
        sigevent again{};
        again.sigev_notify = SIGEV_NONE;
        EXPECT(mq_notify(q, &again) < 0 && errno == EBUSY, "the registration is gone");
      };
    }
  } else if (what == "mqueue-unlinked") {
    // An fd on a queue removed from its namespace: nothing could open it
    // again by name.
    if (unshare(CLONE_NEWIPC) < 0) return 2;
    static int q = mq_open("/gone", O_CREAT | O_RDWR, 0600, nullptr);
    if (q < 0 || mq_send(q, "x", 1, 0) < 0 || mq_unlink("/gone") < 0) return 2;
    check = [] {
      mq_attr a{};
      EXPECT(mq_getattr(q, &a) == 0 && a.mq_curmsgs == 1, "the removed queue changed");
    };
  } else if (what == "pidns-for-children") {
    // A PID namespace made for children the workload has not forked: the
    // first it forks would be the init of a namespace it is not in.
    if (unshare(CLONE_NEWPID) < 0) return 2;
    check = [] {
      struct stat mine {
      }, kids{};
      stat("/proc/self/ns/pid", &mine);
      stat("/proc/self/ns/pid_for_children", &kids);
      EXPECT(mine.st_ino != kids.st_ino, "the namespace for children is gone");
    };
  } else if (what == "netns-nft") {
    // A network namespace with a firewall table of its own (nft makes it).
    if (!NewNetNamespaceWithLoopbackUp()) return 2;
    if (system("nft add table inet crl_test >/dev/null 2>&1") != 0) return 2;
    check = [] {};
  } else if (what == "netns-iptables") {
    // A network namespace with a table of the legacy iptables (x_tables):
    // asking for the filter table's size makes it there, as
    // iptables-legacy's first call does.
    if (!NewNetNamespaceWithLoopbackUp()) return 2;
    // linux/netfilter_ipv4/ip_tables.h's (its linux/if.h collides with
    // net/if.h).
    struct {
      char name[32];
      unsigned valid_hooks, hook_entry[5], underflow[5], num_entries, size;
    } info{};
    constexpr int kIptSoGetInfo = 64;  // IPT_SO_GET_INFO
    int raw = socket(AF_INET, SOCK_RAW | SOCK_CLOEXEC, IPPROTO_RAW);
    strcpy(info.name, "filter");
    socklen_t len = sizeof info;
    if (raw < 0 || getsockopt(raw, SOL_IP, kIptSoGetInfo, &info, &len) < 0)
      WriteFile("unsupported",
                "no legacy iptables (x_tables) here: " + std::string(strerror(errno)));
    check = [] {};
  } else if (what == "netns-rule") {
    // A network namespace with a policy routing rule of its own (iproute2's
    // ip makes it): links, addresses and routes are carried, rules not.
    if (!NewNetNamespaceWithLoopbackUp()) return 2;
    if (system("ip rule add from 10.9.8.7 table 7 >/dev/null 2>&1") != 0) return 2;
    check = [] {};
  } else if (what == "timens-for-children") {
    // A time namespace made for children, which the workload is not in.
    if (unshare(CLONE_NEWTIME) < 0) return 2;
    check = [] {
      struct stat mine {
      }, kids{};
      stat("/proc/self/ns/time", &mine);
      stat("/proc/self/ns/time_for_children", &kids);
      EXPECT(mine.st_ino != kids.st_ino, "the time namespace for children is gone");
    };
  } else if (what == "pidns-joined") {
    // A child, the init of a PID namespace, and a process outside the tree
    // that joined it (as nsenter does): it lives until the workload ends.
    static pid_t init;
    int gone[2], sync[2];
    if (pipe(gone) < 0 || pipe(sync) < 0) return 2;
    init = static_cast<pid_t>(
        syscall(SYS_clone, CLONE_NEWPID | SIGCHLD, nullptr, nullptr, nullptr, 0));
    if (init == 0) {
      close(gone[1]);
      char c;
      while (read(gone[0], &c, 1) != 0) {
      }
      _exit(0);
    }
    pid_t joiner = fork();
    if (joiner == 0) {
      int ns = open(("/proc/" + std::to_string(init) + "/ns/pid").c_str(), O_RDONLY);
      if (ns < 0 || setns(ns, CLONE_NEWPID) < 0) _exit(2);
      if (fork() == 0) {  // in the namespace, and no one's in the tree
        close(gone[1]);
        (void)!write(sync[1], "j", 1);
        char c;
        while (read(gone[0], &c, 1) != 0) {
        }
        _exit(0);
      }
      _exit(0);
    }
    close(gone[0]);
    char c;
    if (waitpid(joiner, nullptr, 0) != joiner || read(sync[0], &c, 1) != 1) return 2;
    check = [] { EXPECT(kill(init, 0) == 0, "the namespace's init is gone"); };
  } else if (what == "mount-namespace") {
    if (unshare(CLONE_NEWNS) < 0) return 2;
    std::string mnt = g_dir + "/mnt";  // a tmpfs only this namespace sees
    if (mkdir(mnt.c_str(), 0755) < 0 ||
        mount(nullptr, "/", nullptr, MS_REC | MS_PRIVATE, nullptr) < 0 ||
        mount("crl", mnt.c_str(), "tmpfs", 0, nullptr) < 0)
      return 2;
    check = [mnt] {
      struct statfs fs {};
      EXPECT(statfs(mnt.c_str(), &fs) == 0 && fs.f_type == TMPFS_MAGIC, "no tmpfs");
    };
  } else if (what == "shared-twice") {
    // One shared anonymous object at two addresses of one process.
    auto* a = static_cast<char*>(
        mmap(nullptr, 4096, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0));
    auto* b = static_cast<char*>(mremap(a, 0, 4096, MREMAP_MAYMOVE));
    if (b == MAP_FAILED) return 2;
    a[0] = 'a';
    check = [a, b] {
      b[0] = 'b';
      EXPECT(a[0] == 'b', "the two mappings are no longer one object");
    };
  } else if (what == "shared-split") {
    // As zdtm's maps01: a child keeps the whole shared object, the parent
    // punches a hole in its own mapping of it (two mappings now).
    auto* m = static_cast<char*>(
        mmap(nullptr, 4 * 4096, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0));
    pid_t c = fork();
    if (c == 0) {
      for (;;) pause();
    }
    munmap(m + 4096, 4096);
    m[3 * 4096] = 'p';
    check = [c, m] {
      EXPECT(m[3 * 4096] == 'p', "the shared page changed");
      EXPECT(kill(c, SIGKILL) == 0 && waitpid(c, nullptr, 0) == c, "child gone");
    };
  } else if (what == "epoll-closed-target") {
    // An eventfd registered, then closed; a process outside the tree (a
    // grandchild whose parent exited: reparented to the test) still holds
    // its file, so the registration lives on, but nothing in the tree
    // names it.
    int ep = epoll_create1(0), ev = eventfd(1, 0), p[2];
    epoll_event e{};
    e.events = EPOLLIN;
    if (epoll_ctl(ep, EPOLL_CTL_ADD, ev, &e) < 0 || pipe(p) < 0) return 2;
    pid_t c = fork();
    if (c == 0) {
      pid_t g = fork();
      if (g == 0) {
        for (;;) pause();
      }
      _exit(write(p[1], &g, sizeof g) == sizeof g ? 0 : 1);
    }
    pid_t g = 0;
    if (read(p[0], &g, sizeof g) != sizeof g || waitpid(c, nullptr, 0) != c) return 2;
    close(ev);
    check = [ep, g] {
      epoll_event got{};
      EXPECT(epoll_wait(ep, &got, 1, 0) == 1, "the closed eventfd's registration is gone");
      kill(g, SIGKILL);
    };
  } else if (what == "pidfd-outside") {
    // A pidfd for the test itself, which is outside the tree.
    int fd = static_cast<int>(syscall(SYS_pidfd_open, getppid(), 0));
    if (fd < 0) return 2;
    check = [fd] { EXPECT(syscall(SYS_pidfd_send_signal, fd, 0, nullptr, 0) == 0, "pidfd"); };
  } else if (what == "inotify-deleted") {
    // A watched file, deleted while still open: the watch lives on.
    std::string path = g_dir + "/gone";
    int keep = open(path.c_str(), O_RDWR | O_CREAT, 0600);
    int in = inotify_init1(0);
    if (keep < 0 || in < 0 || inotify_add_watch(in, path.c_str(), IN_MODIFY) != 1) return 2;
    unlink(path.c_str());
    check = [keep, in] {
      EXPECT(write(keep, "x", 1) == 1, "write");
      pollfd p{in, POLLIN, 0};
      EXPECT(poll(&p, 1, 1000) == 1, "the deleted file's watch is gone");
    };
  } else if (what == "aio-in-flight") {
    // An AIO context with a completion not reaped yet, and a poll of a pipe
    // nobody has written to, in flight: both there after the refusal, the
    // completion first, then the poll's once the pipe is written.
    static aio_context_t ctx = 0;
    static int ready[2], empty[2];
    static iocb done{}, waiting{};
    if (syscall(SYS_io_setup, 16, &ctx) < 0 || pipe(ready) < 0 || pipe(empty) < 0 ||
        write(ready[1], "r", 1) != 1)
      return 2;
    for (auto [cb, fd, data] : {std::tuple{&done, ready[0], 77}, {&waiting, empty[0], 88}}) {
      cb->aio_lio_opcode = IOCB_CMD_POLL;
      cb->aio_fildes = fd;
      cb->aio_buf = POLLIN;
      cb->aio_data = data;
      if (syscall(SYS_io_submit, ctx, 1, &cb) != 1) return 2;
    }
    check = [] {
      io_event ev[4];
      timespec none{0, 0}, second{1, 0};
      long n = syscall(SYS_io_getevents, ctx, 0, 4, ev, &none);
      EXPECT(n == 1 && ev[0].data == 77, "the completion waiting: %ld events", n);
      EXPECT(write(empty[1], "x", 1) == 1, "write");
      n = syscall(SYS_io_getevents, ctx, 1, 4, ev, &second);
      EXPECT(n == 1 && ev[0].data == 88, "the poll in flight: %ld events", n);
    };
  } else if (what == "tcp-established" || what == "tcp-pending" ||
             what == "tcp-then-owner-outside") {
    // A TCP connection over loopback, both ends in the process; or one the
    // listener has not accept()ed yet.
    static int listener = socket(AF_INET, SOCK_STREAM, 0), client = socket(AF_INET, SOCK_STREAM, 0);
    static int server = -1;
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof a;
    if (bind(listener, (sockaddr*)&a, sizeof a) < 0 || listen(listener, 4) < 0 ||
        getsockname(listener, (sockaddr*)&a, &len) < 0 || connect(client, (sockaddr*)&a, len) < 0)
      return 2;
    if (what != "tcp-pending") {
      server = accept(listener, nullptr, nullptr);
      if (server < 0) return 2;
    }
    // Then an fd refused after the connection was locked and repaired (the
    // tree-wide pass): one whose signals go to init, outside the tree.
    static int p[2];
    if (what == "tcp-then-owner-outside" && (pipe(p) < 0 || fcntl(p[0], F_SETOWN, 1) < 0)) return 2;
    check = [] {
      if (server < 0) server = accept(listener, nullptr, nullptr);
      char buf[4] = {};
      EXPECT(server >= 0 && write(client, "tcp", 3) == 3 && read(server, buf, 3) == 3 &&
                 std::string(buf) == "tcp",
             "the connection does not pass data");
    };
  } else if (what == "unix-outside") {
    // A unix stream connection whose server end a process outside the tree
    // holds (a grandchild left to init), which answers "ux" with "ok".
    static int c = -1;
    int l = socket(AF_UNIX, SOCK_STREAM, 0);
    sockaddr_un a{};
    a.sun_family = AF_UNIX;
    snprintf(a.sun_path, sizeof a.sun_path, "%s/l.sock", g_dir.c_str());
    c = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (bind(l, (sockaddr*)&a, sizeof a) < 0 || listen(l, 2) < 0 ||
        connect(c, (sockaddr*)&a, sizeof a) < 0)
      return 2;
    pid_t kid = fork();
    if (kid == 0) {
      if (fork() == 0) {
        close(c);  // its client's end is the tree's alone: it goes with the tree
        int s = accept(l, nullptr, nullptr);
        char buf[2];
        while (read(s, buf, 2) == 2) write(s, "ok", 2);
        _exit(0);  // its client is gone
      }
      _exit(0);
    }
    waitpid(kid, nullptr, 0);
    close(l);
    check = [] {
      char buf[3] = {};
      EXPECT(write(c, "ux", 2) == 2 && read(c, buf, 2) == 2 && std::string(buf) == "ok",
             "the connection outside answers %s", buf);
    };
  } else if (what == "packet") {
    // A packet socket, as a DHCP client keeps.
    static int pk = socket(AF_PACKET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (pk < 0) return 2;
    check = [] {
      sockaddr_storage ss{};
      socklen_t len = sizeof ss;
      EXPECT(getsockname(pk, (sockaddr*)&ss, &len) == 0, "the packet socket is gone");
    };
  } else if (what == "netlink-unread") {
    // A route socket whose answer to a request waits unread.
    static int nl = socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, 0 /* NETLINK_ROUTE */);
    struct {
      nlmsghdr h;
      char body[16];
    } req{{sizeof req, 18 /* RTM_GETLINK */, 1 | 0x300 /* NLM_F_REQUEST | NLM_F_DUMP */, 1, 0}, {}};
    if (nl < 0 || send(nl, &req, sizeof req, 0) < 0) return 2;
    check = [] {
      char buf[4096];
      EXPECT(recv(nl, buf, sizeof buf, MSG_DONTWAIT) > 0, "the answer waiting was lost");
    };
  } else if (what == "mptcp-established") {
    // An MPTCP connection over loopback, both ends in the process.
    static int l = socket(AF_INET, SOCK_STREAM, IPPROTO_MPTCP), c = -1, srv = -1;
    if (l < 0) {
      WriteFile("unsupported", "MPTCP: " + std::string(strerror(errno)));
    } else {
      sockaddr_in a{};
      a.sin_family = AF_INET;
      a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
      socklen_t len = sizeof a;
      c = socket(AF_INET, SOCK_STREAM, IPPROTO_MPTCP);
      if (bind(l, (sockaddr*)&a, sizeof a) < 0 || listen(l, 4) < 0 ||
          getsockname(l, (sockaddr*)&a, &len) < 0 || connect(c, (sockaddr*)&a, len) < 0 ||
          (srv = accept(l, nullptr, nullptr)) < 0)
        return 2;
    }
    check = [] {
      char buf[4] = {};
      EXPECT(l < 0 || (write(c, "mp", 2) == 2 && read(srv, buf, 2) == 2), "MPTCP passes no data");
    };
  } else if (what == "io-uring") {
    // An io_uring with its rings mapped, as liburing leaves it.
    struct {
      uint32_t sq_entries, cq_entries, flags, sq_thread_cpu, sq_thread_idle, features, wq_fd,
          resv[3];
      uint32_t sq_off[10], cq_off[10];
    } params{};
    int ring = static_cast<int>(syscall(425 /* io_uring_setup */, 8, &params));
    if (ring < 0) {
      WriteFile("unsupported", "io_uring_setup: " + std::string(strerror(errno)));
    } else if (mmap(nullptr, 4096, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_POPULATE, ring, 0) ==
               MAP_FAILED) {
      return 2;
    }
    check = [] {};
  } else if (what == "sysv-shm") {
    int id = shmget(IPC_PRIVATE, 8192, IPC_CREAT | 0600);
    auto* m = static_cast<char*>(shmat(id, nullptr, 0));
    if (id < 0 || m == reinterpret_cast<char*>(-1)) return 2;
    shmctl(id, IPC_RMID, nullptr);  // gone once detached
    m[0] = 's';
    check = [m] { EXPECT(m[0] == 's', "the SysV segment changed"); };
  } else if (what == "ghost-big") {
    // A deleted file with 2 MiB of data, over the default --ghost-limit.
    std::string path = g_dir + "/big";
    int fd = open(path.c_str(), O_RDWR | O_CREAT, 0600);
    std::string mib(1 << 20, 'b');
    if (fd < 0 || write(fd, mib.data(), mib.size()) != (ssize_t)mib.size() ||
        write(fd, mib.data(), mib.size()) != (ssize_t)mib.size())
      return 2;
    unlink(path.c_str());
    check = [fd] {
      struct stat st {};
      EXPECT(fstat(fd, &st) == 0 && st.st_size == 2 << 20, "the big deleted file changed");
    };
  } else if (what == "fanotify-perm") {
    // A group that answers permission events (an antivirus, a file server's
    // lazy loader).
    int fan = static_cast<int>(syscall(SYS_fanotify_init, 0x4 /* FAN_CLASS_CONTENT */, O_RDONLY));
    if (fan < 0) WriteFile("unsupported", "fanotify_init: " + std::string(strerror(errno)));
    check = [] {};
  } else if (what == "droppable") {
    void* d = mmap(nullptr, 4096, PROT_READ | PROT_WRITE, 0x08 /* MAP_DROPPABLE */ | MAP_ANONYMOUS,
                   -1, 0);
    if (d == MAP_FAILED) WriteFile("unsupported", "no MAP_DROPPABLE on this kernel (6.11+)");
    check = [] {};
  } else if (what == "guard-region") {
    auto* p = static_cast<char*>(
        mmap(nullptr, 3 * 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0));
    p[0] = 1;
    if (madvise(p + 4096, 4096, 102 /* MADV_GUARD_INSTALL */) < 0)
      WriteFile("unsupported", "no MADV_GUARD_INSTALL on this kernel (6.13+)");
    check = [] {};
  } else {
    fprintf(stderr, "refuse: unknown --what %s\n", what.c_str());
    return 2;
  }
  Ready();
  WaitForCheck();
  check();
  Report();
}

// jobs: what a parent's waitid() sees of its children: one stopped by
// SIGTSTP (not SIGSTOP), a zombie in a process group whose leader has exited
// (made with CLONE_PARENT by that leader), and a zombie that led a session.

}  // namespace wl
