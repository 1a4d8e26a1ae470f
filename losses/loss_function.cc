#include "losses/loss_function.h"

#include <ATen/ATen.h>

#include <algorithm>
#include <map>

#include "absl/strings/str_cat.h"
#include "common/field_error.h"
#include "common/status_macros.h"
#include "common/text_proto.h"
#include "common/torch_status.h"
#include "graph/layer_table.h"

namespace slimfit {

at::Tensor LossTerms::Total() const {
  at::Tensor total;
  for (const auto& [name, t] : terms) total = total.defined() ? total + t : t;
  return total.defined() ? total : at::zeros({});
}

absl::StatusOr<LossTerms> LossFunction::operator()(Model& model, const Batch& batch) {
  ASSIGN_OR_RETURN(c10::IValue out, forward_pass_->Forward(model, batch, device_));
  return FromOutput(out, batch);
}

absl::Status TeacherOnDevice::MoveTo(c10::Device device) {
  if (teacher_->device() == device) {
    copy_.reset();
    return absl::OkStatus();
  }
  if (copy_ && copy_->device() == device) return absl::OkStatus();
  ASSIGN_OR_RETURN(Model copy, teacher_->Clone(), "distillation teacher");
  RETURN_IF_ERROR(copy.To(device), "distillation teacher");
  copy.Eval();
  copy_ = std::make_unique<Model>(std::move(copy));
  return absl::OkStatus();
}

Registry<LossFactory>& LossRegistry() {
  static auto* registry = new Registry<LossFactory>("loss");
  return *registry;
}

absl::StatusOr<std::unique_ptr<LossFunction>> MakeLoss(const LossConfig& config,
                                                       const LossContext& context) {
  ASSIGN_OR_RETURN(const std::string name, RequiredOneofField(config, "loss", "", LossRegistry().Names()));
  if (context.forward_pass == nullptr) return absl::InvalidArgumentError("LossContext: forward_pass is null");
  ASSIGN_OR_RETURN(LossFactory factory, LossRegistry().Get(name), AtField(name));
  return TorchCallOr("", [&] { return factory(config, context); });
}

namespace {

class PatchedLoss : public LossFunction {
 public:
  PatchedLoss(std::unique_ptr<LossFunction> base, std::string name, ExtraTerm term)
      : LossFunction(nullptr), base_(std::move(base)), name_(std::move(name)), term_(std::move(term)) {}

  absl::StatusOr<LossTerms> operator()(Model& model, const Batch& batch) override {
    ASSIGN_OR_RETURN(LossTerms terms, (*base_)(model, batch));
    ASSIGN_OR_RETURN(at::Tensor extra, term_(model), name_);
    terms.terms.emplace_back(name_, extra);
    return terms;
  }
  absl::StatusOr<LossTerms> FromOutput(const c10::IValue& output, const Batch& batch) override {
    return base_->FromOutput(output, batch);
  }
  absl::Status ToDevice(c10::Device device) override { return base_->ToDevice(device); }

 private:
  std::unique_ptr<LossFunction> base_;
  std::string name_;
  ExtraTerm term_;
};

// Parameters of the model's layers of `types` (from its graph).
absl::StatusOr<std::vector<at::Tensor>> LayerWeights(Model& model,
                                                     const std::vector<std::string>& types) {
  ASSIGN_OR_RETURN(LayerTable table, BuildLayerTable(model));
  std::vector<at::Tensor> out;
  std::map<std::string, at::Tensor> params;
  for (auto& [name, p] : model.NamedParameters()) params.emplace(name, p);
  for (const Layer& l : table.layers) {
    if (std::find(types.begin(), types.end(), l.op_type) == types.end()) continue;
    out.push_back(params.at(l.parameters.front()));
  }
  return out;
}

}  // namespace

std::unique_ptr<LossFunction> PatchCriterion(std::unique_ptr<LossFunction> base, std::string name,
                                             ExtraTerm term) {
  return std::make_unique<PatchedLoss>(std::move(base), std::move(name), std::move(term));
}

ExtraTerm BatchNormL1Term(double lambda) {
  return [lambda](Model& model) -> absl::StatusOr<at::Tensor> {
    ASSIGN_OR_RETURN(std::vector<at::Tensor> gammas, LayerWeights(model, {"BatchNorm"}));
    if (gammas.empty()) {
      return absl::FailedPreconditionError("bn_l1: the model has no batch-norm layers");
    }
    return TorchCallOr("bn_l1", [&] {
      at::Tensor sum = gammas[0].abs().sum();
      for (size_t i = 1; i < gammas.size(); ++i) sum = sum + gammas[i].abs().sum();
      return sum * lambda;
    });
  };
}

ExtraTerm GroupLassoTerm(double lambda) {
  return [lambda](Model& model) -> absl::StatusOr<at::Tensor> {
    ASSIGN_OR_RETURN(std::vector<at::Tensor> weights,
                     LayerWeights(model, {"Conv1d", "Conv2d", "Conv3d", "DepthwiseConv2d", "Linear"}));
    if (weights.empty()) return absl::FailedPreconditionError("group_lasso: no conv or linear layers");
    return TorchCallOr("group_lasso", [&] {
      at::Tensor sum = at::zeros({}, weights[0].options());
      for (const at::Tensor& w : weights) sum = sum + w.flatten(1).norm(2, {1}).sum();
      return sum * lambda;
    });
  };
}

namespace internal {

absl::StatusOr<at::Tensor> PredictionOf(const c10::IValue& output, int index) {
  if (output.isTensor()) return output.toTensor();
  std::vector<c10::IValue> items;
  if (output.isTuple()) {
    for (const auto& e : output.toTupleRef().elements()) items.push_back(e);
  } else if (output.isList()) {
    for (const auto& e : output.toListRef()) items.push_back(e);
  } else {
    return absl::InvalidArgumentError(absl::StrCat(
        "the model returned a ", output.tagKind(), "; a loss needs a tensor (or a tuple/list of them)"));
  }
  if (index < 0 || index >= static_cast<int>(items.size()) || !items[index].isTensor()) {
    return FieldError("output_index", absl::StrCat("not a tensor among the model's ", items.size(), " outputs"), index,
                      absl::StrCat("[0, ", items.size(), ")"));
  }
  return items[index].toTensor();
}

absl::StatusOr<at::Tensor> TargetOf(const Batch& batch, int index) {
  if (index < 0 || index >= static_cast<int>(batch.size()) || !batch[index].isTensor()) {
    return FieldError("target_index", absl::StrCat("not a tensor in the batch of ", batch.size(), " elements"), index,
                      absl::StrCat("[0, ", batch.size(), ")"));
  }
  return batch[index].toTensor();
}

absl::StatusOr<int> ResolveTargetIndex(const LossConfig& config, const InputPattern& pattern) {
  if (config.has_target_index()) {
    if (config.target_index() < 0) {
      return FieldError("target_index", "negative", config.target_index(), ">= 0");
    }
    return config.target_index();
  }
  std::vector<int> ignored = pattern.ignored();
  if (ignored.empty()) {
    return FieldError("target_index",
                      absl::StrCat("required: the input pattern ", pattern.ToString(),
                                   " sends every batch element to the model, so no element is the target"),
                      "", "the index of the batch element that holds the targets");
  }
  return ignored.front();
}

}  // namespace internal
}  // namespace slimfit
