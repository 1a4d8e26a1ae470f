// The `gradual` strategy under a time budget, on a simulated context
// (search/strategies/simulated_context.h): which links of the chain and
// which finals a budget buys.
#include <cstdint>
#include <optional>

#include "common/status_matchers.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "search/strategies/simulated_context.h"
#include "search/strategy.h"

namespace slimfit {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;
using ::testing::Not;
using testing_strategies::kEpochSeconds;
using testing_strategies::kReferenceMacs;
using testing_strategies::SimulatedContext;

absl::StatusOr<std::optional<CandidateRecord>> RunGradual(SimulatedContext& ctx) {
  ctx.compression().mutable_tuning()->set_step_factor(1.5);
  return testing_strategies::RunStrategy("gradual", ctx);
}

int64_t MacsAt(double factor) { return static_cast<int64_t>(std::llround(kReferenceMacs / factor)); }

TEST(GradualTest, StaysWithinEveryBudgetAndReturnsAQualifyingModel) {
  testing_strategies::ExpectEveryBudgetKeptWithAQualifyingModel(
      "gradual", [](SimulatedContext& ctx) { ctx.compression().mutable_tuning()->set_step_factor(1.5); });
}

// With time for a link and a half after the first, and the first within
// delta: the second link goes ahead without the final's reserve (the
// result is in hand), and being within delta too it is the result; the
// final gets no epoch. Keeping the reserve would have returned the 1.5x
// link after a one-epoch final.
TEST(GradualTest, AfterALinkWithinDeltaTheNextNeedsNoReserveForAFinal) {
  SimulatedContext ctx(2.5 * kEpochSeconds, /*drop_per_factor=*/0.5, /*recovery_per_epoch=*/0.3);
  ASSERT_OK_AND_ASSIGN(std::optional<CandidateRecord> result, RunGradual(ctx));
  EXPECT_THAT(ctx.candidates, ElementsAre(1.5, 2.25)) << ctx.log();
  EXPECT_THAT(ctx.final_epochs, IsEmpty()) << ctx.log();
  ASSERT_TRUE(result.has_value()) << ctx.log();
  EXPECT_EQ(result->macs(), MacsAt(2.25));
  EXPECT_TRUE(result->qualifies());
  EXPECT_LE(ctx.elapsed(), 2.5 * kEpochSeconds);
  EXPECT_THAT(ctx.log(), HasSubstr("without keeping time for a final fine-tune"));
}

// A link beyond delta (but within the promising slack) is only worth its
// final: the next link must leave the final's reserve, so with time for one
// more epoch after it the chain stops and that epoch goes to a final.
TEST(GradualTest, AfterALinkBeyondDeltaTheFinalsReserveIsKept) {
  SimulatedContext ctx(3.5 * kEpochSeconds, /*drop_per_factor=*/1.2, /*recovery_per_epoch=*/0.3);
  ASSERT_OK_AND_ASSIGN(std::optional<CandidateRecord> result, RunGradual(ctx));
  // 1.5x at -0.6 (within delta), 2.25x at -1.5 (beyond it).
  EXPECT_THAT(ctx.candidates, ElementsAre(1.5, 2.25)) << ctx.log();
  EXPECT_THAT(ctx.final_epochs, ElementsAre(1)) << ctx.log();
  EXPECT_THAT(ctx.log(), Not(HasSubstr("without keeping time for a final fine-tune")));
  ASSERT_TRUE(result.has_value()) << ctx.log();
  EXPECT_TRUE(result->qualifies());
  EXPECT_LE(ctx.elapsed(), 3.5 * kEpochSeconds);
}

// With a time budget, a link that could not become the result is not made:
// after 1.5x at -0.5 and 2.25x at -1.25, the next is predicted near -2.0
// (the last step's -0.75 again), beyond delta + 0.4, what the two final
// epochs left after it would recover; the old rule (the last link within
// delta + the promising slack, and the link plus one final epoch fit) made
// it, and the final of 2.25x got two epochs instead of three.
TEST(GradualTest, ALinkThatCouldNotBecomeTheResultIsNotMade) {
  SimulatedContext ctx(5 * kEpochSeconds, /*drop_per_factor=*/1.0, /*recovery_per_epoch=*/0.3);
  ctx.compression().set_time_budget_minutes(5 * kEpochSeconds / 60);
  ASSERT_OK_AND_ASSIGN(std::optional<CandidateRecord> result, RunGradual(ctx));
  EXPECT_THAT(ctx.candidates, ElementsAre(1.5, 2.25)) << ctx.log();
  EXPECT_THAT(ctx.final_epochs, ElementsAre(3)) << ctx.log();
  EXPECT_THAT(ctx.log(), HasSubstr("the next step would end near -2.00 (the last step's -0.75 again), beyond "
                                   "delta + 0.40, the recovery expected of the 2 final epoch(s) left after it"));
  ASSERT_TRUE(result.has_value()) << ctx.log();
  EXPECT_EQ(result->macs(), MacsAt(2.25));
  EXPECT_TRUE(result->qualifies());
  EXPECT_LE(ctx.elapsed(), 5 * kEpochSeconds);
  // Without the budget in the experiment the chain goes on as before.
  SimulatedContext unbudgeted(5 * kEpochSeconds, 1.0, 0.3);
  ASSERT_OK(RunGradual(unbudgeted).status());
  EXPECT_THAT(unbudgeted.candidates, ElementsAre(1.5, 2.25, 3.375)) << unbudgeted.log();
}

}  // namespace
}  // namespace slimfit
