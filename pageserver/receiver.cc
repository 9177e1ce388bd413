#include "pageserver/receiver.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <mutex>
#include <set>
#include <thread>

#include "base/clock.h"
#include "base/interrupt.h"
#include "base/log.h"
#include "base/scoped_fd.h"
#include "images/image_archive.h"
#include "images/image_dir.h"
#include "images/image_output.h"
#include "images/page_holder.h"
#include "pageserver/wire.h"

namespace crl {
namespace {

// What a peer may name: one path component of letters, digits, '.', '_'
// and '-', not starting with '.', at most 128 bytes. Nothing it sends can
// then reach outside the image directory or a hidden staging directory.
bool SafeName(const std::string& n) {
  if (n.empty() || n.size() > 128 || n[0] == '.') return false;
  for (char c : n)
    if (!isalnum(static_cast<unsigned char>(c)) && c != '.' && c != '_' && c != '-') return false;
  return true;
}

// An image file: NAME.img. (restore.log, stats and anything ending .tmp are
// the receiver's own.)
bool ImageName(const std::string& n) {
  return SafeName(n) && n.size() > 4 && n.compare(n.size() - 4, 4, ".img") == 0 &&
         n.rfind("stats-", 0) != 0;
}

Status SendError(Channel& c, const std::string& msg) {
  wire::Header h;
  h.set_type(wire::Header::ERROR);
  h.set_message(msg);
  return SendHeader(c, h);
}

Status SendAck(Channel& c) {
  wire::Header h;
  h.set_type(wire::Header::ACK);
  return SendHeader(c, h);
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

// Moves LEN bytes from a channel that cannot splice (TLS) into FILE.
Status CopyToFile(Channel& c, int file, uint64_t len) {
  std::vector<char> buf(1 << 20);
  while (len > 0) {
    size_t n = std::min<uint64_t>(len, buf.size());
    TRY(c.Recv(buf.data(), n));
    for (size_t done = 0; done < n;) {
      ssize_t w = write(file, buf.data() + done, n - done);
      if (w < 0 && errno == EINTR) continue;
      if (w < 0) return ErrnoError("write(image)");
      done += w;
    }
    len -= n;
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
  // HOLDERS: the page holders of --pages=vm-mmap, by page file name.
  Status Start(const std::string& dir, const PageServerOptions& opts,
               const std::map<std::string, PageHolder>& holders) {
    const std::string& pages = opts.pages;
    int timeout = opts.timeout;
    // The command line, made before the fork (the child must not allocate).
    std::string pages_arg = "--pages=" + pages;
    std::string log = dir + "/restore.log";
    // Its own bound outlasts the server's: the server decides.
    std::string t = std::to_string(timeout + 5);
    // The root's PID here (a PID namespace's init gets a new one).
    std::string pidfile = dir + "/restore.pid";
    std::vector<std::string> args = {"criu-lite",
                                     "restore",
                                     "-D",
                                     dir,
                                     "-d",
                                     pages_arg,
                                     "--handover-fd",
                                     "3",
                                     "--handover-timeout",
                                     t,
                                     "--pidfile",
                                     pidfile,
                                     "-v",
                                     "-o",
                                     log};
    for (const std::string& s : opts.action_scripts)
      args.insert(args.end(), {"--action-script", s});
    if (!opts.manage_cgroups.empty()) args.push_back("--manage-cgroups=" + opts.manage_cgroups);
    for (const std::string& r : opts.cgroup_roots) args.insert(args.end(), {"--cgroup-root", r});
    if (!opts.root.empty()) args.insert(args.end(), {"--root", opts.root});
    for (const std::string& e : opts.externals) args.insert(args.end(), {"--external", e});
    // Each holder's control socket, at a number above the ones set below.
    std::vector<ScopedFd> passed;
    for (const auto& [name, holder] : holders) {
      passed.emplace_back(fcntl(holder.control(), F_DUPFD_CLOEXEC, 10));
      if (!passed.back().valid()) return ErrnoError("dup(page holder)");
      args.insert(args.end(), {"--page-holder", name + "=" + std::to_string(passed.back().get())});
    }
    std::vector<char*> argv;
    for (std::string& a : args) argv.push_back(a.data());
    argv.push_back(nullptr);
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
      for (const ScopedFd& fd : passed) fcntl(fd.get(), F_SETFD, 0);
      execv("/proc/self/exe", argv.data());
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
  Session(Channel& c, int fd, const PageServerOptions& opts)
      : c_(c), fd_(fd), opts_(opts), hold_pages_(opts.restore && opts.pages == "vm-mmap") {}
  ~Session() {
    if (!holders_.empty())
      LOG_WARN(
          "the pages held for a restore that did not come are gone with their page holders: "
          "what this session received cannot be restored (--pages=vm-mmap keeps no pages in "
          "files)");
    // Nothing half-written is left looking complete.
    std::error_code ec;
    for (const std::string& p : partial_) std::filesystem::remove_all(p, ec);
  }
  Status Serve();
  // Whether the client got as far as a HELLO answered: one that did not
  // (a port scan, a failed handshake) does not end a page server.
  bool greeted() const { return greeted_; }

 private:
  Status Handle(const wire::Header& h, bool* done);
  Status Open(const std::string& name);
  Status Receive(const wire::Header& h);
  Status ReceiveIntoArchive(const wire::Header& h);
  Status ReceiveHeld(const wire::Header& h, int file);
  Status FinishHeldFiles();
  Status Symlink(const std::string& name, const std::string& target);
  Status Commit();
  Status Restore(const std::string& name);
  Result<int> Stream(const std::string& name);
  // DIR and the chain of `parent` links under it all came in this session.
  Status CheckChainOfThisSession(const std::string& name);

  Channel& c_;
  int fd_;
  const PageServerOptions& opts_;
  bool greeted_ = false;
  std::string cur_, cur_name_;
  std::set<std::string> partial_, committed_;
  std::map<std::string, ScopedFd> streams_;
  std::set<std::string> names_;  // written in the current directory
  ScopedFd pipe_r_, pipe_w_;
  // With --archive: the current directory is written as this archive, and
  // the file being streamed into it.
  std::unique_ptr<ArchiveImageOutput> archive_;
  std::string archive_stream_;
  std::vector<char> archive_buf_;  // what the channel gives, on its way in
  // --pages=vm-mmap: pages that belong in a private anonymous mapping go
  // to a page holder for their page file, which keeps them for the restore;
  // the file keeps a hole there (and the rest). The current directory's
  // files' sizes, and what of each went to its holder.
  bool hold_pages_ = false;
  std::map<std::string, PageHolder> holders_;
  std::map<std::string, uint64_t> sizes_;
  std::map<std::string, std::vector<std::pair<uint64_t, uint64_t>>> held_;
};

constexpr size_t kMaxPageHolders = 4096;

// The pages of an APPEND with a place: each piece the holder holds written
// into it, the rest into FILE at its offset (the file's own position is
// not used: what the holder has is a hole).
Status Session::ReceiveHeld(const wire::Header& h, int file) {
  const std::string& name = h.name();
  uint64_t len = h.payload_len(), vaddr = h.vaddr(), offset = sizes_[name];
  auto it = holders_.find(name);
  if (it == holders_.end()) {
    if (holders_.size() >= kMaxPageHolders)
      return MakeError("the sender sent pages for over %zu page files", kMaxPageHolders);
    it = holders_.emplace(name, TRY(PageHolder::Start())).first;
    LOG_INFO("page holder %d holds the pages of %s", it->second.pid(), name.c_str());
  }
  PageHolder& holder = it->second;
  auto pieces = holder.Hold(h.vma_start(), h.vma_end(), h.vma_flags() & 3, vaddr, len);
  if (!pieces.ok())
    return MakeError("the sender placed %lu bytes of %s at 0x%lx, in a mapping 0x%lx-0x%lx: %s",
                     len, name.c_str(), vaddr, h.vma_start(), h.vma_end(),
                     pieces.error().message.c_str());
  archive_buf_.resize(1 << 20);
  auto& held = held_[name];
  for (const PageHolder::Piece& piece : *pieces) {
    for (uint64_t at = piece.start; at < piece.end;) {
      size_t n = std::min<uint64_t>(piece.end - at, archive_buf_.size());
      TRY(c_.Recv(archive_buf_.data(), n));
      if (piece.held) {
        TRY(holder.Write(at, archive_buf_.data(), n));
      } else {
        for (size_t done = 0; done < n;) {
          ssize_t w =
              pwrite(file, archive_buf_.data() + done, n - done, offset + at - vaddr + done);
          if (w < 0 && errno == EINTR) continue;
          if (w < 0) return ErrnoError("write(%s)", name.c_str());
          done += w;
        }
      }
      at += n;
    }
    if (!piece.held) continue;
    if (!held.empty() && held.back().second == piece.start)
      held.back().second = piece.end;
    else
      held.push_back({piece.start, piece.end});
  }
  sizes_[name] += len;
  return Ok{};
}

// The page files cut to their size (holes at their end too), and
// `held-pages` beside them, once the directory is complete:
// restore then knows what is in the holders, and refuses the directory
// without them. (Not NAME.img: a sender cannot send one.)
Status Session::FinishHeldFiles() {
  img::HeldPages list;
  for (auto& [name, ranges] : held_) {
    if (ranges.empty()) continue;
    std::sort(ranges.begin(), ranges.end());
    img::HeldPages::File* f = list.add_files();
    f->set_pages_file(name);
    for (const auto& [start, end] : ranges) {
      img::PageRange* r = f->add_held();
      r->set_start(start);
      r->set_end(end);
    }
  }
  for (const auto& [name, fd] : streams_) {
    auto size = sizes_.find(name);
    if (size != sizes_.end() && ftruncate(fd.get(), size->second) < 0)
      return ErrnoError("ftruncate(%s)", name.c_str());
  }
  held_.clear();
  sizes_.clear();
  if (list.files().empty()) return Ok{};
  std::string path = cur_ + "/held-pages";
  ScopedFd f(open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600));
  if (!f.valid()) return ErrnoError("open(%s)", path.c_str());
  std::string data = list.SerializeAsString();
  return WriteAllToFd(f.get(), data.data(), data.size(), path);
}

Result<int> Session::Stream(const std::string& name) {
  auto it = streams_.find(name);
  if (it != streams_.end()) return it->second.get();
  if (!names_.insert(name).second) return MakeError("the sender sent '%s' twice", name.c_str());
  std::string path = cur_ + "/" + name;
  // O_EXCL|O_NOFOLLOW: in a directory this session made, never through a link.
  ScopedFd f(open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600));
  if (!f.valid()) return ErrnoError("open(%s)", path.c_str());
  int fd = f.get();
  streams_[name] = std::move(f);
  return fd;
}

Status Session::CheckChainOfThisSession(const std::string& name) {
  std::string dir = name;
  for (int depth = 0;; depth++) {
    if (!committed_.count(dir))
      return MakeError("'%s' did not come in this session: refusing to restore it", dir.c_str());
    if (depth > 1000) return MakeError("the chain of '%s' loops", name.c_str());
    std::string link = ImageDir(opts_.images_dir + "/" + dir).ParentLink();
    char target[256];
    ssize_t n = readlink(link.c_str(), target, sizeof target - 1);
    if (n < 0) return Ok{};
    std::string t(target, n);
    if (t.rfind("../", 0) != 0 || !SafeName(t.substr(3)))
      return MakeError("'%s' has a parent link that leaves the image directory", dir.c_str());
    dir = t.substr(3);
  }
}

Status Session::Handle(const wire::Header& h, bool* done) {
  auto type = h.type();
  bool in_dir = type == wire::Header::PUT || type == wire::Header::APPEND ||
                type == wire::Header::SYMLINK || type == wire::Header::COMMIT;
  if (in_dir && cur_.empty())
    return MakeError("the sender sent %s before OPEN", WireTypeName(type));
  switch (type) {
    case wire::Header::OPEN:
      return Open(h.dir());
    case wire::Header::PUT:
    case wire::Header::APPEND:
      return Receive(h);
    case wire::Header::SYMLINK:
      return Symlink(h.name(), h.target());
    case wire::Header::COMMIT:
      return Commit();
    case wire::Header::RESTORE:
      return Restore(h.dir());
    case wire::Header::DONE:
      *done = true;
      return Ok{};
    default:
      return MakeError("the sender sent an unexpected %s", WireTypeName(type));
  }
}

Status Session::Open(const std::string& name) {
  if (!SafeName(name))
    return MakeError("the sender named a directory '%.64s' (not a plain name)", name.c_str());
  if (!cur_.empty())
    return MakeError("the sender opened '%s' inside '%s'", name.c_str(), cur_name_.c_str());
  std::string final_path = opts_.images_dir + "/" + name + opts_.archive;
  struct stat st;
  if (lstat(final_path.c_str(), &st) == 0)
    return MakeError("'%s' exists already: a page server never replaces images",
                     (name + opts_.archive).c_str());
  cur_name_ = name;
  names_.clear();
  if (!opts_.archive.empty()) {
    // Streamed into the archive as it comes (written beside it, renamed
    // at COMMIT).
    archive_ = TRY(ArchiveImageOutput::Create(final_path));
    cur_ = final_path;
    LOG_INFO("receiving %s into %s", name.c_str(), final_path.c_str());
    return Ok{};
  }
  // Hidden while it is written: a restore never sees half of it.
  cur_ = opts_.images_dir + "/." + name + ".partial";
  std::error_code ec;
  std::filesystem::remove_all(cur_, ec);
  if (mkdir(cur_.c_str(), 0700) < 0) return ErrnoError("mkdir(%s)", cur_.c_str());
  partial_.insert(cur_);
  names_.clear();
  LOG_INFO("receiving %s", name.c_str());
  return Ok{};
}

// PUT: a whole file, once; APPEND: the next piece of a streamed one.
Status Session::Receive(const wire::Header& h) {
  if (!ImageName(h.name()))
    return MakeError("the sender named a file '%.64s' (not NAME.img)", h.name().c_str());
  if (archive_) return ReceiveIntoArchive(h);
  int f;
  ScopedFd whole;
  if (h.type() == wire::Header::PUT) {
    if (!names_.insert(h.name()).second)
      return MakeError("the sender sent '%s' twice", h.name().c_str());
    std::string path = cur_ + "/" + h.name();
    whole.reset(open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600));
    if (!whole.valid()) return ErrnoError("open(%s)", path.c_str());
    f = whole.get();
  } else {
    f = TRY(Stream(h.name()));
    if (hold_pages_ && h.vma_end() != 0) return ReceiveHeld(h, f);
    if (hold_pages_) {
      // After holes the file's position is behind: its end is what came.
      uint64_t& size = sizes_[h.name()];
      if (lseek(f, size, SEEK_SET) < 0) return ErrnoError("lseek(%s)", h.name().c_str());
      size += h.payload_len();
    }
  }
  if (c_.plain_fd() >= 0)
    return SpliceToFile(c_.plain_fd(), f, h.payload_len(), pipe_r_.get(), pipe_w_.get());
  return CopyToFile(c_, f, h.payload_len());
}

// A file as entries of the archive: a PUT whole, the APPENDs of a stream
// one after another (the archive takes no file back once the next began).
Status Session::ReceiveIntoArchive(const wire::Header& h) {
  const std::string& name = h.name();
  bool put = h.type() == wire::Header::PUT;
  if (put || name != archive_stream_) {
    if (!names_.insert(name).second) return MakeError("the sender sent '%s' twice", name.c_str());
    archive_stream_ = put ? "" : name;
    TRY(archive_->AppendFile(name, "", 0));  // the file exists even if empty
  }
  archive_buf_.resize(1 << 20);
  for (uint64_t left = h.payload_len(); left > 0;) {
    size_t n = std::min<uint64_t>(left, archive_buf_.size());
    TRY(c_.Recv(archive_buf_.data(), n));
    TRY(archive_->AppendFile(name, archive_buf_.data(), n));
    left -= n;
  }
  return Ok{};
}

// Only the link of an iterative dump to the pass before it, a sibling
// directory: ../NAME.
Status Session::Symlink(const std::string& name, const std::string& target) {
  if (archive_) return archive_->Symlink(name, target);
  if (name != ImageDir::kParentLink || target.rfind("../", 0) != 0 || !SafeName(target.substr(3)))
    return MakeError("the sender asked for a link '%.64s' -> '%.64s' (only parent -> ../NAME)",
                     name.c_str(), target.c_str());
  if (!names_.insert(name).second) return MakeError("the sender sent '%s' twice", name.c_str());
  std::string path = ImageDir(cur_).ParentLink();
  if (symlink(target.c_str(), path.c_str()) < 0) return ErrnoError("symlink(%s)", path.c_str());
  return Ok{};
}

Status Session::Commit() {
  if (hold_pages_ && !archive_) TRY(FinishHeldFiles());
  streams_.clear();
  if (archive_) {
    TRY(archive_->Commit());
    archive_.reset();
    archive_stream_.clear();
    committed_.insert(cur_name_);
    LOG_INFO("received %s", cur_.c_str());
    cur_.clear();
    return SendAck(c_);
  }
  std::string final_path = opts_.images_dir + "/" + cur_name_;
  // RENAME_NOREPLACE: a directory that appeared meanwhile is not replaced.
  if (renameat2(AT_FDCWD, cur_.c_str(), AT_FDCWD, final_path.c_str(), RENAME_NOREPLACE) < 0)
    return ErrnoError("rename(%s, %s)", cur_.c_str(), final_path.c_str());
  partial_.erase(cur_);
  committed_.insert(cur_name_);
  LOG_INFO("received %s", cur_name_.c_str());
  cur_.clear();
  return SendAck(c_);
}

Status Session::Restore(const std::string& name) {
  if (!opts_.restore) return SendError(c_, "this page server was not started with --restore");
  if (!SafeName(name)) return MakeError("the sender named a directory '%.64s'", name.c_str());
  // Only what this session brought, over TLS unless the server was told to
  // trust its network (--allow-unauthenticated-restore).
  TRY(CheckChainOfThisSession(name));
  if (c_.peer().empty() && !opts_.allow_unauthenticated_restore)
    return MakeError("refusing to restore images from an unauthenticated peer (no --tls)");
  // A criu-lite of its own does the restore: its puppets then fork from a
  // small single-threaded process, not from this server (two threads,
  // sockets, buffers).
  std::string dir = opts_.images_dir + "/" + name;
  auto t0 = Clock::now();
  RestoreProcess restore;
  Status r = restore.Start(dir, opts_, holders_);
  if (r.ok()) r = restore.WaitReady();
  // The tasks took what they could; the holders' other pages (earlier
  // passes' of mappings since gone) go with them.
  holders_.clear();
  uint64_t usec = UsecBetween(t0, Clock::now());
  if (!r.ok()) {
    LOG_ERROR("restoring %s: %s", name.c_str(), r.error().message.c_str());
    return SendError(c_, r.error().message);
  }
  // Built and held. The source kills its copy when it reads this, then says
  // GO; anything else (an error, a hang-up, the timeout) and the held tree
  // is killed (RestoreProcess's destructor).
  // Written before the tree is held (restore's Verify).
  pid_t root = 0;
  std::ifstream(dir + "/restore.pid") >> root;
  wire::Header ready;
  ready.set_type(wire::Header::RESTORED);
  ready.set_restore_usec(usec);
  ready.set_pid(root);
  TRY(SendHeader(c_, ready));
  auto go = RecvHeader(c_);
  if (!go.ok() || go->type() != wire::Header::GO) {
    std::string why = go.ok() ? Format("it sent %s", WireTypeName(go->type())) : go.error().message;
    return MakeError(
        "the migration source did not say GO after the tree was ready (%s): the restored "
        "tree is killed. Had the source already killed its copy, neither runs now: check it",
        why.c_str());
  }
  TRY(restore.Go());
  LOG_INFO("the tree of %s runs here: its root is PID %d", name.c_str(), root);
  return SendAck(c_);
}

Status Session::Serve() {
  int p[2];
  if (pipe2(p, O_CLOEXEC) < 0) return ErrnoError("pipe2");
  pipe_r_.reset(p[0]);
  pipe_w_.reset(p[1]);
  fcntl(p[1], F_SETPIPE_SZ, 1 << 20);
  auto hello = RecvHeader(c_);
  if (!hello.ok()) return hello.error();
  if (hello->type() != wire::Header::HELLO) {
    (void)SendError(c_, "expected HELLO");
    return MakeError("the client does not speak the criu-lite page server protocol");
  }
  if (hello->version() != kWireVersion) {
    std::string msg = Format("the sender speaks protocol version %u, this page server speaks %u",
                             hello->version(), kWireVersion);
    (void)SendError(c_, msg);
    return MakeError("%s", msg.c_str());
  }
  TRY(SendAck(c_));
  greeted_ = true;
  // Greeted: from now on a pause counts against the session's --timeout.
  TRY(SetSocketTimeouts(fd_, opts_.timeout));
  for (bool done = false; !done;) {
    auto h = RecvHeader(c_);
    if (!h.ok()) return h.error();
    Status s = Handle(*h, &done);
    if (!s.ok()) {
      (void)SendError(c_, s.error().message);
      return s;
    }
  }
  return Ok{};
}

// The listen address settled, and an unsafe --restore refused.
Status SettleOptions(PageServerOptions* opts) {
  if (opts->restore && !opts->tls.on && !opts->allow_unauthenticated_restore)
    return MakeError(
        "--restore without --tls would restore, as root, whatever any peer that can connect "
        "sends: give --tls with certificates, or --allow-unauthenticated-restore on a network "
        "you trust");
  if (opts->address.empty()) {
    opts->address = opts->tls.on ? "0.0.0.0" : "127.0.0.1";
    if (!opts->tls.on)
      LOG_WARN("no --tls: listening on 127.0.0.1 only (give --address to listen elsewhere)");
  } else if (!opts->tls.on) {
    LOG_WARN("no --tls: anyone who can reach %s:%d can send images here", opts->address.c_str(),
             opts->port);
  }
  return Ok{};
}

// The images directory, without what a page server killed before it ended
// left half-written.
Status PrepareImagesDir(const std::string& dir) {
  if (mkdir(dir.c_str(), 0700) < 0 && errno != EEXIST) return ErrnoError("mkdir(%s)", dir.c_str());
  std::error_code ec;
  for (const auto& e : std::filesystem::directory_iterator(dir, ec)) {
    std::string n = e.path().filename();
    if (n.size() > 9 && n[0] == '.' && n.compare(n.size() - 8, 8, ".partial") == 0)
      std::filesystem::remove_all(e.path(), ec);
  }
  return Ok{};
}

Result<ScopedFd> Listen(const PageServerOptions& opts) {
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
  LOG_INFO("page server listening on %s:%d%s, writing to %s", opts.address.c_str(), opts.port,
           opts.tls.on ? " (TLS)" : "", opts.images_dir.c_str());
  if (!opts.status_file.empty()) {
    ScopedFd sf(open(opts.status_file.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644));
    if (!sf.valid()) return ErrnoError("open(%s)", opts.status_file.c_str());
  }
  return lfd;
}

// While one client is served, others are told so and turned away. Once the
// session ends (the destructor), a connection waiting is left for the
// accept loop: the next client is never turned away as "busy" by mistake.
class TurnAway {
 public:
  TurnAway(int lfd, const PageServerOptions& opts) : lfd_(lfd), opts_(opts) {
    stop_.reset(eventfd(0, EFD_CLOEXEC));
    if (stop_.valid()) thread_ = std::thread([this] { Loop(); });
  }
  ~TurnAway() {
    if (!thread_.joinable()) return;
    {
      std::lock_guard<std::mutex> lock(mu_);
      serving_ = false;
    }
    uint64_t one = 1;
    (void)!write(stop_.get(), &one, sizeof one);
    thread_.join();
  }

 private:
  void Loop() {
    for (;;) {
      pollfd p[2] = {{lfd_, POLLIN, 0}, {stop_.get(), POLLIN, 0}};
      if (poll(p, 2, -1) < 0) continue;
      std::lock_guard<std::mutex> lock(mu_);
      if (!serving_ || p[1].revents) return;
      ScopedFd extra(accept4(lfd_, nullptr, nullptr, SOCK_CLOEXEC));
      if (!extra.valid()) continue;
      (void)SetSocketTimeouts(extra.get(), 2);
      std::unique_ptr<Channel> busy;
      if (opts_.tls.on) {
        auto t = TlsServer(extra.get(), opts_.tls, 2);
        if (t.ok()) busy = std::move(*t);
      } else {
        busy = PlainChannel(extra.get());
      }
      if (busy) (void)SendError(*busy, "busy: this page server is serving another client");
    }
  }
  int lfd_;
  const PageServerOptions& opts_;
  ScopedFd stop_;
  std::mutex mu_;
  bool serving_ = true;
  std::thread thread_;
};

// One client's session, others turned away meanwhile. GREETED: whether the
// client got as far as a HELLO answered.
Status ServeClient(int lfd, int client, const PageServerOptions& opts, bool* greeted) {
  // A client that has not said HELLO within this is dropped: a silent
  // connection cannot hold the only session for long.
  int greeting_timeout = std::min(opts.timeout, 10);
  TRY(SetSocketTimeouts(client, greeting_timeout));
  TurnAway others(lfd, opts);
  std::unique_ptr<Channel> channel;
  if (opts.tls.on) {
    channel = TRY(TlsServer(client, opts.tls, greeting_timeout));
  } else {
    channel = PlainChannel(client);
  }
  Session session(*channel, client, opts);
  Status s = session.Serve();
  *greeted = session.greeted();
  return s;
}

}  // namespace

Status RunPageServer(const PageServerOptions& in) {
  PageServerOptions opts = in;
  TRY(SettleOptions(&opts));
  TRY(PrepareImagesDir(opts.images_dir));
  ScopedFd lfd = TRY(Listen(opts));
  for (;;) {
    ScopedFd client;
    while (!client.valid()) {
      client.reset(accept4(lfd.get(), nullptr, nullptr, SOCK_CLOEXEC));
      if (client.valid()) break;
      if (errno != EINTR) return ErrnoError("accept");
      TRY(CheckStop());
    }
    bool greeted = false;
    Status s = ServeClient(lfd.get(), client.get(), opts, &greeted);
    TRY(CheckStop());
    if (!s.ok()) {
      LOG_ERROR("page server: %s", s.error().message.c_str());
      if (!opts.daemon && greeted) return s;
    }
    if (!opts.daemon && greeted) return Ok{};
  }
}

}  // namespace crl
