#include "pageserver/receiver.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <map>
#include <set>
#include <thread>

#include "kernel/interrupt.h"
#include "kernel/log.h"
#include "kernel/scoped_fd.h"
#include "pageserver/wire.h"
#include "restore/restore.h"

namespace crl {
namespace {

bool SafeName(const std::string& n) {
  return !n.empty() && n.find('/') == std::string::npos && n != "." && n != "..";
}

Status SendError(int fd, const std::string& msg) {
  wire::Header h;
  h.set_type(wire::Header::ERROR);
  h.set_message(msg);
  return SendHeader(fd, h);
}

Status SendAck(int fd) {
  wire::Header h;
  h.set_type(wire::Header::ACK);
  return SendHeader(fd, h);
}

// Moves LEN bytes from the socket into FILE without copying them through
// user space (splice through a pipe).
Status SpliceToFile(int sock, int file, uint64_t len, int pipe_r, int pipe_w) {
  while (len > 0) {
    ssize_t in = splice(sock, nullptr, pipe_w, nullptr, std::min<uint64_t>(len, 1 << 20),
                        SPLICE_F_MOVE | SPLICE_F_MORE);
    if (in < 0 && errno == EINTR) {
      TRY(CheckStop());
      continue;
    }
    if (in < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
      return MakeError("the sender stalled: nothing arrived for the timeout");
    if (in < 0) return ErrnoError("splice(socket)");
    if (in == 0) return MakeError("the sender hung up mid-stream");
    for (ssize_t left = in; left > 0;) {
      ssize_t out = splice(pipe_r, nullptr, file, nullptr, left, SPLICE_F_MOVE);
      if (out < 0 && errno == EINTR) {
        TRY(CheckStop());
        continue;
      }
      if (out < 0) return ErrnoError("splice(file)");
      left -= out;
    }
    len -= in;
  }
  return Ok{};
}

// `criu-lite restore -D DIR -d --handover-fd`, run for a migration: the tree
// is built, then held until the source has killed its copy.
class RestoreProcess {
 public:
  ~RestoreProcess() {
    control_.reset();  // EOF: a tree not yet let go is killed
    if (pid_ > 0) waitpid(pid_, nullptr, 0);
  }
  Status Start(const std::string& dir, PagePlacement pages, int timeout) {
    int sv[2], err[2];
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0) return ErrnoError("socketpair");
    control_.reset(sv[0]);
    ScopedFd theirs(sv[1]);
    if (pipe2(err, O_CLOEXEC) < 0) return ErrnoError("pipe2");
    err_.reset(err[0]);
    ScopedFd err_w(err[1]);
    pid_ = fork();
    if (pid_ < 0) return ErrnoError("fork");
    if (pid_ == 0) {
      dup2(err_w.get(), 2);
      dup2(theirs.get(), 3);
      std::string pages_arg = std::string("--pages=") + PagePlacementName(pages);
      std::string log = dir + "/restore.log";
      // Its own bound outlasts the server's: the server decides.
      std::string t = std::to_string(timeout + 5);
      execl("/proc/self/exe", "criu-lite", "restore", "-D", dir.c_str(), "-d", pages_arg.c_str(),
            "--handover-fd", "3", "--handover-timeout", t.c_str(), "-v", "-o", log.c_str(),
            nullptr);
      _exit(127);
    }
    return Ok{};
  }
  // Until the tree is built and held: Ok, or the restore's error.
  Status WaitReady() {
    char c;
    ssize_t n;
    while ((n = read(control_.get(), &c, 1)) < 0 && errno == EINTR) TRY(CheckStop());
    if (n == 1) return Ok{};
    return Finish();
  }
  // Lets the tree run; Ok once the restore has ended well.
  Status Go() {
    char c = 'G';
    if (write(control_.get(), &c, 1) != 1) return ErrnoError("letting the restored tree run");
    return Finish();
  }

 private:
  // Waits for the process; its one-line error, if it failed.
  Status Finish() {
    std::string msg;
    char buf[4096];
    for (ssize_t n; (n = read(err_.get(), buf, sizeof buf)) > 0;) msg.append(buf, n);
    int status = 0;
    waitpid(pid_, &status, 0);
    pid_ = -1;
    if (WIFEXITED(status) && WEXITSTATUS(status) == 0) return Ok{};
    while (!msg.empty() && msg.back() == '\n') msg.pop_back();
    if (msg.rfind("criu-lite: ", 0) == 0) msg = msg.substr(11);
    return MakeError("%s", msg.empty() ? "restore failed" : msg.c_str());
  }
  pid_t pid_ = -1;
  ScopedFd control_, err_;
};

class Session {
 public:
  Session(int fd, const PageServerOptions& opts) : fd_(fd), opts_(opts) {}
  ~Session() {
    // Nothing half-written is left looking complete.
    for (const std::string& p : partial_) std::filesystem::remove_all(p);
  }
  Status Serve();

 private:
  Status Handle(const wire::Header& h, bool* done);
  Result<int> Stream(const std::string& name);

  int fd_;
  const PageServerOptions& opts_;
  std::string cur_, cur_name_;
  std::set<std::string> partial_;
  std::map<std::string, ScopedFd> streams_;
  ScopedFd pipe_r_, pipe_w_;
};

Result<int> Session::Stream(const std::string& name) {
  auto it = streams_.find(name);
  if (it != streams_.end()) return it->second.get();
  std::string path = cur_ + "/" + name;
  ScopedFd f(open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600));
  if (!f.valid()) return ErrnoError("open(%s)", path.c_str());
  int fd = f.get();
  streams_[name] = std::move(f);
  return fd;
}

Status Session::Handle(const wire::Header& h, bool* done) {
  auto need_dir = [&]() -> Status {
    if (cur_.empty()) return MakeError("the sender sent %s before OPEN", WireTypeName(h.type()));
    if (h.type() != wire::Header::COMMIT && !SafeName(h.name()))
      return MakeError("the sender named a file '%s'", h.name().c_str());
    return Ok{};
  };
  switch (h.type()) {
    case wire::Header::OPEN: {
      if (!SafeName(h.dir()))
        return MakeError("the sender named a directory '%s'", h.dir().c_str());
      cur_name_ = h.dir();
      cur_ = opts_.images_dir + "/" + h.dir() + ".partial";
      std::filesystem::remove_all(cur_);
      if (mkdir(cur_.c_str(), 0700) < 0) return ErrnoError("mkdir(%s)", cur_.c_str());
      partial_.insert(cur_);
      LOG_INFO("receiving %s", h.dir().c_str());
      return Ok{};
    }
    case wire::Header::PUT:
    case wire::Header::APPEND: {
      TRY(need_dir());
      int f;
      ScopedFd whole;
      std::string tmp;
      if (h.type() == wire::Header::PUT) {
        tmp = cur_ + "/" + h.name() + ".tmp";
        whole.reset(open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600));
        if (!whole.valid()) return ErrnoError("open(%s)", tmp.c_str());
        f = whole.get();
      } else {
        f = TRY(Stream(h.name()));
      }
      TRY(SpliceToFile(fd_, f, h.payload_len(), pipe_r_.get(), pipe_w_.get()));
      if (!tmp.empty() && rename(tmp.c_str(), (cur_ + "/" + h.name()).c_str()) < 0)
        return ErrnoError("rename(%s)", tmp.c_str());
      return Ok{};
    }
    case wire::Header::SYMLINK: {
      TRY(need_dir());
      std::string path = cur_ + "/" + h.name();
      unlink(path.c_str());
      if (symlink(h.target().c_str(), path.c_str()) < 0)
        return ErrnoError("symlink(%s)", path.c_str());
      return Ok{};
    }
    case wire::Header::COMMIT: {
      TRY(need_dir());
      streams_.clear();
      std::string final_path = opts_.images_dir + "/" + cur_name_;
      std::filesystem::remove_all(final_path);
      if (rename(cur_.c_str(), final_path.c_str()) < 0)
        return ErrnoError("rename(%s)", cur_.c_str());
      partial_.erase(cur_);
      LOG_INFO("received %s", cur_name_.c_str());
      cur_.clear();
      return SendAck(fd_);
    }
    case wire::Header::RESTORE: {
      if (!opts_.restore) return SendError(fd_, "this page server was not started with --restore");
      if (!SafeName(h.dir()))
        return MakeError("the sender named a directory '%s'", h.dir().c_str());
      // A criu-lite of its own does the restore: its puppets then fork from a
      // small single-threaded process, not from this server (two threads,
      // sockets, buffers).
      std::string dir = opts_.images_dir + "/" + h.dir();
      auto t0 = std::chrono::steady_clock::now();
      RestoreProcess restore;
      Status r = restore.Start(dir, opts_.pages, opts_.timeout);
      if (r.ok()) r = restore.WaitReady();
      uint64_t usec = std::chrono::duration_cast<std::chrono::microseconds>(
                          std::chrono::steady_clock::now() - t0)
                          .count();
      if (!r.ok()) {
        LOG_ERROR("restoring %s: %s", h.dir().c_str(), r.error().message.c_str());
        return SendError(fd_, r.error().message);
      }
      // Built and held. The source kills its copy when it reads this, then
      // says GO; anything else (an error, a hang-up, the timeout) and the
      // held tree is killed (RestoreProcess's destructor).
      wire::Header ready;
      ready.set_type(wire::Header::RESTORED);
      ready.set_restore_usec(usec);
      TRY(SendHeader(fd_, ready));
      auto go = RecvHeader(fd_);
      if (!go.ok() || go->type() != wire::Header::GO) {
        std::string why =
            go.ok() ? Format("it sent %s", WireTypeName(go->type())) : go.error().message;
        return MakeError(
            "the migration source did not say GO after the tree was ready (%s): the restored "
            "tree is killed. Had the source already killed its copy, neither runs now: check it",
            why.c_str());
      }
      TRY(restore.Go());
      LOG_INFO("the tree of %s runs here", h.dir().c_str());
      return SendAck(fd_);
    }
    case wire::Header::DONE:
      *done = true;
      return Ok{};
    default:
      return MakeError("the sender sent an unexpected %s", WireTypeName(h.type()));
  }
}

Status Session::Serve() {
  int p[2];
  if (pipe2(p, O_CLOEXEC) < 0) return ErrnoError("pipe2");
  pipe_r_.reset(p[0]);
  pipe_w_.reset(p[1]);
  fcntl(p[1], F_SETPIPE_SZ, 1 << 20);
  auto hello = RecvHeader(fd_);
  if (!hello.ok()) return hello.error();
  if (hello->type() != wire::Header::HELLO) {
    (void)SendError(fd_, "expected HELLO");
    return MakeError("the client does not speak the criu-lite page server protocol");
  }
  if (hello->version() != kWireVersion) {
    std::string msg = Format("the sender speaks protocol version %u, this page server speaks %u",
                             hello->version(), kWireVersion);
    (void)SendError(fd_, msg);
    return MakeError("%s", msg.c_str());
  }
  TRY(SendAck(fd_));
  for (bool done = false; !done;) {
    auto h = RecvHeader(fd_);
    if (!h.ok()) return h.error();
    Status s = Handle(*h, &done);
    if (!s.ok()) {
      (void)SendError(fd_, s.error().message);
      return s;
    }
  }
  return Ok{};
}

}  // namespace

Status RunPageServer(const PageServerOptions& opts) {
  if (mkdir(opts.images_dir.c_str(), 0700) < 0 && errno != EEXIST)
    return ErrnoError("mkdir(%s)", opts.images_dir.c_str());
  ScopedFd lfd(socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
  if (!lfd.valid()) return ErrnoError("socket");
  int one = 1;
  setsockopt(lfd.get(), SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  sockaddr_in sa{};
  sa.sin_family = AF_INET;
  sa.sin_port = htons(opts.port);
  if (inet_pton(AF_INET, opts.address.c_str(), &sa.sin_addr) != 1)
    return MakeError("--address %s is not an IPv4 address", opts.address.c_str());
  if (bind(lfd.get(), reinterpret_cast<sockaddr*>(&sa), sizeof sa) < 0)
    return ErrnoError("bind(%s:%d)", opts.address.c_str(), opts.port);
  if (listen(lfd.get(), 4) < 0) return ErrnoError("listen");
  LOG_INFO("page server listening on %s:%d, writing to %s", opts.address.c_str(), opts.port,
           opts.images_dir.c_str());
  if (!opts.status_file.empty()) {
    ScopedFd sf(open(opts.status_file.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644));
    if (!sf.valid()) return ErrnoError("open(%s)", opts.status_file.c_str());
  }
  for (;;) {
    ScopedFd client(accept4(lfd.get(), nullptr, nullptr, SOCK_CLOEXEC));
    if (!client.valid()) {
      if (errno == EINTR) {
        TRY(CheckStop());
        continue;
      }
      return ErrnoError("accept");
    }
    TRY(SetSocketTimeouts(client.get(), opts.timeout));
    // While one client is served, others are told so and turned away.
    std::atomic<bool> serving{true};
    std::thread rejecter([&] {
      while (serving) {
        ScopedFd extra(accept4(lfd.get(), nullptr, nullptr, SOCK_CLOEXEC));
        if (!extra.valid()) break;
        if (!serving) break;
        (void)SendError(extra.get(), "busy: this page server is serving another client");
      }
    });
    Status s = Session(client.get(), opts).Serve();
    serving = false;
    // Wake the rejecter: a connection to ourselves ends its accept().
    {
      ScopedFd poke(socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
      sockaddr_in self = sa;
      if (self.sin_addr.s_addr == htonl(INADDR_ANY)) self.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
      connect(poke.get(), reinterpret_cast<sockaddr*>(&self), sizeof self);
    }
    rejecter.join();
    if (!s.ok()) {
      LOG_ERROR("page server: %s", s.error().message.c_str());
      if (!opts.daemon) return s;
    }
    if (!opts.daemon) return Ok{};
  }
}

}  // namespace crl
