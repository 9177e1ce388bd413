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

int LastCap() {
  auto text = ReadFileToString("/proc/sys/kernel/cap_last_cap");
  return text.ok() ? atoi(text->c_str()) : CAP_LAST_CAP;
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

Status Capset(RemoteSyscalls& rs, RemoteScratch& scratch, uint64_t eff, uint64_t prm, uint64_t inh,
              const char* what) {
  CapHeader h{_LINUX_CAPABILITY_VERSION_3, 0};
  CapData d[2] = {{uint32_t(eff), uint32_t(prm), uint32_t(inh)},
                  {uint32_t(eff >> 32), uint32_t(prm >> 32), uint32_t(inh >> 32)}};
  auto rh = TRY(scratch.Push(h));
  auto rd = TRY(scratch.Push(d));
  TRY(rs.Checked(what, SYS_capset, rh, rd));
  return Ok{};
}

}  // namespace

Status ValidateCreds(pid_t tid, const img::Creds& c) {
  uint64_t missing = (c.cap_prm() | c.cap_amb()) & ~OwnPermitted();
  for (int cap = 0; cap <= LastCap(); cap++)
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
Status RestoreCreds(RemoteSyscalls& rs, RemoteScratch& scratch, const img::Creds& c) {
  if (c.uids_size() != 4 || c.gids_size() != 4) return Ok{};  // images without credentials
  RemoteScratch::Frame frame(scratch);
  uint64_t own = OwnPermitted();
  TRY(rs.Checked("prctl(PR_SET_SECUREBITS, KEEP_CAPS|NO_SETUID_FIXUP)", SYS_prctl,
                 PR_SET_SECUREBITS, SECBIT_KEEP_CAPS | SECBIT_NO_SETUID_FIXUP));
  std::vector<uint32_t> groups(c.groups().begin(), c.groups().end());
  groups.push_back(0);  // never an empty array to push; not counted below
  auto rgroups = TRY(scratch.PushArray(groups.data(), groups.size()));
  groups.pop_back();
  TRY(rs.Checked("setgroups", SYS_setgroups, groups.size(), rgroups));
  TRY(rs.Checked("setresgid", SYS_setresgid, c.gids(0), c.gids(1), c.gids(2)));
  TRY(rs.Syscall(SYS_setfsgid, c.gids(3)));  // returns the previous fsgid, never an error
  TRY(rs.Checked("setresuid", SYS_setresuid, c.uids(0), c.uids(1), c.uids(2)));
  TRY(rs.Syscall(SYS_setfsuid, c.uids(3)));
  TRY(Capset(rs, scratch, own, own, c.cap_inh(), "capset(inheritable)"));
  int last = LastCap();
  for (int cap = 0; cap <= last; cap++)
    if (c.cap_amb() & (1ull << cap))
      TRY(rs.Checked(Format("prctl(PR_CAP_AMBIENT_RAISE, %s)", CapName(cap).c_str()).c_str(),
                     SYS_prctl, PR_CAP_AMBIENT, PR_CAP_AMBIENT_RAISE, cap, 0, 0));
  for (int cap = 0; cap <= last; cap++)
    if (!(c.cap_bnd() & (1ull << cap)))
      TRY(rs.Checked(Format("prctl(PR_CAPBSET_DROP, %s)", CapName(cap).c_str()).c_str(), SYS_prctl,
                     PR_CAPBSET_DROP, cap));
  TRY(rs.Checked("prctl(PR_SET_SECUREBITS)", SYS_prctl, PR_SET_SECUREBITS, c.securebits()));
  TRY(Capset(rs, scratch, c.cap_eff(), c.cap_prm(), c.cap_inh(), "capset"));
  if (c.no_new_privs())
    TRY(rs.Checked("prctl(PR_SET_NO_NEW_PRIVS)", SYS_prctl, PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0));
  return Ok{};
}

}  // namespace crl
