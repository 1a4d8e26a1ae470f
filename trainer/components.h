// File: trainer/components.h
//
// What every job that trains or scores a model is built from, assembled in
// one place so the tools (tools/job.h) and the compression engine
// (search/setup.h) build it alike: the data splits, the train loader
// (optional), the eval_split loader, the test loader (optional), the forward
// pass with its input specs learned from the first eval batch, the loss and
// the evaluator.
//
//   ComponentsConfig c{&data, &forward_pass, &loss, &evaluation};
//   c.train_loader = true;
//   ASSIGN_OR_RETURN(Components parts, BuildComponents(c));
//
// Contract:
//   - eval_split defaults to "val"; an unset loss is cross-entropy;
//   - errors name the field they come from ("data: ...",
//     "evaluation.eval_split: ...", "forward_pass: ...", "loss: ...",
//     "evaluation: ...");
//   - an eval split without samples is an error (FailedPrecondition naming
//     evaluation.eval_split): nothing can be scored on it, and the forward
//     pass could not learn its inputs;
//   - the loss and the evaluator run on `device` (the evaluator moves each
//     model there for a pass); for a CUDA device the loaders make
//     page-locked batches ahead (DataForDevice);
//   - the test loader is built only when asked, when the data has a test
//     split with samples and eval_split is not "test" itself (it is scored
//     beside eval_split, never to choose).
#ifndef SLIMFIT_TRAINER_COMPONENTS_H_
#define SLIMFIT_TRAINER_COMPONENTS_H_

#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "data/data.pb.h"
#include "data/splits.h"
#include "evaluators/evaluation_function.h"
#include "evaluators/evaluator.pb.h"
#include "forward_pass/forward_pass.h"
#include "forward_pass/forward_pass.pb.h"
#include "losses/loss.pb.h"
#include "losses/loss_function.h"

namespace slimfit {

struct ComponentsConfig {
  const DataConfig* data = nullptr;                 // required
  const ForwardPassConfig* forward_pass = nullptr;  // required (may be empty: the default pass)
  const LossConfig* loss = nullptr;                 // required (may be unset: cross-entropy)
  const EvaluationConfig* evaluation = nullptr;     // required
  bool train_loader = false;
  bool test_loader = false;
  // Where the loss and the evaluator run (model/device.h).
  c10::Device device = c10::kCPU;
};

struct Components {
  Splits splits;
  std::unique_ptr<DataLoader> train;  // when asked
  std::unique_ptr<DataLoader> eval;   // evaluation.eval_split
  std::unique_ptr<DataLoader> test;   // when asked and the data has one (see above)
  std::string eval_split;
  std::shared_ptr<ForwardPass> forward_pass;
  std::unique_ptr<LossFunction> loss;
  std::unique_ptr<EvaluationFunction> evaluator;
  c10::Device device = c10::kCPU;  // the config's: train here too (TrainerDeps::device)
};

absl::StatusOr<Components> BuildComponents(const ComponentsConfig& config);

// `data` as loaders for `device` read it: page-locked batches made ahead
// (pin_memory) for a CUDA device; unchanged otherwise.
DataConfig DataForDevice(const DataConfig& data, c10::Device device);

}  // namespace slimfit

#endif  // SLIMFIT_TRAINER_COMPONENTS_H_
