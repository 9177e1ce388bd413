#include "restore/mount_restore.h"

#include <fcntl.h>
#include <limits.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/syscall.h>

#include <cstdlib>
#include <cstring>
#include <set>

#include "base/scoped_fd.h"
#include "files/fd_kind.h"
#include "kernel/mounts.h"
#include "kernel/proc_task.h"

namespace crl {
namespace {

constexpr uint64_t kAttrs = MOUNT_ATTR_RDONLY | MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV |
                            MOUNT_ATTR_NOEXEC | MOUNT_ATTR__ATIME | MOUNT_ATTR_NODIRATIME |
                            MOUNT_ATTR_NOSYMFOLLOW;

// DIR's path below the directory ROOT of its file system, from OF (a mount
// of ROOT_OF of the same file system, made at AT).
std::string BelowMount(const std::string& at, const std::string& root_of, const std::string& root) {
  std::string rest = root_of == "/" ? root : root.substr(root_of.size());
  return rest.empty() || rest == "/" ? at : at + rest;
}

class MountBuilder {
 public:
  MountBuilder(Puppet& p, std::string root, const std::map<std::string, std::string>& external,
               std::map<int, ScopedFd>* ptys)
      : p_(p), rs_(p.rs()), root_(std::move(root)), external_(external), ptys_(ptys) {}

  Status Build(const img::MountNamespace& ns) {
    TRY(rs_.Checked("unshare(CLONE_NEWNS)", SYS_unshare, CLONE_NEWNS));
    TRY(Mount("", "/", "", MS_REC | MS_SLAVE, ""));
    TRY(OpenNamespace());
    for (const img::Mount& m : ns.mounts()) TRY(MakeNamed(m));
    TRY(Chdir(root_));
    TRY(Pivot());
    TRY(Chdir("/"));
    // The root's propagation last: pivot_root takes no shared new root.
    return SetAttributes(ns.mounts(0), "/");
  }

  // A namespace made below the tree's root, from the copy unshare makes of
  // the one the puppet is in (its parent's). The copies NS kept get their
  // propagation (unless still peers of the parent's) and attributes, before
  // the others go, so that taking them away does not propagate to the
  // parent's; then NS's own mounts are made, but those in LATER.
  Status BuildNested(const img::MountNamespace& ns, const std::set<uint64_t>& later) {
    TRY(rs_.Checked("unshare(CLONE_NEWNS)", SYS_unshare, CLONE_NEWNS));
    TRY(OpenNamespace());
    std::vector<MountEntry> live = TRY(ParseMountinfo(TRY(ProcTask(p_.pid()).Read("mountinfo"))));
    std::vector<const img::Mount*> kept_by(live.size());  // the record each copy is
    for (const img::Mount& m : ns.mounts()) {
      if (m.how() != img::Mount::INHERITED) continue;
      size_t k = 0;
      while (k < live.size() && (kept_by[k] || live[k].mountpoint != m.mountpoint() ||
                                 live[k].fstype != m.fstype() || live[k].root != m.root()))
        k++;
      if (k == live.size())
        return MakeError(
            "it had the mount at %s (%s) of the namespace it was made from, which has none "
            "there now",
            m.mountpoint().c_str(), m.fstype().c_str());
      kept_by[k] = &m;
      made_[m.id()] = m.mountpoint();
      by_id_[m.id()] = &m;
      if (!m.peer_of_parent()) {
        mount_attr a{};
        a.propagation = MS_PRIVATE;
        TRY(SetAttr(m.mountpoint(), a, "private"));
      }
      TRY(SetAttributes(m, m.mountpoint(), !m.peer_of_parent())
              .Context(Format("the mount at %s", m.mountpoint().c_str())));
    }
    // The copies it did not keep, topmost first; below a copy still a peer
    // of the parent's, what propagates there stays, as it did for the task.
    std::map<uint64_t, size_t> live_at;
    for (size_t k = 0; k < live.size(); k++) live_at[live[k].id] = k;
    for (size_t k = live.size(); k-- > 0;) {
      if (kept_by[k]) continue;
      auto parent = live_at.find(live[k].parent_id);
      const img::Mount* under = parent == live_at.end() ? nullptr : kept_by[parent->second];
      if (!under || under->peer_of_parent()) continue;
      RemoteScratch::Frame frame(p_.scratch());
      RemotePtr at = TRY(p_.scratch().PushString(live[k].mountpoint));
      TRY(rs_.Checked(Format("umount2(%s)", live[k].mountpoint.c_str()).c_str(), SYS_umount2, at,
                      MNT_DETACH));
    }
    for (const img::Mount& m : ns.mounts())
      if (m.how() != img::Mount::INHERITED && !later.count(m.id())) TRY(MakeNamed(m));
    return Ok{};
  }

  // The mounts of LATER, in the namespace BuildNested made, which the
  // puppet has entered; then its mounts checked against NS's.
  Status FinishNested(const img::MountNamespace& ns, const std::set<uint64_t>& later) {
    TRY(OpenNamespace());
    for (const img::Mount& m : ns.mounts()) {
      if (later.count(m.id())) {
        TRY(MakeNamed(m));
      } else {
        made_[m.id()] = m.mountpoint();
        by_id_[m.id()] = &m;
      }
    }
    // What it has against what it had, by point and kind.
    std::multiset<std::pair<std::string, std::string>> want, have;
    std::set<std::string> open_to_parent;  // below these, what the parent gets, it gets
    for (const img::Mount& m : ns.mounts()) {
      want.insert({m.mountpoint(), m.fstype()});
      if (m.peer_of_parent()) open_to_parent.insert(m.mountpoint());
    }
    std::vector<MountEntry> live = TRY(ParseMountinfo(TRY(ProcTask(p_.pid()).Read("mountinfo"))));
    std::map<uint64_t, std::string> point_of;
    for (const MountEntry& e : live) point_of[e.id] = e.mountpoint;
    for (const MountEntry& e : live) {
      auto it = want.find({e.mountpoint, e.fstype});
      if (it != want.end()) {
        want.erase(it);
        continue;
      }
      if (!open_to_parent.count(point_of[e.parent_id]))
        return MakeError("its mount namespace has %s at %s, which it did not have",
                         e.fstype.c_str(), e.mountpoint.c_str());
    }
    if (!want.empty())
      return MakeError("its mount namespace lacks the %s at %s it had",
                       want.begin()->second.c_str(), want.begin()->first.c_str());
    return Ok{};
  }

 private:
  Status OpenNamespace() {
    std::string path = ProcTask(p_.pid()).Path("ns/mnt");
    ns_.reset(open(path.c_str(), O_RDONLY | O_CLOEXEC));
    if (!ns_.valid()) return ErrnoError("open(%s)", path.c_str());
    return Ok{};
  }

  Status MakeNamed(const img::Mount& m) {
    return Make(m).Context(
        Format("the mount at %s (%s)", m.mountpoint().c_str(), m.fstype().c_str()));
  }

  Status Make(const img::Mount& m) {
    std::string at = m.how() == img::Mount::ROOT ? root_ : root_ + m.mountpoint();
    const img::Mount* peer = PeerOf(m);
    if (peer) {
      // A peer (or a slave) of a mount made already: a bind of it.
      TRY(MakePtyFor(*peer, m));
      TRY(Mount(BelowMount(made_[peer->id()], peer->root(), m.root()), at, "", MS_BIND, ""));
    } else {
      switch (m.how()) {
        case img::Mount::ROOT:
          TRY(Mount(root_, root_, "", MS_BIND, ""));
          break;
        case img::Mount::NEW:
          TRY(Mount(m.source(), at, m.fstype(), m.sb_readonly() ? MS_RDONLY : 0, m.options()));
          if (!m.tmpfs_tar().empty())
            TRY(ExtractArchive(ns_.get(), at, m.tmpfs_tar(),
                               {m.tmpfs_inos().begin(), m.tmpfs_inos().end()})
                    .Context("putting its files back"));
          break;
        case img::Mount::BIND: {
          const img::Mount* of = by_id_.count(m.bind_of()) ? by_id_[m.bind_of()] : nullptr;
          if (!of) return MakeError("it binds mount %lu, which is not made before it", m.bind_of());
          TRY(MakePtyFor(*of, m));
          TRY(Mount(BelowMount(made_[of->id()], of->root(), m.root()), at, "", MS_BIND, ""));
          break;
        }
        case img::Mount::EXTERNAL: {
          auto it = external_.find(m.external_key());
          if (it == external_.end())
            return MakeError("it is the caller's mount %s: give it with --external mnt[%s]:PATH",
                             m.external_key().c_str(), m.external_key().c_str());
          TRY(Mount(it->second, at, "", MS_BIND, ""));
          break;
        }
        case img::Mount::INHERITED:  // BuildNested's
        default:
          return MakeError("unknown kind of mount %d", m.how());
      }
    }
    made_[m.id()] = at;
    by_id_[m.id()] = &m;
    if (m.how() == img::Mount::ROOT) return Ok{};
    return SetAttributes(m, at);
  }

  // M, a bind of OF below its root: if OF is a devpts and M one of its ptys'
  // slaves (runc's /dev/console is /dev/pts/N), that pty is made first (its
  // slave exists only while its master is open), through the puppet's view
  // of the devpts, and its master kept.
  Status MakePtyFor(const img::Mount& of, const img::Mount& m) {
    int index;
    char extra;
    if (of.fstype() != "devpts" || sscanf(m.root().c_str(), "/%d%c", &index, &extra) != 1)
      return Ok{};
    if (ptys_->count(index)) return Ok{};
    std::string ptmx = ProcTask(p_.pid()).Path("root") + made_[of.id()] + "/ptmx";
    (*ptys_)[index] = TRY(OpenPtyNumbered(ptmx, index).Context("the pty whose slave it binds"));
    return Ok{};
  }

  // The mount made already whose peer group M shares, or is a slave of.
  const img::Mount* PeerOf(const img::Mount& m) {
    for (const auto& [id, e] : by_id_) {
      if (!e->peer_group()) continue;
      if (e->peer_group() != m.peer_group() && e->peer_group() != m.master()) continue;
      if (e->root() == "/" || m.root() == e->root() || m.root().rfind(e->root() + "/", 0) == 0)
        return e;
    }
    return nullptr;
  }

  Status SetAttributes(const img::Mount& m, const std::string& at, bool propagation = true) {
    mount_attr a{};
    a.attr_set = m.attr() & kAttrs;
    a.attr_clr = kAttrs;
    TRY(SetAttr(at, a, "attributes"));
    if (!propagation) return Ok{};
    uint32_t prop = m.propagation();
    a = mount_attr{};
    if (prop & MS_SLAVE) {
      a.propagation = MS_SLAVE;
      TRY(SetAttr(at, a, "slave"));
    }
    if (prop & MS_SHARED) {
      a.propagation = MS_SHARED;
      TRY(SetAttr(at, a, "shared"));
    }
    if (prop & MS_UNBINDABLE) {
      a.propagation = MS_UNBINDABLE;
      TRY(SetAttr(at, a, "unbindable"));
    }
    if (!prop) {
      a.propagation = MS_PRIVATE;
      TRY(SetAttr(at, a, "private"));
    }
    return Ok{};
  }

  Status SetAttr(const std::string& at, const mount_attr& a, const char* what) {
    RemoteScratch::Frame frame(p_.scratch());
    RemotePtr path = TRY(p_.scratch().PushString(at));
    RemotePtr attr = TRY(p_.scratch().Push(a));
    TRY(rs_.Checked(Format("mount_setattr(%s, %s)", at.c_str(), what).c_str(), SYS_mount_setattr,
                    AT_FDCWD, path, 0, attr, sizeof a));
    return Ok{};
  }

  Status Mount(const std::string& source, const std::string& target, const std::string& type,
               unsigned long flags, const std::string& data) {
    RemoteScratch& s = p_.scratch();
    RemoteScratch::Frame frame(s);
    RemotePtr src = source.empty() ? RemotePtr{} : RemotePtr(TRY(s.PushString(source)));
    RemotePtr dst = TRY(s.PushString(target));
    RemotePtr fstype = type.empty() ? RemotePtr{} : RemotePtr(TRY(s.PushString(type)));
    RemotePtr opts = data.empty() ? RemotePtr{} : RemotePtr(TRY(s.PushString(data)));
    TRY(rs_.Checked(
        Format("mount(%s, %s, %s)", source.c_str(), target.c_str(), type.c_str()).c_str(),
        SYS_mount, src, dst, fstype, flags, opts));
    return Ok{};
  }

  Status Chdir(const std::string& dir) {
    RemoteScratch::Frame frame(p_.scratch());
    RemotePtr d = TRY(p_.scratch().PushString(dir));
    TRY(rs_.Checked(Format("chdir(%s)", dir.c_str()).c_str(), SYS_chdir, d));
    return Ok{};
  }

  // pivot_root(".", "."), then the old root (now over the new one) let go.
  // Where criu-lite's root is the initial ramfs, which pivot_root cannot
  // leave (EINVAL), the new root is moved over it and the puppet chroots
  // there, as runtimes do without pivot_root: the tree sees the same mounts.
  Status Pivot() {
    RemoteScratch::Frame frame(p_.scratch());
    RemotePtr dot = TRY(p_.scratch().PushString("."));
    int64_t r = TRY(rs_.Syscall(SYS_pivot_root, dot, dot));
    if (r == -EINVAL) {
      RemotePtr slash = TRY(p_.scratch().PushString("/"));
      TRY(rs_.Checked("mount(MS_MOVE) of the new root over /", SYS_mount, dot, slash, 0, MS_MOVE,
                      0));
      TRY(rs_.Checked("chroot", SYS_chroot, dot));
      return Ok{};
    }
    if (r < 0)
      return MakeError("pivot_root in PID %d: %s", p_.pid(), strerror(static_cast<int>(-r)));
    TRY(rs_.Checked("umount2(the old root)", SYS_umount2, dot, MNT_DETACH));
    return Ok{};
  }

  Puppet& p_;
  RemoteSyscalls& rs_;
  std::string root_;
  const std::map<std::string, std::string>& external_;
  std::map<int, ScopedFd>* ptys_;
  ScopedFd ns_;
  std::map<uint64_t, std::string> made_;  // mount ID at dump -> where it is made
  std::map<uint64_t, const img::Mount*> by_id_;
};

}  // namespace

Status MakeMountNamespace(Puppet& p, const img::MountNamespace& ns, const std::string& root,
                          const std::map<std::string, std::string>& external,
                          std::map<int, ScopedFd>* ptys) {
  if (root.empty())
    return MakeError(
        "the tree's root made a mount namespace (a container): give the directory that is its "
        "root with --root");
  char real[PATH_MAX];
  struct stat st;
  if (!realpath(root.c_str(), real) || stat(real, &st) < 0 || !S_ISDIR(st.st_mode))
    return MakeError("--root %s: not a directory", root.c_str());
  if (ns.mounts_size() == 0) return MakeError("the mount namespace has no mounts recorded");
  if (std::string(real) == "/")
    return MakeError("--root /: the tree's root must be another directory");
  return MountBuilder(p, real, external, ptys).Build(ns);
}

std::set<uint64_t> TaskMadeMounts(const img::MountNamespace& ns, bool own_pid, bool own_ipc,
                                  bool own_cgroup) {
  std::set<uint64_t> later;
  for (const img::Mount& m : ns.mounts()) {
    bool tied = m.how() == img::Mount::NEW &&
                ((own_pid && m.fstype() == "proc") || (own_ipc && m.fstype() == "mqueue") ||
                 (own_cgroup && m.fstype() == "cgroup2"));
    if (tied || later.count(m.parent_id()) ||
        (m.how() == img::Mount::BIND && later.count(m.bind_of())))
      later.insert(m.id());
  }
  return later;
}

Status MakeNestedMountNamespace(Puppet& helper, const img::MountNamespace& ns,
                                const std::set<uint64_t>& later,
                                const std::map<std::string, std::string>& external,
                                std::map<int, ScopedFd>* ptys) {
  if (ns.mounts_size() == 0) return MakeError("the mount namespace has no mounts recorded");
  return MountBuilder(helper, "", external, ptys).BuildNested(ns, later);
}

Status FinishNestedMountNamespace(Puppet& p, const img::MountNamespace& ns,
                                  const std::set<uint64_t>& later,
                                  const std::map<std::string, std::string>& external) {
  std::map<int, ScopedFd> ptys;
  return MountBuilder(p, "", external, &ptys).FinishNested(ns, later);
}

}  // namespace crl
