// File: search/setup.h
//
// From an Experiment to what an Engine runs on: the data loaders (train and
// eval_split), the forward pass (input structure learned from a batch), the
// loss, the evaluation function, and the reference model — loaded from
// model.path, or, for a zoo model, trained once with the experiment's
// recipe and cached under `references_dir` so later runs reuse it.
//
//   Experiment e = WithDefaults(experiment);
//   ASSIGN_OR_RETURN(EngineInputs in, BuildEngineInputs(e, {}));
//   Engine engine(std::move(in.data), std::move(*in.model), e, in.forward_pass,
//                 std::move(in.evaluator), std::move(in.loss));
//
// Contract: validates the experiment first (ValidateExperiment); a cached
// reference is keyed by everything that shapes it (zoo name, width, data,
// forward pass, loss, training recipe, seed): change one and it is trained
// anew. The cache is written atomically (a killed training leaves none).
#ifndef SLIMFIT_SEARCH_SETUP_H_
#define SLIMFIT_SEARCH_SETUP_H_

#include <memory>
#include <optional>
#include <string>

#include "absl/status/statusor.h"
#include "data/dataset.h"
#include "evaluators/evaluation_function.h"
#include "forward_pass/forward_pass.h"
#include "losses/loss_function.h"
#include "model/model.h"
#include "model/zoo/zoo.h"
#include "search/engine.h"
#include "search/experiment.pb.h"

namespace slimfit {

struct SetupOptions {
  std::string references_dir = "runs/references";
};

struct EngineInputs {
  EngineData data;
  std::optional<Model> model;  // the reference
  std::shared_ptr<ForwardPass> forward_pass;
  std::unique_ptr<LossFunction> loss;
  std::unique_ptr<EvaluationFunction> evaluator;  // runs on the experiment's device
  c10::Device device = c10::kCPU;                 // the experiment's, resolved (model/device.h)
  std::string reference_source;  // "loaded <path>", "cached <path>" or "trained ... → <path>"
};

// Distributed (`group` with several ranks): also this rank's shards of the
// loaders; a zoo reference is trained data-parallel (rank 0 caches it) or
// read from rank 0's cache and sent to the others.
absl::StatusOr<EngineInputs> BuildEngineInputs(const Experiment& experiment, const SetupOptions& options,
                                               Collective* group = nullptr);

}  // namespace slimfit

#endif  // SLIMFIT_SEARCH_SETUP_H_
