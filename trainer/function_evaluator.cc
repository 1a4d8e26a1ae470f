#include "trainer/function_evaluator.h"

#include <torch/optim/optimizer.h>

#include "common/status_macros.h"
#include "common/torch_status.h"
#include "trainer/trainable.h"

namespace slimfit {

FunctionEvaluator::FunctionEvaluator(TrainingFunction train, EvaluatingFunction evaluate,
                                     std::unique_ptr<LossFunction> criterion,
                                     std::shared_ptr<NativeOptimizerFactory> optimizer_factory,
                                     std::shared_ptr<NativeSchedulerFactory> scheduler_factory)
    : train_(std::move(train)),
      evaluate_(std::move(evaluate)),
      criterion_(std::move(criterion)),
      optimizer_factory_(std::move(optimizer_factory)),
      scheduler_factory_(std::move(scheduler_factory)) {}

void FunctionEvaluator::PatchCriterion(std::string name, ExtraTerm term) {
  criterion_ = slimfit::PatchCriterion(std::move(criterion_), std::move(name), std::move(term));
}

absl::Status FunctionEvaluator::Train(Model& model, std::optional<int64_t> max_steps,
                                      std::optional<int> max_epochs) {
  if (!train_ || !criterion_ || !optimizer_factory_) {
    return absl::FailedPreconditionError(
        "function evaluator: a training function, a criterion and an optimizer factory are required");
  }
  RETURN_IF_ERROR(MakeTrainingModeFollowModule(model).status());
  ASSIGN_OR_RETURN(auto optimizer, optimizer_factory_->Make(model), "function evaluator: optimizer");
  std::unique_ptr<Scheduler> scheduler;
  if (scheduler_factory_ != nullptr) {
    ASSIGN_OR_RETURN(scheduler, scheduler_factory_->Make(*optimizer), "function evaluator: scheduler");
  }
  model.Train();
  RETURN_IF_ERROR(TorchCall("training function", [&] {
    return train_(model, *optimizer, *criterion_, scheduler.get(), max_steps, max_epochs);
  }));
  model.Eval();
  return absl::OkStatus();
}

absl::StatusOr<EvaluationResult> FunctionEvaluator::Evaluate(Model& model) {
  if (!evaluate_) return absl::FailedPreconditionError("function evaluator: no evaluating function");
  model.Eval();
  return TorchCallOr("evaluating function", [&] { return evaluate_(model); });
}

}  // namespace slimfit
