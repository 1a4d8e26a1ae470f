// File: search/strategies/simulated_context.h (testonly)
//
// A SearchContext without a model or training, for strategy tests: each
// candidate (or chain link) and each final epoch costs kEpochSeconds of a
// simulated clock, a candidate's drop grows with its MAC factor and each
// final epoch recovers a fixed amount, so a test says exactly which
// candidates and finals a strategy asks for under a budget.
#ifndef SLIMFIT_SEARCH_STRATEGIES_SIMULATED_CONTEXT_H_
#define SLIMFIT_SEARCH_STRATEGIES_SIMULATED_CONTEXT_H_

#include <cmath>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/status_matchers.h"
#include "gtest/gtest.h"
#include "search/strategy.h"

namespace slimfit {
namespace testing_strategies {

constexpr double kReference = 90;
constexpr double kEpochSeconds = 60;
constexpr double kMaxMacFactor = 16;  // what the sensitivity curves allow
constexpr int64_t kReferenceMacs = 1000000;

class SimulatedContext : public SearchContext {
 public:
  // A candidate at MAC factor f scores `drop_per_factor` x (f - 1) below the
  // reference after its fine-tune; a final epoch recovers `recovery_per_epoch`.
  SimulatedContext(double budget_seconds, double drop_per_factor, double recovery_per_epoch)
      : budget_(budget_seconds), drop_per_factor_(drop_per_factor), recovery_per_epoch_(recovery_per_epoch) {
    CompressionConfig& c = *experiment_.mutable_compression();
    c.set_delta(1);
    c.set_candidate_epochs(1);
    c.set_final_epochs(5);
    c.add_pruners("l1_filter");
    c.mutable_tuning()->set_probes(4);
    c.mutable_tuning()->set_promising_slack(1);
    c.mutable_tuning()->set_max_finals(2);
    reference_.set_eval_metric(kReference);
    reference_.set_macs(kReferenceMacs);
  }

  const Experiment& experiment() const override { return experiment_; }
  CompressionConfig& compression() { return *experiment_.mutable_compression(); }
  const CandidateRecord& reference() const override { return reference_; }
  double DropOf(double metric) const override { return kReference - metric; }
  double Objective(const CandidateRecord& r) const override { return static_cast<double>(r.macs()); }
  absl::StatusOr<double> MaxMacFactor() override { return kMaxMacFactor; }
  absl::Status TuneLr(const std::string&, double) override { return absl::OkStatus(); }

  absl::StatusOr<CandidateRecord> Candidate(const std::string& pruner, double factor) override {
    return Link(pruner, factor, "candidate|");
  }
  // A link of a chain scores as a candidate at its factor would.
  absl::StatusOr<CandidateRecord> CandidateFrom(const CandidateRecord& base, const std::string& pruner,
                                                double factor) override {
    return Link(pruner, factor, absl::StrCat("candidate|from:", base.key(), "|"));
  }
  absl::StatusOr<CandidateRecord> Link(const std::string& pruner, double factor, const std::string& key) {
    clock_ += kEpochSeconds;
    candidates.push_back(factor);
    const double reached = reach(factor);
    CandidateRecord r;
    r.set_key(absl::StrCat(key, pruner, "|", factor));
    r.set_phase("candidate");
    r.set_description(absl::StrCat(pruner, " at ", factor));
    r.set_eval_metric(kReference - drop_per_factor_ * (reached - 1));
    r.set_qualifies(DropOf(r.eval_metric()) <= 1);
    r.set_macs(static_cast<int64_t>(std::llround(reference_.macs() / reached)));
    r.set_epoch_seconds(final_epoch_seconds);
    r.set_params(r.macs());
    return r;
  }
  absl::Status Prefetch(const std::vector<std::pair<std::string, double>>&) override { return absl::OkStatus(); }
  absl::StatusOr<CandidateRecord> Final(const CandidateRecord& c, int epochs) override {
    clock_ += epochs * FinalEpochSecondsOf(c);
    final_epochs.push_back(epochs);
    CandidateRecord r = c;
    r.set_key(absl::StrCat("final|", c.key()));
    r.set_phase("final");
    r.set_eval_metric(c.eval_metric() + recovery_per_epoch_ * epochs);
    r.set_qualifies(DropOf(r.eval_metric()) <= 1);
    return r;
  }

  absl::StatusOr<bool> Fits(double seconds) override { return clock_ + seconds <= budget_; }
  absl::StatusOr<double> SecondsLeft() override { return budget_ - clock_; }
  double EpochSeconds() const override { return kEpochSeconds; }
  double FinalEpochSecondsOf(const CandidateRecord& c) const override {
    return c.epoch_seconds() > 0 ? c.epoch_seconds() : kEpochSeconds;
  }
  std::string StopReason() const override { return "time budget"; }
  absl::Status SkipFailed(const std::string&, const absl::Status& status) override { return status; }
  void Say(const std::string& line) override { lines.push_back(line); }
  void Phase(const std::string&, const std::string&) override {}
  void EndPhase() override {}
  std::string TrainingNote() const override { return ""; }
  int world_size() const override { return 1; }

  double elapsed() const { return clock_; }
  std::string log() const { return absl::StrJoin(lines, "\n"); }

  // The MAC reduction a cut aimed at `factor` reaches (the engine's widths
  // step can move it); exact by default.
  std::function<double(double)> reach = [](double factor) { return factor; };
  // A final epoch of a candidate's model (its record's epoch_seconds); 0:
  // kEpochSeconds, the same as a candidate's.
  double final_epoch_seconds = 0;
  std::vector<double> candidates;  // the factors asked for, in order
  std::vector<int> final_epochs;   // each final's epochs, in order
  std::vector<std::string> lines;

 private:
  Experiment experiment_;
  CandidateRecord reference_;
  double budget_;
  double drop_per_factor_;
  double recovery_per_epoch_;
  double clock_ = 0;
};

// The strategy registered as `name`, run on `ctx`.
inline absl::StatusOr<std::optional<CandidateRecord>> RunStrategy(const std::string& name, SearchContext& ctx) {
  absl::StatusOr<StrategyFactory> make = StrategyRegistry().Get(name);
  if (!make.ok()) return make.status();
  return (*make)()->Search(ctx);
}

// The anytime property every strategy keeps: whatever the budget (2 to 14
// simulated minutes: from one candidate and one final epoch to several
// candidates and two full finals), the simulated time stays within it and
// the result is a pruned model that qualifies (a smaller gain, never the
// reference back). `setup` adjusts each context before the run.
inline void ExpectEveryBudgetKeptWithAQualifyingModel(const std::string& strategy,
                                                      const std::function<void(SimulatedContext&)>& setup) {
  for (int minutes = 2; minutes <= 14; ++minutes) {
    SCOPED_TRACE(::testing::Message() << strategy << ", " << minutes << " simulated minutes");
    SimulatedContext ctx(minutes * kEpochSeconds, /*drop_per_factor=*/0.5, /*recovery_per_epoch=*/0.3);
    // The budget is the experiment's too, so whatever a strategy does only
    // with one (the finals' polish, gradual's look-ahead) is kept to it.
    ctx.compression().set_time_budget_minutes(minutes * kEpochSeconds / 60);
    setup(ctx);
    ASSERT_OK_AND_ASSIGN(std::optional<CandidateRecord> result, RunStrategy(strategy, ctx));
    EXPECT_LE(ctx.elapsed(), minutes * kEpochSeconds) << ctx.log();
    EXPECT_GE(ctx.candidates.size(), 1u);
    ASSERT_TRUE(result.has_value()) << ctx.log();
    EXPECT_TRUE(result->qualifies());
    EXPECT_LT(result->macs(), kReferenceMacs);
  }
}

}  // namespace testing_strategies
}  // namespace slimfit

#endif  // SLIMFIT_SEARCH_STRATEGIES_SIMULATED_CONTEXT_H_
