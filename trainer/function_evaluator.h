// File: trainer/function_evaluator.h
//
// NNI's evaluator for users who already own a training loop: wrap your
// training function and your evaluating function; the engine calls them on
// every model variant it makes, giving each a fresh optimizer and scheduler
// from the factories (the C++ form of NNI's "traced" optimizers), and may
// patch your criterion (e.g. an L1 term on batch-norm scales for slimming).
//
//   TrainingFunction train = [&](Model& m, torch::optim::Optimizer& opt, LossFunction& criterion,
//                                Scheduler* sched, std::optional<int64_t> max_steps,
//                                std::optional<int> max_epochs) -> absl::Status {
//     ... your loop: criterion(m, batch), backward, opt.step(), sched->Step() ...
//   };
//   EvaluatingFunction evaluate = [&](Model& m) -> absl::StatusOr<EvaluationResult> { ... };
//   FunctionEvaluator ev(train, evaluate, std::move(criterion), optimizer_factory, scheduler_factory);
//   ev.PatchCriterion("bn_l1", BatchNormL1Term(1e-4));
//   RETURN_IF_ERROR(ev.Train(variant, /*max_steps=*/200, std::nullopt));
//   ASSIGN_OR_RETURN(EvaluationResult r, ev.Evaluate(variant));
#ifndef SLIMFIT_TRAINER_FUNCTION_EVALUATOR_H_
#define SLIMFIT_TRAINER_FUNCTION_EVALUATOR_H_

#include <functional>
#include <memory>
#include <optional>
#include <string>

#include "absl/status/statusor.h"
#include "evaluators/metrics.h"
#include "losses/loss_function.h"
#include "model/model.h"
#include "optimizers/factories.h"

namespace slimfit {

using TrainingFunction = std::function<absl::Status(
    Model& model, torch::optim::Optimizer& optimizer, LossFunction& criterion, Scheduler* scheduler,
    std::optional<int64_t> max_steps, std::optional<int> max_epochs)>;

struct EvaluationResult {
  double score = 0;  // what the engine compares (higher is better unless metrics say otherwise)
  Metrics metrics;
};
using EvaluatingFunction = std::function<absl::StatusOr<EvaluationResult>(Model& model)>;

class FunctionEvaluator {
 public:
  // `scheduler_factory` may be null (the training function gets no scheduler).
  FunctionEvaluator(TrainingFunction train, EvaluatingFunction evaluate, std::unique_ptr<LossFunction> criterion,
                    std::shared_ptr<NativeOptimizerFactory> optimizer_factory,
                    std::shared_ptr<NativeSchedulerFactory> scheduler_factory = nullptr);

  // Adds a named term to the criterion for every later Train call.
  void PatchCriterion(std::string name, ExtraTerm term);

  // Fresh optimizer (and scheduler) for `model`, then the user's function.
  // Traced models are made trainable first. Leaves the model in eval mode.
  absl::Status Train(Model& model, std::optional<int64_t> max_steps, std::optional<int> max_epochs);

  absl::StatusOr<EvaluationResult> Evaluate(Model& model);

 private:
  TrainingFunction train_;
  EvaluatingFunction evaluate_;
  std::unique_ptr<LossFunction> criterion_;
  std::shared_ptr<NativeOptimizerFactory> optimizer_factory_;
  std::shared_ptr<NativeSchedulerFactory> scheduler_factory_;
};

}  // namespace slimfit

#endif  // SLIMFIT_TRAINER_FUNCTION_EVALUATOR_H_
