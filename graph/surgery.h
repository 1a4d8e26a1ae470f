// File: graph/surgery.h
//
// Surgery: removing channels from a model for real. A PruningPlan names the
// channels to remove per space of a DependencyGraph; ApplyPruning returns a
// new, physically smaller TorchScript model: every slot (producer weights and
// biases, batch-norm tensors, consumer weights, flatten blocks of linear
// layers) is index_select-ed to the kept channels. The model needs no slimfit
// code to load: only tensors change, plus one graph edit — every grouped
// convolution's constant `groups` is replaced by
// `input.size(1) // weight.size(1)`, which equals the old constant for the
// original shapes and stays right when depthwise channels are removed.
//
// ApplyMasks is the reference the physical model must match: it zeroes the
// removed channels in every slot of the original model, in place (the
// "masked model"). For every plan the dependency graph allows,
//   ApplyPruning(m, plan)(x) == ApplyMasks(m, plan)(x)   (eval mode)
// up to float rounding.
//
// Contract: a plan that removes a blocked channel, or every channel of a
// space, or a channel index out of range, is InvalidArgument naming the
// layer. The input model is never changed by ApplyPruning.
#ifndef SLIMFIT_GRAPH_SURGERY_H_
#define SLIMFIT_GRAPH_SURGERY_H_

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "graph/dependency_graph.h"
#include "model/model.h"

namespace slimfit {

struct PruningPlan {
  // space id → sorted channel indices to remove.
  std::map<int, std::vector<int64_t>> removed;

  // Removes every member channel of `unit`.
  void RemoveUnit(const ChannelUnit& unit);
  int64_t RemovedFrom(int space) const;
  bool empty() const;
};

absl::Status ValidatePlan(const DependencyGraph& graph, const PruningPlan& plan);

absl::StatusOr<Model> ApplyPruning(const Model& model, const DependencyGraph& graph,
                                   const PruningPlan& plan);

absl::Status ApplyMasks(Model& model, const DependencyGraph& graph, const PruningPlan& plan);

// 0/1 masks (1 = kept) for every slot tensor the plan touches, shaped like
// the tensor: multiply weights (and their gradients) by them to keep removed
// channels at zero while training.
absl::StatusOr<std::map<std::string, at::Tensor>> MakeMasks(const Model& model,
                                                            const DependencyGraph& graph,
                                                            const PruningPlan& plan);

}  // namespace slimfit

#endif  // SLIMFIT_GRAPH_SURGERY_H_
