#include <gtest/gtest.h>
#include <sys/syscall.h>

#include <ctime>

#include "kernel/ptrace_task.h"
#include "kernel/uapi.h"

namespace crl {
namespace {

Registers Stopped(long orig, long ret) {
  Registers r{};
  r.orig_rax = orig;
  r.rax = ret;
  r.rip = 0x1000;
  return r;
}

TEST(RegistersForRestart, RestartsReadInterruptedByTheStop) {
  Registers r = RegistersForRestart(Stopped(SYS_read, -kERESTARTSYS));
  EXPECT_EQ(r.rax, static_cast<unsigned long>(SYS_read));
  EXPECT_EQ(r.rip, 0x1000u - 2);
  EXPECT_EQ(static_cast<long>(r.orig_rax), -1);
}

TEST(RegistersForRestart, NohandAndNointrRestartToo) {
  EXPECT_EQ(RegistersForRestart(Stopped(SYS_pause, -kERESTARTNOHAND)).rax,
            static_cast<unsigned long>(SYS_pause));
  EXPECT_EQ(RegistersForRestart(Stopped(SYS_wait4, -kERESTARTNOINTR)).rax,
            static_cast<unsigned long>(SYS_wait4));
}

TEST(RegistersForRestart, RelativeSleepGoesThroughRestartSyscall) {
  Registers r = RegistersForRestart(Stopped(SYS_clock_nanosleep, -kERESTART_RESTARTBLOCK));
  EXPECT_EQ(r.rax, static_cast<unsigned long>(SYS_restart_syscall));
  EXPECT_EQ(r.rip, 0x1000u - 2);
}

TEST(RegistersForRestart, AbsoluteSleepIsReissued) {
  Registers in = Stopped(SYS_clock_nanosleep, -kERESTART_RESTARTBLOCK);
  in.rsi = TIMER_ABSTIME;
  Registers r = RegistersForRestart(in);
  EXPECT_EQ(r.rax, static_cast<unsigned long>(SYS_clock_nanosleep));
}

TEST(RegistersForRestart, LeavesCompletedSyscallsAndUserCodeAlone) {
  Registers done = RegistersForRestart(Stopped(SYS_write, 5));
  EXPECT_EQ(done.rax, 5u);
  EXPECT_EQ(done.rip, 0x1000u);
  Registers user = RegistersForRestart(Stopped(-1, -kERESTARTSYS));
  EXPECT_EQ(user.rip, 0x1000u);
}

TEST(RestartCode, OnlyTheCodesTheSignalCodeActsOn) {
  EXPECT_EQ(RestartCode(Stopped(SYS_read, -kERESTARTSYS)), -kERESTARTSYS);
  EXPECT_EQ(RestartCode(Stopped(SYS_pause, -kERESTARTNOHAND)), -kERESTARTNOHAND);
  EXPECT_EQ(RestartCode(Stopped(SYS_wait4, -kERESTARTNOINTR)), -kERESTARTNOINTR);
  // A restart block is not one of them, nor a finished syscall, nor user code.
  EXPECT_EQ(RestartCode(Stopped(SYS_nanosleep, -kERESTART_RESTARTBLOCK)), 0);
  EXPECT_EQ(RestartCode(Stopped(SYS_write, 5)), 0);
  EXPECT_EQ(RestartCode(Stopped(-1, -kERESTARTSYS)), 0);
}

}  // namespace
}  // namespace crl
