// File: pruners/plan.h
//
// From a PruningConfig, a DependencyGraph and channel scores to a
// PruningPlan: which layers the config selects, how many channels each
// dependency group loses, and which.
//
// Selection: a space (a conv / linear layer's output channels) is selected
// by the first non-exclude `layers` entry it matches (op type and RE2 module
// path), which also gives its ratio (else `ratio`) and max_ratio (else
// `max_ratio`, default 0.9); with no entries, every conv and linear layer is
// selected at `ratio`. A group is pruned when some member is selected and
// none is excluded; its ratio is its selected members' largest, capped by
// their smallest max_ratio. Members a config did not select are pruned with
// their group (they share the channels) and reported as such.
//
// Allocation: units (channels removed together) are ranked by the mean of
// their members' scores (each divided by its space's mean unless the pruner
// says scores compare across layers). Per layer: a group loses
// round(ratio × units) of its lowest units; with `global`, the lowest units
// of all pruned groups together go until ratio × (their units) are removed.
// Always: blocked units stay, every space keeps >= min_channels (default 1,
// never zero), no group loses more than its max_ratio, and with round_to the
// kept count of each group's first space is rounded to a multiple of it.
//
//   ASSIGN_OR_RETURN(PlanResult r, MakePlan(graph, config, &scores));
//   std::cout << FormatPlan(r);
#ifndef SLIMFIT_PRUNERS_PLAN_H_
#define SLIMFIT_PRUNERS_PLAN_H_

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "graph/dependency_graph.h"
#include "graph/surgery.h"
#include "pruners/pruner.h"
#include "pruners/pruner.pb.h"

namespace slimfit {

struct LayerPlan {
  std::string module_path;
  std::string op_type;
  int group = -1;
  int64_t channels = 0;
  int64_t kept = 0;
  double ratio_asked = 0;  // 0 when not selected
  bool selected = false;
  std::string note;  // "excluded", "with its group", "kept: reaches the model output", ...
};

struct PlanResult {
  PruningPlan plan;
  std::vector<LayerPlan> layers;  // one per space, in graph order
};

// Checks every field of `config` (ranges, regexes, the schedule) with
// errors "pruning.<field>: ..."; `model`-independent.
absl::Status ValidatePruningConfig(const PruningConfig& config);

// `scores` null: a dry run that ranks channels by index (the counts are
// what a real run gives; which channels go is decided by a pruner).
// `normalize`: divide scores by their space's mean (Pruner::normalize_per_space).
// `ratio_map`, when given, maps every ratio (schedules prune in steps:
// iterative r → 1 - (1 - r)^(1/steps), AGP r → r · (1 - (1 - t/T)³)).
absl::StatusOr<PlanResult> MakePlan(const DependencyGraph& graph, const PruningConfig& config,
                                    const ChannelScores* scores, bool normalize = true,
                                    const std::function<double(double)>& ratio_map = nullptr);

// Aligned table: layer, type, group, channels before → after, ratio, note.
std::string FormatPlan(const PlanResult& result);

}  // namespace slimfit

#endif  // SLIMFIT_PRUNERS_PLAN_H_
