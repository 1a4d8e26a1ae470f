// allocation: curve reading (interpolated, made monotone, floored to 0.01),
// the one-knob allocation, the MAC bisection against a MAC model the test
// computes itself, and cutting a pruned model further keeping exactly the
// channels a direct cut keeps.
#include "search/allocation.h"

#include <cmath>

#include "common/status_matchers.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace slimfit {
namespace {

using ::slimfit::testing::StatusIs;

double Floor2(double r) { return std::floor(r * 100 + 1e-9) / 100; }

TEST(AllocationTest, RatiosKeyIsSortedAndLeavesZerosOut) {
  EXPECT_EQ(RatiosKey({{"b", 0.5}, {"a", 0.25}, {"c", 0}}), "a=0.25,b=0.50");
  EXPECT_EQ(RatiosKey({{"a", 0}}), "none");
  EXPECT_EQ(RatiosKey({}), "none");
}

TEST(AllocationTest, RatioAtToleranceInterpolatesBetweenMeasuredPoints) {
  const std::vector<std::pair<double, double>> curve{{0, 0}, {0.25, 0.1}, {0.5, 0.4}, {0.75, 2.0}};
  EXPECT_DOUBLE_EQ(RatioAtTolerance(curve, 0.1), 0.25);  // a measured point exactly
  EXPECT_DOUBLE_EQ(RatioAtTolerance(curve, 0.4), 0.5);
  // Between (0.25, 0.1) and (0.5, 0.4): linear, floored to 0.01.
  const double tau = 0.25;
  EXPECT_DOUBLE_EQ(RatioAtTolerance(curve, tau), Floor2(0.25 + (tau - 0.1) / (0.4 - 0.1) * 0.25));
  EXPECT_DOUBLE_EQ(RatioAtTolerance(curve, 5.0), 0.75);  // everything measured is within tau
  EXPECT_DOUBLE_EQ(RatioAtTolerance(curve, 0), 0);
}

TEST(AllocationTest, RatioAtToleranceMakesTheCurveMonotone) {
  // A gain counts as no drop: free up to the next point that loses.
  EXPECT_DOUBLE_EQ(RatioAtTolerance({{0, 0}, {0.25, -0.5}, {0.5, 0.3}}, 0), 0.25);
  // A later dip does not make a larger ratio cheaper than a smaller one.
  const double tau = 0.3;
  EXPECT_DOUBLE_EQ(RatioAtTolerance({{0, 0}, {0.25, 0.5}, {0.5, 0.2}}, tau), Floor2(tau / 0.5 * 0.25));
}

std::vector<PruneGroup> TwoGroups() {
  return {PruneGroup{"a", 64, {{0, 0}, {0.25, -0.1}, {0.5, 0.5}, {0.75, 3.0}}},
          PruneGroup{"b", 32, {{0, 0}, {0.25, 0.2}, {0.5, 1.0}, {0.75, 4.0}}}};
}

TEST(AllocationTest, AllocateAtScalesFreeRatiosThenFollowsTheTolerance) {
  const std::vector<PruneGroup> groups = TwoGroups();
  for (double t : {0.0, 0.4, 1.0}) {  // only what costs nothing, scaled
    const Ratios r = AllocateAt(groups, t);
    EXPECT_DOUBLE_EQ(r.at("a"), Floor2(t * RatioAtTolerance(groups[0].curve, 0))) << t;
    EXPECT_DOUBLE_EQ(r.at("b"), 0) << t;
  }
  for (double tau : {0.2, 0.5, 1.0}) {
    const Ratios r = AllocateAt(groups, 1 + tau);
    EXPECT_DOUBLE_EQ(r.at("a"), RatioAtTolerance(groups[0].curve, tau)) << tau;
    EXPECT_DOUBLE_EQ(r.at("b"), RatioAtTolerance(groups[1].curve, tau)) << tau;
  }
}

// MACs of a model whose groups' layers cost channels x 1000 each.
int64_t LinearMacs(const std::vector<PruneGroup>& groups, const Ratios& r) {
  double macs = 0;
  for (const PruneGroup& g : groups) macs += 1000.0 * g.channels * (1 - r.at(g.path));
  return static_cast<int64_t>(macs);
}

TEST(AllocationTest, LatencySavingSlopeIsTheShareSavedPerUnitOfRatio) {
  EXPECT_DOUBLE_EQ(LatencySavingSlope(0.75, 0.7), 0.3 / 0.75);
  EXPECT_DOUBLE_EQ(LatencySavingSlope(1.0, 0.9), 0.1);  // a block
  EXPECT_DOUBLE_EQ(LatencySavingSlope(0.5, 1.08), 0);   // timed slower: saved nothing
  EXPECT_DOUBLE_EQ(LatencySavingSlope(0, 0.5), 0);
}

TEST(AllocationTest, ToleranceWeightsAreSavingsAgainstTheirMeanClamped) {
  const std::vector<double> savings{0.2, 0.1, 0.0, 0.1};  // mean 0.1
  const std::vector<double> w = ToleranceWeights(savings);
  ASSERT_EQ(w.size(), savings.size());
  EXPECT_DOUBLE_EQ(w[0], 2.0);
  EXPECT_DOUBLE_EQ(w[1], 1.0);
  EXPECT_DOUBLE_EQ(w[2], kMinToleranceWeight);  // no measured saving: only a floor
  EXPECT_DOUBLE_EQ(w[3], 1.0);
  // One group carrying everything is capped.
  const std::vector<double> one = ToleranceWeights({1.0, 0.0, 0.0, 0.0, 0.0, 0.0});
  EXPECT_DOUBLE_EQ(one[0], kMaxToleranceWeight);
  EXPECT_DOUBLE_EQ(one[1], kMinToleranceWeight);
  // Nothing measured as saved (or nothing at all): unweighted.
  EXPECT_EQ(ToleranceWeights({0.0, -0.1}), (std::vector<double>{1.0, 1.0}));
  EXPECT_TRUE(ToleranceWeights({}).empty());
}

TEST(AllocationTest, AWeightedGroupToleratesItsWeightTimesTheDrop) {
  std::vector<PruneGroup> groups = TwoGroups();
  groups[0].weight = 0.5;
  groups[1].weight = 2.0;
  for (double tau : {0.2, 0.5, 1.0}) {
    const Ratios r = AllocateAt(groups, 1 + tau);
    EXPECT_DOUBLE_EQ(r.at("a"), RatioAtTolerance(groups[0].curve, 0.5 * tau)) << tau;
    EXPECT_DOUBLE_EQ(r.at("b"), RatioAtTolerance(groups[1].curve, 2.0 * tau)) << tau;
  }
  // The free regime ignores weights: what costs nothing is free for all.
  EXPECT_EQ(AllocateAt(groups, 0.5), AllocateAt(TwoGroups(), 0.5));
  // The bisection still reaches every group's largest ratio: a group with
  // a small weight needs a larger knob to get there.
  auto macs_of = [&](const Ratios& r) -> absl::StatusOr<int64_t> { return LinearMacs(groups, r); };
  ASSERT_OK_AND_ASSIGN(Ratios most, AllocateForMacs(groups, 0, macs_of));
  EXPECT_DOUBLE_EQ(most.at("a"), 0.75);
  EXPECT_DOUBLE_EQ(most.at("b"), 0.75);
}

TEST(AllocationTest, AllocateForMacsReachesTheGoalWithTheLeastPruning) {
  const std::vector<PruneGroup> groups = TwoGroups();
  const double full = LinearMacs(groups, AllocateAt(groups, 0));
  const double most = LinearMacs(groups, AllocateAt(groups, 1e9));
  int calls = 0;
  auto macs_of = [&](const Ratios& r) -> absl::StatusOr<int64_t> {
    ++calls;
    return LinearMacs(groups, r);
  };
  Ratios previous;
  for (double factor : {1.1, 1.3, 1.6}) {
    const double goal = full / factor;
    ASSERT_GT(goal, most);
    calls = 0;
    ASSERT_OK_AND_ASSIGN(Ratios r, AllocateForMacs(groups, goal, macs_of));
    EXPECT_LE(calls, 17);
    EXPECT_LE(LinearMacs(groups, r), goal) << factor;
    // The least pruning that reaches it: not far past the goal.
    EXPECT_GE(LinearMacs(groups, r), 0.95 * goal) << factor;
    // More reduction never prunes a group less.
    for (const auto& [path, ratio] : previous) EXPECT_GE(r.at(path), ratio) << factor << " " << path;
    previous = r;
  }
  // A goal below what the curves allow: the most they allow.
  ASSERT_OK_AND_ASSIGN(Ratios r, AllocateForMacs(groups, most / 2, macs_of));
  EXPECT_EQ(r, AllocateAt(groups, 1e9));
  EXPECT_THAT(
      AllocateForMacs(groups, most * 2,
                      [](const Ratios&) -> absl::StatusOr<int64_t> { return absl::InternalError("profiler failed"); }),
      StatusIs(absl::StatusCode::kInternal, "profiler failed"));
}

TEST(AllocationTest, RatiosOfWhatIsLeftKeepWhatADirectCutKeeps) {
  const std::vector<PruneGroup> groups{PruneGroup{"a", 64, {}}, PruneGroup{"b", 30, {}}};
  const Ratios base{{"a", 0.25}, {"b", 0.1}};
  int checked = 0;
  for (int pct = 0; pct <= 90; ++pct) {
    const double r = pct / 100.0;
    const Ratios out = RatiosOfWhatIsLeft({{"a", r}, {"b", r}}, base, groups, 0.95);
    for (const PruneGroup& g : groups) {
      const int64_t n = g.channels;
      const int64_t kept_before = n - std::llround(base.at(g.path) * n);
      const int64_t kept_direct = n - std::llround(r * n);
      // The pruner removes round(ratio x channels) of what the base kept.
      const int64_t kept_further = kept_before - std::llround(out.at(g.path) * kept_before);
      EXPECT_EQ(kept_further, std::min(kept_before, kept_direct)) << g.path << " at " << r;
      ++checked;
    }
  }
  EXPECT_EQ(checked, 91 * 2);
  // Capped at max_ratio.
  EXPECT_DOUBLE_EQ(RatiosOfWhatIsLeft({{"a", 0.99}}, {}, groups, 0.9).at("a"), 0.9);
}

TEST(AllocationTest, ABlockGoesWholeOnceTheToleranceReachesItsDrop) {
  EXPECT_EQ(DepthKey("layer1.b1"), "depth:layer1.b1");
  EXPECT_TRUE(IsDepthKey(DepthKey("layer1.b1")));
  EXPECT_FALSE(IsDepthKey("layer1.b1.conv1"));
  EXPECT_EQ(BlockOfDepthKey(DepthKey("layer1.b1")), "layer1.b1");
  const double drop = 0.3;
  std::vector<PruneGroup> groups{PruneGroup{DepthKey("costly"), 0, {{0, 0}, {1, drop}}, /*whole=*/true},
                                 PruneGroup{DepthKey("free"), 0, {{0, 0}, {1, -0.1}}, /*whole=*/true},
                                 PruneGroup{"conv", 8, {{0, 0}, {0.5, 1.0}}}};
  auto at = [&](double t) { return AllocateAt(groups, t); };
  // Only 0 or 1, never a fraction of a block.
  for (double t : {0.0, 0.3, 0.99, 1.0, 1.1, 1 + drop - 0.01, 1 + drop, 2.0}) {
    for (const char* b : {"depth:costly", "depth:free"}) {
      const double r = at(t).at(b);
      EXPECT_TRUE(r == 0 || r == 1) << b << " at " << t << ": " << r;
    }
  }
  EXPECT_EQ(at(0.99).at("depth:free"), 0);  // the free regime removes it at its end
  EXPECT_EQ(at(1.0).at("depth:free"), 1);
  EXPECT_EQ(at(1 + drop - 0.01).at("depth:costly"), 0);
  EXPECT_EQ(at(1 + drop).at("depth:costly"), 1);
  // Blocks pass through a further cut as the target has them.
  const Ratios out = RatiosOfWhatIsLeft({{"depth:costly", 1}, {"conv", 0.5}}, {{"conv", 0.25}}, groups, 0.95);
  EXPECT_EQ(out.at("depth:costly"), 1);
  EXPECT_DOUBLE_EQ(out.at("conv"), (6.0 - 4.0) / 6.0);  // 8 → 6 kept → 4 kept
}

}  // namespace
}  // namespace slimfit
