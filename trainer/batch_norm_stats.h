// File: trainer/batch_norm_stats.h
//
// UpdateBatchNorm: PyTorch's torch.optim.swa_utils.update_bn for TorchScript
// models. Every batch norm's running mean and variance become the
// equal-weight average of its batch statistics over `batches` batches of
// `loader` (train-mode forward passes through `forward_pass`, no gradients),
// whatever momentum the model was built or traced with.
//
//   ASSIGN_OR_RETURN(int seen, UpdateBatchNorm(model, train_loader, 20, forward_pass));
//
// Why not momentum: running statistics move by `momentum` per batch, so a
// few batches at torchvision's MobileNetV3 momentum (0.01) move them 4 % of
// the way: the statistics of the model before a cut stay. update_bn sets
// momentum to None; a traced model has its momentum baked into the graph
// as a constant, so instead, before each forward, the running statistics
// (and num_batches_tracked, which a momentum-None module divides by) are
// zeroed: the forward leaves momentum x the batch's statistic, and dividing
// by the momentum gives the statistic. Each module's momentum is measured
// on the first batch, run twice from zero: r1 = m v, r2 = m v (2 - m).
//
// Contract: a batch norm is a module with `running_mean` and `running_var`
// buffers; one that the forward passes never update (an unused branch, or
// momentum 0) keeps its statistics. num_batches_tracked ends at its value
// plus the batches seen. On an error every statistic is restored. Traced
// models are made to follow train() first (trainer/trainable.h), which
// replaces `model` by a copy. Returns the batches seen (0: no batch norm, or
// batches <= 0; fewer than asked when the loader has fewer).
#ifndef SLIMFIT_TRAINER_BATCH_NORM_STATS_H_
#define SLIMFIT_TRAINER_BATCH_NORM_STATS_H_

#include "absl/status/statusor.h"
#include "data/data_loader.h"
#include "forward_pass/forward_pass.h"
#include "model/model.h"

namespace slimfit {

absl::StatusOr<int> UpdateBatchNorm(Model& model, DataLoader& loader, int batches, ForwardPass& forward_pass);

}  // namespace slimfit

#endif  // SLIMFIT_TRAINER_BATCH_NORM_STATS_H_
