#include "common/field_error.h"

#include "absl/status/statusor.h"
#include "common/status_matchers.h"
#include "gtest/gtest.h"

namespace slimfit {
namespace {

using ::slimfit::testing::IsOkAndHolds;
using ::slimfit::testing::StatusIs;
using ::testing::Eq;
using ::testing::Optional;

absl::Status CheckLr(double lr) {
  if (!(lr > 0)) return FieldError("lr", "not positive", lr, "> 0");
  return absl::OkStatus();
}

absl::Status CheckTrainer(double lr) {
  RETURN_IF_ERROR(CheckLr(lr), AtField("optimizer"));
  return absl::OkStatus();
}

absl::StatusOr<int> CheckExperiment(double lr) {
  RETURN_IF_ERROR(CheckTrainer(lr), AtField("full_trainer"));
  return 1;
}

absl::StatusOr<int> AssignUnder(double lr) {
  ASSIGN_OR_RETURN(int v, CheckExperiment(lr), AtField("experiments[2]"));
  return v;
}

TEST(FieldErrorTest, TheGrammarHasEachPartOnce) {
  EXPECT_EQ(FieldError("a.b", "empty").message(), "a.b: empty");
  EXPECT_EQ(FieldError("a.b", "not positive", -2).message(), "a.b: not positive, got -2");
  EXPECT_EQ(FieldError("a.b", "not positive", -2, "> 0").message(), "a.b: not positive, got -2; valid: > 0");
  EXPECT_EQ(FieldError("a", "unknown", Quoted("x\"y"), "p, q").message(), "a: unknown, got \"x\\\"y\"; valid: p, q");
  EXPECT_EQ(FieldError("a", "p").code(), absl::StatusCode::kInvalidArgument);
  absl::Status nf = FieldErrorWithCode(absl::StatusCode::kNotFound, "model.path", "no such file", "\"m.pt\"", "");
  EXPECT_EQ(nf.code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(nf.message(), "model.path: no such file, got \"m.pt\"");
  EXPECT_EQ(FieldErrorWithCode(absl::StatusCode::kNotFound, "x", "gone", "", "y").message(), "x: gone; valid: y");
}

TEST(FieldErrorTest, CallersRootThePathWithDots) {
  absl::Status s = CheckExperiment(-0.5).status();
  EXPECT_THAT(
      s, StatusIs(absl::StatusCode::kInvalidArgument, "full_trainer.optimizer.lr: not positive, got -0.5; valid: > 0"));
  EXPECT_THAT(FieldPathOf(s), Optional(Eq("full_trainer.optimizer.lr")));
  EXPECT_THAT(AssignUnder(-1).status(),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       "experiments[2].full_trainer.optimizer.lr: not positive, got -1; valid: > 0"));
  EXPECT_THAT(AssignUnder(1), IsOkAndHolds(1));
}

TEST(FieldErrorTest, IndexedElementsJoinWithoutADot) {
  absl::Status s = WithContext(FieldError("[1].fraction", "out of range", 1.5, "(0, 1]"), AtField("data.splits"));
  EXPECT_EQ(s.message(), "data.splits[1].fraction: out of range, got 1.5; valid: (0, 1]");
  EXPECT_EQ(IndexedField("splits", 3), "splits[3]");
  EXPECT_EQ(JoinFieldPath("", "a"), "a");
  EXPECT_EQ(JoinFieldPath("a", ""), "a");
  EXPECT_EQ(JoinFieldPath("a", "b"), "a.b");
  EXPECT_EQ(JoinFieldPath("--model", "--model"), "--model");
}

TEST(FieldErrorTest, OtherErrorsBecomeErrorsOfTheField) {
  absl::Status other = absl::NotFoundError("no such file");
  absl::Status s = WithContext(other, AtField("teacher_path"));
  EXPECT_THAT(s, StatusIs(absl::StatusCode::kNotFound, "teacher_path: no such file"));
  EXPECT_EQ(FieldPathOf(other), std::nullopt);
  EXPECT_THAT(FieldPathOf(s), Optional(Eq("teacher_path")));
  // ... so an outer root extends the path.
  EXPECT_THAT(WithContext(s, AtField("loss.distillation")),
              StatusIs(absl::StatusCode::kNotFound, "loss.distillation.teacher_path: no such file"));
  EXPECT_TRUE(WithContext(absl::OkStatus(), AtField("x")).ok());
}

TEST(FieldErrorTest, APlainContextInFrontEndsThePath) {
  absl::Status s = WithContext(FieldError("lr", "not positive", 0), "while loading e.pbtxt");
  EXPECT_EQ(FieldPathOf(s), std::nullopt);
  EXPECT_EQ(WithContext(s, AtField("x")).message(), "x: while loading e.pbtxt: lr: not positive, got 0");
  EXPECT_THAT(FieldPathOf(WithContext(s, AtField("x"))), Optional(Eq("x")));
}

TEST(FieldErrorTest, AnEmptyPathIsTheMessageItself) {
  absl::Status s = FieldError("", "no optimizer chosen", "", "adam, sgd");
  EXPECT_EQ(s.message(), "no optimizer chosen; valid: adam, sgd");
  EXPECT_THAT(FieldPathOf(s), Optional(Eq("")));
  EXPECT_EQ(WithContext(s, AtField("full_trainer.optimizer")).message(),
            "full_trainer.optimizer: no optimizer chosen; valid: adam, sgd");
}

TEST(FieldErrorTest, RenameMapsAPathToTheFlagThatSetsIt) {
  auto flag = [](absl::string_view path) { return absl::StrCat("--", path); };
  EXPECT_THAT(RenameField(FieldError("nnodes", "below 1", 0, ">= 1"), flag),
              StatusIs(absl::StatusCode::kInvalidArgument, "--nnodes: below 1, got 0; valid: >= 1"));
  EXPECT_THAT(RenameField(absl::InternalError("boom"), flag), StatusIs(absl::StatusCode::kInternal, "boom"));
}

TEST(FieldErrorTest, OtherPayloadsSurviveRooting) {
  absl::Status s = FieldError("lr", "bad");
  s.SetPayload("type.test/extra", absl::Cord("kept"));
  absl::Status rooted = WithContext(s, AtField("optimizer"));
  EXPECT_EQ(rooted.message(), "optimizer.lr: bad");
  ASSERT_TRUE(rooted.GetPayload("type.test/extra").has_value());
  EXPECT_EQ(std::string(*rooted.GetPayload("type.test/extra")), "kept");
}

}  // namespace
TEST(FieldErrorTest, AsFlagErrorNamesTheFlag) {
  EXPECT_EQ(AsFlagError(FieldError("quality", "out of range", 0, "[1, 100]")).message(),
            "--quality: out of range, got 0; valid: [1, 100]");
  EXPECT_EQ(AsFlagError(absl::InternalError("no field")).message(), "no field");
}

TEST(RequireNonNullTest, NamesTheFirstNullMember) {
  int a = 0, b = 0;
  EXPECT_OK(RequireNonNull("Deps", {{"a", &a}, {"b", &b}}, "both are needed"));
  EXPECT_THAT(RequireNonNull("Deps", {{"a", &a}, {"b", nullptr}, {"c", nullptr}}, "all three are needed"),
              StatusIs(absl::StatusCode::kInvalidArgument, "Deps: b is null; all three are needed"));
}

}  // namespace slimfit
