#include "search/widths.h"

#include <cmath>

#include "gtest/gtest.h"

namespace slimfit {
namespace {

// Kept counts derived the pruners' way: n - round(r x n).
int64_t Kept(double r, int64_t n) { return n - std::llround(r * static_cast<double>(n)); }

TEST(RoundKeptUp, EveryKeptCountBecomesTheNextMultipleAtMostTheGroup) {
  const std::map<std::string, int64_t> channels{{"a", 64}, {"b", 32}, {"c", 16}, {"d", 24}, {"e", 10}};
  for (int m : {2, 8, 16}) {
    for (double r : {0.0, 0.1, 0.25, 0.33, 0.5, 0.66, 0.9, 0.95}) {
      std::map<std::string, double> ratios;
      for (const auto& [path, n] : channels) ratios[path] = r;
      const auto up = RoundKeptUp(ratios, channels, m);
      ASSERT_EQ(up.size(), channels.size());
      for (const auto& [path, n] : channels) {
        const int64_t before = Kept(r, n), after = Kept(up.at(path), n);
        SCOPED_TRACE(testing::Message() << path << " n=" << n << " r=" << r << " m=" << m);
        EXPECT_GE(after, before);
        EXPECT_LE(after, n);
        // The smallest count >= before that is a multiple of m, or the whole group.
        const int64_t want = std::min<int64_t>(n, (before + m - 1) / m * m);
        EXPECT_EQ(after, want);
        EXPECT_TRUE(after % m == 0 || after == n);
      }
    }
  }
}

TEST(RoundKeptUp, MultipleOneAndMissingGroups) {
  const std::map<std::string, int64_t> channels{{"a", 64}, {"b", 32}};
  const auto same = RoundKeptUp({{"a", 0.3}}, channels, 1);
  EXPECT_DOUBLE_EQ(same.at("a"), 0.3);
  EXPECT_DOUBLE_EQ(same.at("b"), 0.0);  // missing: keeps every channel
  const auto up = RoundKeptUp({{"a", 0.7}}, channels, 16);
  EXPECT_EQ(Kept(up.at("a"), 64), 32);  // 64 - round(44.8) = 19 -> 32
  EXPECT_DOUBLE_EQ(up.at("b"), 0.0);
}

TEST(PickWidthVariant, MostChannelsAmongTheFastest) {
  // The rounded variant is as fast (within 3%): it keeps more channels.
  EXPECT_EQ(PickWidthVariant({{1, 1.00, 900}, {16, 1.02, 1200}, {8, 1.01, 1000}}), 1u);
  // The rounded variant is slower: the unrounded one.
  EXPECT_EQ(PickWidthVariant({{1, 1.00, 900}, {16, 1.10, 1200}}), 0u);
  // The rounded variant is faster and bigger: it.
  EXPECT_EQ(PickWidthVariant({{1, 1.30, 900}, {16, 1.00, 1200}, {8, 1.25, 1000}}), 1u);
  // Faster but smaller (rounding to 8 gave no more MACs than 16, and 16 is slow).
  EXPECT_EQ(PickWidthVariant({{1, 1.30, 900}, {16, 1.50, 1200}, {8, 1.00, 1000}}), 2u);
  // Ties go to the earlier variant; one variant is itself.
  EXPECT_EQ(PickWidthVariant({{1, 1.0, 900}, {16, 1.0, 900}}), 0u);
  EXPECT_EQ(PickWidthVariant({{1, 5.0, 10}}), 0u);
  // The tolerance is a parameter.
  EXPECT_EQ(PickWidthVariant({{1, 1.00, 900}, {16, 1.08, 1200}}, 0.10), 1u);
}

}  // namespace
}  // namespace slimfit
