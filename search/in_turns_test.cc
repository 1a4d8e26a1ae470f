#include "search/in_turns.h"

#include <vector>

#include "absl/status/status.h"
#include "common/status_matchers.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace slimfit {
namespace {

using ::slimfit::testing::StatusIs;

// A machine whose speed drifts: every call is slower than the one before, and
// call `busy` is slowed 3x (another job). Model i's true cost is base[i].
struct DriftingMachine {
  std::vector<double> base;
  int busy = -1;
  std::vector<int> calls;  // which model, in call order
  absl::StatusOr<Latency> operator()(int i) {
    const double drift = 1.0 + 0.1 * static_cast<double>(calls.size());
    const double load = static_cast<int>(calls.size()) == busy ? 3.0 : 1.0;
    calls.push_back(i);
    return Latency{base[i] * drift * load, 10 * base[i] * drift * load};
  }
};

TEST(FastestInTurnsTest, TimesInTurnsAndKeepsEachModelsFastestRound) {
  DriftingMachine m{{1.0, 0.5, 2.0}, /*busy=*/1};
  ASSERT_OK_AND_ASSIGN(std::vector<Latency> t, FastestInTurns(3, 2, std::ref(m)));
  EXPECT_EQ(m.calls, (std::vector<int>{0, 1, 2, 0, 1, 2}));
  ASSERT_EQ(t.size(), 3u);
  // Model 0: calls 0 and 3 (drift 1.0, 1.3): the first. Model 1: call 1 was
  // busy (0.5 * 1.1 * 3), call 4 not (0.5 * 1.4): the second. Model 2: calls
  // 2 and 5: the first.
  EXPECT_DOUBLE_EQ(t[0].b1_ms, 1.0 * 1.0);
  EXPECT_DOUBLE_EQ(t[1].b1_ms, 0.5 * 1.4);
  EXPECT_DOUBLE_EQ(t[2].b1_ms, 2.0 * 1.2);
  EXPECT_DOUBLE_EQ(t[1].bn_ms, 10 * 0.5 * 1.4);
  // The ratio the busy call would have faked (model 1 slower than model 0)
  // does not survive.
  EXPECT_LT(t[1].b1_ms, t[0].b1_ms);
}

TEST(FastestInTurnsTest, BatchSizesKeepTheirOwnFastestRound) {
  int call = 0;
  // Round 0: b1 fast, bN slow; round 1 the other way round.
  auto time_one = [&](int) -> absl::StatusOr<Latency> { return call++ == 0 ? Latency{1.0, 20.0} : Latency{2.0, 10.0}; };
  ASSERT_OK_AND_ASSIGN(std::vector<Latency> t, FastestInTurns(1, 2, time_one));
  ASSERT_EQ(t.size(), 1u);
  EXPECT_DOUBLE_EQ(t[0].b1_ms, 1.0);
  EXPECT_DOUBLE_EQ(t[0].bn_ms, 10.0);
}

TEST(FastestInTurnsTest, TheFirstErrorStopsTheTiming) {
  std::vector<int> calls;
  auto time_one = [&](int i) -> absl::StatusOr<Latency> {
    calls.push_back(i);
    if (i == 1) return absl::InternalError("model 1 does not run");
    return Latency{1, 1};
  };
  EXPECT_THAT(FastestInTurns(3, 2, time_one), StatusIs(absl::StatusCode::kInternal, "model 1 does not run"));
  EXPECT_EQ(calls, (std::vector<int>{0, 1}));
}

TEST(FastestInTurnsTest, BadCountsAreErrorsNamingTheValue) {
  auto never = [](int) -> absl::StatusOr<Latency> { return absl::InternalError("called"); };
  EXPECT_THAT(FastestInTurns(2, 0, never),
              StatusIs(absl::StatusCode::kInvalidArgument, ::testing::HasSubstr("rounds is 0")));
  EXPECT_THAT(FastestInTurns(-1, 2, never),
              StatusIs(absl::StatusCode::kInvalidArgument, ::testing::HasSubstr("n is -1")));
  ASSERT_OK_AND_ASSIGN(std::vector<Latency> none, FastestInTurns(0, 2, never));
  EXPECT_TRUE(none.empty());
}

}  // namespace
}  // namespace slimfit
