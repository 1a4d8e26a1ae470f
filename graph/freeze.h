// File: graph/freeze.h
//
// The deploy form of a float model: LibTorch's freeze_module (inlines
// submodules, folds parameters, attributes and `training` into constants),
// dropout removed, traced aten::_convolution calls rewritten to conv1d /
// conv2d, batch norm and constant add/sub/mul/div folded into the
// preceding convolution, constants propagated. A pruned model's grouped
// and depthwise convolutions compute `groups` at run time (graph/surgery.h);
// their constant is restored from one run on zero inputs of the shapes the
// metadata records (ZeroInputs, model/model.h), so that folding reaches
// them; without recorded shapes they stay as they are (correct, less
// folded). The result is a plain
// TorchScript module (loads with torch.jit.load, no slimfit code) that
// computes what the eval-mode model computes, with fewer ops.
//
//   ASSIGN_OR_RETURN(Model deploy, FrozenForInference(pruned));
//   RETURN_IF_ERROR(deploy.Save("model.pt"));
//
// Contract: the input is not modified. The frozen model has no parameters
// (everything is a constant), so it cannot be trained or pruned further;
// keep the unfrozen model for that. Errors from LibTorch are Internal,
// naming the step.
#ifndef SLIMFIT_GRAPH_FREEZE_H_
#define SLIMFIT_GRAPH_FREEZE_H_

#include <ATen/core/Tensor.h>

#include <optional>

#include "absl/status/statusor.h"
#include "model/model.h"

namespace torch::jit {
struct Value;
}  // namespace torch::jit

namespace slimfit {

// Freezes and folds a clone of `model` (see above); the module keeps a
// `training` attribute (false) so LibTorch passes that read it still work.
absl::StatusOr<torch::jit::Module> FreezeAndFold(const Model& model);

// FreezeAndFold wrapped as a Model with `model`'s metadata.
absl::StatusOr<Model> FrozenForInference(const Model& model);

// The tensor of a prim::Constant value, if it is one.
std::optional<at::Tensor> ConstantTensor(const torch::jit::Value* v);

}  // namespace slimfit

#endif  // SLIMFIT_GRAPH_FREEZE_H_
