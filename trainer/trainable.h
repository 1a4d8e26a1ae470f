// File: trainer/trainable.h
//
// Models traced in Python bake the training flag into their graphs:
// `aten::batch_norm(..., training=False, ...)` and `aten::dropout(x, p,
// train=False)` are constants, so `train()` changes nothing — batch norm
// keeps normalising with frozen running statistics and never updates them,
// dropout never drops. Fine-tuning such a model silently trains a different
// network than the one deployed.
//
// MakeTrainingModeFollowModule rewires every such constant (in every method
// of every submodule, blocks included) to read the owning module's
// `training` attribute, so train()/eval() behave as in eager PyTorch. Eval
// outputs are unchanged (bit for bit), and the rewired model saves and loads
// in Python and C++ like any TorchScript model.
//
// It works on a fresh copy (save + load through memory), because LibTorch
// caches compiled executors per method and a graph edited after the first
// run would be ignored; `model` is replaced by that copy (metadata kept).
// Returns how many ops were rewired (0 for scripted and zoo models, whose
// graphs already read `self.training`).
#ifndef SLIMFIT_TRAINER_TRAINABLE_H_
#define SLIMFIT_TRAINER_TRAINABLE_H_

#include "absl/status/statusor.h"
#include "model/model.h"

namespace slimfit {

absl::StatusOr<int> MakeTrainingModeFollowModule(Model& model);

}  // namespace slimfit

#endif  // SLIMFIT_TRAINER_TRAINABLE_H_
