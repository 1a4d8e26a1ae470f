// File: search/in_turns.h
//
// Latencies that are compared must be timed side by side: on a shared VM
// the same model's latency moves up to 2x between minutes, so a ratio of
// two timings taken far apart measures the machine as much as the models.
// FastestInTurns times `n` models in turns (0, 1, ..., n-1, 0, 1, ...) for
// `rounds` rounds and keeps each model's fastest round per batch size: a
// busy stretch falls on every model alike, and the fastest round is the
// one least disturbed.
//
//   ASSIGN_OR_RETURN(std::vector<Latency> t,
//                    FastestInTurns(3, /*rounds=*/3, [&](int i) { return TimeOne(*models[i]); }));
//
// Contract: `time_one(i)` is called exactly `rounds` * `n` times, in turns;
// its first error is returned as is. n >= 0 and rounds >= 1, else
// InvalidArgument naming the bad value.
#ifndef SLIMFIT_SEARCH_IN_TURNS_H_
#define SLIMFIT_SEARCH_IN_TURNS_H_

#include <functional>
#include <vector>

#include "absl/status/statusor.h"

namespace slimfit {

struct Latency {
  double b1_ms = 0;  // batch 1
  double bn_ms = 0;  // batch N (the engine's kLatencyBatch)
};

absl::StatusOr<std::vector<Latency>> FastestInTurns(int n, int rounds,
                                                    const std::function<absl::StatusOr<Latency>(int)>& time_one);

}  // namespace slimfit

#endif  // SLIMFIT_SEARCH_IN_TURNS_H_
