#include "search/strategies/finals.h"

#include <optional>
#include <string>
#include <vector>

#include "common/status_matchers.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "search/strategies/simulated_context.h"

namespace slimfit {
namespace {

using ::testing::ElementsAre;
using testing_strategies::kReferenceMacs;
using testing_strategies::SimulatedContext;

// Objective: batch-1 latency. Timed again in turns, a record's latency is
// its true one, proportional to its MACs; when made it is whatever the test
// set (a busy machine's noise).
class LatencyContext : public SimulatedContext {
 public:
  LatencyContext() : SimulatedContext(/*budget_seconds=*/1e6, /*drop_per_factor=*/0.3, /*recovery_per_epoch=*/0.3) {
    compression().set_final_epochs(0);
    compression().mutable_tuning()->set_polish(false);
  }
  double Objective(const CandidateRecord& r) const override { return r.latency_b1_ms(); }
  absl::Status TimeAgainInTurns(std::vector<CandidateRecord>& records) override {
    for (CandidateRecord& r : records) {
      timed_again.push_back(r.description());
      r.set_latency_b1_ms(static_cast<double>(r.macs()) / kReferenceMacs);
    }
    return absl::OkStatus();
  }
  // A candidate at `factor`, timed `when_made` ms when it was made.
  CandidateRecord Made(double factor, double when_made) {
    absl::StatusOr<CandidateRecord> r = Candidate("l1_filter", factor);
    EXPECT_OK(r.status());
    r->set_latency_b1_ms(when_made);
    return *r;
  }
  std::vector<std::string> timed_again;
};

TEST(FinalsTest, CandidatesThatCouldBeChosenAreRankedOnLatencyTimedAgain) {
  LatencyContext ctx;
  // 2x timed lucky when made (0.2 ms; truly 0.5), 3x unlucky (0.6; truly
  // 0.33), 12x beyond delta (drop 3.3) and never a choice.
  std::vector<CandidateRecord> scored = {ctx.Made(2, 0.2), ctx.Made(3, 0.6), ctx.Made(12, 0.05)};
  ASSERT_OK_AND_ASSIGN(std::optional<CandidateRecord> result, RunFinals(ctx, scored));
  ASSERT_TRUE(result.has_value());
  EXPECT_EQ(result->description(), "l1_filter at 3");
  EXPECT_THAT(ctx.timed_again, ElementsAre("l1_filter at 2", "l1_filter at 3"));
}

TEST(FinalsTest, AtMostSixBestOnTheObjectiveAreTimedAgain) {
  LatencyContext ctx;
  std::vector<CandidateRecord> scored;
  for (int i = 0; i < 8; ++i) scored.push_back(ctx.Made(1.5 + 0.1 * i, 1.0 - 0.1 * i));
  ASSERT_OK_AND_ASSIGN(std::optional<CandidateRecord> result, RunFinals(ctx, scored));
  ASSERT_TRUE(result.has_value());
  // The six fastest when made: factors 2.2 down to 1.7.
  ASSERT_EQ(ctx.timed_again.size(), 6u);
  EXPECT_EQ(ctx.timed_again.front(), "l1_filter at 2.2");
  EXPECT_EQ(ctx.timed_again.back(), "l1_filter at 1.7");
  EXPECT_EQ(result->description(), "l1_filter at 2.2");
}

TEST(FinalsTest, ObjectivesThatAreCountedAreNotTimedAgain) {
  for (CompressionConfig::Objective objective : {CompressionConfig::SIZE, CompressionConfig::MACS}) {
    LatencyContext ctx;
    ctx.compression().set_objective(objective);
    ASSERT_OK_AND_ASSIGN(std::optional<CandidateRecord> result, RunFinals(ctx, {ctx.Made(2, 0.2), ctx.Made(3, 0.6)}));
    ASSERT_TRUE(result.has_value());
    EXPECT_TRUE(ctx.timed_again.empty()) << objective;
  }
}

}  // namespace
}  // namespace slimfit
