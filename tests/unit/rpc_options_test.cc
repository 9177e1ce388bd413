// CRIU's RPC options as criu-lite's: what runc sends becomes the dump and
// restore options it means, and what cannot be honoured is refused by name.
#include <gtest/gtest.h>

#include "rpc/options.h"

namespace crl {
namespace {

PeerDirResolver Dirs() {
  return [](int fd, const char*) -> Result<std::string> { return "/peer/fd" + std::to_string(fd); };
}

TEST(RpcOptions, TheSessionTakesTheClientsDirectoriesAndCriusLogLevels) {
  rpc::Options o;
  o.set_images_dir_fd(7);
  o.set_work_dir_fd(9);
  o.set_log_file("dump.log");
  o.set_log_level(4);
  RpcSession s = *SessionFromRpc(o, Dirs());
  EXPECT_EQ(s.images_dir, "/peer/fd7");
  EXPECT_EQ(s.log_file, "/peer/fd9/dump.log");
  EXPECT_EQ(s.log_level, 3);  // debug
  o.clear_work_dir_fd();
  o.clear_log_level();  // CRIU's default, 2: warnings
  s = *SessionFromRpc(o, Dirs());
  EXPECT_EQ(s.log_file, "/peer/fd7/dump.log") << "without a work directory, the images'";
  EXPECT_EQ(s.log_level, 1);
  o.set_log_file("../escape.log");
  auto bad = SessionFromRpc(o, Dirs());
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.error().message.find("log_file ../escape.log"), std::string::npos);
}

TEST(RpcOptions, RuncsCheckpointRequestBecomesTheDumpItMeans) {
  rpc::Options o;
  o.set_pid(42);
  o.set_manage_cgroups(true);
  o.set_tcp_established(true);
  o.set_file_locks(true);
  o.set_freeze_cgroup("/sys/fs/cgroup/freezer/ct");
  o.add_external("mnt[/data]:data");
  rpc::ExtMountMap* m = o.add_ext_mnt();
  m->set_key("/dev/null");
  m->set_val("/dev/null");
  o.add_unix_sk_ino()->set_inode(1234);
  o.set_empty_ns(0x40000000);  // CLONE_NEWNET
  o.set_orphan_pts_master(true);
  o.set_evasive_devices(true);
  DumpOptions d = *DumpOptionsFromRpc(o, "/img", rpc::DUMP);
  EXPECT_EQ(d.pid, 42);
  EXPECT_FALSE(d.pre_dump);
  EXPECT_FALSE(d.leave_running);
  EXPECT_TRUE(d.tcp_established && d.file_locks && d.empty_net && d.record_cgroups);
  EXPECT_EQ(d.freeze_cgroup, "/sys/fs/cgroup/freezer/ct");
  EXPECT_EQ(d.ext_mounts.at("/data"), "data");
  EXPECT_EQ(d.ext_mount_map.at("/dev/null"), "/dev/null");
  EXPECT_EQ(d.ext_mounts.count("/dev/null"), 0u) << "ext_mnt entries need not be mounts";
  EXPECT_EQ(d.ext_unix_sk.count(1234), 1u);
  DumpOptions pre = *DumpOptionsFromRpc(o, "/img", rpc::PRE_DUMP);
  EXPECT_TRUE(pre.pre_dump && pre.leave_running);
}

TEST(RpcOptions, CgroupModesAreCriusOwn) {
  rpc::Options o;
  o.set_manage_cgroups(false);
  EXPECT_EQ(RestoreOptionsFromRpc(o, "/img")->cgroups, CgroupMode::kIgnore);
  o.set_manage_cgroups(true);
  EXPECT_EQ(RestoreOptionsFromRpc(o, "/img")->cgroups, CgroupMode::kSoft);
  const std::pair<rpc::CgroupMode, CgroupMode> modes[] = {
      {rpc::IGNORE, CgroupMode::kIgnore}, {rpc::CG_NONE, CgroupMode::kNone},
      {rpc::PROPS, CgroupMode::kProps},   {rpc::SOFT, CgroupMode::kSoft},
      {rpc::FULL, CgroupMode::kFull},     {rpc::STRICT, CgroupMode::kStrict},
      {rpc::DEFAULT, CgroupMode::kSoft}};
  for (auto [theirs, ours] : modes) {
    o.set_manage_cgroups_mode(theirs);
    EXPECT_EQ(RestoreOptionsFromRpc(o, "/img")->cgroups, ours) << theirs;
  }
}

TEST(RpcOptions, RuncsRestoreRequestBecomesTheRestoreItMeans) {
  rpc::Options o;
  o.set_rst_sibling(true);
  o.set_root("/run/runc/ct/criu-root");
  rpc::InheritFd* f = o.add_inherit_fd();
  f->set_key("pipe:[77]");
  f->set_fd(1);
  rpc::CgroupRoot* c = o.add_cg_root();
  c->set_ctrl("memory");
  c->set_path("/ct");
  o.add_cg_root()->set_path("/all");
  rpc::VethPair* v = o.add_veths();
  v->set_if_in("eth0");
  v->set_if_out("veth123");
  RestoreOptions r = *RestoreOptionsFromRpc(o, "/img");
  EXPECT_TRUE(r.detached && r.sibling);
  EXPECT_EQ(r.root, "/run/runc/ct/criu-root");
  EXPECT_EQ(r.inherit_fds.at("pipe:[77]"), 1);
  EXPECT_EQ(r.cgroup_roots, (std::vector<std::string>{"memory:/ct", "/all"}));
  EXPECT_EQ(r.veths.at("eth0").name, "veth123");
}

// runc's and Podman's network namespace, made by the runtime: recorded as
// the caller's under its key.
TEST(RpcOptions, TheRuntimesNetworkNamespaceIsExternal) {
  rpc::Options o;
  o.set_pid(1);
  o.add_external("net[4026532177]:extRootNetNS");
  auto d = DumpOptionsFromRpc(o, "/img", rpc::DUMP);
  ASSERT_TRUE(d.ok()) << d.error().message;
  EXPECT_EQ(d->ext_net_ns.at(4026532177), "extRootNetNS");
}

TEST(RpcOptions, WhatCannotBeHonouredIsRefusedByName) {
  auto refused = [](void (*set)(rpc::Options*), const char* name) {
    rpc::Options o;
    o.set_pid(1);
    set(&o);
    auto d = DumpOptionsFromRpc(o, "/img", rpc::DUMP);
    ASSERT_FALSE(d.ok()) << name;
    EXPECT_NE(d.error().message.find(name), std::string::npos) << d.error().message;
  };
  refused([](rpc::Options* o) { o->set_auto_dedup(true); }, "auto_dedup");
  refused([](rpc::Options* o) { o->set_link_remap(true); }, "link_remap");
  refused([](rpc::Options* o) { o->add_skip_mnt("/x"); }, "skip_mnt");
  refused([](rpc::Options* o) { o->set_lsm_profile("apparmor:x"); }, "lsm_profile");
  refused([](rpc::Options* o) { o->set_leave_stopped(true); }, "leave_stopped");
  refused([](rpc::Options* o) { o->set_unprivileged(true); }, "unprivileged");
  refused([](rpc::Options* o) { o->mutable_ps()->set_port(1); }, "ps");
  refused([](rpc::Options* o) { o->set_empty_ns(0x04000000 /* CLONE_NEWUTS */); }, "empty_ns");
  refused([](rpc::Options* o) { o->add_external("pid[4026531836]:extRootPidNS"); },
          "pid[4026531836]:extRootPidNS");
  refused(
      [](rpc::Options* o) {
        o->set_network_lock(rpc::SKIP);
        o->set_tcp_established(true);
      },
      "network_lock SKIP");
  refused([](rpc::Options* o) { o->clear_pid(); }, "pid is missing");
  refused([](rpc::Options* o) { o->GetReflection()->MutableUnknownFields(o)->AddVarint(300, 1); },
          "number 300");
  refused(
      [](rpc::Options* o) {
        o->set_tcp_established(true);
        o->set_tcp_close(true);
      },
      "exclude each other");
}

}  // namespace
}  // namespace crl
