// File: pruners/prune.h
//
// Prune: one call from a model and a PruningConfig to a physically smaller
// model, running the configured schedule:
//   one_shot   (slim: sparsity training first) score → plan → surgery →
//              optional fine-tune (finetune_epochs, when a trainer is given);
//   iterative  `steps` rounds of score → plan (step ratio 1-(1-r)^(1/steps))
//              → surgery → fine-tune, re-analysing the smaller model;
//   agp        fine-tune with removed channels masked (gradients masked,
//              masks re-applied after each step) while the ratio grows
//              cubically to r, re-scored every `frequency` steps; then surgery.
// After every cut, when training data is given, batch-norm running
// statistics are re-estimated on `bn_recalibration_batches` (default 50):
// set to the average of those batches' statistics, whatever the model's
// momentum (trainer/batch_norm_stats.h).
// level (unstructured) zeroes weights instead, keeping masks through its
// fine-tuning; its model keeps its shapes.
//
// Every structured result is checked before it is returned: on random inputs
// the pruned model must match the masked original (max |diff| <= 1e-3 ·
// max(1, |output|)); a mismatch is an Internal error, never a wrong model.
//
//   PruneDeps deps{&forward_pass};             // no data: weight-based pruners only
//   ASSIGN_OR_RETURN(PruneResult r, Prune(model, config, deps));
//   RETURN_IF_ERROR(r.model.Save("pruned.pt"));
#ifndef SLIMFIT_PRUNERS_PRUNE_H_
#define SLIMFIT_PRUNERS_PRUNE_H_

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "data/data_loader.h"
#include "evaluators/evaluation_function.h"
#include "forward_pass/forward_pass.h"
#include "losses/loss_function.h"
#include "model/model.h"
#include "pruners/plan.h"
#include "pruners/pruner.pb.h"
#include "trainer/trainer.pb.h"

namespace slimfit {

struct PruneDeps {
  ForwardPass* forward_pass = nullptr;  // required: example inputs
  // Data, for data-driven pruners and fine-tuning (optional).
  LossFunction* loss = nullptr;
  DataLoader* train = nullptr;
  // Fine-tuning: the trainer config (its epochs are replaced by the
  // schedule's), an evaluator and the eval loader (optional).
  const TrainerConfig* finetune = nullptr;
  EvaluationFunction* evaluator = nullptr;
  DataLoader* eval = nullptr;
  // Where fine-tuning runs (TrainerDeps::device); the pruned model comes
  // back on the CPU. Analysis, cuts and scoring stay on the CPU.
  c10::Device device = c10::kCPU;
};

struct PruneResult {
  Model model;
  std::vector<LayerPlan> layers;           // of the last step (structured)
  // The last cut (structured): the channels it removed from the model it
  // was made on (the input model for one-shot without sparsity training;
  // graph/surgery.h's ApplyMasks(that model, plan) is what the cut equals).
  PruningPlan plan;
  std::vector<std::string> unhandled_ops;  // from the dependency analysis
  std::vector<std::string> log;            // one line per phase
  double max_masked_diff = 0;              // the check above
  double sparsity = 0;                     // level: zero fraction of the pruned weights
};

absl::StatusOr<PruneResult> Prune(const Model& model, const PruningConfig& config, const PruneDeps& deps);

// Batch-norm running statistics re-estimated on `batches` batches of
// deps.train (train-mode forward passes, no gradients), as Prune does after
// a cut; a no-op without deps.train or with batches <= 0. For a model
// changed otherwise (residual blocks removed: graph/depth.h).
absl::Status ReestimateBatchNorm(Model& model, int batches, const PruneDeps& deps);

// The dependency graph of `model` on two random inputs from `forward_pass`.
absl::StatusOr<DependencyGraph> AnalyzeModel(Model& model, ForwardPass& forward_pass);

}  // namespace slimfit

#endif  // SLIMFIT_PRUNERS_PRUNE_H_
