// A POSIX message queue (mq_open): opened again by its name, in the IPC
// namespace of the tree's root, where restore has made the namespace's
// queues again with their messages (kernel/namespaces), or, for a tree in
// criu-lite's own namespace, where the queue lives on as a file does. The
// queue's contents belong to its namespace, not to the fd.
//
// An fd of a queue of another namespace than the root's (opened before an
// unshare, or passed in), or of one removed with mq_unlink, could not be
// opened again by its name: refused, named.
#include <fcntl.h>
#include <mqueue.h>
#include <sched.h>
#include <sys/stat.h>
#include <sys/vfs.h>
#include <unistd.h>

#include "files/fd_kind.h"
#include "kernel/namespaces.h"
#include "kernel/proc_task.h"

namespace crl {
namespace {

constexpr long kMqueueMagic = 0x19800202;  // MQUEUE_MAGIC

class Mqueue : public FdKind {
 public:
  img::Fd::KindCase arm() const override { return img::Fd::kMqueue; }
  const char* name() const override { return "POSIX message queue"; }

  bool Claims(const FdSeen& s) const override {
    if (s.anon || !S_ISREG(s.st.st_mode)) return false;
    struct statfs fs {};
    return statfs(ProcTask(s.pid).Path(Format("fd/%d", s.fd)).c_str(), &fs) == 0 &&
           fs.f_type == kMqueueMagic;
  }

  Status Collect(const FdSeen& s, img::Fd* out) const override {
    // Whether the task's namespace still has the queue under that name.
    bool named = false;
    TRY(InNamespaceOf(s.pid, "ipc", CLONE_NEWIPC, [&]() -> Status {
      mqd_t q = mq_open(s.link.c_str(), O_RDONLY | O_CLOEXEC);
      if (q < 0) return Ok{};
      struct stat st {};
      named = fstat(q, &st) == 0 && st.st_dev == s.st.st_dev && st.st_ino == s.st.st_ino;
      mq_close(q);
      return Ok{};
    }));
    if (!named)
      return MakeError(
          "PID %d fd %d is POSIX message queue %s, which its ipc namespace no longer holds by "
          "that name (removed with mq_unlink, or of another namespace): not carried",
          s.pid, s.fd, s.link.c_str());
    out->mutable_mqueue()->set_ns_id(NamespaceId(s.pid, "ipc"));
    return Ok{};
  }

  // Restore opens files in the root's namespaces.
  Status Resolve(const std::vector<FdRef>& mine, TreeFds& tree) const override {
    if (mine.empty()) return Ok{};
    uint64_t root = NamespaceId(tree.root(), "ipc");
    for (const FdRef& r : mine)
      if (r.fd->mqueue().ns_id() != root)
        return MakeError(
            "PID %d fd %d is POSIX message queue %s of an ipc namespace other than the tree "
            "root's (PID %d): not carried yet",
            r.pid, r.fd->fd(), r.fd->path().c_str(), tree.root());
    return Ok{};
  }

  Result<ScopedFd> Open(const img::Fd& f, OpenFiles&) const override {
    int flags = (f.flags() & (O_ACCMODE | O_NONBLOCK)) | O_CLOEXEC;
    mqd_t q = mq_open(f.path().c_str(), flags);
    if (q < 0) return ErrnoError("mq_open(%s) for fd %d", f.path().c_str(), f.fd());
    return ScopedFd(q);
  }
};

}  // namespace

const FdKind& MqueueKind() {
  static const Mqueue k;
  return k;
}

}  // namespace crl
