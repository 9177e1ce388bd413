#include "base/result.h"

#include <gtest/gtest.h>

#include <cerrno>

namespace crl {
namespace {

Result<int> Untracked() { return CodedError(ErrorCode::kUntracked, "range 0x%x", 0x1000); }

Result<int> Through() {
  int v = TRY(Untracked());
  return v + 1;
}

TEST(ErrorCode, SurvivesTryAndContext) {
  Result<int> r = Through();
  ASSERT_FALSE(r.ok());
  EXPECT_TRUE(r.error().Is(ErrorCode::kUntracked));
  Result<int> c = Through().Context("PID 7");
  EXPECT_TRUE(c.error().Is(ErrorCode::kUntracked));
  EXPECT_EQ(c.error().message, "PID 7: range 0x1000");
}

TEST(ErrorCode, PlainErrorsAreFailures) {
  errno = ENOENT;
  EXPECT_TRUE(ErrnoError("open(%s)", "x").Is(ErrorCode::kFailed));
  // A message that reads like a coded one is not one: callers branch on
  // the code, never on the text.
  EXPECT_FALSE(MakeError("PID 5 is already in use").Is(ErrorCode::kPidInUse));
}

}  // namespace
}  // namespace crl
