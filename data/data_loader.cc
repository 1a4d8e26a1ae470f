#include "data/data_loader.h"

#include <ATen/ATen.h>
#include <ATen/CPUGeneratorImpl.h>

#include "absl/strings/str_cat.h"
#include "common/status_macros.h"
#include "common/torch_status.h"

namespace slimfit {

absl::StatusOr<int> ForBatches(DataLoader& loader, int n, const std::function<absl::Status(const Batch&)>& fn) {
  RETURN_IF_ERROR(loader.ResetForBatches(0, n));
  Batch batch;
  int seen = 0;
  for (; seen < n; ++seen) {
    ASSIGN_OR_RETURN(bool more, loader.Next(&batch));
    if (!more) break;
    RETURN_IF_ERROR(fn(batch));
  }
  return seen;
}

BatchLoader::BatchLoader(std::shared_ptr<const Dataset> dataset, LoaderOptions options,
                         std::vector<std::shared_ptr<const Transform>> transforms)
    : dataset_(std::move(dataset)),
      options_(options),
      transforms_(std::move(transforms)),
      gen_(at::detail::createCPUGenerator(options.seed)) {}

absl::StatusOr<std::unique_ptr<BatchLoader>> BatchLoader::Create(
    std::shared_ptr<const Dataset> dataset, LoaderOptions options,
    std::vector<std::shared_ptr<const Transform>> transforms) {
  if (dataset == nullptr) return absl::InvalidArgumentError("data loader: no dataset");
  if (options.batch_size < 1) {
    return absl::InvalidArgumentError(absl::StrCat(
        dataset->name(), ": batch_size must be >= 1, got ", options.batch_size));
  }
  if (dataset->size() == 0) {
    return absl::FailedPreconditionError(absl::StrCat(dataset->name(), ": the split is empty"));
  }
  if (options.drop_last && options.batch_size > dataset->size()) {
    return absl::FailedPreconditionError(absl::StrCat(
        dataset->name(), ": batch_size ", options.batch_size, " is larger than the ",
        dataset->size(), " samples of the split, and drop_last would leave no batch "
        "(use a batch size <= ", dataset->size(), " or drop_last: false)"));
  }
  std::unique_ptr<BatchLoader> loader(
      new BatchLoader(std::move(dataset), options, std::move(transforms)));
  RETURN_IF_ERROR(loader->Reset(0));
  return loader;
}

absl::Status BatchLoader::Reset(int64_t epoch) {
  return TorchCall(dataset_->name(), [&] {
    // Mix (seed, epoch) so epochs differ but every run repeats.
    const uint64_t s = options_.seed * 0x9E3779B97F4A7C15ull + static_cast<uint64_t>(epoch) + 1;
    gen_.set_current_seed(s);
    pass_seed_ = s;
    order_ = options_.shuffle ? at::randperm(dataset_->size(), gen_, at::kLong)
                              : at::arange(dataset_->size(), at::kLong);
    position_ = 0;
  });
}

int64_t BatchLoader::num_samples() const {
  const int64_t n = dataset_->size();
  return options_.drop_last ? (n / options_.batch_size) * options_.batch_size : n;
}

int64_t BatchLoader::num_batches() const {
  const int64_t n = num_samples();
  return (n + options_.batch_size - 1) / options_.batch_size;
}

bool BatchLoader::Claim(BatchTicket* ticket) {
  const int64_t end_of_pass = num_samples();
  if (position_ >= end_of_pass) return false;
  const int64_t take = std::min(options_.batch_size, end_of_pass - position_);
  ticket->indices = order_.narrow(0, position_, take);
  ticket->seed = MixSeeds(pass_seed_, static_cast<uint64_t>(position_));
  position_ += take;
  return true;
}

absl::StatusOr<Batch> BatchLoader::Materialize(const BatchTicket& ticket) const {
  ASSIGN_OR_RETURN(Batch batch, dataset_->GetSeededBatch(ticket.indices, ticket.seed));
  if (!transforms_.empty()) {
    ASSIGN_OR_RETURN(at::Generator gen, TorchCallOr(dataset_->name(), [&] {
                       return at::detail::createCPUGenerator(ticket.seed ^ 0x7A5F0B3Dull);
                     }));
    for (const auto& t : transforms_) {
      RETURN_IF_ERROR(t->Apply(batch, gen), dataset_->name());
    }
  }
  if (options_.pin_memory) {
    RETURN_IF_ERROR(TorchCall(absl::StrCat(dataset_->name(), ": pinning a batch"), [&] {
      for (c10::IValue& v : batch) {
        if (v.isTensor()) v = v.toTensor().pin_memory();
      }
    }));
  }
  return batch;
}

absl::StatusOr<bool> BatchLoader::Next(Batch* batch) {
  BatchTicket ticket;
  if (!Claim(&ticket)) return false;
  ASSIGN_OR_RETURN(*batch, Materialize(ticket));
  return true;
}

}  // namespace slimfit
