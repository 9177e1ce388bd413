#include "kernel/vma_list.h"

#include <fcntl.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include <algorithm>

#include "base/log.h"
#include "base/scoped_fd.h"
#include "kernel/kernel_probe.h"
#include "kernel/proc_task.h"
#include "kernel/uapi.h"

namespace crl {

Result<std::vector<MapsEntry>> QueryVmasWithProcmapQuery(pid_t pid, uint64_t must) {
  std::string path = ProcTask(pid).Path("maps");
  ScopedFd fd(open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (!fd.valid()) return ErrnoError("open(%s)", path.c_str());
  std::vector<MapsEntry> out;
  char name[4096];
  uint64_t addr = 0;
  for (;;) {
    procmap_query q{};
    q.size = sizeof q;
    q.query_flags = PROCMAP_QUERY_COVERING_OR_NEXT_VMA | must;
    q.query_addr = addr;
    q.vma_name_addr = reinterpret_cast<uint64_t>(name);
    q.vma_name_size = sizeof name;
    if (ioctl(fd.get(), PROCMAP_QUERY, &q) < 0) {
      if (errno == ENOENT) break;  // no VMA at or after addr
      return ErrnoError("ioctl(%s, PROCMAP_QUERY, addr=0x%lx)", path.c_str(), addr);
    }
    MapsEntry e;
    e.start = q.vma_start;
    e.end = q.vma_end;
    e.read = q.vma_flags & PROCMAP_QUERY_VMA_READABLE;
    e.write = q.vma_flags & PROCMAP_QUERY_VMA_WRITABLE;
    e.exec = q.vma_flags & PROCMAP_QUERY_VMA_EXECUTABLE;
    e.shared = q.vma_flags & PROCMAP_QUERY_VMA_SHARED;
    e.offset = q.vma_offset;
    e.inode = q.inode;
    e.dev_major = q.dev_major;
    e.dev_minor = q.dev_minor;
    if (q.vma_name_size > 0) e.path.assign(name, q.vma_name_size - 1);
    out.push_back(std::move(e));
    addr = q.vma_end;
  }
  return out;
}

Result<std::vector<MapsEntry>> ListMappings(pid_t pid) {
  if (Kernel().procmap_query) return QueryVmasWithProcmapQuery(pid);
  std::string text = TRY(ProcTask(pid).Read("maps"));
  return ParseProcMaps(text).Context(ProcTask(pid).Path("maps"));
}

bool SameMappings(const std::vector<VmaInfo>& a, const std::vector<MapsEntry>& b) {
  auto same = [](const MapsEntry& x, const MapsEntry& y) {
    return x.start == y.start && x.end == y.end && x.read == y.read && x.write == y.write &&
           x.exec == y.exec && x.shared == y.shared && x.offset == y.offset &&
           x.dev_major == y.dev_major && x.dev_minor == y.dev_minor && x.inode == y.inode &&
           x.path == y.path;
  };
  return std::equal(a.begin(), a.end(), b.begin(), b.end(), same);
}

Result<std::vector<VmaInfo>> ListVmas(pid_t pid) {
  std::vector<MapsEntry> entries = TRY(ListMappings(pid));
  // smaps is about 1 KiB per mapping: read it piece by piece, keeping only
  // the flags, so that 65,000 mappings do not cost criu-lite 65 MiB at once.
  std::string path = ProcTask(pid).Path("smaps");
  ScopedFd fd(open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (!fd.valid()) return ErrnoError("open(%s)", path.c_str());
  std::vector<SmapsFlags> flags;
  std::string buf;
  char chunk[1 << 16];
  for (;;) {
    ssize_t n = read(fd.get(), chunk, sizeof chunk);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return ErrnoError("read(%s)", path.c_str());
    if (n == 0) break;
    buf.append(chunk, n);
    size_t end = buf.rfind('\n');
    if (end == std::string::npos) continue;
    TRY(ParseSmapsVmFlagsInto(std::string_view(buf).substr(0, end + 1), &flags).Context(path));
    buf.erase(0, end + 1);
  }
  TRY(ParseSmapsVmFlagsInto(buf, &flags).Context(path));
  std::vector<VmaInfo> out;
  size_t fi = 0;
  for (auto& e : entries) {
    VmaInfo v;
    static_cast<MapsEntry&>(v) = std::move(e);
    while (fi < flags.size() && flags[fi].start < v.start) fi++;
    if (fi < flags.size() && flags[fi].start == v.start) v.vmflags = std::move(flags[fi].flags);
    out.push_back(std::move(v));
  }
  return out;
}

}  // namespace crl
