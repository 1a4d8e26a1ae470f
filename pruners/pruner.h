// File: pruners/pruner.h
//
// Pruner: what decides which channels (or weights) matter. Each pruner is a
// registered implementation selected by PruningConfig's oneof name
// ("l1_filter", "fpgm", "taylor", ...); the planning (pruners/plan.h) and
// the schedules (pruners/prune.h) are shared by all of them.
//
// A structured pruner scores every channel of every space of a
// DependencyGraph (higher = more important); channels removed together
// (units) are ranked by their members' scores, each normalised by its
// space's mean. An unstructured pruner (level) scores weights element-wise.
//
//   ASSIGN_OR_RETURN(std::unique_ptr<Pruner> p, MakePruner(config));
//   ASSIGN_OR_RETURN(ChannelScores s, p->ScoreChannels(model, {&graph, ...}));
//
// Contract: scores are finite and >= 0, one vector per space sized as the
// space; pruners that need data (needs_data()) fail with FailedPrecondition
// naming themselves when the context has no loader.
#ifndef SLIMFIT_PRUNERS_PRUNER_H_
#define SLIMFIT_PRUNERS_PRUNER_H_

#include <ATen/core/Tensor.h>

#include <functional>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "common/registry.h"
#include "data/data_loader.h"
#include "forward_pass/forward_pass.h"
#include "graph/dependency_graph.h"
#include "losses/loss_function.h"
#include "model/model.h"
#include "pruners/pruner.pb.h"

namespace slimfit {

// [space][channel] importance.
using ChannelScores = std::vector<std::vector<double>>;

struct PrunerContext {
  const DependencyGraph* graph = nullptr;  // required for structured pruners
  ForwardPass* forward_pass = nullptr;     // data-driven pruners
  LossFunction* loss = nullptr;            // taylor
  DataLoader* data = nullptr;              // training batches (data-driven pruners)
};

class Pruner {
 public:
  explicit Pruner(std::string name) : name_(std::move(name)) {}
  virtual ~Pruner() = default;

  const std::string& name() const { return name_; }
  virtual bool structured() const { return true; }
  virtual bool needs_data() const { return false; }
  // Whether channel scores are divided by their space's mean before units
  // are ranked (true: scores of different layers are not comparable).
  virtual bool normalize_per_space() const { return true; }

  // FailedPrecondition when this pruner cannot score `graph`'s model (slim
  // on a model without batch norms), checked before any training.
  virtual absl::Status CheckApplicable(const DependencyGraph& graph) const { return absl::OkStatus(); }
  virtual absl::StatusOr<ChannelScores> ScoreChannels(Model& model, const PrunerContext& ctx);
  // Unstructured: |importance| per element of each named weight in `weights`.
  virtual absl::StatusOr<std::map<std::string, at::Tensor>> ScoreWeights(
      Model& model, const std::set<std::string>& weights, const PrunerContext& ctx);

  // A criterion term to train with before scoring (slim), and for how long.
  virtual ExtraTerm SparsityTerm() const { return nullptr; }
  virtual int sparsity_epochs() const { return 0; }

 private:
  std::string name_;
};

using PrunerFactory = std::function<absl::StatusOr<std::unique_ptr<Pruner>>(const PruningConfig&)>;
Registry<PrunerFactory>& PrunerRegistry();

// The pruner named by `config`'s oneof (InvalidArgument when none is set,
// NotFound listing the registered names when it is not linked in).
absl::StatusOr<std::unique_ptr<Pruner>> MakePruner(const PruningConfig& config);

// Every pruner PruningConfig can name that removes whole channels (its
// `pruner` oneof, less `level`, which zeroes single weights), in field order.
std::vector<std::string> StructuredPrunerNames();

// ---- helpers for implementations ----

// Sums a per-index score of every slot with one of `roles` into its
// channels; each slot's scores are first divided by their mean (so layers of
// different scale count alike). `score(tensor, dim)` returns one value per
// index of `dim` (blocks of a flatten are summed per channel).
ChannelScores ScoreSlots(const Model& model, const DependencyGraph& graph, const std::set<SlotRole>& roles,
                         const std::function<at::Tensor(const at::Tensor& t, int dim)>& score);

// Zero scores shaped like the graph's spaces.
ChannelScores EmptyScores(const DependencyGraph& graph);

}  // namespace slimfit

#endif  // SLIMFIT_PRUNERS_PRUNER_H_
