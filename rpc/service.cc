#include "rpc/service.h"

#include <fcntl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <unistd.h>

#include <cerrno>
#include <climits>
#include <cstdlib>
#include <cstring>
#include <optional>
#include <vector>

#include "base/log.h"
#include "dump/dump.h"
#include "dump/tracking.h"
#include "images/image_output.h"
#include "kernel/kernel_probe.h"
#include "restore/restore.h"
#include "rpc/criu_rpc.pb.h"
#include "rpc/criu_stats.pb.h"
#include "rpc/options.h"

namespace crl {
namespace {

// The CRIU release whose RPC and features criu-lite answers for: runtimes
// compare it with what they need (runc, Podman, CRI-O and containerd want
// 3.16 or later). No gitid: go-criu rounds a version with one up.
constexpr int kCriuMajor = 3;
constexpr int kCriuMinor = 19;

// A packet larger than this is not a request any runtime sends (runc's,
// with every mount named, is a few KiB).
constexpr size_t kMaxRequest = 1 << 20;

// CRIU's stats file NAME (stats-dump, stats-restore) in the work directory,
// where runtimes read it (rpc/criu_stats.proto): written whole, then
// renamed. A failure costs the figures only: it is logged.
void WriteCriuStats(const std::string& work_dir, const char* name, const criu::StatsEntry& e) {
  constexpr uint32_t kServiceMagic = 0x55105940, kStatsMagic = 0x57093306;
  std::string body = e.SerializeAsString();
  uint32_t head[3] = {kServiceMagic, kStatsMagic, static_cast<uint32_t>(body.size())};
  std::string data(reinterpret_cast<const char*>(head), sizeof head);
  data += body;
  std::string path = work_dir + "/" + name, tmp = path + ".tmp";
  Status st = [&]() -> Status {
    ScopedFd fd(open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600));
    if (!fd.valid()) return ErrnoError("open(%s)", tmp.c_str());
    TRY(WriteAllToFd(fd.get(), data.data(), data.size(), tmp));
    if (rename(tmp.c_str(), path.c_str()) < 0) return ErrnoError("rename(%s)", tmp.c_str());
    return Ok{};
  }();
  if (!st.ok()) LOG_WARN("CRIU's stats file: %s", st.error().message.c_str());
}

uint32_t PhaseUsec(const img::Stats& s, const char* name) {
  for (const img::Phase& p : s.phases())
    if (p.name() == name) return static_cast<uint32_t>(p.usec());
  return 0;
}

criu::StatsEntry CriuDumpStats(const img::Stats& s) {
  criu::StatsEntry e;
  criu::DumpStatsEntry* d = e.mutable_dump();
  d->set_freezing_time(PhaseUsec(s, "validate"));
  d->set_frozen_time(static_cast<uint32_t>(s.frozen_usec()));
  d->set_memdump_time(PhaseUsec(s, "memory"));
  d->set_memwrite_time(PhaseUsec(s, "write-images"));
  d->set_pages_scanned(s.pages_scanned());
  d->set_pages_skipped_parent(0);
  d->set_pages_written(s.pages_written());
  d->set_pages_lazy(0);
  return e;
}

criu::StatsEntry CriuRestoreStats(const img::Stats& s) {
  criu::StatsEntry e;
  criu::RestoreStatsEntry* r = e.mutable_restore();
  r->set_pages_compared(0);
  r->set_pages_skipped_cow(0);
  r->set_forking_time(PhaseUsec(s, "fork"));
  r->set_restore_time(static_cast<uint32_t>(s.total_usec()));
  r->set_pages_restored(s.pages_written());
  return e;
}

class Connection {
 public:
  explicit Connection(int fd) : fd_(fd) {}

  // The next request, or nothing once the client has closed its end.
  Result<std::optional<rpc::Request>> Receive() {
    ssize_t size;
    do size = recv(fd_, nullptr, 0, MSG_PEEK | MSG_TRUNC);
    while (size < 0 && errno == EINTR);
    if (size < 0) return ErrnoError("recv(RPC socket %d)", fd_);
    if (size == 0) {
      // A zero-length packet and EOF look alike here; a request is never
      // empty (its type is required), so both end the session.
      char c;
      (void)recv(fd_, &c, 0, 0);
      return std::optional<rpc::Request>();
    }
    if (static_cast<size_t>(size) > kMaxRequest)
      return MakeError("an RPC request of %zd bytes (at most %zu)", size, kMaxRequest);
    std::vector<char> buf(size);
    ssize_t n;
    do n = recv(fd_, buf.data(), buf.size(), 0);
    while (n < 0 && errno == EINTR);
    if (n < 0) return ErrnoError("recv(RPC socket %d)", fd_);
    rpc::Request req;
    if (!req.ParseFromArray(buf.data(), n) || !req.has_type())
      return MakeError("an RPC packet of %zd bytes is not a CRIU request", n);
    return std::optional<rpc::Request>(std::move(req));
  }

  // RESP, with FD passed along (SCM_RIGHTS) if it is not -1.
  Status Send(const rpc::Response& resp, int fd = -1) {
    std::string bytes = resp.SerializeAsString();
    iovec iov{bytes.data(), bytes.size()};
    msghdr msg{};
    msg.msg_iov = &iov;
    msg.msg_iovlen = 1;
    alignas(cmsghdr) char control[CMSG_SPACE(sizeof(int))] = {};
    if (fd >= 0) {
      msg.msg_control = control;
      msg.msg_controllen = sizeof control;
      cmsghdr* c = CMSG_FIRSTHDR(&msg);
      c->cmsg_level = SOL_SOCKET;
      c->cmsg_type = SCM_RIGHTS;
      c->cmsg_len = CMSG_LEN(sizeof(int));
      memcpy(CMSG_DATA(c), &fd, sizeof fd);
    }
    ssize_t n;
    do n = sendmsg(fd_, &msg, MSG_NOSIGNAL);
    while (n < 0 && errno == EINTR);
    if (n < 0) return ErrnoError("send(RPC socket %d)", fd_);
    return Ok{};
  }

  // The process at the other end: the client whose fds requests name.
  Result<pid_t> Peer() {
    ucred cred;
    socklen_t len = sizeof cred;
    if (getsockopt(fd_, SOL_SOCKET, SO_PEERCRED, &cred, &len) < 0)
      return ErrnoError("getsockopt(RPC socket %d, SO_PEERCRED)", fd_);
    if (cred.pid <= 0) return MakeError("the RPC socket %d has no peer process", fd_);
    return cred.pid;
  }

 private:
  int fd_;
};

rpc::Response Answer(rpc::RequestType type) {
  rpc::Response r;
  r.set_type(type);
  r.set_success(true);
  return r;
}

rpc::Response Failure(rpc::RequestType type, const Error& e) {
  LOG_ERROR("%s", e.message.c_str());
  rpc::Response r;
  r.set_type(type);
  r.set_success(false);
  r.set_cr_errmsg(e.message);
  return r;
}

// One session: the requests of one client, in order.
class Service {
 public:
  explicit Service(int fd) : conn_(fd) {}

  int Run() {
    auto peer = conn_.Peer();
    if (!peer.ok()) {
      LOG_ERROR("%s", peer.error().message.c_str());
      return 1;
    }
    peer_ = *peer;
    bool ok = false;
    for (;;) {
      auto req = conn_.Receive();
      if (!req.ok()) {
        LOG_ERROR("%s", req.error().message.c_str());
        return 1;
      }
      if (!*req) return ok ? 0 : 1;  // the client is done
      rpc::Request& r = **req;
      // PRE_DUMP keeps the session for the next pass, as CRIU's does.
      bool more = r.keep_open() || r.type() == rpc::PRE_DUMP;
      if (prev_ == rpc::PRE_DUMP && r.type() != rpc::PRE_DUMP && r.type() != rpc::DUMP) {
        (void)conn_.Send(Failure(
            r.type(),
            MakeError("after PRE_DUMP comes PRE_DUMP or DUMP, not request type %d", r.type())));
        return 1;
      }
      rpc::Response resp = Handle(r);
      ok = resp.success();
      if (Status st = conn_.Send(resp); !st.ok()) {
        LOG_ERROR("%s", st.error().message.c_str());
        return 1;
      }
      prev_ = r.type();
      if (!more || !ok) return ok ? 0 : 1;
    }
  }

 private:
  rpc::Response Handle(const rpc::Request& r) {
    switch (r.type()) {
      case rpc::VERSION: {
        rpc::Response resp = Answer(rpc::VERSION);
        rpc::Version* v = resp.mutable_version();
        v->set_major_number(kCriuMajor);
        v->set_minor_number(kCriuMinor);
        v->set_name("criu-lite " CRIU_LITE_VERSION);
        return resp;
      }
      case rpc::FEATURE_CHECK:
        return Features(r.features());
      case rpc::CHECK:
        if (!Kernel().prctl_set_mm_map)
          return Failure(rpc::CHECK, MakeError("this kernel cannot restore (no PR_SET_MM_MAP)"));
        return Answer(rpc::CHECK);
      case rpc::DUMP:
      case rpc::PRE_DUMP:
      case rpc::SINGLE_PRE_DUMP:
        return Dump(r);
      case rpc::RESTORE:
        return Restore(r);
      case rpc::NOTIFY:
        return Failure(r.type(), MakeError("a NOTIFY answer with no notification asked"));
      default:
        return Failure(r.type(), MakeError("RPC request type %d (%s) is not served by criu-lite",
                                           r.type(), rpc::RequestType_Name(r.type()).c_str()));
    }
  }

  // Each feature asked about, answered for this machine. Lazy pages are
  // CRIU's lazy migration (lazy_pages over a page server), which the
  // service refuses: false, even where `restore --pages=lazy` works.
  rpc::Response Features(const rpc::Features& asked) {
    rpc::Response resp = Answer(rpc::FEATURE_CHECK);
    rpc::Features* f = resp.mutable_features();
    if (asked.has_mem_track()) f->set_mem_track(BestTrackingMethod() != TrackingMethod::kNone);
    if (asked.has_lazy_pages()) f->set_lazy_pages(false);
    if (asked.has_pidfd_store()) f->set_pidfd_store(false);
    return resp;
  }

  // The client's fd N, a directory, as a path here.
  Result<std::string> PeerDir(int fd, const char* what) {
    std::string link = Format("/proc/%d/fd/%d", peer_, fd);
    char real[PATH_MAX];
    if (!realpath(link.c_str(), real))
      return ErrnoError("RPC option %s %d: the client's fd (%s)", what, fd, link.c_str());
    struct stat st;
    if (stat(real, &st) < 0 || !S_ISDIR(st.st_mode))
      return MakeError("RPC option %s %d: the client's fd is %s, not a directory", what, fd, real);
    return std::string(real);
  }

  Result<RpcSession> Begin(const rpc::Request& r) {
    RpcSession s = TRY(
        SessionFromRpc(r.opts(), [this](int fd, const char* what) { return PeerDir(fd, what); }));
    if (s.images_dir.empty()) return MakeError("RPC options name no images directory");
    SetLogLevel(s.log_level);
    if (!s.log_file.empty() && !SetLogFile(s.log_file.c_str()))
      return ErrnoError("RPC option log_file: open(%s)", s.log_file.c_str());
    // stderr is the restored tree's at restore (runc passes the
    // container's stdio): the log file says it all.
    SetErrorsToStderr(s.log_to_stderr);
    LOG_INFO("RPC request %s from PID %d", rpc::RequestType_Name(r.type()).c_str(), peer_);
    return s;
  }

  ActionNotifier Notifier(const RpcSession& s) {
    return [this, notify = s.notify](const char* action, pid_t init_pid) -> Status {
      if (strcmp(action, "post-restore") == 0) restored_pid_ = init_pid;
      if (!notify) return Ok{};
      return Notify(action, init_pid, -1);
    };
  }

  // Tells the client ACTION (with INIT_PID if > 0, and FD passed along if
  // not -1) and waits for its answer.
  Status Notify(const char* action, pid_t init_pid, int fd) {
    rpc::Response n = Answer(rpc::NOTIFY);
    n.mutable_notify()->set_script(action);
    if (init_pid > 0) n.mutable_notify()->set_pid(init_pid);
    TRY(conn_.Send(n, fd));
    auto reply = TRY(conn_.Receive());
    if (!reply) return MakeError("the RPC client went away at %s", action);
    if (reply->type() != rpc::NOTIFY || !reply->notify_success())
      return MakeError("the RPC client reported a failure at %s", action);
    return Ok{};
  }

  rpc::Response Dump(const rpc::Request& r) {
    auto s = Begin(r);
    if (!s.ok()) return Failure(r.type(), s.error());
    auto opts = DumpOptionsFromRpc(r.opts(), s->images_dir, r.type());
    if (!opts.ok()) return Failure(r.type(), opts.error());
    opts->notify = Notifier(*s);
    auto stats = crl::Dump(*opts);
    if (!stats.ok()) return Failure(r.type(), stats.error());
    WriteCriuStats(s->work_dir, "stats-dump", CriuDumpStats(*stats));
    rpc::Response resp = Answer(r.type());
    if (r.type() == rpc::DUMP) resp.mutable_dump()->set_restored(false);
    return resp;
  }

  rpc::Response Restore(const rpc::Request& r) {
    auto s = Begin(r);
    if (!s.ok()) return Failure(rpc::RESTORE, s.error());
    auto opts = RestoreOptionsFromRpc(r.opts(), s->images_dir);
    if (!opts.ok()) return Failure(rpc::RESTORE, opts.error());
    for (const auto& [key, fd] : opts->inherit_fds)
      if (fcntl(fd, F_GETFD) < 0)
        return Failure(rpc::RESTORE,
                       MakeError("RPC option inherit_fd %s: fd %d is not open in criu-lite swrk",
                                 key.c_str(), fd));
    opts->notify = Notifier(*s);
    // orphan_pts_master (runc sends it always): a terminal's new master goes
    // to the client in CRIU's orphan-pts-master notification, the fd passed
    // along; runc hands it to its console socket.
    if (r.opts().orphan_pts_master())
      opts->orphan_pts_master = [this, notify = s->notify](int master) -> Status {
        if (!notify)
          return MakeError(
              "RPC option orphan_pts_master needs notify_scripts: the new master is handed "
              "over in the orphan-pts-master notification");
        return Notify("orphan-pts-master", 0, master);
      };
    img::Stats stats;
    opts->stats_out = &stats;
    auto st = crl::Restore(*opts);
    if (!st.ok()) return Failure(rpc::RESTORE, st.error());
    WriteCriuStats(s->work_dir, "stats-restore", CriuRestoreStats(stats));
    rpc::Response resp = Answer(rpc::RESTORE);
    resp.mutable_restore()->set_pid(restored_pid_);
    return resp;
  }

  Connection conn_;
  pid_t peer_ = 0;
  rpc::RequestType prev_ = rpc::EMPTY;
  pid_t restored_pid_ = 0;  // the restored root's, told at post-restore
};

}  // namespace

int ServeRpc(int fd) { return Service(fd).Run(); }

}  // namespace crl
