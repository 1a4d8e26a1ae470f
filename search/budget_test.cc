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

TEST(BudgetTest, Hms) {
  EXPECT_EQ(Hms(0), "0:00");
  EXPECT_EQ(Hms(59.6), "1:00");
  EXPECT_EQ(Hms(754), "12:34");
  EXPECT_EQ(Hms(3600 + 62), "1:01:02");
  EXPECT_EQ(Hms(-5), "0:00");
}

}  // namespace
}  // namespace slimfit
