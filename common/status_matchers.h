// File: common/status_matchers.h
//
// gmock matchers for absl::Status / absl::StatusOr (Debian's Abseil has no
// status_matchers.h). Test-only.
//
//   EXPECT_THAT(LoadModel("x.pt"), StatusIs(absl::StatusCode::kNotFound,
//                                           HasSubstr("x.pt")));
//   EXPECT_THAT(Parse("3"), IsOkAndHolds(3));
//   ASSERT_OK(status_or_statusor);
//   ASSERT_OK_AND_ASSIGN(auto model, Model::Load(path));
//   const std::string path = TempPath("model.pt");   // in $TEST_TMPDIR
#ifndef SLIMFIT_COMMON_STATUS_MATCHERS_H_
#define SLIMFIT_COMMON_STATUS_MATCHERS_H_

#include <cstdlib>
#include <ostream>
#include <string>
#include <utility>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "common/status_macros.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace slimfit {
namespace testing {

// The path of `name` inside the test's private temporary directory
// ($TEST_TMPDIR under Bazel, /tmp otherwise).
inline std::string TempPath(const std::string& name) {
  const char* dir = std::getenv("TEST_TMPDIR");
  return std::string(dir != nullptr ? dir : "/tmp") + "/" + name;
}

// StatusIs(code, message_matcher): matches a Status or StatusOr whose code is
// `code` and whose message matches `message_matcher`.
MATCHER_P2(StatusIs, code, message_matcher,
           "has code " + ::testing::PrintToString(absl::StatusCode(code)) +
               " and a message that " +
               ::testing::DescribeMatcher<std::string>(message_matcher)) {
  const absl::Status& s = ::slimfit::internal_status_macros::AsStatus(arg);
  *result_listener << "whose status is " << s;
  if (s.code() != code) return false;
  return ::testing::ExplainMatchResult(message_matcher,
                                       std::string(s.message()),
                                       result_listener);
}

MATCHER(IsOk, "is OK") {
  const absl::Status& s = ::slimfit::internal_status_macros::AsStatus(arg);
  *result_listener << "whose status is " << s;
  return s.ok();
}

MATCHER_P(IsOkAndHolds, value_matcher,
          "is OK and holds a value that matches " +
              ::testing::PrintToString(value_matcher)) {
  if (!arg.ok()) {
    *result_listener << "whose status is " << arg.status();
    return false;
  }
  return ::testing::ExplainMatchResult(value_matcher, *arg, result_listener);
}

}  // namespace testing
}  // namespace slimfit

#define ASSERT_OK(expr) \
  ASSERT_THAT((expr), ::slimfit::testing::IsOk())
#define EXPECT_OK(expr) \
  EXPECT_THAT((expr), ::slimfit::testing::IsOk())

#define SLIMFIT_ASSERT_OK_AND_ASSIGN_IMPL(tmp, lhs, rexpr) \
  auto tmp = (rexpr);                                     \
  ASSERT_TRUE(tmp.ok()) << tmp.status();                  \
  lhs = std::move(tmp).value()
#define ASSERT_OK_AND_ASSIGN(lhs, rexpr)                                 \
  SLIMFIT_ASSERT_OK_AND_ASSIGN_IMPL(                                     \
      SLIMFIT_STATUS_CONCAT(_slimfit_assert_or_, __LINE__), lhs, rexpr)

#endif  // SLIMFIT_COMMON_STATUS_MATCHERS_H_
