// File: search/allocation.h
//
// How the search shares a MAC reduction out over the prunable dependency
// groups (pure functions; the engine measures the curves and the MACs).
// Each group has a sensitivity curve — the metric drop when it alone is
// cut at a few ratios, no fine-tuning — and one knob t allocates ratios to
// every group at once:
//   t in [0, 1]:  t x the largest ratio each group loses nothing at;
//   t = 1 + tau:  each group's largest ratio whose drop stays <= tau.
// AllocateForMacs bisects t until the model has at most the goal's MACs.
//
//   std::vector<PruneGroup> groups = ...;   // curves from the sensitivity pass
//   ASSIGN_OR_RETURN(auto ratios, AllocateForMacs(groups, reference_macs / 4, macs_of));
//
// Latency-aware (objective LATENCY): each group's tolerance is scaled by a
// weight, the latency its cut saves against the groups' mean (HALP's
// per-layer latency table in one number per group, measured on this machine
// beside the reference): at t = 1 + tau a group gets its largest ratio whose
// drop stays <= tau x weight, so channels go where the latency is.
//
// A group may also be a whole residual block (graph/depth.h), keyed
// "depth:<block path>": its ratio is 1 (removed) or 0, and the knob removes
// it once the tolerance reaches its measured drop (t = 1 + tau with tau >=
// drop; at t in [0, 1] only a block that costs nothing, at t = 1).
//
// Contract: channel ratios are in [0, 1), floored to 0.01; a curve is made
// monotone (a ratio costs at least what any smaller one cost; a measured
// gain counts as no drop). RatiosKey is canonical (sorted by path, zero
// ratios left out), so equal allocations key equal records.
#ifndef SLIMFIT_SEARCH_ALLOCATION_H_
#define SLIMFIT_SEARCH_ALLOCATION_H_

#include <cstdint>
#include <functional>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"

namespace slimfit {

// A prunable dependency group, named by its first selected layer.
struct PruneGroup {
  std::string path;  // a block's: DepthKey(block path)
  int64_t channels = 0;
  // (ratio, drop) points from the sensitivity analysis, sorted by ratio;
  // (0, 0) first. A block's: (0, 0), (1, its drop when removed).
  std::vector<std::pair<double, double>> curve;
  bool whole = false;  // a residual block: removed whole or kept
  // The tolerance's multiplier at t > 1 (ToleranceWeights); 1: unweighted.
  double weight = 1;
};

// "depth:<block path>": how a removed block appears among ratios (value 1).
std::string DepthKey(const std::string& block_path);
// Whether `path` is a DepthKey, and the block path it names.
bool IsDepthKey(const std::string& path);
std::string BlockOfDepthKey(const std::string& path);

using Ratios = std::map<std::string, double>;  // group path → ratio of its channels removed

// "path=0.25,path2=0.50" (sorted, zero ratios left out), or "none".
std::string RatiosKey(const Ratios& ratios);

// The largest ratio whose drop stays <= tau on the piecewise-linear curve.
double RatioAtTolerance(const std::vector<std::pair<double, double>>& curve, double tau);

// The share of the reference's latency a cut saves per unit of ratio, from
// one timed point: (1 - latency_vs_reference) / ratio, at least 0 (a cut
// timed slower saved nothing). A block's ratio is 1.
double LatencySavingSlope(double ratio, double latency_vs_reference);

// Tolerance weights from each group's saving slope: saving / the mean of
// all groups' savings, clamped to [kMinToleranceWeight, kMaxToleranceWeight]
// (a timing's noise neither shuts a group out nor lets one take every
// cut). All 1 when the savings are empty or none is positive.
inline constexpr double kMinToleranceWeight = 0.25;
inline constexpr double kMaxToleranceWeight = 4.0;
std::vector<double> ToleranceWeights(const std::vector<double>& savings);

// Every group's ratio at knob t (see above).
Ratios AllocateAt(const std::vector<PruneGroup>& groups, double t);

// The least pruning (smallest t, bisected) whose MACs are <= goal_macs, or,
// when even the most the curves allow has more, that most. `macs_of`
// measures an allocation (called about 16 times at most).
using MacsOf = std::function<absl::StatusOr<int64_t>(const Ratios&)>;
absl::StatusOr<Ratios> AllocateForMacs(const std::vector<PruneGroup>& groups, double goal_macs, const MacsOf& macs_of);

// `target` (ratios of the reference's channels) as ratios of what `base`
// (an allocation already applied) kept: cutting the pruned model by these
// keeps exactly the channels cutting the reference by `target` keeps
// (pruners remove round(ratio x channels)); at most max_ratio, and 0 where
// the target keeps as many as the base or more. Blocks (DepthKey entries)
// pass through as the target has them (removing a block already gone is a
// no-op for the engine's cut).
Ratios RatiosOfWhatIsLeft(const Ratios& target, const Ratios& base, const std::vector<PruneGroup>& groups,
                          double max_ratio);

}  // namespace slimfit

#endif  // SLIMFIT_SEARCH_ALLOCATION_H_
