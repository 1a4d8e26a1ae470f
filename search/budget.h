// File: search/budget.h
//
// The time arithmetic of an anytime search, as pure functions (unit-tested
// without training): how long a training epoch will take before one has
// been timed, how many epochs of a fine-tune fit in what is left, and how
// much of the eval split the sensitivity pass can afford to score on.
//
//   const double prior = EpochSecondsPrior(eval_seconds, train_samples, eval_samples);
//   const int epochs = EpochsThatFit(final_epochs, seconds_left, epoch_seconds);
//   const SensitivityScoring s = ScaleSensitivity(points, seconds, cut_s, eval_s, bn_s, n, 20);
//
// Contract: total functions; no I/O, no clock (callers pass the times).
#ifndef SLIMFIT_SEARCH_BUDGET_H_
#define SLIMFIT_SEARCH_BUDGET_H_

#include <cstdint>
#include <string>

namespace slimfit {

// A training epoch's seconds estimated from one timed evaluation pass:
// forward + backward cost about three forward passes, scaled from the
// eval split's samples to the train split's. At least 1 s.
double EpochSecondsPrior(double eval_seconds, int64_t train_samples, int64_t eval_samples);

// The epochs of a `wanted`-epoch fine-tune that fit in `seconds_left` at
// `epoch_seconds` each: `wanted` when they all fit, fewer when not, 0 when
// not even one does. A negative or zero `wanted` gives 0.
int EpochsThatFit(int wanted, double seconds_left, double epoch_seconds);

// How each point of the sensitivity pass is scored: batch norm re-estimated
// on `bn_batches` train batches, then the metric on `samples` of the eval
// split (all of them, or a seeded random sample).
struct SensitivityScoring {
  int64_t samples = 0;
  int bn_batches = 0;
};

// Batch-norm batches for scoring on `samples` of `eval_samples`: the full
// `bn_batches` on the whole split, scaled down alike on a sample, at least
// kMinSensitivityBnBatches (never more than `bn_batches`).
inline constexpr int kMinSensitivityBnBatches = 4;
int SensitivityBnBatches(int64_t samples, int64_t eval_samples, int bn_batches);

// The scoring that lets `points` sensitivity points fit in `seconds`, when
// one point costs `fixed_seconds` (what it costs whatever the scoring:
// cutting, counting, loaders starting) + `bn_seconds` (re-estimating batch
// norm on `bn_batches`) +
// `eval_seconds` (one pass over the whole split's `eval_samples`): the
// whole split when they fit (or seconds <= 0: no budget); otherwise batch
// norm and the samples scaled down alike to what fits (batch norm at least
// kMinSensitivityBnBatches), at least min(kMinSensitivitySamples,
// eval_samples) samples. Below that minimum the pass does not cover every
// point; it stops where its time ends, as it would have.
inline constexpr int64_t kMinSensitivitySamples = 256;
SensitivityScoring ScaleSensitivity(int points, double seconds, double fixed_seconds, double eval_seconds,
                                    double bn_seconds, int64_t eval_samples, int bn_batches);

// "m:ss", or "h:mm:ss" from an hour on (rounded to the second).
std::string Hms(double seconds);

}  // namespace slimfit

#endif  // SLIMFIT_SEARCH_BUDGET_H_
