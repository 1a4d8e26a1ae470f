#include "graph/surgery.h"

#include <ATen/ATen.h>
#include <ATen/core/grad_mode.h>
#include <torch/csrc/jit/api/module.h>
#include <torch/csrc/jit/ir/ir.h>

#include <set>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "common/status_macros.h"
#include "common/torch_status.h"
#include "graph/layer_table.h"

namespace slimfit {
namespace {

// removed[space][channel]
using RemovedSet = std::vector<std::vector<bool>>;

RemovedSet ToSet(const DependencyGraph& graph, const PruningPlan& plan) {
  RemovedSet r(graph.spaces.size());
  for (size_t s = 0; s < graph.spaces.size(); ++s) r[s].assign(graph.spaces[s].size, false);
  for (const auto& [space, chans] : plan.removed) {
    for (int64_t c : chans) r[space][c] = true;
  }
  return r;
}

bool IsRemoved(const RemovedSet& r, const ChannelRef& c) { return c.space >= 0 && r[c.space][c.channel]; }

bool Touches(const TensorSlot& slot, const RemovedSet& r) {
  for (const ChannelRef& c : slot.channels) {
    if (IsRemoved(r, c)) return true;
  }
  return false;
}

std::vector<int64_t> KeptIndices(const TensorSlot& slot, const RemovedSet& r) {
  std::vector<int64_t> kept;
  for (size_t i = 0; i < slot.channels.size(); ++i) {
    if (IsRemoved(r, slot.channels[i])) continue;
    for (int64_t j = 0; j < slot.block; ++j) kept.push_back(static_cast<int64_t>(i) * slot.block + j);
  }
  return kept;
}

// The submodule owning `path`'s last component, and that component.
std::pair<torch::jit::Module, std::string> Owner(const torch::jit::Module& root, const std::string& path) {
  std::vector<std::string> parts = absl::StrSplit(path, '.');
  torch::jit::Module m = root;
  for (size_t i = 0; i + 1 < parts.size(); ++i) m = m.attr(parts[i]).toModule();
  return {m, parts.back()};
}

at::Tensor GetTensor(const torch::jit::Module& root, const std::string& path) {
  auto [m, name] = Owner(root, path);
  return m.attr(name).toTensor();
}

// Replaces constant `groups` > 1 of every (non-transposed) convolution in
// `block` by input.size(1) // weight.size(1).
int MakeGroupsFollowShapes(torch::jit::Graph& graph, torch::jit::Block* block) {
  int count = 0;
  for (torch::jit::Node* n : block->nodes()) {
    for (torch::jit::Block* b : n->blocks()) count += MakeGroupsFollowShapes(graph, b);
    auto conv = AsConvolution(n);
    if (!conv || conv->transposed) continue;
    const size_t gi = conv->groups_input;
    if (ConstantInt(n->input(gi)).value_or(1) <= 1) continue;
    torch::jit::WithInsertPoint guard(n);
    torch::jit::Value* one = graph.insertConstant(1);
    torch::jit::Value* in_c = graph.insert(c10::aten::size, {n->input(0), one});
    torch::jit::Value* per_group = graph.insert(c10::aten::size, {n->input(1), one});
    torch::jit::Value* groups = graph.insert(c10::aten::floordiv, {in_c, per_group});
    n->replaceInput(gi, groups);
    ++count;
  }
  return count;
}

}  // namespace

void PruningPlan::RemoveUnit(const ChannelUnit& unit) {
  for (const ChannelRef& c : unit.members) {
    auto& v = removed[c.space];
    auto it = std::lower_bound(v.begin(), v.end(), c.channel);
    if (it == v.end() || *it != c.channel) v.insert(it, c.channel);
  }
}

int64_t PruningPlan::RemovedFrom(int space) const {
  auto it = removed.find(space);
  return it == removed.end() ? 0 : static_cast<int64_t>(it->second.size());
}

bool PruningPlan::empty() const {
  for (const auto& [s, v] : removed) {
    if (!v.empty()) return false;
  }
  return true;
}

absl::Status ValidatePlan(const DependencyGraph& graph, const PruningPlan& plan) {
  for (const auto& [space, chans] : plan.removed) {
    if (space < 0 || space >= static_cast<int>(graph.spaces.size())) {
      return absl::InvalidArgumentError(absl::StrCat("pruning plan: space ", space, " does not exist (",
                                                     graph.spaces.size(), " spaces)"));
    }
    const ChannelSpace& s = graph.spaces[space];
    const std::string name = s.module_path.empty() ? "(root)" : s.module_path;
    if (static_cast<int64_t>(chans.size()) >= s.size && s.size > 0) {
      return absl::InvalidArgumentError(absl::StrCat("pruning plan: removes all ", s.size, " channels of ",
                                                     name, "; at least one must stay"));
    }
    for (size_t i = 0; i < chans.size(); ++i) {
      const int64_t c = chans[i];
      if (c < 0 || c >= s.size || (i > 0 && chans[i - 1] >= c)) {
        return absl::InvalidArgumentError(absl::StrCat("pruning plan: ", name, ": channel ", c,
                                                       " out of range [0, ", s.size,
                                                       ") or not sorted/unique"));
      }
      if (s.blocked[c]) {
        return absl::InvalidArgumentError(absl::StrCat("pruning plan: ", name, " channel ", c,
                                                       " cannot be removed: ", s.blocked_reason));
      }
    }
  }
  const RemovedSet r = ToSet(graph, plan);
  for (const ChannelGroup& g : graph.groups) {
    for (const ChannelUnit& u : g.units) {
      size_t n = 0;
      for (const ChannelRef& c : u.members) n += IsRemoved(r, c) ? 1 : 0;
      if (n != 0 && n != u.members.size()) {
        const ChannelSpace& s = graph.spaces[u.members[0].space];
        return absl::InvalidArgumentError(absl::StrCat(
            "pruning plan: channel ", u.members[0].channel, " of ", s.module_path,
            " is coupled with ", u.members.size() - 1, " other channel(s) that must be removed with it"));
      }
    }
  }
  return absl::OkStatus();
}

absl::StatusOr<Model> ApplyPruning(const Model& model, const DependencyGraph& graph,
                                   const PruningPlan& plan) {
  RETURN_IF_ERROR(ValidatePlan(graph, plan));
  ASSIGN_OR_RETURN(Model out, model.Reloaded());
  if (plan.empty()) return out;
  const RemovedSet r = ToSet(graph, plan);
  RETURN_IF_ERROR(TorchCall("removing pruned channels", [&]() -> absl::Status {
    at::NoGradGuard no_grad;
    torch::jit::Module& root = out.module();
    // Current value of every touched tensor, and the (dim → kept) applied.
    std::map<std::string, at::Tensor> current;
    std::map<std::pair<std::string, int>, std::vector<int64_t>> applied;
    std::map<std::string, bool> is_param;
    for (const TensorSlot& slot : graph.slots) {
      if (!Touches(slot, r)) continue;
      std::vector<int64_t> kept = KeptIndices(slot, r);
      auto key = std::make_pair(slot.tensor, slot.dim);
      auto it = applied.find(key);
      if (it != applied.end()) {
        if (it->second != kept) {
          return absl::InternalError(absl::StrCat("surgery: ", slot.tensor, " dim ", slot.dim,
                                                  " is indexed by two different channel lists"));
        }
        continue;
      }
      applied.emplace(key, kept);
      if (!current.count(slot.tensor)) current[slot.tensor] = GetTensor(root, slot.tensor);
      is_param[slot.tensor] = slot.is_parameter;
      at::Tensor& t = current[slot.tensor];
      at::Tensor idx = at::tensor(kept, at::TensorOptions().dtype(at::kLong)).to(t.device());
      t = t.index_select(slot.dim, idx);
    }
    for (auto& [name, t] : current) {
      auto [m, attr] = Owner(root, name);
      const bool requires_grad = m.attr(attr).toTensor().requires_grad();
      at::Tensor fresh = t.contiguous().clone();
      if (is_param[name]) {
        fresh.set_requires_grad(requires_grad);
        m.register_parameter(attr, fresh, /*is_buffer=*/false);
      } else {
        m.register_buffer(attr, fresh);
      }
    }
    std::set<const torch::jit::Graph*> done;
    for (const torch::jit::Module& sub : root.modules()) {
      for (const torch::jit::Method& method : sub.get_methods()) {
        std::shared_ptr<torch::jit::Graph> g = method.graph();
        if (done.insert(g.get()).second) MakeGroupsFollowShapes(*g, g->block());
      }
    }
    return absl::OkStatus();
  }));
  return out;
}

absl::StatusOr<std::map<std::string, at::Tensor>> MakeMasks(const Model& model,
                                                            const DependencyGraph& graph,
                                                            const PruningPlan& plan) {
  RETURN_IF_ERROR(ValidatePlan(graph, plan));
  const RemovedSet r = ToSet(graph, plan);
  return TorchCallOr("building pruning masks", [&] {
    std::map<std::string, at::Tensor> masks;
    for (const TensorSlot& slot : graph.slots) {
      if (!Touches(slot, r)) continue;
      auto it = masks.find(slot.tensor);
      if (it == masks.end()) {
        at::Tensor t = GetTensor(model.module(), slot.tensor);
        it = masks.emplace(slot.tensor, at::ones_like(t, at::TensorOptions().requires_grad(false))).first;
      }
      for (size_t i = 0; i < slot.channels.size(); ++i) {
        if (!IsRemoved(r, slot.channels[i])) continue;
        it->second.narrow(slot.dim, static_cast<int64_t>(i) * slot.block, slot.block).zero_();
      }
    }
    return masks;
  });
}

absl::Status ApplyMasks(Model& model, const DependencyGraph& graph, const PruningPlan& plan) {
  ASSIGN_OR_RETURN(auto masks, MakeMasks(model, graph, plan));
  return TorchCall("masking pruned channels", [&] {
    at::NoGradGuard no_grad;
    for (auto& [name, mask] : masks) GetTensor(model.module(), name).mul_(mask);
  });
}

}  // namespace slimfit
