// File: losses/loss_function.h
//
// LossFunction: (model, batch) → one scalar or several named scalar terms
// that are summed — Neutrino's LossFunction. The trainer backpropagates
// Total() and logs every term by name.
//
//   LossContext ctx{forward_pass};
//   ASSIGN_OR_RETURN(auto loss, MakeLoss(config, ctx));     // by name, from LossConfig
//   ASSIGN_OR_RETURN(LossTerms t, (*loss)(model, batch));
//   t.Total().backward();
//
// Most losses compare the model's output with a target from the batch: they
// implement FromOutput(output, batch); operator() runs the forward pass and
// calls it. Evaluators reuse FromOutput on outputs they already have.
//
// Criterion patching (NNI): PatchCriterion wraps a loss and adds named terms
// computed from the model — an L1 penalty on batch-norm scales for network
// slimming, a group-lasso term — without the user's loss knowing.
#ifndef SLIMFIT_LOSSES_LOSS_FUNCTION_H_
#define SLIMFIT_LOSSES_LOSS_FUNCTION_H_

#include <ATen/core/Tensor.h>
#include <ATen/core/ivalue.h>
#include <c10/core/Device.h>

#include <functional>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "common/registry.h"
#include "data/dataset.h"
#include "forward_pass/forward_pass.h"
#include "losses/loss.pb.h"
#include "model/model.h"

namespace slimfit {

struct LossTerms {
  std::vector<std::pair<std::string, at::Tensor>> terms;  // scalar tensors
  // Sum of every term (a scalar with autograd history).
  at::Tensor Total() const;
};

class LossFunction {
 public:
  explicit LossFunction(std::shared_ptr<ForwardPass> forward_pass)
      : forward_pass_(std::move(forward_pass)) {}
  virtual ~LossFunction() = default;

  // Forward pass, then FromOutput.
  virtual absl::StatusOr<LossTerms> operator()(Model& model, const Batch& batch);
  // The terms for an output the model already produced for `batch`.
  virtual absl::StatusOr<LossTerms> FromOutput(const c10::IValue& output, const Batch& batch) = 0;
  // Where the model runs from now on: each batch goes there, and so does
  // anything the loss keeps (a distillation teacher is copied there).
  virtual absl::Status ToDevice(c10::Device device) {
    device_ = device;
    return absl::OkStatus();
  }

  ForwardPass& forward_pass() { return *forward_pass_; }
  c10::Device device() const { return device_; }

 private:
  std::shared_ptr<ForwardPass> forward_pass_;
  c10::Device device_ = c10::kCPU;
};

// A distillation teacher, run on the student's device: the model itself when
// it is there, else a copy made there (the caller's model stays where it is).
class TeacherOnDevice {
 public:
  explicit TeacherOnDevice(Model* teacher) : teacher_(teacher) {}
  absl::Status MoveTo(c10::Device device);
  Model& get() { return copy_ ? *copy_ : *teacher_; }

 private:
  Model* teacher_;               // not owned
  std::unique_ptr<Model> copy_;  // on the device, when the teacher is not
};

// What factories may need besides their config.
struct LossContext {
  std::shared_ptr<ForwardPass> forward_pass;  // required
  // For distillation without teacher_path: the teacher (not owned; must
  // outlive the loss).
  Model* teacher = nullptr;
};

using LossFactory = std::function<absl::StatusOr<std::unique_ptr<LossFunction>>(
    const LossConfig&, const LossContext&)>;
Registry<LossFactory>& LossRegistry();

// The loss selected by `config`'s oneof. Errors name fields relative to `config`
// ("cross_entropy.label_smoothing: ...", common/field_error.h); the caller roots
// them with AtField("loss").
absl::StatusOr<std::unique_ptr<LossFunction>> MakeLoss(const LossConfig& config,
                                                       const LossContext& context);

// A term computed from the model alone (regularisers).
using ExtraTerm = std::function<absl::StatusOr<at::Tensor>(Model& model)>;

// `base` plus `term` logged as `name`. FromOutput stays the base's (the
// pure criterion, for evaluation).
std::unique_ptr<LossFunction> PatchCriterion(std::unique_ptr<LossFunction> base, std::string name,
                                             ExtraTerm term);

// lambda * Σ |γ| over every batch-norm scale (network slimming).
ExtraTerm BatchNormL1Term(double lambda);
// lambda * Σ over conv/linear weights of the L2 norm of each output channel.
ExtraTerm GroupLassoTerm(double lambda);

namespace internal {
// The prediction tensor in `output` (element `index` of a tuple/list).
absl::StatusOr<at::Tensor> PredictionOf(const c10::IValue& output, int index);
// The target tensor at `index` of `batch`.
absl::StatusOr<at::Tensor> TargetOf(const Batch& batch, int index);
// config.target_index, or the pattern's first ignored position.
absl::StatusOr<int> ResolveTargetIndex(const LossConfig& config, const InputPattern& pattern);
}  // namespace internal

}  // namespace slimfit

#endif  // SLIMFIT_LOSSES_LOSS_FUNCTION_H_
