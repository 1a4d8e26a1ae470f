// File: data/splits.h
//
// Splits: the train / val / test datasets of an experiment, by name, built
// from a DataConfig. Each dataset source (the `dataset` oneof of DataConfig)
// is registered under its oneof field name ("mnist", "cifar", "tensor_file",
// "synthetic") and returns the splits it has natively; LoadSplits then carves
// a seeded val split from train when the source has none and applies the
// max_*_samples slices.
//
//   DataConfig config;  // mnist { }  -> Debian's Fashion-MNIST
//   ASSIGN_OR_RETURN(Splits splits, LoadSplits(config));
//   ASSIGN_OR_RETURN(auto train, MakeLoader(config, splits, "train"));
#ifndef SLIMFIT_DATA_SPLITS_H_
#define SLIMFIT_DATA_SPLITS_H_

#include <functional>
#include <memory>
#include <string>
#include <utility>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "common/registry.h"
#include "data/data.pb.h"
#include "data/data_loader.h"
#include "data/dataset.h"

namespace slimfit {

struct Splits {
  std::shared_ptr<const Dataset> train;
  std::shared_ptr<const Dataset> val;   // may be empty-sized, never null after LoadSplits
  std::shared_ptr<const Dataset> test;  // null when the source has none
  // "train", "val" or "test"; NotFound naming the valid ones otherwise.
  absl::StatusOr<std::shared_ptr<const Dataset>> Get(absl::string_view name) const;
};

// What a source loads: train always; val and test when it has them.
using DatasetSource = std::function<absl::StatusOr<Splits>(const DataConfig&)>;
Registry<DatasetSource>& DatasetRegistry();

// The carve's indices for `n` samples: (rest, carved), each sorted. A
// seeded random round(fraction * n) are carved; FailedPrecondition (naming
// `what`) when that leaves a part empty. Sources that carve their own file
// lists (image_folder) use it so every source carves alike.
absl::StatusOr<std::pair<at::Tensor, at::Tensor>> CarveIndices(int64_t n, double fraction, uint64_t seed,
                                                               const std::string& what);

// The carve: a seeded random `fraction` of `train` becomes val, the rest train.
absl::StatusOr<std::pair<std::shared_ptr<const Dataset>, std::shared_ptr<const Dataset>>>
CarveSplit(std::shared_ptr<const Dataset> train, double fraction, uint64_t seed,
           const std::string& carved_name);

// DataConfig.val_fraction with its default (0.1 when unset).
double ValFraction(const DataConfig& config);

// Validates `config` (errors name the field relative to it, "val_fraction: ...";
// the caller roots them with AtField("data"), common/field_error.h), loads
// the source, carves val, applies the slices.
absl::StatusOr<Splits> LoadSplits(const DataConfig& config);

// A loader over split `name` with the config's batch size, shuffling (train
// only), drop_last (train only) and transforms, made ahead by
// config.workers threads (data/prefetch_loader.h). A split without samples
// is an error (FailedPrecondition naming it).
absl::StatusOr<std::unique_ptr<DataLoader>> MakeLoader(const DataConfig& config,
                                                      const Splits& splits,
                                                      absl::string_view name);

// MakeLoader's loader over a seeded random `samples` of split `name`'s rows
// (kept in order; the rows depend only on `seed` and the split's size), or
// over the whole split when it has no more than `samples`. For scoring on a
// sample of a split too large to score in full (the search's sensitivity
// pass). InvalidArgument for samples < 1; NotFound as MakeLoader's.
absl::StatusOr<std::unique_ptr<DataLoader>> MakeSampleLoader(const DataConfig& config, const Splits& splits,
                                                             absl::string_view name, int64_t samples, uint64_t seed);

}  // namespace slimfit

#endif  // SLIMFIT_DATA_SPLITS_H_
