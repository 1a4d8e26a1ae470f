#include "data/sharded_loader.h"

#include <ATen/ATen.h>

#include "absl/strings/str_cat.h"
#include "common/status_macros.h"
#include "common/torch_status.h"

namespace slimfit {

std::pair<int64_t, int64_t> ShardRange(int64_t rows, int rank, int world_size) {
  return {rows * rank / world_size, rows * (rank + 1) / world_size};
}

absl::StatusOr<std::unique_ptr<ShardedLoader>> ShardedLoader::Create(std::unique_ptr<DataLoader> inner, int rank,
                                                                     int world_size) {
  if (inner == nullptr) return absl::InvalidArgumentError("sharded loader: no loader to shard");
  if (world_size < 1 || rank < 0 || rank >= world_size) {
    return absl::InvalidArgumentError(
        absl::StrCat("sharded loader: rank ", rank, " of world_size ", world_size, "; need 0 <= rank < world_size"));
  }
  return std::unique_ptr<ShardedLoader>(new ShardedLoader(std::move(inner), rank, world_size));
}

int64_t ShardedLoader::num_samples() const {
  const int64_t b = inner_->batch_size();
  const int64_t n = inner_->num_samples();
  const int64_t full = n / b, rest = n % b;
  const auto [lo, hi] = ShardRange(b, rank_, world_size_);
  const auto [rlo, rhi] = ShardRange(rest, rank_, world_size_);
  return full * (hi - lo) + (rhi - rlo);
}

absl::StatusOr<bool> ShardedLoader::Next(Batch* batch) {
  ASSIGN_OR_RETURN(bool more, inner_->Next(batch));
  if (!more) return false;
  const std::optional<int64_t> found = BatchRows(*batch);
  if (!found) {
    return absl::InvalidArgumentError(
        "sharded loader: the batch has no tensor with a batch dimension to split between ranks");
  }
  const int64_t rows = *found;
  // Not a structured binding: clang 14 (the fuzz build) refuses capturing one in a lambda.
  const std::pair<int64_t, int64_t> range = ShardRange(rows, rank_, world_size_);
  const int64_t lo = range.first, hi = range.second;
  RETURN_IF_ERROR(TorchCall("sharding a batch", [&] {

    for (c10::IValue& v : *batch) {
      if (v.isTensor() && v.toTensor().dim() > 0 && v.toTensor().size(0) == rows) {
        v = v.toTensor().narrow(0, lo, hi - lo);
      }
    }
  }));
  last_local_ = hi - lo;
  last_global_ = rows;
  return true;
}

}  // namespace slimfit
