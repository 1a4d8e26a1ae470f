#include "search/budget.h"

#include <limits>

#include "gtest/gtest.h"

namespace slimfit {
namespace {

TEST(BudgetTest, EpochsThatFit) {
  EXPECT_EQ(EpochsThatFit(5, 1000, 100), 5);  // all fit
  EXPECT_EQ(EpochsThatFit(5, 500, 100), 5);   // exactly
  EXPECT_EQ(EpochsThatFit(5, 499, 100), 4);   // one short: a smaller gain, not none
  EXPECT_EQ(EpochsThatFit(5, 150, 100), 1);
  EXPECT_EQ(EpochsThatFit(5, 99, 100), 0);    // not even one
  EXPECT_EQ(EpochsThatFit(5, -3, 100), 0);    // past the budget
  EXPECT_EQ(EpochsThatFit(0, 1000, 100), 0);
  EXPECT_EQ(EpochsThatFit(5, std::numeric_limits<double>::infinity(), 100), 5);  // no budget
  EXPECT_EQ(EpochsThatFit(5, 10, 0), 5);      // nothing timed: no limit from it
}

TEST(BudgetTest, EpochSecondsPrior) {
  // 2 s to evaluate 10,000 samples; 50,000 to train: 3 x 2 x 5.
  EXPECT_DOUBLE_EQ(EpochSecondsPrior(2.0, 50000, 10000), 30.0);
  EXPECT_DOUBLE_EQ(EpochSecondsPrior(0.001, 100, 100), 1.0);  // at least a second
  EXPECT_DOUBLE_EQ(EpochSecondsPrior(2.0, 50000, 0), 300000.0);  // no eval samples: per sample of 1
}

TEST(BudgetTest, SensitivityBnBatches) {
  EXPECT_EQ(SensitivityBnBatches(3000, 3000, 20), 20);  // the whole split: every batch
  EXPECT_EQ(SensitivityBnBatches(1500, 3000, 20), 10);  // half the samples, half the batches
  EXPECT_EQ(SensitivityBnBatches(1501, 3000, 20), 11);  // rounded up
  EXPECT_EQ(SensitivityBnBatches(100, 3000, 20), kMinSensitivityBnBatches);
  EXPECT_EQ(SensitivityBnBatches(100, 3000, 2), 2);  // never more than asked for
}

TEST(BudgetTest, ScaleSensitivityKeepsTheWholeSplitWhenItFits) {
  // 30 points of 0.5 + 2 + 0.5 s = 90 s.
  const SensitivityScoring fits = ScaleSensitivity(30, 90, 0.5, 2, 0.5, 1000, 20);
  EXPECT_EQ(fits.samples, 1000);
  EXPECT_EQ(fits.bn_batches, 20);
  EXPECT_EQ(ScaleSensitivity(30, 0, 0.5, 2, 0.5, 1000, 20).samples, 1000);   // no budget
  EXPECT_EQ(ScaleSensitivity(30, -5, 0.5, 2, 0.5, 1000, 20).samples, 1000);  // none left: the pass stops itself
  EXPECT_EQ(ScaleSensitivity(0, 10, 0.5, 2, 0.5, 1000, 20).samples, 1000);   // nothing to score
  EXPECT_EQ(ScaleSensitivity(30, 10, 0.5, 0, 0, 1000, 20).samples, 1000);    // nothing timed
}

TEST(BudgetTest, ScaleSensitivitySamplesWhatFits) {
  // 80 points in 400 s: 5 s a point. On the whole split one costs 1 (cut)
  // + 20 (3,000 samples) + 8 (20 batches) s. 4 s are left for scoring:
  // 4 / 28 = 0.143 of both; 0.143 x 20 batches rounds up to 3, below the
  // floor of 4, which take 1.6 s; the 2.4 s left score 2.4 / 20 of 3,000
  // samples = 360.
  const SensitivityScoring s = ScaleSensitivity(80, 400, 1, 20, 8, 3000, 20);
  EXPECT_EQ(s.bn_batches, kMinSensitivityBnBatches);
  EXPECT_EQ(s.samples, 360);
  // A looser budget keeps more batches: 10 s a point, 9 / 28 = 0.321 of
  // 20 = 6.4 -> 7 batches (2.8 s); 6.2 s score 6.2 / 20 x 3,000 = 930.
  const SensitivityScoring loose = ScaleSensitivity(80, 800, 1, 20, 8, 3000, 20);
  EXPECT_EQ(loose.bn_batches, 7);
  EXPECT_EQ(loose.samples, 930);
  // What it chose fits a point's time.
  auto point_seconds = [](const SensitivityScoring& c) {
    return 1 + 8.0 * c.bn_batches / 20 + 20.0 * c.samples / 3000;
  };
  EXPECT_LE(point_seconds(s), 400 / 80.0 + 1e-9);
  EXPECT_LE(point_seconds(loose), 800 / 80.0 + 1e-9);
  // A tighter budget stops at the floors: the pass then covers what it can.
  const SensitivityScoring floor = ScaleSensitivity(80, 30, 1, 20, 8, 3000, 20);
  EXPECT_EQ(floor.samples, kMinSensitivitySamples);
  EXPECT_EQ(floor.bn_batches, kMinSensitivityBnBatches);
  // A split smaller than the floor is scored whole.
  EXPECT_EQ(ScaleSensitivity(80, 30, 1, 20, 8, 200, 20).samples, 200);
}

TEST(BudgetTest, Hms) {
  EXPECT_EQ(Hms(0), "0:00");
  EXPECT_EQ(Hms(59.6), "1:00");
  EXPECT_EQ(Hms(754), "12:34");
  EXPECT_EQ(Hms(3600 + 62), "1:01:02");
  EXPECT_EQ(Hms(-5), "0:00");
}

}  // namespace
}  // namespace slimfit
