#include "kernel/mounts.h"

#include <fcntl.h>
#include <sched.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <map>
#include <memory>
#include <set>
#include <sstream>

#include "base/scoped_fd.h"
#include "kernel/kernel_probe.h"
#include "kernel/lib_archive.h"
#include "kernel/namespaces.h"
#include "kernel/proc_parsers.h"
#include "kernel/proc_task.h"
#include "kernel/uapi.h"

namespace crl {
namespace {

// mountinfo escapes space, tab, newline and backslash as \ooo.
std::string Unescape(std::string_view s) {
  std::string out;
  for (size_t i = 0; i < s.size(); i++) {
    if (s[i] == '\\' && i + 3 < s.size() && isdigit(s[i + 1]) && isdigit(s[i + 2]) &&
        isdigit(s[i + 3])) {
      out += static_cast<char>((s[i + 1] - '0') * 64 + (s[i + 2] - '0') * 8 + (s[i + 3] - '0'));
      i += 3;
    } else {
      out += s[i];
    }
  }
  return out;
}

// The per-mount options of mountinfo ("rw,nosuid,relatime") as MOUNT_ATTR_*.
uint64_t AttrOf(const std::string& options) {
  uint64_t attr = 0;
  for (const std::string& o : Split(options, ',')) {
    if (o == "ro") attr |= MOUNT_ATTR_RDONLY;
    if (o == "nosuid") attr |= MOUNT_ATTR_NOSUID;
    if (o == "nodev") attr |= MOUNT_ATTR_NODEV;
    if (o == "noexec") attr |= MOUNT_ATTR_NOEXEC;
    if (o == "noatime") attr |= MOUNT_ATTR_NOATIME;
    if (o == "nodiratime") attr |= MOUNT_ATTR_NODIRATIME;
    if (o == "nosymfollow") attr |= MOUNT_ATTR_NOSYMFOLLOW;
    if (o == "idmapped") attr |= MOUNT_ATTR_IDMAP;
  }
  // Neither relatime nor noatime shown: strictatime.
  if (!(attr & MOUNT_ATTR_NOATIME) && ("," + options + ",").find(",relatime,") == std::string::npos)
    attr |= MOUNT_ATTR_STRICTATIME;
  return attr;
}

// The super options less ro/rw, which AttrOf and sb_readonly carry.
std::string FsOptions(const std::string& super, bool* readonly) {
  std::string out;
  for (const std::string& o : Split(super, ',')) {
    if (o == "ro") *readonly = true;
    if (o == "ro" || o == "rw" || o.empty()) continue;
    out += (out.empty() ? "" : ",") + o;
  }
  return out;
}

constexpr unsigned kStatxMntIdUnique = 0x4000;  // STATX_MNT_ID_UNIQUE (6.8)

// mnt_id_req for statmount (PARAM: the mask) and listmount (PARAM: the last
// ID listed).
long MountCall(long nr, uint64_t id, uint64_t param, void* buf, size_t size) {
  crl_mnt_id_req req{sizeof req, 0, id, param};
  return syscall(nr, &req, buf, size, 0);
}

constexpr uint64_t kStatmountMask = CRL_STATMOUNT_SB_BASIC | CRL_STATMOUNT_MNT_BASIC |
                                    CRL_STATMOUNT_PROPAGATE_FROM | CRL_STATMOUNT_MNT_ROOT |
                                    CRL_STATMOUNT_MNT_POINT | CRL_STATMOUNT_FS_TYPE |
                                    CRL_STATMOUNT_MNT_OPTS | CRL_STATMOUNT_SB_SOURCE;

Result<MountEntry> Statmount(uint64_t id) {
  std::vector<uint64_t> buf(8192);
  for (;;) {
    if (MountCall(__NR_statmount, id, kStatmountMask, buf.data(), buf.size() * 8) == 0) break;
    if (errno != EOVERFLOW) return ErrnoError("statmount(%#lx)", id);
    buf.resize(buf.size() * 2);
  }
  const auto* sm = reinterpret_cast<const crl_statmount*>(buf.data());
  auto str = [&](uint32_t mask, uint32_t off) -> std::string {
    return (sm->mask & mask) ? std::string(sm->str + off) : std::string();
  };
  MountEntry m;
  m.id = sm->mnt_id;
  m.parent_id = sm->mnt_parent_id;
  m.mountpoint = str(CRL_STATMOUNT_MNT_POINT, sm->mnt_point);
  m.root = str(CRL_STATMOUNT_MNT_ROOT, sm->mnt_root);
  m.fstype = str(CRL_STATMOUNT_FS_TYPE, sm->fs_type);
  m.source = str(CRL_STATMOUNT_SB_SOURCE, sm->sb_source);
  if (m.source.empty()) m.source = m.fstype;
  bool ro = sm->sb_flags & MS_RDONLY;
  m.options = FsOptions(str(CRL_STATMOUNT_MNT_OPTS, sm->mnt_opts), &ro);
  m.sb_readonly = ro;
  m.attr = sm->mnt_attr;
  m.propagation = sm->mnt_propagation & (MS_SHARED | MS_SLAVE | MS_UNBINDABLE);
  m.peer_group = (sm->mnt_propagation & MS_SHARED) ? sm->mnt_peer_group : 0;
  m.master = (sm->mnt_propagation & MS_SLAVE) ? sm->mnt_master : 0;
  m.dev_major = sm->sb_dev_major;
  m.dev_minor = sm->sb_dev_minor;
  return m;
}

// Every mount of the calling thread's mount namespace. listmount lists
// the whole namespace from LSMT_ROOT since 6.9, and a mount's children only
// in 6.8: each mount's children are asked for too, and duplicates dropped.
Result<std::vector<MountEntry>> ListAndStat() {
  std::vector<uint64_t> todo{CRL_LSMT_ROOT}, ids;
  std::set<uint64_t> seen;
  while (!todo.empty()) {
    uint64_t at = todo.back();
    todo.pop_back();
    uint64_t last = 0;
    for (;;) {
      uint64_t got[256];
      long n = MountCall(__NR_listmount, at, last, got, 256);
      if (n < 0) return ErrnoError("listmount(%#lx)", at);
      for (long i = 0; i < n; i++)
        if (seen.insert(got[i]).second) {
          ids.push_back(got[i]);
          todo.push_back(got[i]);
        }
      if (n < 256) break;
      last = got[n - 1];
    }
  }
  // The namespace's root, no mount's child, is this thread's root.
  struct statx sx {};
  if (statx(AT_FDCWD, "/", 0, kStatxMntIdUnique, &sx) < 0 || !(sx.stx_mask & kStatxMntIdUnique))
    return MakeError("statx(/): no unique mount ID");
  if (seen.insert(sx.stx_mnt_id).second) ids.push_back(sx.stx_mnt_id);
  std::vector<MountEntry> out;
  for (uint64_t id : ids) out.push_back(TRY(Statmount(id)));
  return out;
}

struct ArchiveDeleter {
  void operator()(archive* a) const { Archive().archive_read_free(a); }
};
struct WriterDeleter {
  void operator()(archive* a) const { Archive().archive_write_free(a); }
};

la_ssize_t AppendToString(archive*, void* out, const void* data, size_t len) {
  static_cast<std::string*>(out)->append(static_cast<const char*>(data), len);
  return static_cast<la_ssize_t>(len);
}

struct EntryDeleter {
  void operator()(archive_entry* e) const { Archive().archive_entry_free(e); }
};
// A file as read, with its bytes.
struct ReadEntry {
  std::unique_ptr<archive_entry, EntryDeleter> meta;
  std::string data;
};

// The files below the working directory (sockets aside: their owners bind
// them again), each with its bytes.
Result<std::vector<ReadEntry>> ReadCwd() {
  std::unique_ptr<archive, ArchiveDeleter> disk(Archive().archive_read_disk_new());
  Archive().archive_read_disk_set_symlink_physical(disk.get());
  Archive().archive_read_disk_set_behavior(disk.get(), ARCHIVE_READDISK_NO_TRAVERSE_MOUNTS);
  if (Archive().archive_read_disk_open(disk.get(), ".") != ARCHIVE_OK)
    return MakeError("libarchive: %s", Archive().archive_error_string(disk.get()));
  std::vector<ReadEntry> out;
  std::vector<char> buf(1 << 16);
  for (;;) {
    ReadEntry e{std::unique_ptr<archive_entry, EntryDeleter>(Archive().archive_entry_new()), ""};
    int r = Archive().archive_read_next_header2(disk.get(), e.meta.get());
    if (r == ARCHIVE_EOF) return out;
    if (r < ARCHIVE_WARN)
      return MakeError("reading the files: %s", Archive().archive_error_string(disk.get()));
    Archive().archive_read_disk_descend(disk.get());
    if (Archive().archive_entry_filetype(e.meta.get()) == AE_IFSOCK) continue;
    if (Archive().archive_entry_filetype(e.meta.get()) == AE_IFREG)
      for (la_ssize_t n;
           (n = Archive().archive_read_data(disk.get(), buf.data(), buf.size())) != 0;) {
        if (n < 0)
          return MakeError("reading a file: %s", Archive().archive_error_string(disk.get()));
        e.data.append(buf.data(), n);
      }
    out.push_back(std::move(e));
  }
}

// The files below the working directory as a pax archive, in the order of
// their inode numbers (a tmpfs numbers its inodes in the order they are
// made: unpacked in that order, they get the same numbers), hard links
// once; INOS: each entry's number.
Result<std::string> ArchiveCwd(std::vector<uint64_t>* inos) {
  std::vector<ReadEntry> files = TRY(ReadCwd());
  std::stable_sort(files.begin(), files.end(), [](const ReadEntry& a, const ReadEntry& b) {
    return Archive().archive_entry_ino64(a.meta.get()) <
           Archive().archive_entry_ino64(b.meta.get());
  });
  std::unique_ptr<archive, WriterDeleter> out(Archive().archive_write_new());
  std::string tar;
  Archive().archive_write_set_format_pax(out.get());  // times to the nanosecond
  Archive().archive_write_set_bytes_in_last_block(out.get(), 1);
  if (Archive().archive_write_open(out.get(), &tar, nullptr, AppendToString, nullptr) != ARCHIVE_OK)
    return MakeError("libarchive: %s", Archive().archive_error_string(out.get()));
  archive_entry_linkresolver* links = Archive().archive_entry_linkresolver_new();
  Archive().archive_entry_linkresolver_set_strategy(links, ARCHIVE_FORMAT_TAR_PAX_INTERCHANGE);
  Status st = [&]() -> Status {
    for (ReadEntry& f : files) {
      archive_entry* e = f.meta.release();
      archive_entry* sparse = nullptr;
      Archive().archive_entry_linkify(links, &e, &sparse);
      if (!e) continue;
      std::unique_ptr<archive_entry, EntryDeleter> owned(e);
      bool data = !Archive().archive_entry_hardlink(e) && !f.data.empty();
      inos->push_back(Archive().archive_entry_ino64(e));
      if (Archive().archive_write_header(out.get(), e) < ARCHIVE_WARN ||
          (data && Archive().archive_write_data(out.get(), f.data.data(), f.data.size()) < 0))
        return MakeError("libarchive: %s", Archive().archive_error_string(out.get()));
    }
    return Ok{};
  }();
  Archive().archive_entry_linkresolver_free(links);
  TRY(st);
  if (Archive().archive_write_close(out.get()) != ARCHIVE_OK)
    return MakeError("libarchive: %s", Archive().archive_error_string(out.get()));
  return tar;
}

// Inode numbers up to WANT - 1 taken and let go in the working directory's
// file system, so that the next file made gets WANT, as it had (the numbers
// of files deleted before the dump are skipped so). LAST: the highest taken.
Status SkipInodeNumbers(uint64_t want, uint64_t* last) {
  while (*last + 1 < want) {
    int fd = open(".crl-inode-gap", O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (fd < 0) return ErrnoError("making a placeholder for inode numbers");
    struct stat st {};
    fstat(fd, &st);
    close(fd);
    unlink(".crl-inode-gap");
    if (st.st_ino <= *last) return Ok{};  // not a counter we can follow
    *last = st.st_ino;
  }
  return Ok{};
}

}  // namespace

bool SameMountAt(const MountEntry& a, const MountEntry& b) {
  return a.mountpoint == b.mountpoint && a.dev_major == b.dev_major && a.dev_minor == b.dev_minor &&
         a.root == b.root && a.fstype == b.fstype;
}

Result<std::vector<MountEntry>> ParseMountinfo(std::string_view text) {
  // "36 35 98:0 /mnt1 /mnt2 rw,noatime master:1 - ext3 /dev/root rw,errors=continue"
  std::vector<MountEntry> out;
  std::istringstream in{std::string(text)};
  for (std::string line; std::getline(in, line);) {
    size_t dash = line.find(" - ");
    if (dash == std::string::npos)
      return MakeError("mountinfo line without ' - ': %s", line.c_str());
    std::istringstream pre(line.substr(0, dash)), post(line.substr(dash + 3));
    MountEntry m;
    std::string dev, root, point, opts, tag, fstype, source, super;
    if (!(pre >> m.id >> m.parent_id >> dev >> root >> point >> opts) ||
        sscanf(dev.c_str(), "%u:%u", &m.dev_major, &m.dev_minor) != 2 ||
        !(post >> fstype >> source >> super))
      return MakeError("malformed mountinfo line: %s", line.c_str());
    while (pre >> tag) {
      if (tag.rfind("shared:", 0) == 0) {
        m.propagation |= MS_SHARED;
        m.peer_group = strtoull(tag.c_str() + 7, nullptr, 10);
      } else if (tag.rfind("master:", 0) == 0) {
        m.propagation |= MS_SLAVE;
        m.master = strtoull(tag.c_str() + 7, nullptr, 10);
      } else if (tag == "unbindable") {
        m.propagation |= MS_UNBINDABLE;
      }
    }
    m.root = Unescape(root);
    m.mountpoint = Unescape(point);
    m.fstype = Unescape(fstype);
    m.source = Unescape(source);
    m.attr = AttrOf(opts);
    m.options = FsOptions(super, &m.sb_readonly);
    out.push_back(std::move(m));
  }
  return out;
}

Result<std::vector<MountEntry>> MountTreeOrder(std::vector<MountEntry> entries,
                                               bool ids_in_mount_order) {
  std::map<uint64_t, size_t> by_id;
  for (size_t i = 0; i < entries.size(); i++) by_id[entries[i].id] = i;
  std::map<uint64_t, std::vector<size_t>> children;
  std::vector<size_t> roots;
  for (size_t i = 0; i < entries.size(); i++) {
    const MountEntry& m = entries[i];
    if (m.parent_id == m.id || !by_id.count(m.parent_id))
      roots.push_back(i);
    else
      children[m.parent_id].push_back(i);
  }
  if (roots.size() != 1)
    return MakeError("the mount namespace has %zu mounts whose parents are not in it",
                     roots.size());
  std::vector<MountEntry> out;
  std::vector<size_t> todo{roots[0]};
  while (!todo.empty()) {
    size_t i = todo.back();
    todo.pop_back();
    out.push_back(entries[i]);
    std::vector<size_t>& kids = children[entries[i].id];
    // Mounted first, made first: over-mounts are their mount's children.
    std::sort(kids.begin(), kids.end(), [&](size_t a, size_t b) {
      return ids_in_mount_order ? entries[a].id > entries[b].id : a > b;
    });
    todo.insert(todo.end(), kids.begin(), kids.end());
  }
  if (out.size() != entries.size())
    return MakeError("the mount namespace's mounts do not form one tree");
  return out;
}

bool ProbeStatmount() {
  std::vector<uint64_t> buf(1024);
  // criu-lite's root mount, the file system's options (6.11) asked for.
  struct statx sx {};
  if (statx(AT_FDCWD, "/", 0, kStatxMntIdUnique, &sx) < 0 || !(sx.stx_mask & kStatxMntIdUnique))
    return false;
  if (MountCall(__NR_statmount, sx.stx_mnt_id, kStatmountMask, buf.data(), buf.size() * 8) < 0)
    return false;
  return (reinterpret_cast<const crl_statmount*>(buf.data())->mask & CRL_STATMOUNT_MNT_OPTS) != 0;
}

Result<MountTable> ReadMounts(pid_t pid) {
  if (!Kernel().statmount) {
    std::string text = TRY(ReadFileToString(ProcTask(pid).Path("mountinfo")));
    return MountTable{TRY(MountTreeOrder(TRY(ParseMountinfo(text)))), "mountinfo"};
  }
  std::string path = ProcTask(pid).Path("ns/mnt");
  ScopedFd ns(open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (!ns.valid()) return ErrnoError("open(%s)", path.c_str());
  std::vector<MountEntry> all;
  TRY(InNamespaceFd(ns.get(), CLONE_NEWNS, [&]() -> Status {
    all = TRY(ListAndStat());
    return Ok{};
  }));
  return MountTable{TRY(MountTreeOrder(std::move(all), true)), "statmount"};
}

Result<std::string> ArchiveMount(int ns_fd, const std::string& mountpoint,
                                 std::vector<uint64_t>* inos) {
  TRY(LoadLibArchive());  // before entering: inside, dlopen would search the task's files
  std::string tar;
  TRY(InNamespaceFd(ns_fd, CLONE_NEWNS, [&]() -> Status {
    // A copy of the mount alone, without what is mounted below it.
    ScopedFd tree(open_tree(AT_FDCWD, mountpoint.c_str(), OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC));
    if (!tree.valid()) return ErrnoError("open_tree(%s)", mountpoint.c_str());
    if (fchdir(tree.get()) < 0) return ErrnoError("fchdir(%s)", mountpoint.c_str());
    tar = TRY(ArchiveCwd(inos).Context(mountpoint));
    return Ok{};
  }));
  return tar;
}

Status ExtractArchive(int ns_fd, const std::string& dir, const std::string& tar,
                      const std::vector<uint64_t>& inos) {
  TRY(LoadLibArchive());  // before entering: inside, dlopen would search the task's files
  return InNamespaceFd(ns_fd, CLONE_NEWNS, [&]() -> Status {
    if (chdir(dir.c_str()) < 0) return ErrnoError("chdir(%s)", dir.c_str());
    struct stat top {};
    stat(".", &top);
    uint64_t last = top.st_ino;
    std::unique_ptr<archive, ArchiveDeleter> in(Archive().archive_read_new());
    std::unique_ptr<archive, WriterDeleter> disk(Archive().archive_write_disk_new());
    Archive().archive_read_support_format_tar(in.get());
    Archive().archive_write_disk_set_options(
        disk.get(), ARCHIVE_EXTRACT_OWNER | ARCHIVE_EXTRACT_PERM | ARCHIVE_EXTRACT_TIME |
                        ARCHIVE_EXTRACT_XATTR | ARCHIVE_EXTRACT_ACL | ARCHIVE_EXTRACT_FFLAGS |
                        ARCHIVE_EXTRACT_SECURE_NODOTDOT | ARCHIVE_EXTRACT_SECURE_SYMLINKS |
                        ARCHIVE_EXTRACT_SECURE_NOABSOLUTEPATHS);
    if (Archive().archive_read_open_memory(in.get(), tar.data(), tar.size()) != ARCHIVE_OK)
      return MakeError("libarchive: %s", Archive().archive_error_string(in.get()));
    for (size_t i = 0;; i++) {
      archive_entry* e = nullptr;
      int r = Archive().archive_read_next_header(in.get(), &e);
      if (r == ARCHIVE_EOF) break;
      if (r < ARCHIVE_WARN)
        return MakeError("the archive: %s", Archive().archive_error_string(in.get()));
      if (i < inos.size() && !Archive().archive_entry_hardlink(e))
        TRY(SkipInodeNumbers(inos[i], &last));
      if (Archive().archive_read_extract2(in.get(), e, disk.get()) < ARCHIVE_WARN)
        return MakeError("%s: %s", Archive().archive_entry_pathname(e),
                         Archive().archive_error_string(disk.get()));
      struct stat st {};
      if (lstat(Archive().archive_entry_pathname(e), &st) == 0 && st.st_ino > last)
        last = st.st_ino;
    }
    if (Archive().archive_write_close(disk.get()) != ARCHIVE_OK)
      return MakeError("libarchive: %s", Archive().archive_error_string(disk.get()));
    return Ok{};
  });
}

Result<std::pair<std::string, std::string>> ParseMountExternal(const std::string& spec,
                                                               const char* parts) {
  size_t close = spec.find("]:");
  if (spec.rfind("mnt[", 0) != 0 || close == std::string::npos || close == 4 ||
      close + 2 == spec.size())
    return MakeError("%s: not mnt[%s", spec.c_str(), parts);
  return std::make_pair(spec.substr(4, close - 4), spec.substr(close + 2));
}

Result<std::pair<std::string, std::string>> ParseExtMountMap(const std::string& map,
                                                             const char* parts) {
  size_t colon = map.find(':');
  if (colon == std::string::npos || colon == 0 || colon + 1 == map.size())
    return MakeError("%s: not %s", map.c_str(), parts);
  return std::make_pair(map.substr(0, colon), map.substr(colon + 1));
}

}  // namespace crl
