// The conformance suite every registered search strategy passes (run for
// each name in StrategyRegistry(), as tensorstore runs one driver suite over
// every driver): on a LeNet-5 slice of Fashion-MNIST that compresses within
// delta 2,
//   - the result is a pruned model, within delta on the scoring split
//     (re-measured from model.pt with plain LibTorch) and better than the
//     reference on the objective;
//   - a budget too small for any candidate returns the reference with no
//     candidate or final made;
//   - the same call again reuses every record (no new work) and chooses the
//     same model;
//   - an interrupt as the search starts writes the best so far and says
//     how to resume.
#include <signal.h>

#include <string>

#include "absl/strings/match.h"
#include "absl/strings/str_join.h"
#include "common/files.h"
#include "common/interrupt.h"
#include "common/status_matchers.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "search/decision.h"
#include "search/engine_testing.h"
#include "search/strategy.h"

namespace slimfit {
namespace {

using ::slimfit::testing::BuildEngine;
using ::slimfit::testing::LenetSlice;
using ::slimfit::testing::MetricOfFile;
using ::testing::HasSubstr;

class StrategyConformanceTest : public ::testing::TestWithParam<std::string> {
 protected:
  Experiment Make(const std::string& run, const std::string& compression) {
    Experiment e = LenetSlice(GetParam() + "_" + run, compression);
    e.mutable_compression()->set_strategy(GetParam());
    return e;
  }
};

TEST_P(StrategyConformanceTest, ReturnsASmallerModelWithinDeltaAndResumesWithoutNewWork) {
  const std::string compression = "delta: 2.0 level: 1 objective: MACS candidate_epochs: 1 final_epochs: 2";
  auto b = BuildEngine(Make("within", compression));
  ASSERT_NE(b->engine, nullptr);
  ASSERT_OK_AND_ASSIGN(EngineResult r, b->engine->Run());
  ASSERT_FALSE(r.returned_reference) << r.why << "\n" << absl::StrJoin(b->lines, "\n");
  EXPECT_LT(r.chosen.macs(), r.reference.macs());
  const std::string dir = b->experiment.output_dir();
  const double measured = MetricOfFile(b->experiment, dir + "/model.pt");
  EXPECT_NEAR(measured, r.chosen.eval_metric(), 1e-6);
  EXPECT_LE(MetricDrop(r.reference.eval_metric(), measured, true), 2.0 + 1e-9);
  EXPECT_TRUE(r.chosen.phase() == "candidate" || r.chosen.phase() == "final") << r.chosen.phase();

  auto again = BuildEngine(Make("within", compression));
  ASSERT_NE(again->engine, nullptr);
  ASSERT_OK_AND_ASSIGN(EngineResult r2, again->engine->Run());
  EXPECT_EQ(r2.chosen.key(), r.chosen.key());
  EXPECT_EQ(r2.candidates.size(), r.candidates.size()) << "a resumed run makes no new record";
  EXPECT_GT(r2.reused, 0);
}

TEST_P(StrategyConformanceTest, HonoursABudgetTooSmallForAnyCandidate) {
  auto b = BuildEngine(Make("budget", "delta: 2.0 time_budget_minutes: 0.0001"));
  ASSERT_NE(b->engine, nullptr);
  ASSERT_OK_AND_ASSIGN(EngineResult r, b->engine->Run());
  EXPECT_TRUE(r.returned_reference);
  int made = 0;
  for (const CandidateRecord& c : r.candidates) made += c.phase() == "candidate" || c.phase() == "final";
  EXPECT_EQ(made, 0);
  EXPECT_OK(RegularFileSize(b->experiment.output_dir() + "/model.pt"));
}

TEST_P(StrategyConformanceTest, AnInterruptWritesTheBestSoFar) {
  auto b = BuildEngine(Make("interrupt", "delta: 2.0 candidate_epochs: 1 final_epochs: 1"));
  ASSERT_NE(b->engine, nullptr);
  b->engine->set_progress([](const std::string& l) {
    if (absl::StartsWith(l, "[search]")) SetInterruptForTesting(SIGINT);
  });
  absl::StatusOr<EngineResult> r = b->engine->Run();
  SetInterruptForTesting(0);
  ASSERT_OK(r);
  EXPECT_TRUE(r->interrupted);
  EXPECT_THAT(r->why, HasSubstr("run the same command again to resume"));
  for (const CandidateRecord& c : r->candidates) EXPECT_NE(c.phase(), "final") << c.key();
  EXPECT_OK(RegularFileSize(b->experiment.output_dir() + "/model.pt"));
  EXPECT_OK(RegularFileSize(b->experiment.output_dir() + "/report.json"));
}

INSTANTIATE_TEST_SUITE_P(EveryStrategy, StrategyConformanceTest,
                         ::testing::ValuesIn(StrategyRegistry().Names()),
                         [](const ::testing::TestParamInfo<std::string>& info) { return info.param; });

// The suite above runs once per registered strategy: it must not run on none.
TEST(StrategyRegistryTest, HasTheDefaultStrategy) {
  EXPECT_TRUE(StrategyRegistry().Contains("bisection"));
  EXPECT_GE(StrategyRegistry().Names().size(), 1u);
}

}  // namespace
}  // namespace slimfit
