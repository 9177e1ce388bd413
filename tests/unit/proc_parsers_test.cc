#include "kernel/proc_parsers.h"

#include <gtest/gtest.h>

namespace crl {
namespace {

TEST(ParseProcMaps, ParsesEveryKindOfLine) {
  const char* text =
      "55b1eb1db000-55b1eb1dc000 r--p 00000000 fe:00 10952889                   /tmp/t1\n"
      "55b1f422f000-55b1f4250000 rw-p 00000000 00:00 0                          [heap]\n"
      "7fece14eb000-7fece15ef000 rw-s 00001000 00:01 42                         /dev/zero "
      "(deleted)\n"
      "7fece17e4000-7fece17e6000 r-xp 00000000 00:00 0                          [vdso]\n"
      "7fece17e6000-7fece17e7000 ---p 00000000 00:00 0 \n"
      "7fece17e7000-7fece17e8000 r--p 00000000 fe:00 7                          /tmp/a file with "
      "spaces\n"
      "ffffffffff600000-ffffffffff601000 --xp 00000000 00:00 0                  [vsyscall]\n";
  auto r = ParseProcMaps(text);
  ASSERT_TRUE(r.ok()) << r.error().message;
  ASSERT_EQ(r->size(), 7u);
  const MapsEntry& e = (*r)[0];
  EXPECT_EQ(e.start, 0x55b1eb1db000u);
  EXPECT_EQ(e.end, 0x55b1eb1dc000u);
  EXPECT_TRUE(e.read);
  EXPECT_FALSE(e.write);
  EXPECT_FALSE(e.shared);
  EXPECT_EQ(e.dev_major, 0xfeu);
  EXPECT_EQ(e.inode, 10952889u);
  EXPECT_EQ(e.path, "/tmp/t1");
  EXPECT_EQ((*r)[1].path, "[heap]");
  EXPECT_TRUE((*r)[2].shared);
  EXPECT_EQ((*r)[2].offset, 0x1000u);
  EXPECT_EQ((*r)[2].path, "/dev/zero (deleted)");
  EXPECT_TRUE((*r)[3].exec);
  EXPECT_EQ((*r)[4].path, "");
  EXPECT_FALSE((*r)[4].read);
  EXPECT_EQ((*r)[5].path, "/tmp/a file with spaces");
  EXPECT_EQ((*r)[6].start, 0xffffffffff600000u);
}

TEST(ParseProcMaps, RejectsMalformedLine) {
  auto r = ParseProcMaps("55b1eb1db000 r--p 00000000 fe:00 1 /x\n");
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.error().message.find("line 1"), std::string::npos);
}

TEST(ParseSmapsVmFlags, KeysFlagsByStart) {
  const char* text =
      "00400000-00401000 r-xp 00000000 fe:00 1 /bin/x\n"
      "Size:                  4 kB\n"
      "VmFlags: rd ex mr mw me dw\n"
      "7ffd0000-7ffd2000 rw-p 00000000 00:00 0 [stack]\n"
      "Rss:                   8 kB\n"
      "VmFlags: rd wr mr mw me gd ac dd\n";
  auto r = ParseSmapsVmFlags(text);
  ASSERT_TRUE(r.ok()) << r.error().message;
  ASSERT_EQ(r->size(), 2u);
  EXPECT_EQ((*r)[0].start, 0x400000u);
  EXPECT_TRUE(HasFlagCode((*r)[0].flags, "ex"));
  EXPECT_FALSE(HasFlagCode((*r)[0].flags, "gd"));
  EXPECT_TRUE(HasFlagCode((*r)[1].flags, "gd"));
  EXPECT_TRUE(HasFlagCode((*r)[1].flags, "dd"));
  EXPECT_FALSE(HasFlagCode((*r)[1].flags, "d"));
  EXPECT_EQ((*r)[1].flags, "rd wr mr mw me gd ac dd");
}

// smaps read piece by piece (lines whole): the same result.
TEST(ParseSmapsVmFlags, InPieces) {
  std::vector<SmapsFlags> out;
  ASSERT_TRUE(ParseSmapsVmFlagsInto("00400000-00401000 r-xp 00000000 fe:00 1 /bin/x\n", &out).ok());
  ASSERT_TRUE(ParseSmapsVmFlagsInto("Size: 4 kB\nVmFlags: rd ex\n", &out).ok());
  ASSERT_EQ(out.size(), 1u);
  EXPECT_EQ(out[0].flags, "rd ex");
}

// A real stat line with a comm holding spaces and parentheses.
TEST(ParseProcStat, HandlesHostileComm) {
  std::string line =
      "1234 (a) b (c) S 1 1234 1234 0 -1 4194560 100 0 0 0 1 2 0 0 20 0 1 0 500 1000 10 "
      "18446744073709551615 94000000 94100000 140720000 0 0 0 0 0 0 0 0 0 17 1 0 0 0 0 0 "
      "94200000 94300000 95000000 140721000 140721100 140721100 140722000 0\n";
  auto r = ParseProcStat(line);
  ASSERT_TRUE(r.ok()) << r.error().message;
  EXPECT_EQ(r->pid, 1234);
  EXPECT_EQ(r->comm, "a) b (c");
  EXPECT_EQ(r->state, 'S');
  EXPECT_EQ(r->ppid, 1);
  EXPECT_EQ(r->pgrp, 1234);
  EXPECT_EQ(r->session, 1234);
  EXPECT_EQ(r->tty_nr, 0);
  EXPECT_EQ(r->tpgid, -1);
  EXPECT_EQ(r->num_threads, 1);
  EXPECT_EQ(r->start_code, 94000000u);
  EXPECT_EQ(r->end_code, 94100000u);
  EXPECT_EQ(r->start_stack, 140720000u);
  EXPECT_EQ(r->start_data, 94200000u);
  EXPECT_EQ(r->start_brk, 95000000u);
  EXPECT_EQ(r->arg_start, 140721000u);
  EXPECT_EQ(r->env_end, 140722000u);
  EXPECT_EQ(r->exit_code, 0);
}

// A session leader on /dev/pts/3 (136:3) with group 1240 in the foreground.
TEST(ParseProcStat, ControllingTerminalAndForegroundGroup) {
  std::string line =
      "1234 (sh) S 1 1234 1234 34819 1240 4194560 100 0 0 0 1 2 0 0 20 0 1 0 500 1000 10 "
      "18446744073709551615 94000000 94100000 140720000 0 0 0 0 0 0 0 0 0 17 1 0 0 0 0 0 "
      "94200000 94300000 95000000 140721000 140721100 140721100 140722000 0\n";
  auto r = ParseProcStat(line);
  ASSERT_TRUE(r.ok()) << r.error().message;
  EXPECT_EQ(r->tty_nr, (136 << 8) | 3);
  EXPECT_EQ(r->tpgid, 1240);
}

TEST(ParseProcStat, RejectsShortLine) {
  EXPECT_FALSE(ParseProcStat("1 (x) S 0 1").ok());
  EXPECT_FALSE(ParseProcStat("garbage").ok());
}

TEST(ParseProcStatus, ReadsMasksAndIds) {
  const char* text =
      "Name:\tcat\nUmask:\t0027\nState:\tS (sleeping)\nTgid:\t77\nNgid:\t0\nPid:\t77\n"
      "Uid:\t1000\t1001\t1002\t1003\nGid:\t5\t6\t7\t8\nNSpid:\t77\t1\nNSpgid:\t70\t0\n"
      "NSsid:\t60\t0\n"
      "SigPnd:\t0000000000000200\nShdPnd:\t0000000000004000\nSigBlk:\t0000000000010000\n"
      "SigIgn:\t0000000000001000\nSigCgt:\t0000000180000002\n";
  auto r = ParseProcStatus(text);
  ASSERT_TRUE(r.ok()) << r.error().message;
  EXPECT_EQ(r->umask, 027u);
  EXPECT_EQ(r->tgid, 77);
  EXPECT_EQ(r->uid[1], 1001u);
  EXPECT_EQ(r->gid[3], 8u);
  EXPECT_EQ(r->nspid, (std::vector<pid_t>{77, 1}));
  EXPECT_EQ(r->nspgid, (std::vector<pid_t>{70, 0}));
  EXPECT_EQ(r->nssid, (std::vector<pid_t>{60, 0}));
  EXPECT_EQ(r->sig_pending, 0x200u);
  EXPECT_EQ(r->sig_shared_pending, 0x4000u);
  EXPECT_EQ(r->sig_blocked, 0x10000u);
  EXPECT_EQ(r->sig_ignored, 0x1000u);
  EXPECT_EQ(r->sig_caught, 0x180000002u);
}

TEST(ParseProcStatus, ReadsCredentialsAndSeccomp) {
  const char* text =
      "Tgid:\t9\nUid:\t0\t65534\t0\t65534\nGid:\t0\t0\t0\t0\nGroups:\t4 24 27 \n"
      "CapInh:\t0000000000000000\nCapPrm:\t000001ffffffffff\nCapEff:\t0000000000003000\n"
      "CapBnd:\t000001fffffffeff\nCapAmb:\t0000000000001000\nNoNewPrivs:\t1\n"
      "Seccomp:\t2\nSeccomp_filters:\t3\n";
  auto r = ParseProcStatus(text);
  ASSERT_TRUE(r.ok()) << r.error().message;
  EXPECT_EQ(r->uid[1], 65534u);
  EXPECT_EQ(r->groups, (std::vector<uint32_t>{4, 24, 27}));
  EXPECT_EQ(r->cap_prm, 0x1ffffffffffu);
  EXPECT_EQ(r->cap_eff, 0x3000u);
  EXPECT_EQ(r->cap_bnd, 0x1fffffffeffu);
  EXPECT_EQ(r->cap_amb, 0x1000u);
  EXPECT_TRUE(r->no_new_privs);
  EXPECT_EQ(r->seccomp, 2);
  EXPECT_EQ(r->seccomp_filters, 3);
  auto none = ParseProcStatus("Tgid:\t9\nGroups:\t\n");
  ASSERT_TRUE(none.ok());
  EXPECT_TRUE(none->groups.empty());
}

TEST(ParseProcLimits, ReadsEveryResourceInOrder) {
  const char* text =
      "Limit                     Soft Limit           Hard Limit           Units     \n"
      "Max cpu time              unlimited            unlimited            seconds   \n"
      "Max file size             unlimited            unlimited            bytes     \n"
      "Max data size             unlimited            unlimited            bytes     \n"
      "Max stack size            8388608              unlimited            bytes     \n"
      "Max core file size        0                    unlimited            bytes     \n"
      "Max resident set          unlimited            unlimited            bytes     \n"
      "Max processes             96365                96365                processes \n"
      "Max open files            512                  20000                files     \n"
      "Max locked memory         8388608              8388608              bytes     \n"
      "Max address space         unlimited            unlimited            bytes     \n"
      "Max file locks            unlimited            unlimited            locks     \n"
      "Max pending signals       96365                96365                signals   \n"
      "Max msgqueue size         819200               819200               bytes     \n"
      "Max nice priority         0                    0                    \n"
      "Max realtime priority     0                    0                    \n"
      "Max realtime timeout      unlimited            unlimited            us        \n";
  auto r = ParseProcLimits(text);
  ASSERT_TRUE(r.ok()) << r.error().message;
  ASSERT_EQ(r->size(), 16u);
  EXPECT_EQ((*r)[3].resource, 3);  // RLIMIT_STACK
  EXPECT_EQ((*r)[3].cur, 8388608u);
  EXPECT_EQ((*r)[3].max, ~0ull);
  EXPECT_EQ((*r)[7].cur, 512u);  // RLIMIT_NOFILE
  EXPECT_EQ((*r)[7].max, 20000u);
  EXPECT_FALSE(ParseProcLimits("Max open files            many    20000   files\n").ok());
  EXPECT_FALSE(ParseProcLimits("Max open files            1  2  files\n").ok());  // 15 missing
}

TEST(ParseProcTimers, ReadsEveryTimer) {
  const char* text =
      "ID: 3\nsignal: 38/0000000000001234\nnotify: signal/pid.7827\nClockID: 1\n"
      "ID: 0\nsignal: 14/0000000000000000\nnotify: signal/tid.7830\nClockID: 0\n"
      "ID: 1\nsignal: 0/0000000000000000\nnotify: none/pid.7827\nClockID: -6\n";
  auto r = ParseProcTimers(text);
  ASSERT_TRUE(r.ok()) << r.error().message;
  ASSERT_EQ(r->size(), 3u);
  EXPECT_EQ((*r)[0].id, 3);
  EXPECT_EQ((*r)[0].signo, 38);
  EXPECT_EQ((*r)[0].sival, 0x1234u);
  EXPECT_EQ((*r)[0].notify, 0);
  EXPECT_EQ((*r)[0].notify_pid, 7827);
  EXPECT_EQ((*r)[0].clock, 1);
  EXPECT_EQ((*r)[1].notify, 4);  // SIGEV_SIGNAL | SIGEV_THREAD_ID
  EXPECT_EQ((*r)[1].notify_pid, 7830);
  EXPECT_EQ((*r)[2].notify, 1);  // SIGEV_NONE
  EXPECT_EQ((*r)[2].clock, -6);  // a CPU-time clock
  EXPECT_TRUE(ParseProcTimers("").ok());
  EXPECT_FALSE(ParseProcTimers("signal: 1/0\n").ok());  // before any ID
  EXPECT_FALSE(ParseProcTimers("ID: 0\nnotify: loud/pid.1\n").ok());
}

TEST(ParseProcStatus, RejectsBadField) {
  EXPECT_FALSE(ParseProcStatus("Tgid:\tabc\n").ok());
  EXPECT_FALSE(ParseProcStatus("Name:\tx\n").ok());  // no Tgid
}

TEST(ParseFdInfo, ReadsPosAndOctalFlags) {
  auto r = ParseFdInfo("pos:\t1234\nflags:\t02102001\nmnt_id:\t25\nino:\t99\n");
  ASSERT_TRUE(r.ok()) << r.error().message;
  EXPECT_EQ(r->pos, 1234u);
  EXPECT_EQ(r->flags, 02102001u);
  EXPECT_EQ(r->mnt_id, 25u);
  EXPECT_FALSE(ParseFdInfo("pos:\t1\n").ok());
}

TEST(ParseAuxv, StopsAtNull) {
  uint64_t words[] = {33, 0x7ffd000, 6, 4096, 0, 0, 99, 99};
  auto v = ParseAuxv(std::string_view(reinterpret_cast<const char*>(words), sizeof words));
  EXPECT_EQ(v, (std::vector<uint64_t>{33, 0x7ffd000, 6, 4096, 0, 0}));
}

TEST(FdLinkKind, NamesNonFiles) {
  EXPECT_EQ(FdLinkKind("pipe:[1234]"), "pipe");
  EXPECT_EQ(FdLinkKind("socket:[5]"), "socket");
  EXPECT_EQ(FdLinkKind("anon_inode:[eventfd]"), "anon_inode:eventfd");
  EXPECT_EQ(FdLinkKind("anon_inode:inotify"), "anon_inode:inotify");
  EXPECT_EQ(FdLinkKind("/dev/null"), std::nullopt);
}

}  // namespace
}  // namespace crl
