// File: forward_pass/forward_pass.h
//
// ForwardPass: how a batch from a DataLoader becomes a model call — the C++
// form of Neutrino's ForwardPass. The engine never assumes `model(x)`; it
// always goes through one of these.
//
//   ForwardPass fp(InputPattern::Default());          // x, y = batch; model(x)
//   ASSIGN_OR_RETURN(ModelInputs in, fp.ExtractModelInputs(batch));
//   ASSIGN_OR_RETURN(c10::IValue out, fp.ModelCall(model, in, c10::kCPU));
//   ASSIGN_OR_RETURN(ModelInputs fake, fp.CreateRandomModelInputs(8));
//   ASSIGN_OR_RETURN(auto shapes, fp.GetModelInputShapes());   // without batch dim
//
// "Common" inputs are tensors, or lists / tuples / string-keyed dicts of
// them, nested. For those, the first batch seen (ExtractModelInputs, or
// InferFrom) records each input's structure, per-sample shape, dtype and — for
// integer tensors — the observed value range, so CreateRandomModelInputs
// produces inputs of the same structure (floats ~ N(0, 1), integers uniform
// in the observed range, e.g. valid token ids) with no subclassing.
//
// Every method is virtual: a subclass overrides what cannot be inferred for
// uncommon inputs (construct it with expecting_common_inputs = false and the
// defaults that need inference return FailedPrecondition saying so).
#ifndef SLIMFIT_FORWARD_PASS_FORWARD_PASS_H_
#define SLIMFIT_FORWARD_PASS_FORWARD_PASS_H_

#include <ATen/core/ivalue.h>
#include <c10/core/Device.h>

#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "data/dataset.h"
#include "forward_pass/input_pattern.h"
#include "model/model.h"

namespace slimfit {

using ModelInputs = std::vector<c10::IValue>;

// The structure of one model input, inferred from a batch.
struct InputSpec {
  enum class Kind { kTensor, kList, kTuple, kDict };
  Kind kind = Kind::kTensor;
  std::vector<int64_t> shape;  // tensors: per-sample shape (no batch dim)
  c10::ScalarType dtype = c10::ScalarType::Float;
  double min = 0, max = 0;     // tensors: observed value range
  std::vector<InputSpec> children;  // lists, tuples, dicts (values)
  std::vector<std::string> keys;    // dicts
};

class ForwardPass {
 public:
  explicit ForwardPass(InputPattern pattern = InputPattern::Default(),
                       bool expecting_common_inputs = true);
  virtual ~ForwardPass() = default;

  // The batch elements the pattern selects, in call order. The first call
  // records the input specs when inputs are common.
  virtual absl::StatusOr<ModelInputs> ExtractModelInputs(const Batch& batch);

  // model.forward(inputs), with every tensor moved to `device` first.
  virtual absl::StatusOr<c10::IValue> ModelCall(Model& model, const ModelInputs& inputs,
                                                c10::Device device);

  // Random inputs shaped like the recorded ones, with `batch_size` samples.
  virtual absl::StatusOr<ModelInputs> CreateRandomModelInputs(int64_t batch_size);

  // Per-sample shapes of every tensor in the inputs, depth-first.
  virtual absl::StatusOr<std::vector<std::vector<int64_t>>> GetModelInputShapes();

  // ExtractModelInputs + ModelCall; the output goes to the observer too.
  absl::StatusOr<c10::IValue> Forward(Model& model, const Batch& batch, c10::Device device);
  // Sees every output Forward returns while set (empty: none). How a loss
  // wrapper gets the output a wrapped loss computed without a second
  // forward pass (losses/teacher_distillation.h).
  void set_output_observer(std::function<void(const c10::IValue&)> observer) {
    output_observer_ = std::move(observer);
  }

  // Records specs from `batch` (common inputs only).
  absl::Status InferFrom(const Batch& batch);
  // Records float specs from a model's metadata (for when no batch exists).
  absl::Status InferFromMetadata(const ModelMetadata& metadata);

  const InputPattern& pattern() const { return pattern_; }
  bool expecting_common_inputs() const { return common_; }
  const std::optional<std::vector<InputSpec>>& specs() const { return specs_; }

 private:
  InputPattern pattern_;
  bool common_;
  std::optional<std::vector<InputSpec>> specs_;
  std::function<void(const c10::IValue&)> output_observer_;
};

// A ForwardPass from its config.
absl::StatusOr<std::unique_ptr<ForwardPass>> MakeForwardPass(const ForwardPassConfig& config);

}  // namespace slimfit

#endif  // SLIMFIT_FORWARD_PASS_FORWARD_PASS_H_
