// File: data/data_loader.h
//
// DataLoader: one pass over a split in batches — the C++ form of a PyTorch
// DataLoader. The interface is what trainers and evaluators consume; one
// implementation, BatchLoader, batches any Dataset with seeded shuffling,
// drop_last and batch transforms.
//
//   ASSIGN_OR_RETURN(auto loader, BatchLoader::Create(train, {.batch_size = 64,
//                    .shuffle = true, .seed = 1}, transforms));
//   RETURN_IF_ERROR(loader->Reset(epoch));
//   Batch batch;
//   while (true) {
//     ASSIGN_OR_RETURN(bool got, loader->Next(&batch));
//     if (!got) break;
//     ...
//   }
//
// Contract: the order of a pass depends only on (seed, epoch), so a resumed
// run sees the same batches. Each batch's random draws (the dataset's
// per-sample transforms, the batch transforms) come from a seed of (seed,
// epoch, the batch's position), so batches can be made in any order, on any
// thread (data/prefetch_loader.h), and come out the same.
#ifndef SLIMFIT_DATA_DATA_LOADER_H_
#define SLIMFIT_DATA_DATA_LOADER_H_

#include <ATen/core/Generator.h>

#include <cstdint>
#include <functional>
#include <memory>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "data/dataset.h"
#include "data/transforms.h"

namespace slimfit {

class DataLoader {
 public:
  virtual ~DataLoader() = default;
  // Starts pass `epoch` (reshuffles when shuffling).
  virtual absl::Status Reset(int64_t epoch) = 0;
  // Reset, for a caller that reads at most `max_batches` batches of the
  // pass: loaders that make batches ahead (PrefetchLoader) make no more, and
  // may end the pass there. The caller still stops by itself.
  virtual absl::Status ResetForBatches(int64_t epoch, int64_t max_batches) {
    (void)max_batches;
    return Reset(epoch);
  }
  // Fills `batch` with the next batch; false at the end of the pass.
  virtual absl::StatusOr<bool> Next(Batch* batch) = 0;
  // Batches in one pass.
  virtual int64_t num_batches() const = 0;
  // Samples in one pass (after drop_last).
  virtual int64_t num_samples() const = 0;
  virtual int64_t batch_size() const = 0;
};

// Calls `fn(batch)` on up to `n` batches of a fresh epoch (0) of `loader`
// (started with ResetForBatches: nothing is made ahead past them);
// returns how many it saw.
absl::StatusOr<int> ForBatches(DataLoader& loader, int n, const std::function<absl::Status(const Batch&)>& fn);

// One batch of a pass, claimed but not yet made: its rows and its seed.
struct BatchTicket {
  at::Tensor indices;
  uint64_t seed = 0;
};

struct LoaderOptions {
  int64_t batch_size = 64;
  bool shuffle = false;
  bool drop_last = false;
  uint64_t seed = 0;
  bool pin_memory = false;  // each batch's tensors page-locked (needs CUDA)
};

class BatchLoader : public DataLoader {
 public:
  // FailedPrecondition for an empty dataset, or drop_last with a batch size
  // larger than the dataset (no batch at all); InvalidArgument for
  // batch_size < 1. Messages name the dataset.
  static absl::StatusOr<std::unique_ptr<BatchLoader>> Create(
      std::shared_ptr<const Dataset> dataset, LoaderOptions options,
      std::vector<std::shared_ptr<const Transform>> transforms = {});

  absl::Status Reset(int64_t epoch) override;
  // Claim + Materialize.
  absl::StatusOr<bool> Next(Batch* batch) override;
  // The pass's next batch, claimed: false at the end. Not thread-safe.
  bool Claim(BatchTicket* ticket);
  // Makes a claimed batch (reads / decodes, transforms). Thread-safe.
  absl::StatusOr<Batch> Materialize(const BatchTicket& ticket) const;
  int64_t num_batches() const override;
  int64_t num_samples() const override;
  int64_t batch_size() const override { return options_.batch_size; }
  const Dataset& dataset() const { return *dataset_; }

 private:
  BatchLoader(std::shared_ptr<const Dataset> dataset, LoaderOptions options,
              std::vector<std::shared_ptr<const Transform>> transforms);

  std::shared_ptr<const Dataset> dataset_;
  LoaderOptions options_;
  std::vector<std::shared_ptr<const Transform>> transforms_;
  at::Tensor order_;
  at::Generator gen_;
  uint64_t pass_seed_ = 0;  // (seed, epoch) mixed; with the position, each batch's seed
  int64_t position_ = 0;
};

}  // namespace slimfit

#endif  // SLIMFIT_DATA_DATA_LOADER_H_
