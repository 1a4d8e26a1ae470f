// File: search/budget.h
//
// The time arithmetic of an anytime search, as pure functions (unit-tested
// without training): how long a training epoch will take before one has
// been timed, and how many epochs of a fine-tune fit in what is left.
//
//   const double prior = EpochSecondsPrior(eval_seconds, train_samples, eval_samples);
//   const int epochs = EpochsThatFit(final_epochs, seconds_left, epoch_seconds);
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

// "m:ss", or "h:mm:ss" from an hour on (rounded to the second).
std::string Hms(double seconds);

}  // namespace slimfit

#endif  // SLIMFIT_SEARCH_BUDGET_H_
