// File: data/sharded_loader.h
//
// ShardedLoader: one rank's share of another loader's batches, for
// data-parallel training. Every rank wraps an identical loader (same
// dataset, batch size, seed): global batch k is the same on every rank, and
// rank r of W gets its rows [r*m/W, (r+1)*m/W) (m = the batch's size). The W
// shards of a batch are disjoint and cover it, so W ranks each averaging
// their share and summing `n_r / m`-weighted results compute exactly what
// one process computes on the whole batch; every rank sees the same number
// of batches (a collective per batch never waits for a rank that ran out).
//
//   ASSIGN_OR_RETURN(auto full, BatchLoader::Create(train, {.batch_size = 256, .shuffle = true}));
//   ShardedLoader mine(std::move(full), group.rank(), group.world_size());
//
// Batch fields that are tensors whose first dimension is the batch's size are
// sliced; anything else (scalars, lists) is passed whole. A batch with fewer
// rows than ranks leaves some ranks an empty (0-row) slice: the trainer skips
// their forward pass and counts them with weight 0. The inner loader's
// transforms run on the whole global batch on every rank (exactness first;
// they are cheap next to forward and backward).
#ifndef SLIMFIT_DATA_SHARDED_LOADER_H_
#define SLIMFIT_DATA_SHARDED_LOADER_H_

#include <cstdint>
#include <memory>

#include "data/data_loader.h"

namespace slimfit {

class ShardedLoader : public DataLoader {
 public:
  // InvalidArgument unless 0 <= rank < world_size.
  static absl::StatusOr<std::unique_ptr<ShardedLoader>> Create(std::unique_ptr<DataLoader> inner, int rank,
                                                               int world_size);

  absl::Status Reset(int64_t epoch) override { return inner_->Reset(epoch); }
  absl::Status ResetForBatches(int64_t epoch, int64_t max_batches) override {
    return inner_->ResetForBatches(epoch, max_batches);
  }
  absl::StatusOr<bool> Next(Batch* batch) override;
  int64_t num_batches() const override { return inner_->num_batches(); }
  // This rank's samples in one pass.
  int64_t num_samples() const override;
  // The global batch size (every rank's rows together).
  int64_t batch_size() const override { return inner_->batch_size(); }

  // Rows of the last batch Next returned: this rank's and the whole batch's.
  int64_t last_local_rows() const { return last_local_; }
  int64_t last_global_rows() const { return last_global_; }
  // The loader every rank shares.
  DataLoader& inner() { return *inner_; }

 private:
  ShardedLoader(std::unique_ptr<DataLoader> inner, int rank, int world_size)
      : inner_(std::move(inner)), rank_(rank), world_size_(world_size) {}

  std::unique_ptr<DataLoader> inner_;
  int rank_, world_size_;
  int64_t last_local_ = 0, last_global_ = 0;
};

// Rows [begin, end) of a batch of `rows` for `rank` of `world_size`.
std::pair<int64_t, int64_t> ShardRange(int64_t rows, int rank, int world_size);

}  // namespace slimfit

#endif  // SLIMFIT_DATA_SHARDED_LOADER_H_
