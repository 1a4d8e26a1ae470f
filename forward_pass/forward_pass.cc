#include "forward_pass/forward_pass.h"

#include <ATen/ATen.h>
#include <torch/csrc/jit/api/module.h>

#include "absl/strings/str_cat.h"
#include "common/field_error.h"
#include "common/status_macros.h"
#include "common/torch_status.h"

namespace slimfit {
namespace {

absl::StatusOr<InputSpec> SpecOf(const c10::IValue& v, const std::string& where) {
  InputSpec spec;
  if (v.isTensor()) {
    const at::Tensor& t = v.toTensor();
    if (t.dim() == 0) {
      return absl::InvalidArgumentError(absl::StrCat(where, ": a 0-d tensor has no batch dimension"));
    }
    spec.kind = InputSpec::Kind::kTensor;
    spec.shape = t.sizes().vec();
    spec.shape.erase(spec.shape.begin());
    spec.dtype = t.scalar_type();
    if (t.numel() > 0 && !at::isFloatingType(t.scalar_type()) && !at::isComplexType(t.scalar_type())) {
      spec.min = t.min().item<double>();
      spec.max = t.max().item<double>();
    }
    return spec;
  }
  if (v.isList() || v.isTuple()) {
    spec.kind = v.isList() ? InputSpec::Kind::kList : InputSpec::Kind::kTuple;
    std::vector<c10::IValue> items;
    if (v.isList()) {
      for (const auto& e : v.toListRef()) items.push_back(e);
    } else {
      for (const auto& e : v.toTupleRef().elements()) items.push_back(e);
    }
    for (size_t i = 0; i < items.size(); ++i) {
      ASSIGN_OR_RETURN(InputSpec child, SpecOf(items[i], absl::StrCat(where, "[", i, "]")));
      spec.children.push_back(std::move(child));
    }
    return spec;
  }
  if (v.isGenericDict()) {
    spec.kind = InputSpec::Kind::kDict;
    for (const auto& entry : v.toGenericDict()) {
      if (!entry.key().isString()) {
        return absl::InvalidArgumentError(absl::StrCat(where, ": dict keys must be strings for common inputs"));
      }
      const std::string key = entry.key().toStringRef();
      ASSIGN_OR_RETURN(InputSpec child, SpecOf(entry.value(), absl::StrCat(where, "[\"", key, "\"]")));
      spec.keys.push_back(key);
      spec.children.push_back(std::move(child));
    }
    return spec;
  }
  return absl::InvalidArgumentError(absl::StrCat(
      where, ": a ", v.tagKind(),
      " is not a common input (tensors, or lists/tuples/dicts of them); set uncommon_inputs and "
      "subclass ForwardPass"));
}

c10::IValue Random(const InputSpec& spec, int64_t n, at::Generator* gen) {
  switch (spec.kind) {
    case InputSpec::Kind::kTensor: {
      std::vector<int64_t> shape = {n};
      shape.insert(shape.end(), spec.shape.begin(), spec.shape.end());
      if (spec.dtype == at::kBool) return at::randint(0, 2, shape, at::kLong).to(at::kBool);
      if (at::isFloatingType(spec.dtype)) return at::randn(shape, at::TensorOptions().dtype(spec.dtype));
      const int64_t lo = static_cast<int64_t>(spec.min), hi = static_cast<int64_t>(spec.max);
      return at::randint(lo, hi + 1, shape, at::TensorOptions().dtype(spec.dtype));
    }
    case InputSpec::Kind::kList: {
      // Lists of tensors are the common case (List[Tensor] in TorchScript).
      c10::List<at::Tensor> list;
      for (const auto& c : spec.children) list.push_back(Random(c, n, gen).toTensor());
      return list;
    }
    case InputSpec::Kind::kTuple: {
      std::vector<c10::IValue> items;
      for (const auto& c : spec.children) items.push_back(Random(c, n, gen));
      return c10::ivalue::Tuple::create(std::move(items));
    }
    case InputSpec::Kind::kDict: {
      c10::Dict<std::string, at::Tensor> dict;
      for (size_t i = 0; i < spec.keys.size(); ++i) {
        dict.insert(spec.keys[i], Random(spec.children[i], n, gen).toTensor());
      }
      return dict;
    }
  }
  return c10::IValue();
}

void Shapes(const InputSpec& spec, std::vector<std::vector<int64_t>>* out) {
  if (spec.kind == InputSpec::Kind::kTensor) {
    out->push_back(spec.shape);
    return;
  }
  for (const auto& c : spec.children) Shapes(c, out);
}

// A page-locked CPU tensor goes to a CUDA device asynchronously (the
// loader pinned it ahead: data/data.proto pin_memory).
at::Tensor Moved(const at::Tensor& t, c10::Device device) {
  const bool non_blocking = device.is_cuda() && t.device().is_cpu() && t.is_pinned();
  return t.to(device, /*non_blocking=*/non_blocking);
}

c10::IValue ToDevice(const c10::IValue& v, c10::Device device) {
  if (v.isTensor()) return Moved(v.toTensor(), device);
  if (v.isTensorList()) {
    c10::List<at::Tensor> out;
    for (const at::Tensor& t : v.toTensorVector()) out.push_back(Moved(t, device));
    return out;
  }
  if (v.isList()) {
    c10::impl::GenericList out(v.toList().elementType());
    for (const auto& e : v.toListRef()) out.push_back(ToDevice(e, device));
    return out;
  }
  if (v.isTuple()) {
    std::vector<c10::IValue> items;
    for (const auto& e : v.toTupleRef().elements()) items.push_back(ToDevice(e, device));
    return c10::ivalue::Tuple::create(std::move(items));
  }
  if (v.isGenericDict()) {
    auto in = v.toGenericDict();
    c10::impl::GenericDict out(in.keyType(), in.valueType());
    for (const auto& e : in) out.insert(e.key(), ToDevice(e.value(), device));
    return out;
  }
  return v;
}

}  // namespace

ForwardPass::ForwardPass(InputPattern pattern, bool expecting_common_inputs)
    : pattern_(std::move(pattern)), common_(expecting_common_inputs) {}

absl::Status ForwardPass::InferFrom(const Batch& batch) {
  if (!common_) {
    return absl::FailedPreconditionError(
        "forward pass: inputs are declared uncommon; nothing can be inferred from a batch");
  }
  RETURN_IF_ERROR(pattern_.ValidateFor(batch.size()));
  std::vector<InputSpec> specs;
  for (int pos : pattern_.model_positions()) {
    ASSIGN_OR_RETURN(InputSpec spec, TorchCallOr("", [&] {
                       return SpecOf(batch[pos], absl::StrCat("batch[", pos, "]"));
                     }));
    specs.push_back(std::move(spec));
  }
  specs_ = std::move(specs);
  return absl::OkStatus();
}

absl::Status ForwardPass::InferFromMetadata(const ModelMetadata& metadata) {
  if (metadata.inputs_size() == 0) {
    return absl::FailedPreconditionError("the model's metadata records no input shapes");
  }
  std::vector<InputSpec> specs;
  for (const auto& in : metadata.inputs()) {
    InputSpec s;
    s.shape.assign(in.shape().begin(), in.shape().end());
    if (s.shape.empty()) return absl::InvalidArgumentError("metadata input with an empty shape");
    s.shape.erase(s.shape.begin());
    specs.push_back(std::move(s));
  }
  specs_ = std::move(specs);
  return absl::OkStatus();
}

absl::StatusOr<ModelInputs> ForwardPass::ExtractModelInputs(const Batch& batch) {
  RETURN_IF_ERROR(pattern_.ValidateFor(batch.size()));
  if (common_ && !specs_) RETURN_IF_ERROR(InferFrom(batch));
  ModelInputs inputs;
  inputs.reserve(pattern_.model_positions().size());
  for (int pos : pattern_.model_positions()) inputs.push_back(batch[pos]);
  return inputs;
}

absl::StatusOr<c10::IValue> ForwardPass::ModelCall(Model& model, const ModelInputs& inputs,
                                                   c10::Device device) {
  return TorchCallOr("model forward", [&] {
    std::vector<c10::IValue> args;
    args.reserve(inputs.size());
    for (const auto& v : inputs) args.push_back(ToDevice(v, device));
    return model.module().forward(std::move(args));
  });
}

absl::StatusOr<ModelInputs> ForwardPass::CreateRandomModelInputs(int64_t batch_size) {
  if (!common_) {
    return absl::FailedPreconditionError(
        "forward pass: inputs are uncommon; override CreateRandomModelInputs");
  }
  if (!specs_) {
    return absl::FailedPreconditionError(
        "forward pass: no batch seen yet; call InferFrom(batch) or InferFromMetadata first");
  }
  if (batch_size < 1) {
    return FieldError("batch_size", "below 1", batch_size, ">= 1");
  }
  return TorchCallOr("creating random inputs", [&] {
    ModelInputs out;
    for (const auto& s : *specs_) out.push_back(Random(s, batch_size, nullptr));
    return out;
  });
}

absl::StatusOr<std::vector<std::vector<int64_t>>> ForwardPass::GetModelInputShapes() {
  if (!common_) {
    return absl::FailedPreconditionError("forward pass: inputs are uncommon; override GetModelInputShapes");
  }
  if (!specs_) {
    return absl::FailedPreconditionError(
        "forward pass: no batch seen yet; call InferFrom(batch) or InferFromMetadata first");
  }
  std::vector<std::vector<int64_t>> out;
  for (const auto& s : *specs_) Shapes(s, &out);
  return out;
}

absl::StatusOr<c10::IValue> ForwardPass::Forward(Model& model, const Batch& batch, c10::Device device) {
  ASSIGN_OR_RETURN(ModelInputs inputs, ExtractModelInputs(batch));
  absl::StatusOr<c10::IValue> out = ModelCall(model, inputs, device);
  if (out.ok() && output_observer_) output_observer_(*out);
  return out;
}

absl::StatusOr<std::unique_ptr<ForwardPass>> MakeForwardPass(const ForwardPassConfig& config) {
  ASSIGN_OR_RETURN(InputPattern pattern, InputPattern::FromConfig(config));
  return std::make_unique<ForwardPass>(std::move(pattern), !config.uncommon_inputs());
}

}  // namespace slimfit
