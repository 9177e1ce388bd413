// CRIU's RPC (`criu-lite swrk FD`) driven as a container runtime drives it:
// a SOCK_SEQPACKET socketpair, criu-lite started with its end as fd 3, one
// request per packet, every notification answered. The client here speaks
// the wire format through the project's own rpc/criu_rpc.proto, whose field
// numbers are CRIU's.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "base/scoped_fd.h"
#include "harness.h"
#include "rpc/criu_rpc.pb.h"
#include "state_diff.h"

namespace crl::test {
namespace {

// A runtime's side of `criu swrk 3`.
class SwrkClient {
 public:
  // LOG: where criu-lite's stderr goes.
  explicit SwrkClient(const std::string& log, const std::vector<std::string>& global = {}) {
    int sv[2];
    EXPECT_EQ(socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv), 0);
    fd_ = sv[0];
    std::vector<std::string> args = {CRIU_LITE_BIN};
    args.insert(args.end(), global.begin(), global.end());
    args.push_back("swrk");
    args.push_back("3");
    pid_ = fork();
    if (pid_ == 0) {
      // fd 3 may be any fd of ours: move the socket above the low ones first.
      int high = fcntl(sv[1], F_DUPFD, 100);
      dup2(high, 3);
      int err = open(log.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
      dup2(err, 2);
      std::vector<char*> argv;
      for (std::string& a : args) argv.push_back(a.data());
      argv.push_back(nullptr);
      execv(argv[0], argv.data());
      _exit(127);
    }
    close(sv[1]);
  }
  ~SwrkClient() {
    if (fd_ >= 0) close(fd_);
    if (pid_ > 0) Wait();
  }

  void Send(const rpc::Request& req) {
    std::string bytes = req.SerializeAsString();
    ASSERT_EQ(send(fd_, bytes.data(), bytes.size(), MSG_NOSIGNAL),
              static_cast<ssize_t>(bytes.size()));
  }
  void SendRaw(const std::string& bytes) {
    ASSERT_EQ(send(fd_, bytes.data(), bytes.size(), MSG_NOSIGNAL),
              static_cast<ssize_t>(bytes.size()));
  }
  // The next response (at most 60 s), or nothing at EOF.
  std::optional<rpc::Response> Receive() {
    timeval tv = {60, 0};
    setsockopt(fd_, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    char buf[64 * 1024];
    ssize_t n = recv(fd_, buf, sizeof buf, 0);
    if (n <= 0) return std::nullopt;
    rpc::Response r;
    EXPECT_TRUE(r.ParseFromArray(buf, n));
    return r;
  }
  // REQ, then every notification answered (FAIL_AT's with a failure), until
  // the request's own response.
  std::optional<rpc::Response> Call(const rpc::Request& req, const std::string& fail_at = "") {
    Send(req);
    for (;;) {
      auto r = Receive();
      if (!r || r->type() != rpc::NOTIFY) return r;
      notes.push_back(r->notify().script() + " " + std::to_string(r->notify().pid()));
      rpc::Request answer;
      answer.set_type(rpc::NOTIFY);
      answer.set_notify_success(r->notify().script() != fail_at);
      Send(answer);
    }
  }
  // criu-lite's exit status once it ends (the client's end closed first).
  int Wait() {
    if (fd_ >= 0) close(fd_);
    fd_ = -1;
    int status = 0;
    auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
    while (waitpid(pid_, &status, WNOHANG) == 0) {
      if (std::chrono::steady_clock::now() > deadline) {
        kill(pid_, SIGKILL);
        waitpid(pid_, &status, 0);
        break;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
    pid_ = -1;
    return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  }

  std::vector<std::string> notes;  // "SCRIPT PID" of each notification

 private:
  int fd_ = -1;
  pid_t pid_ = -1;
};

// An O_DIRECTORY fd of ours, as runc opens the images directory.
int OpenDir(const std::string& path) {
  mkdir(path.c_str(), 0700);
  return open(path.c_str(), O_RDONLY | O_DIRECTORY);
}

rpc::Request Request(rpc::RequestType type) {
  rpc::Request r;
  r.set_type(type);
  return r;
}

// What runc sends for `runc checkpoint`, for PID into the directory open
// as IMAGES (and WORK, the log's).
rpc::Request RuncDump(pid_t pid, int images, int work) {
  rpc::Request r = Request(rpc::DUMP);
  rpc::Options* o = r.mutable_opts();
  o->set_images_dir_fd(images);
  o->set_work_dir_fd(work);
  o->set_log_level(4);
  o->set_log_file("dump.log");
  o->set_pid(pid);
  o->set_manage_cgroups(true);
  o->set_notify_scripts(true);
  o->set_shell_job(false);
  o->set_leave_running(false);
  o->set_tcp_established(false);
  o->set_ext_unix_sk(false);
  o->set_file_locks(false);
  o->set_empty_ns(0);
  o->set_orphan_pts_master(true);
  o->set_auto_dedup(false);
  o->set_lazy_pages(false);
  o->set_config_file("/etc/criu/runc.conf");  // absent here: nothing to read
  return r;
}

rpc::Request RuncRestore(int images, int work) {
  rpc::Request r = Request(rpc::RESTORE);
  rpc::Options* o = r.mutable_opts();
  o->set_images_dir_fd(images);
  o->set_work_dir_fd(work);
  o->set_evasive_devices(false);
  o->set_log_level(4);
  o->set_log_file("restore.log");
  o->set_rst_sibling(true);
  o->set_manage_cgroups(true);
  o->set_notify_scripts(true);
  o->set_orphan_pts_master(true);
  return r;
}

TEST(Rpc, VersionAndFeaturesAreWhatRuntimesCheck) {
  TestDir dir;
  {
    SwrkClient c(dir / "err");
    auto v = c.Call(Request(rpc::VERSION));
    ASSERT_TRUE(v) << ReadFile(dir / "err");
    EXPECT_TRUE(v->success());
    EXPECT_EQ(v->type(), rpc::VERSION);
    // go-criu's figure: major * 10000 + minor * 100 + sublevel; runc,
    // Podman, CRI-O and containerd want 31600 or more.
    int figure = v->version().major_number() * 10000 + v->version().minor_number() * 100 +
                 v->version().sublevel();
    EXPECT_GE(figure, 31600);
    EXPECT_FALSE(v->version().has_gitid()) << "go-criu rounds a version with a gitid up";
    EXPECT_NE(v->version().name().find("criu-lite"), std::string::npos);
    EXPECT_EQ(c.Wait(), 0);
  }
  // Asked one at a time, each answered for the kernel: memory tracking is
  // there through uffd write-protection without soft-dirty.
  auto features = [&](const std::vector<std::string>& global) {
    SwrkClient c(dir / "err", global);
    rpc::Request req = Request(rpc::FEATURE_CHECK);
    req.mutable_features()->set_mem_track(true);
    req.mutable_features()->set_lazy_pages(true);
    auto f = c.Call(req);
    EXPECT_TRUE(f && f->success()) << ReadFile(dir / "err");
    EXPECT_TRUE(f->features().has_mem_track());
    EXPECT_FALSE(f->features().lazy_pages()) << "lazy_pages over RPC is refused";
    return f->features().mem_track();
  };
  // What `criu-lite check` says it tracks with, under the same options.
  auto check_tracks = [](std::vector<std::string> global) {
    global.push_back("check");
    std::string out = RunCriuLite(global).out;
    size_t row = out.find("written-page tracking");
    return row != std::string::npos &&
           out.substr(row, out.find('\n', row) - row).find("none") == std::string::npos;
  };
  EXPECT_EQ(features({}), check_tracks({}));
  EXPECT_EQ(features({"--disable-kernel-feature", "uffd-wp"}),
            check_tracks({"--disable-kernel-feature", "uffd-wp"}))
      << "without uffd-wp, only soft-dirty tracks";
}

// runc's checkpoint and restore requests: the images and the log go to the
// directories open in the client, every notification comes with the root's
// PID where runc needs it, the restored root is the client's child
// (rst_sibling) and runs as before (the state-diff check included).
TEST(Rpc, RuncsDumpAndRestoreRequestsCarryATree) {
  TestDir dir;
  pid_t pid = StartWorkload(dir, "tree");
  TreeRecord before = RecordTree(pid);
  ScopedFd images(OpenDir(dir / "img")), work(OpenDir(dir / "work"));
  {
    SwrkClient c(dir / "err");
    auto r = c.Call(RuncDump(pid, images.get(), work.get()));
    ASSERT_TRUE(r) << ReadFile(dir / "err");
    ASSERT_TRUE(r->success()) << r->cr_errmsg();
    EXPECT_EQ(r->type(), rpc::DUMP);
    EXPECT_EQ(c.Wait(), 0);
    std::string p = std::to_string(pid);
    EXPECT_EQ(c.notes, (std::vector<std::string>{"pre-dump " + p, "post-dump " + p}));
  }
  EXPECT_TRUE(WaitForFile(dir / "work/dump.log", 1000));
  EXPECT_FALSE((access((dir / "img/dump.log").c_str(), F_OK) == 0))
      << "the log belongs in the work directory";
  // The dumped tree's processes were our children or reparented to us.
  while (waitpid(-1, nullptr, WNOHANG) > 0) {
  }
  SwrkClient c(dir / "err");
  auto r = c.Call(RuncRestore(images.get(), work.get()));
  ASSERT_TRUE(r) << ReadFile(dir / "err");
  ASSERT_TRUE(r->success()) << r->cr_errmsg();
  EXPECT_EQ(r->restore().pid(), pid);
  EXPECT_EQ(c.Wait(), 0);
  std::string p = std::to_string(pid);
  EXPECT_EQ(c.notes, (std::vector<std::string>{"pre-restore " + p, "setup-namespaces " + p,
                                               "post-setup-namespaces " + p, "post-restore " + p,
                                               "network-unlock " + p, "post-resume " + p}));
  EXPECT_EQ(getpgid(pid) >= 0 && kill(pid, 0) == 0, true);
  ExpectTreeAsBefore(before, "after the RPC restore");
  EXPECT_EQ(CheckWorkload(pid, dir), "PASS");
  EXPECT_TRUE(WaitForFile(dir / "work/restore.log", 1000));
}

// An option criu-lite cannot honour fails the request with its name in
// cr_errmsg, and the tree is not touched; so do a field criu-lite does not
// know, a dump without a PID, and an images fd the client does not have.
TEST(Rpc, WhatCannotBeHonouredIsRefusedByNameAndTheTreeRunsOn) {
  TestDir dir;
  pid_t pid = StartWorkload(dir, "memory");
  ScopedFd images(OpenDir(dir / "img")), work(OpenDir(dir / "work"));
  auto refused = [&](rpc::Request req, const std::string& want) {
    SwrkClient c(dir / "err");
    auto r = c.Call(req);
    ASSERT_TRUE(r) << ReadFile(dir / "err");
    EXPECT_FALSE(r->success()) << want;
    EXPECT_NE(r->cr_errmsg().find(want), std::string::npos) << r->cr_errmsg();
    EXPECT_NE(c.Wait(), 0);
    EXPECT_EQ(TracerPid(pid), 0);
    EXPECT_NE(TaskState(pid), 't');
  };
  rpc::Request req = RuncDump(pid, images.get(), work.get());
  req.mutable_opts()->set_auto_dedup(true);
  refused(req, "auto_dedup");
  req = RuncDump(pid, images.get(), work.get());
  req.mutable_opts()->set_lazy_pages(true);
  refused(req, "lazy_pages");
  req = RuncDump(pid, images.get(), work.get());
  req.mutable_opts()->add_join_ns()->set_ns("net");
  refused(req, "join_ns");
  req = RuncDump(pid, images.get(), work.get());
  req.mutable_opts()->set_empty_ns(0x20000000 /* CLONE_NEWPID */);
  refused(req, "empty_ns");
  req = RuncDump(pid, images.get(), work.get());
  req.mutable_opts()->clear_pid();
  refused(req, "pid is missing");
  req = RuncDump(pid, images.get(), work.get());
  req.mutable_opts()->set_images_dir_fd(999);
  refused(req, "images_dir_fd 999");
  req = RuncDump(pid, images.get(), work.get());
  req.mutable_opts()->add_external("pid[4026531836]:extRootPidNS");
  refused(req, "pid[4026531836]:extRootPidNS");
  // Field 250 of the options, a varint 1: a newer CRIU's option.
  req = RuncDump(pid, images.get(), work.get());
  req.mutable_opts()->GetReflection()->MutableUnknownFields(req.mutable_opts())->AddVarint(250, 1);
  refused(req, "number 250");
  req = Request(rpc::PAGE_SERVER);
  refused(req, "PAGE_SERVER");
  EXPECT_EQ(CheckWorkload(pid, dir), "PASS");
}

// A client that answers a notification with a failure fails the request
// there: at pre-dump nothing was touched, at post-dump the images are
// complete and the tree runs on (as a failing action script). A packet that
// is not a request ends the session with an error.
TEST(Rpc, AFailedNotificationOrAGarbledRequestFailsAndTheTreeRunsOn) {
  TestDir dir;
  pid_t pid = StartWorkload(dir, "memory");
  ScopedFd images(OpenDir(dir / "img")), work(OpenDir(dir / "work"));
  for (const char* at : {"pre-dump", "post-dump"}) {
    SwrkClient c(dir / "err");
    auto r = c.Call(RuncDump(pid, images.get(), work.get()), at);
    ASSERT_TRUE(r) << ReadFile(dir / "err");
    EXPECT_FALSE(r->success());
    EXPECT_NE(r->cr_errmsg().find(std::string("failure at ") + at), std::string::npos)
        << r->cr_errmsg();
    EXPECT_NE(c.Wait(), 0);
    EXPECT_TRUE(Alive(pid));
    EXPECT_EQ(TracerPid(pid), 0);
  }
  {
    SwrkClient c(dir / "err");
    c.SendRaw(std::string("\xff\xff\xff\xff garbage", 13));
    EXPECT_FALSE(c.Receive());
    EXPECT_NE(c.Wait(), 0);
    EXPECT_NE(ReadFile(dir / "err").find("not a CRIU request"), std::string::npos);
  }
  EXPECT_EQ(CheckWorkload(pid, dir), "PASS");
}

// A client that dies with a notification unanswered (runc killed
// mid-checkpoint): the service sees its end close, fails the dump there and
// lets the tree go, which runs on untraced and unstopped; at post-dump the
// images are complete but nobody asked for the kill, so none happens.
TEST(Rpc, AClientThatGoesAwayMidDumpLeavesTheTreeRunning) {
  TestDir dir;
  pid_t pid = StartWorkload(dir, "memory");
  ScopedFd images(OpenDir(dir / "img")), work(OpenDir(dir / "work"));
  for (const char* at : {"pre-dump", "post-dump"}) {
    SwrkClient c(dir / "err");
    c.Send(RuncDump(pid, images.get(), work.get()));
    for (;;) {
      auto n = c.Receive();
      ASSERT_TRUE(n && n->type() == rpc::NOTIFY) << ReadFile(dir / "err");
      if (n->notify().script() == at) break;
      rpc::Request ok = Request(rpc::NOTIFY);
      ok.set_notify_success(true);
      c.Send(ok);
    }
    EXPECT_NE(c.Wait(), 0);  // closes the client's end, unanswered
    EXPECT_TRUE(Alive(pid)) << at;
    EXPECT_EQ(TracerPid(pid), 0) << at;
    EXPECT_NE(TaskState(pid), 't') << at;
    EXPECT_NE(ReadFile(dir / "work/dump.log").find("went away at " + std::string(at)),
              std::string::npos);
  }
  EXPECT_EQ(CheckWorkload(pid, dir), "PASS");
}

// runc's --pre-dump: one PRE_DUMP per criu process, then a checkpoint with
// parent_img and track_mem in another; and CRIU's own way, PRE_DUMP then
// DUMP on one socket. Both restore the pages the workload wrote between
// the passes (it writes all the time), and the dump is a chain's link.
void PreDumpThenDump(bool one_session) {
  TestDir dir;
  pid_t pid = StartWorkload(dir, "memory");
  ScopedFd pre(OpenDir(dir / "pre")), images(OpenDir(dir / "img")), work(OpenDir(dir / "work"));
  std::optional<SwrkClient> c;
  c.emplace(dir / "err");
  rpc::Request req = RuncDump(pid, pre.get(), work.get());
  req.set_type(rpc::PRE_DUMP);
  req.mutable_opts()->set_log_file("pre.log");
  auto r = c->Call(req);
  ASSERT_TRUE(r) << ReadFile(dir / "err");
  ASSERT_TRUE(r->success()) << r->cr_errmsg();
  EXPECT_EQ(r->type(), rpc::PRE_DUMP);
  if (!one_session) {
    EXPECT_EQ(c->Wait(), 0);  // runc closes its end after one pass
    c.emplace(dir / "err");
  }
  EXPECT_TRUE(Alive(pid));
  std::this_thread::sleep_for(std::chrono::milliseconds(200));  // it writes meanwhile
  req = RuncDump(pid, images.get(), work.get());
  req.mutable_opts()->set_parent_img("../pre");
  req.mutable_opts()->set_track_mem(true);
  r = c->Call(req);
  ASSERT_TRUE(r) << ReadFile(dir / "err");
  ASSERT_TRUE(r->success()) << r->cr_errmsg();
  EXPECT_EQ(r->type(), rpc::DUMP);
  EXPECT_EQ(c->Wait(), 0);
  char link[256] = {};
  EXPECT_GT(readlink((dir / "img/parent").c_str(), link, sizeof link - 1), 0)
      << "the dump is not linked to its pre-dump";
  waitpid(pid, nullptr, 0);
  c.emplace(dir / "err");
  r = c->Call(RuncRestore(images.get(), work.get()));
  ASSERT_TRUE(r && r->success()) << (r ? r->cr_errmsg() : ReadFile(dir / "err"));
  EXPECT_EQ(CheckWorkload(pid, dir), "PASS");
}
TEST(Rpc, PreDumpInOneSessionThenDumpInAnother) { PreDumpThenDump(false); }
TEST(Rpc, PreDumpThenDumpOnOneSocket) { PreDumpThenDump(true); }

}  // namespace
}  // namespace crl::test
