// A mount namespace's mounts: read with listmount/statmount (6.8, one call
// per mount, no text to parse) from a thread of criu-lite's inside the
// namespace, or from /proc/PID/mountinfo where the kernel lacks them; and a
// tmpfs's files, as a tar archive, out and back in.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "base/result.h"

namespace crl {

struct MountEntry {
  uint64_t id = 0, parent_id = 0;
  std::string mountpoint;  // as the namespace's root sees it
  std::string root;        // the directory of its file system that is mounted
  std::string fstype, source;
  std::string options;  // the file system's own, as mount(2) takes them (no ro/rw)
  uint64_t attr = 0;    // MOUNT_ATTR_*
  bool sb_readonly = false;
  uint32_t propagation = 0;  // MS_SHARED | MS_SLAVE | MS_UNBINDABLE; 0: private
  uint64_t peer_group = 0, master = 0;
  uint32_t dev_major = 0, dev_minor = 0;
};

// Whether A and B show the same directory of the same file system at the
// same point, each in its namespace: a path below that point reaches the
// same file in both (the copies unshare makes of a namespace's mounts).
bool SameMountAt(const MountEntry& a, const MountEntry& b);

// /proc/PID/mountinfo, parsed (its octal escapes undone), in its order.
Result<std::vector<MountEntry>> ParseMountinfo(std::string_view text);

// ENTRIES parents first, from the one whose parent is not among them (the
// namespace's root); children in the order they were mounted: by ID where
// IDS_IN_MOUNT_ORDER (statmount's 64-bit IDs are never reused), else in
// ENTRIES' order (mountinfo lists mounts in the order they were mounted,
// and its 32-bit IDs are the lowest free ones: runc's /dev/console, bound
// from /dev/pts/0 after /dev/pts was mounted, can have the lower ID). A
// mount not below that root is an error.
Result<std::vector<MountEntry>> MountTreeOrder(std::vector<MountEntry> entries,
                                               bool ids_in_mount_order = false);

struct MountTable {
  std::vector<MountEntry> mounts;  // MountTreeOrder's
  const char* read_with;           // "statmount" or "mountinfo"
};
// The mounts of PID's mount namespace.
Result<MountTable> ReadMounts(pid_t pid);

// Whether this kernel's statmount gives all ReadMounts needs (the file
// system's options came in 6.11): Kernel().statmount's probe.
bool ProbeStatmount();

// The files of the mount at MOUNTPOINT of the mount namespace NS_FD names
// (that mount alone: what is mounted below it is not in it, what it hides
// is), as a tar archive: owners, modes, times, extended attributes, hard
// links, device nodes; in the order of their inode numbers, INOS.
Result<std::string> ArchiveMount(int ns_fd, const std::string& mountpoint,
                                 std::vector<uint64_t>* inos);
// Unpacks TAR into the directory DIR of the mount namespace NS_FD names (a
// new tmpfs), each file with the inode number INOS gives it where the
// file system numbers its inodes in order.
Status ExtractArchive(int ns_fd, const std::string& dir, const std::string& tar,
                      const std::vector<uint64_t>& inos);

// CRIU's names for a mount the caller owns: `mnt[A]:B` (--external) and
// `A:B` (--ext-mount-map), A and B both non-empty; PARTS names them for the
// error: "MOUNTPOINT]:KEY" after `mnt[` at dump, "MOUNTPOINT:KEY" for a map.
Result<std::pair<std::string, std::string>> ParseMountExternal(const std::string& spec,
                                                               const char* parts);
Result<std::pair<std::string, std::string>> ParseExtMountMap(const std::string& map,
                                                             const char* parts);

}  // namespace crl
