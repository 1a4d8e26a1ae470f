// File: graph/depth.h
//
// Depth pruning: whole residual blocks removed. A residual block is an add
//   out = skip + branch(skip)
// whose branch is computed from `skip` alone (and parameters, buffers and
// constants), is used only by that add, and holds at least one parameterised
// layer; with an identity shortcut, removing it leaves `out = skip` (the ops
// after the add, such as a ReLU, stay). Blocks with a downsampling shortcut
// (a conv on `skip`) are not of this form and are never offered, nor is an
// add that does not run for this model: under an If on one of its flags
// that takes the other side (torchvision's scripted
// `if self.use_res_connect`), or under a loop or a data-dependent branch.
//
//   ASSIGN_OR_RETURN(std::vector<ResidualBlock> blocks, FindResidualBlocks(model));
//   ASSIGN_OR_RETURN(Model shallower, RemoveBlocks(model, {blocks[0].path}));
//
// The result is plain TorchScript (loads with torch.jit.load, no slimfit
// code): a fresh copy whose forward is the model's forward inlined, with
// each removed block's add returning its skip input. The removed blocks'
// modules stay (their own forward methods are no longer called) with their
// parameters and buffers emptied (0 elements, so neither the parameter
// count nor the file carries them; a tensor another part of the graph still
// reads is kept). Equivalent, in eval mode, to the model with each removed
// branch's output forced to zero.
//
// Contract: the input model is never changed. A block is named by the
// longest module-path prefix its layers share ("layer1.b1"); a path that
// names no removable block is NotFound listing the ones there are. Models
// whose forward cannot be inlined, or traced graphs with no such adds, have
// no blocks (an empty list, not an error). No exception escapes.
#ifndef SLIMFIT_GRAPH_DEPTH_H_
#define SLIMFIT_GRAPH_DEPTH_H_

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "model/model.h"

namespace slimfit {

struct ResidualBlock {
  std::string path;                 // the layers' shared module-path prefix
  std::vector<std::string> layers;  // module paths of the branch's parameterised ops, in graph order
};

// The model's removable residual blocks, in graph order.
absl::StatusOr<std::vector<ResidualBlock>> FindResidualBlocks(const Model& model);

// A copy of `model` without the blocks named by `paths` (see above).
absl::StatusOr<Model> RemoveBlocks(const Model& model, const std::vector<std::string>& paths);

}  // namespace slimfit

#endif  // SLIMFIT_GRAPH_DEPTH_H_
