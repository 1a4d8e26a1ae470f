// File: data/dataset.h
//
// Batch: what a data loader yields, the C++ form of a Python loader's tuple —
// one c10::IValue per field (for classification: {images, labels}).
//
// Dataset: random access to stacked batches. In-memory tensors
// (TensorDataset) make a batch with one index_select per field; a view
// (SubsetDataset) maps indices onto its base; datasets that decode files
// (data/readers/image_folder.h) are lazy() and draw their random per-sample
// transforms from the seed GetSeededBatch is given.
//
//   ASSIGN_OR_RETURN(auto ds, TensorDataset::Create({images, labels}, "train"));
//   ASSIGN_OR_RETURN(Batch b, ds->GetBatch(at::arange(0, 32)));
#ifndef SLIMFIT_DATA_DATASET_H_
#define SLIMFIT_DATA_DATASET_H_

#include <ATen/core/Tensor.h>
#include <ATen/core/ivalue.h>

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"

namespace slimfit {

using Batch = std::vector<c10::IValue>;

// OK when `indices` is a 1-D int64 tensor of values in [0, size);
// InvalidArgument / OutOfRange naming `name` and the bad index otherwise.
absl::Status CheckIndices(const at::Tensor& indices, int64_t size, const std::string& name);

// SplitMix64 of a and b: independent-looking seeds from (seed, index) pairs.
inline uint64_t MixSeeds(uint64_t a, uint64_t b) {
  uint64_t z = a + 0x9E3779B97F4A7C15ull * (b + 1);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

// The batch's rows: the first dimension of its first tensor field that has
// one; nullopt when no field is such a tensor. 0 for a rank's empty slice
// (data/sharded_loader.h).
std::optional<int64_t> BatchRows(const Batch& batch);

class Dataset {
 public:
  virtual ~Dataset() = default;
  // Number of samples.
  virtual int64_t size() const = 0;
  // Number of fields in each batch.
  virtual int64_t num_fields() const = 0;
  // The samples at `indices` (1-D int64, each in [0, size())), stacked.
  virtual absl::StatusOr<Batch> GetBatch(const at::Tensor& indices) const = 0;
  // The same, with random per-sample transforms drawn from `seed` (row r
  // from a stream of (seed, r), so the result does not depend on threads).
  // Datasets without such transforms ignore the seed.
  virtual absl::StatusOr<Batch> GetSeededBatch(const at::Tensor& indices, uint64_t seed) const {
    (void)seed;
    return GetBatch(indices);
  }
  // For messages: "fashion-mnist/train".
  virtual const std::string& name() const = 0;
  // True when samples are decoded on demand (files): loaders prefetch such
  // datasets, and code that wants every label asks Labels().
  virtual bool lazy() const { return false; }
  // Every sample's label (field 1) without decoding the samples, when the
  // dataset knows them (an image folder's class folders); nullopt otherwise.
  virtual std::optional<at::Tensor> Labels() const { return std::nullopt; }
};

// Fields held as tensors sharing their first dimension.
class TensorDataset : public Dataset {
 public:
  // InvalidArgument if `fields` is empty, a tensor is 0-d, or first
  // dimensions differ (the message names the field and both sizes).
  static absl::StatusOr<std::shared_ptr<TensorDataset>> Create(
      std::vector<at::Tensor> fields, std::string name);

  int64_t size() const override { return size_; }
  int64_t num_fields() const override { return static_cast<int64_t>(fields_.size()); }
  absl::StatusOr<Batch> GetBatch(const at::Tensor& indices) const override;
  const std::string& name() const override { return name_; }
  // Field 1 when there is one.
  std::optional<at::Tensor> Labels() const override;
  const std::vector<at::Tensor>& fields() const { return fields_; }

 private:
  TensorDataset(std::vector<at::Tensor> fields, std::string name, int64_t size)
      : fields_(std::move(fields)), name_(std::move(name)), size_(size) {}
  std::vector<at::Tensor> fields_;
  std::string name_;
  int64_t size_;
};

// A view of `base` restricted to `indices` (a 1-D int64 tensor).
class SubsetDataset : public Dataset {
 public:
  static absl::StatusOr<std::shared_ptr<SubsetDataset>> Create(
      std::shared_ptr<const Dataset> base, at::Tensor indices, std::string name);

  int64_t size() const override { return indices_.size(0); }
  int64_t num_fields() const override { return base_->num_fields(); }
  absl::StatusOr<Batch> GetBatch(const at::Tensor& indices) const override;
  absl::StatusOr<Batch> GetSeededBatch(const at::Tensor& indices, uint64_t seed) const override;
  const std::string& name() const override { return name_; }
  bool lazy() const override { return base_->lazy(); }
  std::optional<at::Tensor> Labels() const override;

 private:
  SubsetDataset(std::shared_ptr<const Dataset> base, at::Tensor indices, std::string name)
      : base_(std::move(base)), indices_(std::move(indices)), name_(std::move(name)) {}
  std::shared_ptr<const Dataset> base_;
  at::Tensor indices_;
  std::string name_;
};

// A batch standing for the whole dataset's shapes without decoding it all:
// sample 0's fields, with field 1 replaced by every label when the dataset
// knows them (Labels()); otherwise every sample. For model builders that
// take input shape and class count from data (ZooShapeFromBatch).
absl::StatusOr<Batch> ShapeProbe(const Dataset& dataset);

}  // namespace slimfit

#endif  // SLIMFIT_DATA_DATASET_H_
