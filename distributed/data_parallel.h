// File: distributed/data_parallel.h
//
// Data-parallel training over a Collective (NNI / PyTorch DDP semantics, done
// explicitly between the trainer's steps):
//
//   DataParallel dp(group);                       // 25 MiB buckets
//   RETURN_IF_ERROR(dp.BroadcastModel(model));    // rank 0's weights everywhere
//   for each step:                                // on this rank's shard
//     loss.backward() (skipped on an empty shard or a non-finite loss)
//     ASSIGN_OR_RETURN(StepSync s, dp.Sync(model, {.rows = n_r, .global_rows = m,
//                                                  .loss_sum = loss * n_r, ...}));
//     if (s.nonfinite) roll back on every rank; else optimizer.step()
//   after each epoch: RETURN_IF_ERROR(dp.CheckIdentical(model, "epoch 3"));
//
// Sync makes every rank's gradients sum_r(n_r g_r) / sum_r(n_r): with losses
// that are means over their batch (every slimfit loss; PyTorch's default
// reduction) that is the gradient of the whole global batch, so W ranks
// step exactly as one process on the combined batch (up to float rounding).
// Gradients go in buckets of `bucket_bytes`, one all-reduce each, issued
// together. Floating-point buffers (batch-norm running statistics) are
// averaged over ranks in the same collectives, so they stay identical; the
// step's flags (a rank saw a non-finite loss, a rank was interrupted) and
// loss sums ride along, so every rank takes the same decision at the same
// step. Batch norm normalises with each rank's own batch statistics (as
// DDP without SyncBatchNorm): with batch norm, equality with one process
// holds for the running statistics' average, not bit for bit.
//
// EvaluateAcrossRanks: a MetricsEvaluator whose metrics all have additive
// state (accuracy, regression, classification_report, mean_loss) evaluates
// this rank's shard and sums the states (the same numbers as one process on
// the whole split); any other EvaluationFunction runs on the whole split on
// every rank and rank 0's values are broadcast, so decisions never differ.
#ifndef SLIMFIT_DISTRIBUTED_DATA_PARALLEL_H_
#define SLIMFIT_DISTRIBUTED_DATA_PARALLEL_H_

#include <cstdint>
#include <string>

#include "absl/status/statusor.h"
#include "data/data_loader.h"
#include "distributed/collective.h"
#include "evaluators/evaluation_function.h"
#include "evaluators/metrics.h"
#include "model/model.h"

namespace slimfit {

struct StepReport {
  int64_t rows = 0;          // this rank's rows in the step (0: an empty shard)
  int64_t global_rows = 0;   // the global batch's rows (the sum over ranks)
  double loss_sum = 0;       // this rank's loss x rows (0 when not finite)
  bool nonfinite = false;    // this rank's loss was NaN/inf (it did no backward)
  bool stop = false;         // this rank was asked to stop (SIGINT / SIGTERM)
};

struct StepSync {
  double loss = 0;           // the global batch's mean loss
  bool nonfinite = false;    // some rank saw a non-finite loss: roll back everywhere
  bool stop = false;         // some rank was interrupted: stop everywhere
  int64_t rows = 0;          // the global batch's rows, as counted by the ranks
};

class DataParallel {
 public:
  explicit DataParallel(Collective& group, int64_t bucket_bytes = 25 << 20)
      : group_(group), bucket_bytes_(bucket_bytes) {}

  // Every parameter and buffer of rank 0 to every rank (before training).
  absl::Status BroadcastModel(Model& model);
  // After this rank's backward: averages gradients and floating buffers and
  // combines the flags (see the file comment). Parameters that need a
  // gradient and have none here get zeros (an empty shard, a skipped
  // backward) so that every rank reduces the same tensors.
  absl::StatusOr<StepSync> Sync(Model& model, const StepReport& mine);
  // FailedPrecondition naming the first parameter or buffer whose bytes
  // differ between ranks (e.g. a pruning mask that drifted), with `when`.
  absl::Status CheckIdentical(Model& model, const std::string& when);

  // Time spent in Sync's collectives, and how many.
  double sync_seconds() const { return sync_seconds_; }
  int64_t syncs() const { return syncs_; }
  Collective& group() { return group_; }

 private:
  Collective& group_;
  int64_t bucket_bytes_;
  double sync_seconds_ = 0;
  int64_t syncs_ = 0;
};

// Metrics of `model` on the whole split, identical on every rank. `shard` is
// this rank's ShardedLoader of `full` (may be null: then `full` on every rank).
absl::StatusOr<Metrics> EvaluateAcrossRanks(EvaluationFunction& evaluator, Model& model, DataLoader& full,
                                            DataLoader* shard, Collective& group);

// Rank 0's metric values on every rank (names, values, higher_is_better).
absl::StatusOr<Metrics> BroadcastMetrics(const Metrics& mine, Collective& group);

}  // namespace slimfit

#endif  // SLIMFIT_DISTRIBUTED_DATA_PARALLEL_H_
