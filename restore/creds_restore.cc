#include "restore/creds_restore.h"

#include <linux/capability.h>
#include <linux/prctl.h>
#include <linux/securebits.h>
#include <sys/capability.h>
#include <sys/syscall.h>

#include <string>
#include <vector>

#include "base/log.h"
#include "kernel/proc_parsers.h"
#include "kernel/ptrace_task.h"
#include "kernel/task_fd.h"

namespace crl {
namespace {

struct CapHeader {
  uint32_t version;
  int pid;
};
struct CapData {
  uint32_t effective, permitted, inheritable;
};
static_assert(sizeof(CapHeader) == 8 && sizeof(CapData) == 12);

// Read once: the kernel's answer does not change, and each read of a
// /proc/sys file costs a zeroed kernel buffer as large as the read.
int LastCap() {
  static const int last = [] {
    auto text = ReadFileToString("/proc/sys/kernel/cap_last_cap");
    return text.ok() ? atoi(text->c_str()) : CAP_LAST_CAP;
  }();
  return last;
}

std::string CapName(int cap) {
  char* name = cap_to_name(static_cast<cap_value_t>(cap));
  std::string out = name ? name : std::to_string(cap);
  cap_free(name);
  return out;
}

// criu-lite's own permitted set: the puppet, its clone, has no more.
uint64_t OwnPermitted() {
  CapHeader h{_LINUX_CAPABILITY_VERSION_3, 0};
  CapData d[2]{};
  if (syscall(SYS_capget, &h, d) < 0) return 0;
  return d[0].permitted | (uint64_t{d[1].permitted} << 32);
}

Status Capset(RemoteBatch& batch, RemoteScratch& scratch, uint64_t eff, uint64_t prm, uint64_t inh,
              const char* what) {
  CapHeader h{_LINUX_CAPABILITY_VERSION_3, 0};
  CapData d[2] = {{uint32_t(eff), uint32_t(prm), uint32_t(inh)},
                  {uint32_t(eff >> 32), uint32_t(prm >> 32), uint32_t(inh >> 32)}};
  auto rh = TRY(scratch.Push(h));
  auto rd = TRY(scratch.Push(d));
  batch.Add(what, SYS_capset, rh, rd);
  return Ok{};
}

}  // namespace

Status ValidateCreds(pid_t tid, const img::Creds& c) {
  uint64_t missing = (c.cap_prm() | c.cap_amb()) & ~OwnPermitted();
  int last = LastCap();
  for (int cap = 0; cap <= last; cap++)
    if (missing & (1ull << cap))
      return MakeError(
          "thread %d had capability %s, which criu-lite itself does not have: it cannot give it "
          "back (run criu-lite with it)",
          tid, CapName(cap).c_str());
  return Ok{};
}

// The order, and why:
//  1. securebits KEEP_CAPS | NO_SETUID_FIXUP: changing uids below must not
//     touch the capability sets (it would clear them when leaving uid 0);
//  2. groups, gids, uids (setfs* after setres*, which also sets the fs ids);
//  3. capset of the inheritable set while the permitted set is still full:
//     a new inheritable capability must be in the old inheritable or
//     bounding set, so this comes before the bounding set shrinks;
//  4. ambient capabilities, which must be permitted and inheritable, before
//     securebits may forbid raising them;
//  5. the bounding set, then the final securebits: both need CAP_SETPCAP;
//  6. capset of the final sets (lowering only: always allowed);
//  7. no_new_privs, which nothing can take back.
Status RestoreCreds(RemoteBatch& batch, RemoteScratch& scratch, const img::Creds& c) {
  if (c.uids_size() != 4 || c.gids_size() != 4) return Ok{};  // images without credentials
  uint64_t own = OwnPermitted();
  batch.Add("prctl(PR_SET_SECUREBITS, KEEP_CAPS|NO_SETUID_FIXUP)", SYS_prctl, PR_SET_SECUREBITS,
            SECBIT_KEEP_CAPS | SECBIT_NO_SETUID_FIXUP);
  std::vector<uint32_t> groups(c.groups().begin(), c.groups().end());
  groups.push_back(0);  // never an empty array to push; not counted below
  auto rgroups = TRY(scratch.PushArray(groups.data(), groups.size()));
  groups.pop_back();
  batch.Add("setgroups", SYS_setgroups, groups.size(), rgroups);
  batch.Add("setresgid", SYS_setresgid, c.gids(0), c.gids(1), c.gids(2));
  // setfs[ug]id return the previous id, never an error.
  batch.AddMayFail("setfsgid", SYS_setfsgid, c.gids(3));
  batch.Add("setresuid", SYS_setresuid, c.uids(0), c.uids(1), c.uids(2));
  batch.AddMayFail("setfsuid", SYS_setfsuid, c.uids(3));
  TRY(Capset(batch, scratch, own, own, c.cap_inh(), "capset(inheritable)"));
  int last = LastCap();
  for (int cap = 0; cap <= last; cap++)
    if (c.cap_amb() & (1ull << cap))
      batch.Add(Format("prctl(PR_CAP_AMBIENT_RAISE, %s)", CapName(cap).c_str()), SYS_prctl,
                PR_CAP_AMBIENT, PR_CAP_AMBIENT_RAISE, cap, 0, 0);
  for (int cap = 0; cap <= last; cap++)
    if (!(c.cap_bnd() & (1ull << cap)))
      batch.Add(Format("prctl(PR_CAPBSET_DROP, %s)", CapName(cap).c_str()), SYS_prctl,
                PR_CAPBSET_DROP, cap);
  batch.Add("prctl(PR_SET_SECUREBITS)", SYS_prctl, PR_SET_SECUREBITS, c.securebits());
  TRY(Capset(batch, scratch, c.cap_eff(), c.cap_prm(), c.cap_inh(), "capset"));
  if (c.no_new_privs())
    batch.Add("prctl(PR_SET_NO_NEW_PRIVS)", SYS_prctl, PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0);
  return Ok{};
}

Result<std::array<int, 2>> StampAs(Puppet& p, const TaskCreds& c, const StampingCall& call) {
  RemoteSyscalls& rs = p.rs();
  RemoteScratch::Frame frame(p.scratch());
  RemotePtr scm = TRY(p.scratch().Reserve(kScmScratchBytes));
  // The puppet's credentials until RestoreCreds are criu-lite's.
  int n = getgroups(0, nullptr);
  std::vector<gid_t> own(n > 0 ? n : 0);
  if (n > 0 && getgroups(n, own.data()) != n) return ErrnoError("getgroups");
  std::vector<gid_t> want(c.groups.begin(), c.groups.end());
  RemotePtr own_at =
      own.empty() ? RemotePtr(0) : TRY(p.scratch().PushArray(own.data(), own.size()));
  RemotePtr want_at =
      want.empty() ? RemotePtr(0) : TRY(p.scratch().PushArray(want.data(), want.size()));
  RemoteFd lent;
  if (call.kind != StampingCall::kSocketpair) {
    FdGiver giver = TRY(FdGiver::Open(rs, scm));
    lent = TRY(giver.Give(call.fd, call.what()));
  }
  RemotePtr arg;
  if (call.kind == StampingCall::kConnect)
    arg = TRY(p.scratch().Push(&call.addr, sizeof call.addr));
  if (call.kind == StampingCall::kSocketpair) arg = TRY(p.scratch().Reserve(2 * sizeof(int)));
  std::string what = Format("%s as PID %d (uid %u)", call.what(), p.pid(), c.uid);
  // Groups first (CAP_SETGID), the uid last: back, the uid first.
  Result<int64_t> done = [&]() -> Result<int64_t> {
    TRY(rs.Checked("setgroups", SYS_setgroups, want.size(), want_at));
    TRY(rs.Checked("setresgid", SYS_setresgid, -1, c.gid, -1));
    TRY(rs.Checked("setresuid", SYS_setresuid, -1, c.uid, -1));
    switch (call.kind) {
      case StampingCall::kListen:
        return rs.Checked(what.c_str(), SYS_listen, lent.get(), call.backlog);
      case StampingCall::kConnect:
        return rs.Checked(what.c_str(), SYS_connect, lent.get(), arg, call.addr_len);
      case StampingCall::kSocketpair:
        return rs.Checked(what.c_str(), SYS_socketpair, AF_UNIX, call.type | SOCK_CLOEXEC, 0, arg);
    }
    return MakeError("%s: no such call", what.c_str());
  }();
  TRY(rs.Checked("setresuid (back)", SYS_setresuid, -1, geteuid(), -1));
  TRY(rs.Checked("setresgid (back)", SYS_setresgid, -1, getegid(), -1));
  TRY(rs.Checked("setgroups (back)", SYS_setgroups, own.size(), own_at));
  TRY(done);
  std::array<int, 2> out{-1, -1};
  if (call.kind != StampingCall::kSocketpair) return out;
  int fds[2];
  TRY(ReadRemote(p.pid(), arg, fds, sizeof fds));
  ScopedFd a = TRY(TakeMadeFd(rs, scm, p.pid(), fds[0], "socketpair()"));
  ScopedFd b = TRY(TakeMadeFd(rs, scm, p.pid(), fds[1], "socketpair()"));
  out = {a.release(), b.release()};
  return out;
}

}  // namespace crl
