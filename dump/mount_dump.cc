#include "dump/mount_dump.h"

#include <fcntl.h>
#include <sys/mount.h>

#include <algorithm>

#include "base/scoped_fd.h"
#include "kernel/mounts.h"
#include "kernel/proc_task.h"

namespace crl {
namespace {

// File systems restore mounts anew, empty (a tmpfs then gets its files
// back): each instance belongs to the namespaces its mounter is in.
bool MadeAnew(const std::string& fstype) {
  static const char* const kKinds[] = {"proc", "sysfs", "devpts", "mqueue", "cgroup2", "tmpfs"};
  return std::count(std::begin(kKinds), std::end(kKinds), fstype) > 0;
}

// Whether the directory ROOT of a file system is DIR or below it.
bool Below(const std::string& root, const std::string& dir) {
  if (dir == "/") return true;
  return root == dir || (root.rfind(dir, 0) == 0 && root[dir.size()] == '/');
}

img::Mount Recorded(const MountEntry& m) {
  img::Mount o;
  o.set_id(m.id);
  o.set_parent_id(m.parent_id);
  o.set_mountpoint(m.mountpoint);
  o.set_fstype(m.fstype);
  o.set_source(m.source);
  o.set_root(m.root);
  o.set_options(m.options);
  o.set_attr(m.attr);
  o.set_sb_readonly(m.sb_readonly);
  o.set_propagation(m.propagation);
  o.set_peer_group(m.peer_group);
  o.set_master(m.master);
  return o;
}

}  // namespace

Status CollectMountNamespace(pid_t pid, pid_t parent, uint64_t ns_id,
                             const std::map<std::string, std::string>& external,
                             const std::map<std::string, std::string>& maybe_external,
                             img::MountNamespace* out) {
  char root[4096];
  ssize_t n = readlink(ProcTask(pid).Path("root").c_str(), root, sizeof root - 1);
  if (n != 1 || root[0] != '/')
    return MakeError(
        "PID %d is chrooted inside its mount namespace (its root is not the namespace's): not "
        "carried",
        pid);
  MountTable table = TRY(ReadMounts(pid).Context(Format("the mount namespace of PID %d", pid)));
  std::string ns_path = ProcTask(pid).Path("ns/mnt");
  ScopedFd ns(open(ns_path.c_str(), O_RDONLY | O_CLOEXEC));
  if (!ns.valid()) return ErrnoError("open(%s)", ns_path.c_str());
  out->set_ns_id(ns_id);
  out->set_read_with(table.read_with);
  out->set_nested(parent > 0);
  const std::vector<MountEntry>& all = table.mounts;
  // Below the root, the parent's mounts the namespace's copy still has.
  std::vector<const MountEntry*> copied(all.size());
  MountTable theirs;
  if (parent > 0) {
    theirs = TRY(ReadMounts(parent).Context(Format("the mount namespace of PID %d", parent)));
    std::vector<bool> taken(theirs.mounts.size());
    for (size_t i = 0; i < all.size(); i++)
      for (size_t k = 0; k < theirs.mounts.size() && !copied[i]; k++)
        if (!taken[k] && SameMountAt(all[i], theirs.mounts[k])) {
          taken[k] = true;
          copied[i] = &theirs.mounts[k];
        }
    if (!copied[0])
      return MakeError(
          "PID %d made a mount namespace whose root is not its parent's (pivot_root below the "
          "tree's root): not carried",
          pid);
  }
  for (size_t i = 0; i < all.size(); i++) {
    const MountEntry& m = all[i];
    img::Mount o = Recorded(m);
    const std::string* key = nullptr;
    for (const auto* names : {&external, &maybe_external})
      if (auto it = names->find(m.mountpoint); !key && it != names->end()) key = &it->second;
    if (copied[i]) {
      o.set_how(img::Mount::INHERITED);
      o.set_peer_of_parent(m.peer_group && m.peer_group == copied[i]->peer_group);
    } else if (i == 0) {
      o.set_how(img::Mount::ROOT);
    } else if (key) {
      o.set_how(img::Mount::EXTERNAL);
      o.set_external_key(*key);
    } else if (MadeAnew(m.fstype) && m.root == "/") {
      o.set_how(img::Mount::NEW);
      if (m.fstype == "tmpfs") {
        std::vector<uint64_t> inos;
        o.set_tmpfs_tar(TRY(ArchiveMount(ns.get(), m.mountpoint, &inos)
                                .Context(Format("the files of the tmpfs at %s of PID %d",
                                                m.mountpoint.c_str(), pid))));
        for (uint64_t i : inos) o.add_tmpfs_inos(i);
      }
    } else {
      // A bind of a directory of a mount made before it.
      auto of = std::find_if(all.begin(), all.begin() + i, [&](const MountEntry& e) {
        return e.dev_major == m.dev_major && e.dev_minor == m.dev_minor && Below(m.root, e.root);
      });
      if (of == all.begin() + i)
        return MakeError(
            "PID %d's mount namespace has %s (%s, %s) mounted at %s, which is neither made anew "
            "nor a bind of another of its mounts: not carried; name it with --external "
            "mnt[%s]:KEY and give it at restore with --external mnt[KEY]:PATH",
            pid, m.fstype.c_str(), m.source.c_str(), m.root.c_str(), m.mountpoint.c_str(),
            m.mountpoint.c_str());
      o.set_how(img::Mount::BIND);
      o.set_bind_of(of->id);
    }
    *out->add_mounts() = std::move(o);
  }
  for (const auto& [point, key] : external)
    if (parent <= 0 && std::none_of(all.begin(), all.end(),
                                    [&](const MountEntry& e) { return e.mountpoint == point; }))
      return MakeError("--external mnt[%s]:%s: PID %d's mount namespace has no mount there",
                       point.c_str(), key.c_str(), pid);
  return Ok{};
}

}  // namespace crl
