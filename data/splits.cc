#include "data/splits.h"

#include <ATen/ATen.h>
#include <ATen/CPUGeneratorImpl.h>

#include <cmath>

#include "absl/strings/str_cat.h"
#include "common/field_error.h"
#include "common/status_macros.h"
#include "common/text_proto.h"
#include "common/torch_status.h"
#include "data/prefetch_loader.h"

namespace slimfit {
namespace {

// A seeded random `k` of `n` rows, sorted (the on-disk order kept).
absl::StatusOr<at::Tensor> RandomRows(int64_t n, int64_t k, uint64_t seed) {
  return TorchCallOr("choosing rows", [&] {
    at::Generator gen = at::detail::createCPUGenerator(seed ^ 0x51Ce51CEull);
    return std::get<0>(at::randperm(n, gen, at::kLong).narrow(0, 0, k).sort());
  });
}

// The first `max_samples` samples; for lazy datasets (image folders, listed
// class by class) a seeded random `max_samples` of them, in order, so that a
// slice still holds every class.
absl::StatusOr<std::shared_ptr<const Dataset>> Head(std::shared_ptr<const Dataset> ds, int64_t max_samples,
                                                    uint64_t seed) {
  if (ds == nullptr || max_samples <= 0 || max_samples >= ds->size()) return ds;
  at::Tensor rows = at::arange(max_samples, at::kLong);
  if (ds->lazy()) {
    ASSIGN_OR_RETURN(rows, RandomRows(ds->size(), max_samples, seed));
  }
  ASSIGN_OR_RETURN(auto subset, SubsetDataset::Create(ds, rows, ds->name()));
  return std::shared_ptr<const Dataset>(std::move(subset));
}

absl::Status ValidateConfig(const DataConfig& c) {
  if (!(c.val_fraction() >= 0 && c.val_fraction() < 1)) {
    return FieldError("val_fraction", "out of range", c.val_fraction(), "[0, 1) (0 = 0.1)");
  }
  if (c.max_train_samples() < 0) {
    return FieldError("max_train_samples", "negative", c.max_train_samples(), ">= 0 (0 = all)");
  }
  if (c.max_eval_samples() < 0) {
    return FieldError("max_eval_samples", "negative", c.max_eval_samples(), ">= 0 (0 = all)");
  }
  if (c.workers() < -1 || c.workers() > 64) {
    return FieldError("workers", "out of range", c.workers(), "[-1, 64] (-1 = none, 0 = default)");
  }
  if (c.prefetch_batches() < 0) {
    return FieldError("prefetch_batches", "negative", c.prefetch_batches(), ">= 0 (0 = default)");
  }
  if (c.pin_memory() && !at::hasCUDA()) {
    return FieldErrorWithCode(absl::StatusCode::kFailedPrecondition, "pin_memory",
                              "needs a CUDA device (page-locked batches are for copies to one); this process has none",
                              "true", "false");
  }
  if (c.train_batch_size() < 0) {
    return FieldError("train_batch_size", "negative", c.train_batch_size(), ">= 1 (0 = default)");
  }
  if (c.eval_batch_size() < 0) {
    return FieldError("eval_batch_size", "negative", c.eval_batch_size(), ">= 1 (0 = default)");
  }
  return absl::OkStatus();
}

}  // namespace

double ValFraction(const DataConfig& config) { return config.val_fraction() == 0 ? 0.1 : config.val_fraction(); }

Registry<DatasetSource>& DatasetRegistry() {
  static auto* registry = new Registry<DatasetSource>("dataset");
  return *registry;
}

absl::StatusOr<std::shared_ptr<const Dataset>> Splits::Get(absl::string_view name) const {
  std::shared_ptr<const Dataset> ds;
  if (name == "train") ds = train;
  else if (name == "val") ds = val;
  else if (name == "test") ds = test;
  else {
    return absl::NotFoundError(absl::StrCat("not a split, got \"", name, "\"; valid: train, val, test"));
  }
  if (ds == nullptr) {
    return absl::NotFoundError(absl::StrCat("the dataset has no \"", name, "\" split"));
  }
  return ds;
}

absl::StatusOr<std::pair<at::Tensor, at::Tensor>> CarveIndices(int64_t n, double fraction, uint64_t seed,
                                                               const std::string& what) {
  const int64_t k = static_cast<int64_t>(std::llround(fraction * static_cast<double>(n)));
  if (fraction > 0 && (k < 1 || k >= n)) {
    return absl::FailedPreconditionError(
        absl::StrCat(what, ": carving ", fraction, " of ", n, " samples leaves an empty split"));
  }
  ASSIGN_OR_RETURN(at::Tensor perm, TorchCallOr("carving split", [&] {
                     at::Generator gen = at::detail::createCPUGenerator(seed ^ 0x5eed5eedull);
                     return at::randperm(n, gen, at::kLong);
                   }));
  // Sorted indices keep the on-disk order within each part.
  return std::make_pair(std::get<0>(perm.narrow(0, k, n - k).sort()), std::get<0>(perm.narrow(0, 0, k).sort()));
}

absl::StatusOr<std::pair<std::shared_ptr<const Dataset>, std::shared_ptr<const Dataset>>>
CarveSplit(std::shared_ptr<const Dataset> train, double fraction, uint64_t seed,
           const std::string& carved_name) {
  ASSIGN_OR_RETURN(auto parts, CarveIndices(train->size(), fraction, seed,
                                            absl::StrCat(train->name(), " into ", carved_name)));
  ASSIGN_OR_RETURN(auto carved_ds, SubsetDataset::Create(train, parts.second, carved_name));
  ASSIGN_OR_RETURN(auto rest_ds, SubsetDataset::Create(train, parts.first, train->name()));
  return std::make_pair(std::shared_ptr<const Dataset>(rest_ds),
                        std::shared_ptr<const Dataset>(carved_ds));
}

absl::StatusOr<Splits> LoadSplits(const DataConfig& config) {
  ASSIGN_OR_RETURN(const std::string name, RequiredOneofField(config, "dataset", "", DatasetRegistry().Names()));
  RETURN_IF_ERROR(ValidateConfig(config));
  ASSIGN_OR_RETURN(DatasetSource source, DatasetRegistry().Get(name), AtField(name));
  ASSIGN_OR_RETURN(Splits s, source(config), AtField(name));
  if (s.train == nullptr) {
    return absl::InternalError(absl::StrCat(name, ": the dataset source returned no train split"));
  }
  const double fraction = ValFraction(config);
  if (s.val == nullptr) {
    ASSIGN_OR_RETURN(auto parts, CarveSplit(s.train, fraction, config.seed(), s.train->name() + "[val]"),
                     AtField("val_fraction"));
    s.train = parts.first;
    s.val = parts.second;
  }
  ASSIGN_OR_RETURN(s.train, Head(s.train, config.max_train_samples(), config.seed()));
  ASSIGN_OR_RETURN(s.val, Head(s.val, config.max_eval_samples(), config.seed()));
  ASSIGN_OR_RETURN(s.test, Head(s.test, config.max_eval_samples(), config.seed()));
  return s;
}

absl::StatusOr<std::unique_ptr<DataLoader>> MakeLoader(const DataConfig& config,
                                                      const Splits& splits,
                                                      absl::string_view name) {
  ASSIGN_OR_RETURN(auto ds, splits.Get(name));
  if (ds->size() == 0) {
    return absl::FailedPreconditionError(
        absl::StrCat("split \"", name, "\" has no samples; valid: a split with at least one"));
  }
  const bool train = name == "train";
  // Does field 0 hold uint8 images (to be scaled to [0, 1] first)?
  ASSIGN_OR_RETURN(Batch probe, ds->GetBatch(at::zeros({1}, at::kLong)));
  const bool uint8 = !probe.empty() && probe[0].isTensor() &&
                     probe[0].toTensor().scalar_type() == at::kByte;
  ASSIGN_OR_RETURN(auto transforms, MakeTransforms(train ? config.train_transforms() : config.eval_transforms(), uint8,
                                                   train ? "train_transforms" : "eval_transforms"));

  LoaderOptions o;
  o.batch_size = train ? (config.train_batch_size() > 0 ? config.train_batch_size() : 64)
                       : (config.eval_batch_size() > 0 ? config.eval_batch_size() : 256);
  o.shuffle = train;
  o.drop_last = train && config.drop_last();
  o.seed = config.seed();
  o.pin_memory = config.pin_memory();
  ASSIGN_OR_RETURN(auto loader, BatchLoader::Create(ds, o, std::move(transforms)));
  const int workers =
      config.workers() != 0 ? std::max(0, config.workers()) : (ds->lazy() ? 2 : (config.pin_memory() ? 1 : 0));
  if (workers == 0) return std::unique_ptr<DataLoader>(std::move(loader));
  PrefetchOptions prefetch;
  prefetch.threads = workers;
  prefetch.depth = config.prefetch_batches() > 0 ? config.prefetch_batches() : 2 * workers;
  return std::unique_ptr<DataLoader>(PrefetchLoader::Create(std::move(loader), prefetch));
}

absl::StatusOr<std::unique_ptr<DataLoader>> MakeSampleLoader(const DataConfig& config, const Splits& splits,
                                                             absl::string_view name, int64_t samples, uint64_t seed) {
  if (samples < 1) {
    return absl::InvalidArgumentError(
        absl::StrCat("sample of split \"", name, "\": must be >= 1 samples, got ", samples));
  }
  ASSIGN_OR_RETURN(std::shared_ptr<const Dataset> ds, splits.Get(name));
  if (samples >= ds->size()) return MakeLoader(config, splits, name);
  ASSIGN_OR_RETURN(at::Tensor rows, RandomRows(ds->size(), samples, seed));
  ASSIGN_OR_RETURN(auto subset, SubsetDataset::Create(ds, rows, absl::StrCat(ds->name(), "[", samples, " sampled]")));
  Splits sampled = splits;
  std::shared_ptr<const Dataset> view = std::move(subset);
  (name == "train" ? sampled.train : name == "val" ? sampled.val : sampled.test) = view;
  return MakeLoader(config, sampled, name);
}

}  // namespace slimfit
