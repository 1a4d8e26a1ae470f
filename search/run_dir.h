// File: search/run_dir.h
//
// Whose records a run directory holds. A run directory's records are
// metrics and models measured under one experiment's model, data, forward
// pass, loss, evaluation, trainer, seed and quantization settings; used for
// another they would be silently wrong, so a run refuses such a directory
// before any work.
//
//   const std::string fp = ModelFingerprint(model);
//   RETURN_IF_ERROR(CheckSameWork(run_dir, experiment, fp));   // then write both
//
// Contract: CheckSameWork reads <run_dir>/state/experiment.pbtxt and
// state/model.fingerprint when they exist (a new directory passes) and
// returns FailedPrecondition naming every changed part and what to do.
// delta, level, deepsearch, objective, pruners, epochs, strategy, tuning and
// the time budget may change between runs (their records are keyed apart
// or stay valid).
#ifndef SLIMFIT_SEARCH_RUN_DIR_H_
#define SLIMFIT_SEARCH_RUN_DIR_H_

#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "model/model.h"
#include "search/experiment.pb.h"

namespace slimfit {

// FNV-1a (common/hash.h) over every parameter's and buffer's name and bytes,
// as 16 hex digits.
std::string ModelFingerprint(const Model& model);

absl::Status CheckSameWork(const std::string& run_dir, const Experiment& now, const std::string& fingerprint);

// Where a run directory's time went, over every invocation (resumes add up).
struct RunTimes {
  std::vector<std::pair<std::string, double>> phases;  // in first-seen order
  double seconds = 0;                                   // wall time in all
  int invocations = 0;
};

// Adds one invocation (its phases' seconds and its wall time) to what
// <run_dir>/state/time.txt holds, writes the sum back (atomically) and
// returns it. A missing file is a first invocation; unreadable lines are
// ignored (the figures are reported, never used to decide).
absl::StatusOr<RunTimes> AddRunTimes(const std::string& run_dir,
                                     const std::vector<std::pair<std::string, double>>& phases, double seconds);

}  // namespace slimfit

#endif  // SLIMFIT_SEARCH_RUN_DIR_H_
