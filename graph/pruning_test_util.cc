#include "graph/pruning_test_util.h"

#include <ATen/ATen.h>
#include <ATen/core/grad_mode.h>
#include <torch/csrc/jit/api/module.h>

#include <map>
#include <random>

#include "common/status_macros.h"
#include "common/torch_status.h"
#include "model/zoo/zoo.h"

namespace slimfit::testing {

namespace {

void Randomise(Model& m, uint64_t seed) {
  at::NoGradGuard no_grad;
  at::Generator gen = at::detail::createCPUGenerator(seed);
  for (auto& [name, t] : m.NamedBuffers()) {
    if (!t.is_floating_point()) continue;
    if (name.find("running_var") != std::string::npos) {
      t.uniform_(0.5, 1.5, gen);
    } else {
      t.normal_(0.0, 0.2, gen);
    }
  }
  for (auto& [name, t] : m.NamedParameters()) {
    if (t.dim() == 1) t.uniform_(0.5, 1.5, gen);  // γ, β, biases: non-zero
  }
}

}  // namespace

absl::StatusOr<std::vector<PruningTestModel>> PruningTestModels() {
  std::vector<PruningTestModel> out;
  ZooOptions options;
  options.height = options.width = 16;
  options.width_multiplier = 0.5;
  uint64_t seed = 1;
  for (const char* name : {"lenet5", "vgg_small", "resnet_small", "mobilenetv2_small"}) {
    ASSIGN_OR_RETURN(Model m, CreateZooModel(name, options));
    Randomise(m, seed++);
    out.push_back({name, std::move(m), {1, 16, 16}});
  }
  for (const char* name : {"mixed_traced", "mixed_scripted", "dense_scripted", "grouped_traced", "grouped_scripted",
                           "shuffle_traced", "shuffle_scripted", "everyday_traced", "everyday_scripted"}) {
    ASSIGN_OR_RETURN(Model m, Model::Load(std::string("graph/testdata/") + name + ".pt"));
    Randomise(m, seed++);
    out.push_back({name, std::move(m), {1, 16, 16}});
  }
  return out;
}

at::Tensor EvalForward(const Model& model, const at::Tensor& x) {
  at::NoGradGuard no_grad;
  torch::jit::Module m = model.module();
  m.eval();
  return m.forward({x}).toTensor();
}

at::Tensor RandomInput(const std::vector<int64_t>& shape, int64_t batch, uint64_t seed) {
  std::vector<int64_t> full = {batch};
  full.insert(full.end(), shape.begin(), shape.end());
  at::Generator gen = at::detail::createCPUGenerator(seed);
  return at::randn(full, gen);
}

PruningPlan RandomPlan(const DependencyGraph& graph, double fraction, uint64_t seed) {
  std::mt19937_64 rng(seed);
  PruningPlan plan;
  for (const ChannelGroup& g : graph.groups) {
    std::vector<size_t> prunable;
    for (size_t u = 0; u < g.units.size(); ++u) {
      if (!g.units[u].blocked) prunable.push_back(u);
    }
    std::shuffle(prunable.begin(), prunable.end(), rng);
    const size_t n = static_cast<size_t>(fraction * static_cast<double>(g.units.size()));
    size_t removed = 0;
    for (size_t u : prunable) {
      if (removed >= n) break;
      // Every space keeps at least one channel.
      std::map<int, int64_t> take;
      for (const ChannelRef& c : g.units[u].members) ++take[c.space];
      bool ok = true;
      for (const auto& [space, k] : take) ok = ok && plan.RemovedFrom(space) + k < graph.spaces[space].size;
      if (!ok) continue;
      plan.RemoveUnit(g.units[u]);
      ++removed;
    }
  }
  return plan;
}

absl::StatusOr<double> MaskedVsPrunedDiff(const Model& model, const Model& pruned,
                                          const DependencyGraph& graph, const PruningPlan& plan,
                                          const at::Tensor& x) {
  ASSIGN_OR_RETURN(Model masked, model.Clone());
  RETURN_IF_ERROR(ApplyMasks(masked, graph, plan));
  masked.Eval();
  return TorchCallOr("comparing masked and pruned", [&] {
    at::NoGradGuard no_grad;
    torch::jit::Module p = pruned.module();
    p.eval();
    at::Tensor a = masked.module().forward({x}).toTensor();
    at::Tensor b = p.forward({x}).toTensor();
    return (a - b).abs().max().item<double>();
  });
}

}  // namespace slimfit::testing
