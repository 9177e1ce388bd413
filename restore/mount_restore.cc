#include "restore/mount_restore.h"

#include <fcntl.h>
#include <limits.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/syscall.h>

#include <cstdlib>
#include <cstring>

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
    std::string path = ProcTask(p_.pid()).Path("ns/mnt");
    ns_.reset(open(path.c_str(), O_RDONLY | O_CLOEXEC));
    if (!ns_.valid()) return ErrnoError("open(%s)", path.c_str());
    for (const img::Mount& m : ns.mounts())
      TRY(Make(m).Context(
          Format("the mount at %s (%s)", m.mountpoint().c_str(), m.fstype().c_str())));
    TRY(Chdir(root_));
    TRY(Pivot());
    TRY(Chdir("/"));
    // The root's propagation last: pivot_root takes no shared new root.
    return SetAttributes(ns.mounts(0), "/");
  }

 private:
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

  Status SetAttributes(const img::Mount& m, const std::string& at) {
    mount_attr a{};
    a.attr_set = m.attr() & kAttrs;
    a.attr_clr = kAttrs;
    TRY(SetAttr(at, a, "attributes"));
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

}  // namespace crl
