#include "trainer/components.h"

#include "absl/strings/str_cat.h"
#include "common/field_error.h"
#include "common/status_macros.h"

namespace slimfit {

DataConfig DataForDevice(const DataConfig& data, c10::Device device) {
  DataConfig d = data;
  if (device.is_cuda()) d.set_pin_memory(true);
  return d;
}

absl::StatusOr<Components> BuildComponents(const ComponentsConfig& config) {
  RETURN_IF_ERROR(RequireNonNull("ComponentsConfig",
                                 {{"data", config.data},
                                  {"forward_pass", config.forward_pass},
                                  {"loss", config.loss},
                                  {"evaluation", config.evaluation}},
                                 "data, forward_pass, loss and evaluation are required"));
  const DataConfig data = DataForDevice(*config.data, config.device);
  Components c;
  ASSIGN_OR_RETURN(c.splits, LoadSplits(data), AtField("data"));
  if (config.train_loader) {
    ASSIGN_OR_RETURN(c.train, MakeLoader(data, c.splits, "train"), AtField("data"));
  }
  c.eval_split = config.evaluation->eval_split().empty() ? "val" : config.evaluation->eval_split();
  ASSIGN_OR_RETURN(c.eval, MakeLoader(data, c.splits, c.eval_split), AtField("evaluation.eval_split"));
  if (config.test_loader && c.eval_split != "test" && c.splits.test != nullptr && c.splits.test->size() > 0) {
    ASSIGN_OR_RETURN(c.test, MakeLoader(data, c.splits, "test"), "data (test split)");
  }
  ASSIGN_OR_RETURN(c.forward_pass, MakeForwardPass(*config.forward_pass), AtField("forward_pass"));
  {
    // The forward pass learns the input specs from a transformed batch, so
    // passes that need random inputs (profiling, pruning analysis) work
    // before any training step.
    Batch first;
    RETURN_IF_ERROR(c.eval->Reset(0), AtField("evaluation.eval_split"));
    ASSIGN_OR_RETURN(bool any, c.eval->Next(&first), AtField("evaluation.eval_split"));
    if (!any) {
      return FieldErrorWithCode(absl::StatusCode::kFailedPrecondition, "evaluation.eval_split",
                                "the split's loader gave no batch", Quoted(c.eval_split), "a split with samples");
    }
    RETURN_IF_ERROR(c.forward_pass->InferFrom(first), AtField("forward_pass"));
  }
  LossConfig loss = *config.loss;
  if (loss.loss_case() == LossConfig::LOSS_NOT_SET) loss.mutable_cross_entropy();
  ASSIGN_OR_RETURN(c.loss, MakeLoss(loss, LossContext{c.forward_pass}), AtField("loss"));
  RETURN_IF_ERROR(c.loss->ToDevice(config.device), AtField("loss"));
  EvaluatorContext evaluator_context{c.forward_pass};
  evaluator_context.device = config.device;
  ASSIGN_OR_RETURN(c.evaluator, MakeEvaluator(*config.evaluation, evaluator_context), AtField("evaluation"));
  c.device = config.device;

  return c;
}

}  // namespace slimfit
