#include "data/dataset.h"

#include <ATen/ATen.h>

#include "absl/strings/str_cat.h"
#include "common/status_macros.h"
#include "common/torch_status.h"

namespace slimfit {

std::optional<int64_t> BatchRows(const Batch& batch) {
  for (const c10::IValue& v : batch) {
    if (v.isTensor() && v.toTensor().dim() > 0) return v.toTensor().size(0);
  }
  return std::nullopt;
}

absl::Status CheckIndices(const at::Tensor& indices, int64_t size,
                          const std::string& name) {
  if (!indices.defined() || indices.dim() != 1 || indices.scalar_type() != at::kLong) {
    return absl::InvalidArgumentError(absl::StrCat(
        name, ": batch indices must be a 1-D int64 tensor"));
  }
  if (indices.numel() == 0) return absl::OkStatus();
  const int64_t lo = indices.min().item<int64_t>();
  const int64_t hi = indices.max().item<int64_t>();
  if (lo < 0 || hi >= size) {
    return absl::OutOfRangeError(absl::StrCat(name, ": index ", lo < 0 ? lo : hi,
                                              " out of range [0, ", size, ")"));
  }
  return absl::OkStatus();
}

absl::StatusOr<std::shared_ptr<TensorDataset>> TensorDataset::Create(
    std::vector<at::Tensor> fields, std::string name) {
  if (fields.empty()) {
    return absl::InvalidArgumentError(absl::StrCat(name, ": a dataset needs at least one tensor"));
  }
  for (size_t i = 0; i < fields.size(); ++i) {
    if (!fields[i].defined() || fields[i].dim() == 0) {
      return absl::InvalidArgumentError(absl::StrCat(
          name, ": field ", i, " must be a tensor with a sample dimension"));
    }
    if (fields[i].size(0) != fields[0].size(0)) {
      return absl::InvalidArgumentError(absl::StrCat(
          name, ": field ", i, " has ", fields[i].size(0),
          " samples but field 0 has ", fields[0].size(0)));
    }
  }
  const int64_t n = fields[0].size(0);
  for (auto& f : fields) f = f.contiguous();
  return std::shared_ptr<TensorDataset>(new TensorDataset(std::move(fields), std::move(name), n));
}

std::optional<at::Tensor> TensorDataset::Labels() const {
  if (fields_.size() < 2) return std::nullopt;
  return fields_[1];
}

absl::StatusOr<Batch> TensorDataset::GetBatch(const at::Tensor& indices) const {
  RETURN_IF_ERROR(CheckIndices(indices, size_, name_));
  return TorchCallOr(name_, [&] {
    Batch batch;
    batch.reserve(fields_.size());
    for (const auto& f : fields_) batch.emplace_back(f.index_select(0, indices));
    return batch;
  });
}

absl::StatusOr<std::shared_ptr<SubsetDataset>> SubsetDataset::Create(
    std::shared_ptr<const Dataset> base, at::Tensor indices, std::string name) {
  RETURN_IF_ERROR(CheckIndices(indices, base->size(), name));
  return std::shared_ptr<SubsetDataset>(
      new SubsetDataset(std::move(base), indices.contiguous(), std::move(name)));
}

absl::StatusOr<Batch> SubsetDataset::GetBatch(const at::Tensor& indices) const {
  RETURN_IF_ERROR(CheckIndices(indices, size(), name_));
  return base_->GetBatch(indices_.index_select(0, indices));
}

absl::StatusOr<Batch> SubsetDataset::GetSeededBatch(const at::Tensor& indices, uint64_t seed) const {
  RETURN_IF_ERROR(CheckIndices(indices, size(), name_));
  return base_->GetSeededBatch(indices_.index_select(0, indices), seed);
}

std::optional<at::Tensor> SubsetDataset::Labels() const {
  std::optional<at::Tensor> all = base_->Labels();
  if (!all.has_value()) return std::nullopt;
  return all->index_select(0, indices_);
}

absl::StatusOr<Batch> ShapeProbe(const Dataset& dataset) {
  std::optional<at::Tensor> labels = dataset.Labels();
  if (!labels.has_value() || dataset.size() == 0) return dataset.GetBatch(at::arange(dataset.size(), at::kLong));
  ASSIGN_OR_RETURN(Batch first, dataset.GetBatch(at::zeros({1}, at::kLong)));
  if (first.size() > 1) first[1] = *labels;
  return first;
}

}  // namespace slimfit
