// File: search/strategy.h
//
// SearchStrategy: how the engine spends its budget between the sensitivity
// analysis and level 2 — which pruned candidates to score, which to fine-tune
// to the end — chosen by name (`compression.strategy`) from a registry, as
// pruners are. The engine does the rest (reference, sensitivity, int8, the
// decision, the run directory) and gives a strategy a SearchContext: every
// candidate it asks for is cut, fine-tuned, measured and recorded by the
// engine (so resume, the time budget, interrupts and the ranks of a
// distributed run work for every strategy the same way).
//
//   class MyStrategy : public SearchStrategy {
//     absl::StatusOr<std::optional<CandidateRecord>> Search(SearchContext& ctx) override;
//   };
//   const Registration<StrategyFactory> kMine(StrategyRegistry(), "mine",
//                                             [] { return std::make_unique<MyStrategy>(); });
//
// Contract for a strategy (search/strategy_conformance.h tests each one):
//   - returns a record the engine made (a "candidate" or "final", whose
//     model is stored) or none; the engine re-checks it against delta and
//     the reference (search/decision.h), so a strategy cannot return a model
//     outside delta, but it should not try;
//   - asks ctx.Fits before work it starts, and stops (returning the best so
//     far) when it says no; treats Cancelled from the context as "stop now,
//     return the best so far" and DataLoss (a diverged fine-tune) as "skip
//     this one" (ctx.SkipFailed reports it);
//   - is deterministic given the records (a resumed run takes the same path
//     and so reuses every record);
//   - in a distributed run, every rank runs the same strategy on the same
//     records; ctx.Prefetch lets it spread candidates it will ask for over
//     the ranks (a no-op in one process).
#ifndef SLIMFIT_SEARCH_STRATEGY_H_
#define SLIMFIT_SEARCH_STRATEGY_H_

#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "common/registry.h"
#include "search/experiment.pb.h"
#include "search/search_state.pb.h"

namespace slimfit {

class SearchContext {
 public:
  virtual ~SearchContext() = default;

  // The experiment, defaults filled in (compression.*: delta, pruners,
  // candidate_epochs, final_epochs, tuning).
  virtual const Experiment& experiment() const = 0;
  virtual const CandidateRecord& reference() const = 0;
  // How much worse `metric` is than the reference's (negative: better).
  virtual double DropOf(double metric) const = 0;
  // The record on the objective; lower is better (search/decision.h).
  virtual double Objective(const CandidateRecord& r) const = 0;

  // The largest MAC reduction the channel groups' sensitivity curves allow
  // (>= 1; residual blocks do not raise it).
  virtual absl::StatusOr<double> MaxMacFactor() = 0;
  // tune_lr: finds the lr every later fine-tune uses, from short trials of
  // `pruner`'s cut at `factor` (no-op when compression.tune_lr is off).
  virtual absl::Status TuneLr(const std::string& pruner, double factor) = 0;
  // The reference cut by `pruner` to about 1/factor of its MACs (per-group
  // ratios from the sensitivity curves), fine-tuned candidate_epochs,
  // scored and timed. Recorded (phase "candidate"); reused when recorded.
  virtual absl::StatusOr<CandidateRecord> Candidate(const std::string& pruner, double factor) = 0;
  // `base` (a recorded candidate) cut further, to about 1/factor of the
  // reference's MACs, and fine-tuned candidate_epochs from where it was:
  // training accumulates along a chain (gradual pruning). Recorded like
  // Candidate; its epochs count the whole chain's.
  virtual absl::StatusOr<CandidateRecord> CandidateFrom(const CandidateRecord& base, const std::string& pruner,
                                                        double factor) = 0;
  // The latencies of `records` (recorded candidates or finals) measured
  // again, frozen, side by side: in turns, each its fastest of a few rounds.
  // A latency measured when a candidate was made depends on what the
  // machine did then (on a busy 2-core machine it varied by 1.7x); timed in
  // turns, the drift falls on every record alike. Only the latencies
  // change. Each re-timing is recorded (phase "retimed") and reused on
  // resume, so a resumed run ranks the same. The default leaves them as
  // they are.
  virtual absl::Status TimeAgainInTurns(std::vector<CandidateRecord>& records) { return absl::OkStatus(); }
  // Distributed runs: makes these candidates now, spread over the ranks, so
  // that Candidate finds them made. A no-op in one process.
  virtual absl::Status Prefetch(const std::vector<std::pair<std::string, double>>& candidates) = 0;
  // `epochs` more epochs of fine-tuning of a recorded candidate (data-
  // parallel on several ranks), every epoch scored, the best kept: phase
  // "final". Reused when recorded; resumes after its last finished epoch.
  virtual absl::StatusOr<CandidateRecord> Final(const CandidateRecord& candidate, int epochs) = 0;

  // Whether `seconds` more work fits in the time budget (false once
  // interrupted); agreed by every rank.
  virtual absl::StatusOr<bool> Fits(double seconds) = 0;
  // Seconds left in the budget (huge without one); agreed by every rank.
  virtual absl::StatusOr<double> SecondsLeft() = 0;
  // The last measured candidate fine-tuning epoch's seconds (an estimate
  // before one). Candidates all train the same (seed, epoch) batches, which
  // distillation's teacher cache makes cheaper after the first.
  virtual double EpochSeconds() const = 0;
  // A final fine-tune epoch's seconds: over batches not seen before, with
  // an evaluation; the slowest epoch measured so far (at least EpochSeconds
  // and an evaluation of eval_split).
  virtual double FinalEpochSeconds() const { return EpochSeconds(); }
  // A final fine-tune epoch of `candidate` (a recorded candidate or
  // final): from its own timed fine-tuning epoch when it has one (a cut
  // 5x smaller trains faster than the first, largest candidate), else
  // FinalEpochSeconds.
  virtual double FinalEpochSecondsOf(const CandidateRecord& candidate) const { return FinalEpochSeconds(); }
  // Why Fits said no.
  virtual std::string StopReason() const = 0;
  // Reports a candidate or final that failed (diverged); the search goes on.
  virtual absl::Status SkipFailed(const std::string& what, const absl::Status& status) = 0;

  // Progress: a line, and named phases (timed in the report).
  virtual void Say(const std::string& line) = 0;
  virtual void Phase(const std::string& name, const std::string& detail) = 0;
  virtual void EndPhase() = 0;
  // ", distilled from the reference (alpha 0.5, T 4)" or empty.
  virtual std::string TrainingNote() const = 0;
  virtual int world_size() const = 0;
};

class SearchStrategy {
 public:
  virtual ~SearchStrategy() = default;
  // The best pruned fp32 record within delta it found, or none.
  virtual absl::StatusOr<std::optional<CandidateRecord>> Search(SearchContext& ctx) = 0;
};

using StrategyFactory = std::function<std::unique_ptr<SearchStrategy>()>;
Registry<StrategyFactory>& StrategyRegistry();

}  // namespace slimfit

#endif  // SLIMFIT_SEARCH_STRATEGY_H_
