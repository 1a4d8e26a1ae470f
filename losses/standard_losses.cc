// The registered losses: cross_entropy, nll, mse, l1, smooth_l1,
// bce_with_logits, distillation.
#include <ATen/ATen.h>
#include <c10/core/GradMode.h>

#include "absl/strings/str_cat.h"
#include "common/field_error.h"
#include "common/status_macros.h"
#include "common/torch_status.h"
#include "losses/loss_function.h"

namespace slimfit {
namespace {

using internal::PredictionOf;
using internal::TargetOf;

// A loss of (prediction, target) with one term named `name`.
class OutputTargetLoss : public LossFunction {
 public:
  using Fn = std::function<at::Tensor(const at::Tensor& pred, const at::Tensor& target)>;
  OutputTargetLoss(std::shared_ptr<ForwardPass> fp, std::string name, int target_index,
                   int output_index, Fn fn)
      : LossFunction(std::move(fp)), name_(std::move(name)), target_index_(target_index),
        output_index_(output_index), fn_(std::move(fn)) {}

  absl::StatusOr<LossTerms> FromOutput(const c10::IValue& output, const Batch& batch) override {
    ASSIGN_OR_RETURN(at::Tensor pred, PredictionOf(output, output_index_));
    ASSIGN_OR_RETURN(at::Tensor target, TargetOf(batch, target_index_));
    ASSIGN_OR_RETURN(at::Tensor value, TorchCallOr(name_, [&] {
                       return fn_(pred, target.to(pred.device()));
                     }));
    return LossTerms{{{name_, value}}};
  }

 private:
  std::string name_;
  int target_index_, output_index_;
  Fn fn_;
};

absl::StatusOr<std::unique_ptr<LossFunction>> Make(const LossConfig& c, const LossContext& ctx,
                                                   const std::string& name, OutputTargetLoss::Fn fn) {
  ASSIGN_OR_RETURN(int target, internal::ResolveTargetIndex(c, ctx.forward_pass->pattern()));
  if (c.output_index() < 0) {
    return FieldError("output_index", "negative", c.output_index(), ">= 0");
  }
  return std::make_unique<OutputTargetLoss>(ctx.forward_pass, name, target, c.output_index(), std::move(fn));
}

absl::StatusOr<std::unique_ptr<LossFunction>> CrossEntropy(const LossConfig& c, const LossContext& ctx) {
  const double smoothing = c.cross_entropy().label_smoothing();
  if (!(smoothing >= 0 && smoothing < 1)) {
    return FieldError("cross_entropy.label_smoothing", "out of range", smoothing, "[0, 1)");
  }
  const int64_t ignore = c.cross_entropy().has_ignore_index() ? c.cross_entropy().ignore_index() : -100;
  return Make(c, ctx, "cross_entropy", [smoothing, ignore](const at::Tensor& p, const at::Tensor& t) {
    return at::cross_entropy_loss(p, t, {}, at::Reduction::Mean, ignore, smoothing);
  });
}

absl::StatusOr<std::unique_ptr<LossFunction>> Nll(const LossConfig& c, const LossContext& ctx) {
  return Make(c, ctx, "nll", [](const at::Tensor& p, const at::Tensor& t) { return at::nll_loss(p, t); });
}

absl::StatusOr<std::unique_ptr<LossFunction>> Mse(const LossConfig& c, const LossContext& ctx) {
  return Make(c, ctx, "mse", [](const at::Tensor& p, const at::Tensor& t) {
    return at::mse_loss(p, t.to(p.scalar_type()));
  });
}

absl::StatusOr<std::unique_ptr<LossFunction>> L1(const LossConfig& c, const LossContext& ctx) {
  return Make(c, ctx, "l1", [](const at::Tensor& p, const at::Tensor& t) {
    return at::l1_loss(p, t.to(p.scalar_type()));
  });
}

absl::StatusOr<std::unique_ptr<LossFunction>> SmoothL1(const LossConfig& c, const LossContext& ctx) {
  const double beta = c.smooth_l1().beta() == 0 ? 1.0 : c.smooth_l1().beta();
  if (!(beta > 0)) return FieldError("smooth_l1.beta", "negative", beta, "> 0 (0 = 1.0)");
  return Make(c, ctx, "smooth_l1", [beta](const at::Tensor& p, const at::Tensor& t) {
    return at::smooth_l1_loss(p, t.to(p.scalar_type()), at::Reduction::Mean, beta);
  });
}

absl::StatusOr<std::unique_ptr<LossFunction>> BceWithLogits(const LossConfig& c, const LossContext& ctx) {
  return Make(c, ctx, "bce_with_logits", [](const at::Tensor& p, const at::Tensor& t) {
    return at::binary_cross_entropy_with_logits(p, t.to(p.scalar_type()));
  });
}

class DistillationLoss : public LossFunction {
 public:
  DistillationLoss(std::shared_ptr<ForwardPass> fp, std::unique_ptr<Model> owned, Model* teacher, double temperature,
                   double alpha, int target_index, int output_index)
      : LossFunction(std::move(fp)),
        owned_(std::move(owned)),
        on_device_(teacher),
        temperature_(temperature),
        alpha_(alpha),
        target_index_(target_index),
        output_index_(output_index) {
    teacher->Eval();
  }

  absl::Status ToDevice(c10::Device device) override {
    RETURN_IF_ERROR(LossFunction::ToDevice(device));
    return on_device_.MoveTo(device);
  }

  absl::StatusOr<LossTerms> FromOutput(const c10::IValue& output, const Batch& batch) override {
    ASSIGN_OR_RETURN(at::Tensor student, PredictionOf(output, output_index_));
    ASSIGN_OR_RETURN(at::Tensor target, TargetOf(batch, target_index_));
    at::Tensor teacher;
    {
      c10::NoGradGuard no_grad;
      ASSIGN_OR_RETURN(c10::IValue t_out, forward_pass().Forward(on_device_.get(), batch, device()),
                       "distillation teacher");
      ASSIGN_OR_RETURN(teacher, PredictionOf(t_out, output_index_), "distillation teacher");
    }
    return TorchCallOr("distillation", [&] {
      const double t = temperature_;
      at::Tensor soft = at::kl_div(at::log_softmax(student / t, 1), at::log_softmax(teacher / t, 1),
                                   at::Reduction::None, /*log_target=*/true)
                            .sum(1)
                            .mean() *
                        (t * t * alpha_);
      at::Tensor hard = at::cross_entropy_loss(student, target.to(student.device())) * (1 - alpha_);
      return LossTerms{{{"distill_kl", soft}, {"hard_ce", hard}}};
    });
  }

 private:
  std::unique_ptr<Model> owned_;
  TeacherOnDevice on_device_;
  double temperature_, alpha_;
  int target_index_, output_index_;
};

absl::StatusOr<std::unique_ptr<LossFunction>> Distillation(const LossConfig& c, const LossContext& ctx) {
  const auto& d = c.distillation();
  const double temperature = d.temperature() == 0 ? 4.0 : d.temperature();
  const double alpha = d.has_alpha() ? d.alpha() : 0.9;
  if (!(temperature > 0)) {
    return FieldError("distillation.temperature", "negative", temperature, "> 0 (0 = 4.0)");
  }
  if (!(alpha >= 0 && alpha <= 1)) return FieldError("distillation.alpha", "out of range", alpha, "[0, 1]");
  ASSIGN_OR_RETURN(int target, internal::ResolveTargetIndex(c, ctx.forward_pass->pattern()));
  std::unique_ptr<Model> owned;
  Model* teacher = ctx.teacher;
  if (!d.teacher_path().empty()) {
    ASSIGN_OR_RETURN(Model m, Model::Load(d.teacher_path()), AtField("distillation.teacher_path"));
    owned = std::make_unique<Model>(std::move(m));
    teacher = owned.get();
  }
  if (teacher == nullptr) {
    return FieldError("distillation.teacher_path", "required when the engine supplies no teacher model", "\"\"",
                      "a TorchScript file");
  }
  return std::make_unique<DistillationLoss>(ctx.forward_pass, std::move(owned), teacher, temperature,
                                            alpha, target, c.output_index());
}

const Registration<LossFactory> kCe(LossRegistry(), "cross_entropy", &CrossEntropy);
const Registration<LossFactory> kNll(LossRegistry(), "nll", &Nll);
const Registration<LossFactory> kMse(LossRegistry(), "mse", &Mse);
const Registration<LossFactory> kL1(LossRegistry(), "l1", &L1);
const Registration<LossFactory> kSmoothL1(LossRegistry(), "smooth_l1", &SmoothL1);
const Registration<LossFactory> kBce(LossRegistry(), "bce_with_logits", &BceWithLogits);
const Registration<LossFactory> kDistill(LossRegistry(), "distillation", &Distillation);

}  // namespace
}  // namespace slimfit
