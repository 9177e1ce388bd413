// Pseudo-terminals whose master is in the tree (a terminal emulator, tmux,
// sshd, script): the master (/dev/ptmx) and every slave (/dev/pts/N) fd of
// the tree, with what the pair holds, read through the master at dump: its
// index, termios, window size, packet mode, lock, and the session it is
// the controlling terminal of with that session's foreground group.
//
// Restore opens /dev/ptmx until the kernel hands out the same index (the
// others opened meanwhile are closed again; an index in use on this machine
// is refused), sets the pair's state, opens the slaves by path, and once
// the tree exists the session leader makes it its controlling terminal and
// sets the foreground group (TakeControllingTerminal). The lock comes last
// (Settle), after every slave is open.
//
// A slave whose master is outside the tree (a container's console: runc
// and Podman's conmon hold the master) is, with --orphan-pts-master (which
// runc always sends), recorded as an orphan: its state read through the
// slave, the session whose controlling terminal it is from the tasks'
// /proc/PID/stat. Restore makes a new pair with the same index (in the
// devpts the slave is opened from: the container's) and hands the master to
// the caller (RestoreOptions::orphan_pts_master), which passes it on to
// whoever shows the terminal. One such terminal per tree, as CRIU. Without
// the option it is a terminal of restore's own under --shell-job
// (files/inherited.cc), refused otherwise.
//
// A bind mount of a slave (runc's /dev/console) needs the slave to exist
// when the mounts are made: the pair is made then (OpenPtyNumbered) and
// its master taken here (OpenFiles::TakePremadePty).
//
// Bytes queued towards the tree are not carried: a pty with bytes queued is
// refused (dump again once they are read); bytes the tree wrote that an
// outside master has not read stay with that master.
#include <fcntl.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <termios.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <map>
#include <set>

#include "files/fd_kind.h"
#include "kernel/proc_parsers.h"
#include "kernel/proc_task.h"
#include "kernel/remote_syscalls.h"
#include "kernel/task_fd.h"

namespace crl {
namespace {

constexpr unsigned kPtmxMajor = 5, kPtmxMinor = 2;
constexpr unsigned kMaxOpensForIndex = 4096;

bool IsMaster(const struct stat& st) {
  return S_ISCHR(st.st_mode) && major(st.st_rdev) == kPtmxMajor && minor(st.st_rdev) == kPtmxMinor;
}
bool IsSlave(const struct stat& st) {
  return S_ISCHR(st.st_mode) && major(st.st_rdev) >= 136 && major(st.st_rdev) <= 143;
}
int SlaveIndex(const struct stat& st) {
  return (major(st.st_rdev) - 136) * 256 + minor(st.st_rdev);
}

// What the pair holds, through its master MASTER.
Result<img::PtyFd> ReadPty(int master, const FdRef& r) {
  img::PtyFd p;
  int index, packet = 0, locked = 0;
  if (ioctl(master, TIOCGPTN, &index) < 0) return ErrnoError("TIOCGPTN");
  p.set_index(index);
  termios t{};
  if (tcgetattr(master, &t) < 0) return ErrnoError("tcgetattr(pty %d)", index);
  p.set_termios(&t, sizeof t);
  winsize ws{};
  if (ioctl(master, TIOCGWINSZ, &ws) < 0) return ErrnoError("TIOCGWINSZ(pty %d)", index);
  p.set_rows(ws.ws_row);
  p.set_cols(ws.ws_col);
  if (ioctl(master, TIOCGPKT, &packet) < 0) return ErrnoError("TIOCGPKT(pty %d)", index);
  if (ioctl(master, TIOCGPTLCK, &locked) < 0) return ErrnoError("TIOCGPTLCK(pty %d)", index);
  p.set_packet(packet);
  p.set_locked(locked);
  pid_t sid = 0, pgrp = 0;
  if (ioctl(master, TIOCGSID, &sid) == 0) p.set_sid(sid);  // ENOTTY: no session's terminal
  if (ioctl(master, TIOCGPGRP, &pgrp) == 0) p.set_fg_pgrp(pgrp);
  int to_master = 0;
  if (ioctl(master, FIONREAD, &to_master) < 0) return ErrnoError("FIONREAD(pty %d)", index);
  if (to_master)
    return MakeError(
        "PID %d fd %d: pty %d has %d bytes written by its slave side that its master has not "
        "read: not carried (dump again once they are read)",
        r.pid, r.fd->fd(), index, to_master);
  return p;
}

// proc(5)'s encoding of device RDEV in /proc/PID/stat's tty_nr.
int TtyNr(dev_t rdev) {
  unsigned maj = major(rdev), min = minor(rdev);
  return static_cast<int>((min & 0xff) | (maj << 8) | ((min & ~0xffu) << 12));
}

// Slave R, whose master is outside the tree: what the pair holds, read
// through the slave (termios and window size are the slave's, read through
// either side), and the session of the tree (TASKS) it is the controlling
// terminal of.
Result<img::PtyFd> ReadOrphan(const FdRef& r, const std::set<pid_t>& tasks) {
  img::PtyFd p;
  p.set_orphan(true);
  p.set_index(r.fd->pty().index());
  ScopedFd slave = TRY(TakeFd(r.pid, r.fd->fd()));
  termios t{};
  if (tcgetattr(slave.get(), &t) < 0) return ErrnoError("tcgetattr(pty %d)", p.index());
  p.set_termios(&t, sizeof t);
  winsize ws{};
  if (ioctl(slave.get(), TIOCGWINSZ, &ws) < 0) return ErrnoError("TIOCGWINSZ(pty %d)", p.index());
  p.set_rows(ws.ws_row);
  p.set_cols(ws.ws_col);
  int waiting = 0;
  if (ioctl(slave.get(), FIONREAD, &waiting) == 0 && waiting)
    return MakeError(
        "PID %d fd %d: pty %d has %d bytes written to its master that the tree has not read: "
        "not carried (dump again once they are read)",
        r.pid, r.fd->fd(), p.index(), waiting);
  struct stat st;
  if (fstat(slave.get(), &st) < 0) return ErrnoError("fstat(pty %d)", p.index());
  for (pid_t pid : tasks) {
    ProcStat s = TRY(ParseProcStat(TRY(ProcTask(pid).Read("stat"))));
    if (s.session == pid && s.tty_nr == TtyNr(st.st_rdev)) {
      p.set_sid(pid);
      if (s.tpgid > 0) p.set_fg_pgrp(s.tpgid);
    }
  }
  return p;
}

class Pty : public FdKind {
 public:
  img::Fd::KindCase arm() const override { return img::Fd::kPty; }
  const char* name() const override { return "pty"; }

  bool Claims(const FdSeen& s) const override {
    return !s.anon && (IsMaster(s.st) || IsSlave(s.st));
  }

  Status Collect(const FdSeen& s, img::Fd* out) const override {
    img::PtyFd* p = out->mutable_pty();
    p->set_master(IsMaster(s.st));
    p->set_index(IsMaster(s.st) ? -1 : SlaveIndex(s.st));  // a master's: at Resolve
    return Ok{};
  }

  Status Resolve(const std::vector<FdRef>& mine, TreeFds& tree) const override {
    std::map<int, img::PtyFd> pairs;  // by index: the masters in the tree
    for (const FdRef& r : mine)
      if (r.fd->pty().master()) {
        ScopedFd master = TRY(TakeFd(r.pid, r.fd->fd()));
        img::PtyFd p = TRY(ReadPty(master.get(), r));
        p.set_master(true);
        *r.fd->mutable_pty() = p;
        pairs[p.index()] = p;
      }
    std::set<pid_t> tasks;
    for (const FdRef& r : tree.all()) tasks.insert(r.pid);
    std::map<int, img::PtyFd> orphans;  // by index: slaves whose master is outside
    for (const FdRef& r : mine) {
      if (r.fd->pty().master()) continue;
      auto pair = pairs.find(r.fd->pty().index());
      if (pair == pairs.end() && tree.orphan_pts_master()) {
        // Its master is outside the tree: once per pty, each fd a copy.
        auto seen = orphans.find(r.fd->pty().index());
        if (seen == orphans.end())
          seen = orphans.emplace(r.fd->pty().index(), TRY(ReadOrphan(r, tasks))).first;
        *r.fd->mutable_pty() = seen->second;
        continue;
      }
      if (pair == pairs.end()) {
        TRY(tree.External(r, "a terminal"));  // its master is outside the tree
        continue;
      }
      *r.fd->mutable_pty() = pair->second;
      r.fd->mutable_pty()->set_master(false);
      int waiting = 0;
      ScopedFd slave = TRY(TakeFd(r.pid, r.fd->fd()));
      if (ioctl(slave.get(), FIONREAD, &waiting) == 0 && waiting)
        return MakeError(
            "PID %d fd %d: pty %d has %d bytes written to its master that its slave side has "
            "not read: not carried (dump again once they are read)",
            r.pid, r.fd->fd(), pair->first, waiting);
    }
    if (orphans.size() > 1)
      return MakeError(
          "ptys %d and %d both have their masters outside the tree: --orphan-pts-master hands "
          "back one terminal",
          orphans.begin()->first, std::next(orphans.begin())->first);
    return Ok{};
  }

  Result<ScopedFd> Open(const img::Fd& f, OpenFiles& files) const override {
    const img::PtyFd& p = f.pty();
    std::vector<int>& made = files.Object(this, p.index());
    if (made.empty()) {
      if (p.orphan() && !files.orphan_master_sink())
        return MakeError(
            "pty %d: its master was outside the tree at dump (--orphan-pts-master): restore "
            "through the RPC (criu-lite swrk) with orphan_pts_master, which hands the new master "
            "to the caller",
            p.index());
      ScopedFd master = files.TakePremadePty(p.index());
      if (!master.valid()) master = TRY(OpenPtyNumbered("/dev/ptmx", p.index()));
      TRY(SetUp(master.get(), p));
      // A new master for the caller's old one, handed over before the tree
      // runs (runc passes it on to its console socket).
      if (p.orphan())
        TRY(files.orphan_master_sink()(master.get()).Context(Format("pty %d's master", p.index())));
      made.push_back(files.Hold(std::move(master)));
    }
    if (p.master()) {
      ScopedFd fd(fcntl(made[0], F_DUPFD_CLOEXEC, 3));
      if (!fd.valid()) return ErrnoError("dup(pty %d master)", p.index());
      return fd;
    }
    std::string path = Format("/dev/pts/%d", p.index());
    int flags = (f.flags() & ~(O_CREAT | O_TRUNC | O_EXCL)) | O_NOCTTY | O_CLOEXEC;
    ScopedFd fd(open(path.c_str(), flags));
    if (!fd.valid()) return ErrnoError("open(%s)", path.c_str());
    return fd;
  }

  Status Settle(const img::Fd& f, const img::Fds&, RemoteSyscalls& rs, RemoteScratch& scratch,
                const std::function<int(pid_t, int)>&) const override {
    if (!f.pty().master() || !f.pty().locked()) return Ok{};
    RemoteScratch::Frame frame(scratch);
    int one = 1;
    RemotePtr at = TRY(scratch.Push(one));
    TRY(rs.Checked("ioctl(TIOCSPTLCK)", SYS_ioctl, f.fd(), TIOCSPTLCK, at));
    return Ok{};
  }

 private:
  // Pty P's state set through its new MASTER.
  static Status SetUp(int master, const img::PtyFd& p) {
    int packet = p.packet();
    termios t{};
    memcpy(&t, p.termios().data(), std::min(sizeof t, p.termios().size()));
    winsize ws{};
    ws.ws_row = p.rows();
    ws.ws_col = p.cols();
    if (tcsetattr(master, TCSANOW, &t) < 0 || ioctl(master, TIOCSWINSZ, &ws) < 0 ||
        ioctl(master, TIOCPKT, &packet) < 0)
      return ErrnoError("setting up pty %d", p.index());
    return Ok{};
  }
};

}  // namespace

const FdKind& PtyKind() {
  static const Pty k;
  return k;
}

Result<ScopedFd> OpenPtyNumbered(const std::string& ptmx, int index) {
  std::vector<ScopedFd> others;
  ScopedFd master;
  for (unsigned i = 0; i < kMaxOpensForIndex && !master.valid(); i++) {
    ScopedFd fd(open(ptmx.c_str(), O_RDWR | O_NOCTTY | O_CLOEXEC));
    if (!fd.valid()) return ErrnoError("open(%s) for pty %d", ptmx.c_str(), index);
    int got;
    if (ioctl(fd.get(), TIOCGPTN, &got) < 0) return ErrnoError("TIOCGPTN");
    if (got == index)
      master = std::move(fd);
    else if (got > index)  // the lowest free one comes first
      return MakeError("pty %d is in use on this machine (the kernel hands out %d)", index, got);
    else
      others.push_back(std::move(fd));
  }
  if (!master.valid()) return MakeError("pty %d: not handed out by %s", index, ptmx.c_str());
  int unlock = 0;
  if (ioctl(master.get(), TIOCSPTLCK, &unlock) < 0) return ErrnoError("unlocking pty %d", index);
  return master;
}

Status TakeControllingTerminal(RemoteSyscalls& rs, RemoteScratch& scratch, const img::PtyFd& p,
                               pid_t fg_pgrp) {
  std::string path = Format("/dev/pts/%d", p.index());
  RemoteFd fd = TRY(OpenRemote(rs, scratch, path, O_RDWR | O_NOCTTY));
  TRY(rs.Checked(Format("ioctl(%s, TIOCSCTTY)", path.c_str()).c_str(), SYS_ioctl, fd.get(),
                 TIOCSCTTY, 0));
  if (fg_pgrp) {
    RemoteScratch::Frame frame(scratch);
    pid_t pgrp = fg_pgrp;
    RemotePtr at = TRY(scratch.Push(pgrp));
    TRY(rs.Checked(Format("ioctl(%s, TIOCSPGRP, %d)", path.c_str(), pgrp).c_str(), SYS_ioctl,
                   fd.get(), TIOCSPGRP, at));
  }
  return Ok{};
}

}  // namespace crl
