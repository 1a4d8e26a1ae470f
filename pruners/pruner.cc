#include "pruners/pruner.h"

#include <algorithm>

#include <ATen/ATen.h>
#include <torch/csrc/jit/api/module.h>

#include "absl/strings/str_cat.h"
#include "common/status_macros.h"
#include "common/text_proto.h"

namespace slimfit {

absl::StatusOr<ChannelScores> Pruner::ScoreChannels(Model& model, const PrunerContext& ctx) {
  return absl::UnimplementedError(absl::StrCat("pruner \"", name_, "\" does not score channels"));
}

absl::StatusOr<std::map<std::string, at::Tensor>> Pruner::ScoreWeights(Model& model,
                                                                       const std::set<std::string>& weights,
                                                                       const PrunerContext& ctx) {
  return absl::UnimplementedError(absl::StrCat("pruner \"", name_, "\" does not score weights"));
}

Registry<PrunerFactory>& PrunerRegistry() {
  static auto* r = new Registry<PrunerFactory>("pruner");
  return *r;
}

absl::StatusOr<std::unique_ptr<Pruner>> MakePruner(const PruningConfig& config) {
  ASSIGN_OR_RETURN(std::string name, RequiredOneofField(config, "pruner", "pruning", PrunerRegistry().Names()));
  ASSIGN_OR_RETURN(PrunerFactory factory, PrunerRegistry().Get(name));
  return factory(config);
}

std::vector<std::string> StructuredPrunerNames() {
  std::vector<std::string> names = OneofFieldNames(PruningConfig::default_instance(), "pruner");
  names.erase(std::remove(names.begin(), names.end(), "level"), names.end());
  return names;
}

ChannelScores EmptyScores(const DependencyGraph& graph) {
  ChannelScores s(graph.spaces.size());
  for (size_t i = 0; i < graph.spaces.size(); ++i) s[i].assign(graph.spaces[i].size, 0.0);
  return s;
}

ChannelScores ScoreSlots(const Model& model, const DependencyGraph& graph, const std::set<SlotRole>& roles,
                         const std::function<at::Tensor(const at::Tensor& t, int dim)>& score) {
  ChannelScores out = EmptyScores(graph);
  std::map<std::string, at::Tensor> tensors;
  for (auto& [name, t] : model.NamedParameters()) tensors.emplace(name, t);
  for (auto& [name, t] : model.NamedBuffers()) tensors.emplace(name, t);
  for (const TensorSlot& slot : graph.slots) {
    if (!roles.count(slot.role)) continue;
    auto it = tensors.find(slot.tensor);
    if (it == tensors.end()) continue;
    at::Tensor per_index = score(it->second.detach(), slot.dim).to(at::kDouble).abs();
    if (slot.block > 1) per_index = per_index.view({-1, slot.block}).sum(1);
    const double mean = per_index.mean().item<double>();
    if (mean > 0) per_index = per_index / mean;
    auto acc = per_index.accessor<double, 1>();
    for (size_t i = 0; i < slot.channels.size(); ++i) {
      const ChannelRef& c = slot.channels[i];
      if (c.space >= 0) out[c.space][c.channel] += acc[i];
    }
  }
  return out;
}

}  // namespace slimfit
