// File: search/experiment.h
//
// Experiment files (search/experiment.proto): loading, the built-in default,
// defaults filled in, and validation of every field before any work starts.
//
//   ASSIGN_OR_RETURN(Experiment e, LoadExperiment("experiments/fashion_mnist_resnet.pbtxt"));
//   RETURN_IF_ERROR(ValidateExperiment(e));       // "compression.delta: -1; must be >= 0 ..."
//   Experiment effective = WithDefaults(e);       // what the run and its report use
//
// Contract: ValidateExperiment reads no data and trains nothing; it checks
// that a model file exists (NotFound naming it), that names resolve (zoo
// models, pruners, observers, optimizers' oneofs) and that numbers are in
// range, with messages naming the field, the bad value and what is valid.
// WithDefaults is idempotent.
#ifndef SLIMFIT_SEARCH_EXPERIMENT_H_
#define SLIMFIT_SEARCH_EXPERIMENT_H_

#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "search/experiment.pb.h"

namespace slimfit {

// Parses the text proto at `path`; an empty name becomes the file's stem.
absl::StatusOr<Experiment> LoadExperiment(const std::string& path);

// The built-in default run: Fashion-MNIST (Debian's dataset-fashion-mnist),
// a zoo resnet_small trained once as the reference, delta 1.0, level 1.
Experiment DefaultExperiment();

absl::Status ValidateExperiment(const Experiment& experiment);

// The part of ValidateExperiment the engine needs when the caller brings its
// own model, data and components: name, evaluation, full_trainer,
// compression, device, threads, export (model and data are not looked at).
absl::Status ValidateEngineConfig(const Experiment& experiment);

// Every unset field that has a default gets it (see experiment.proto).
Experiment WithDefaults(Experiment experiment);

// Whether `export.formats` lists ONNX (model.onnx beside model.pt).
bool ExportsOnnx(const Experiment& experiment);

}  // namespace slimfit

#endif  // SLIMFIT_SEARCH_EXPERIMENT_H_
