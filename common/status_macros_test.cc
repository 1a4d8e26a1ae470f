#include "common/status_macros.h"

#include "common/status_matchers.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace slimfit {
namespace {

using ::slimfit::testing::IsOkAndHolds;
using ::slimfit::testing::StatusIs;
using ::testing::HasSubstr;

absl::StatusOr<int> Half(int x) {
  if (x % 2 != 0) return absl::InvalidArgumentError(absl::StrCat("odd: ", x));
  return x / 2;
}

absl::StatusOr<int> Quarter(int x) {
  ASSIGN_OR_RETURN(int h, Half(x));
  ASSIGN_OR_RETURN(int q, Half(h), "second halving");
  return q;
}

absl::Status CheckEven(int x) {
  RETURN_IF_ERROR(Half(x));
  RETURN_IF_ERROR(Half(x).status(), "context");
  return absl::OkStatus();
}

absl::Status CheckEvenWithContext(int x) {
  RETURN_IF_ERROR(Half(x), absl::StrCat("checking ", x));
  return absl::OkStatus();
}

TEST(StatusMacrosTest, AssignOrReturnPassesValuesThrough) {
  EXPECT_THAT(Quarter(8), IsOkAndHolds(2));
}

TEST(StatusMacrosTest, AssignOrReturnReturnsFirstErrorUnchanged) {
  EXPECT_THAT(Quarter(3), StatusIs(absl::StatusCode::kInvalidArgument, "odd: 3"));
}

TEST(StatusMacrosTest, AssignOrReturnPrependsContext) {
  EXPECT_THAT(Quarter(6), StatusIs(absl::StatusCode::kInvalidArgument,
                                   "second halving: odd: 3"));
}

TEST(StatusMacrosTest, ReturnIfErrorAcceptsStatusOr) {
  EXPECT_TRUE(CheckEven(4).ok());
  EXPECT_THAT(CheckEven(5), StatusIs(absl::StatusCode::kInvalidArgument, "odd: 5"));
}

TEST(StatusMacrosTest, ReturnIfErrorPrependsContext) {
  EXPECT_THAT(CheckEvenWithContext(7),
              StatusIs(absl::StatusCode::kInvalidArgument, "checking 7: odd: 7"));
}

TEST(StatusMacrosTest, WithContextLeavesOkAlone) {
  EXPECT_TRUE(WithContext(absl::OkStatus(), "ctx").ok());
  EXPECT_THAT(WithContext(absl::NotFoundError("x"), ""),
              StatusIs(absl::StatusCode::kNotFound, "x"));
}

TEST(StatusMatchersTest, StatusIsRejectsWrongCodeOrMessage) {
  absl::Status s = absl::NotFoundError("model.pt is missing");
  EXPECT_THAT(s, StatusIs(absl::StatusCode::kNotFound, HasSubstr("model.pt")));
  EXPECT_THAT(s, ::testing::Not(StatusIs(absl::StatusCode::kInternal,
                                         HasSubstr("model.pt"))));
  EXPECT_THAT(s, ::testing::Not(StatusIs(absl::StatusCode::kNotFound,
                                         HasSubstr("weights"))));
}

}  // namespace
}  // namespace slimfit
