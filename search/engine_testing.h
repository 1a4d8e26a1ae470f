// File: search/engine_testing.h
//
// Test helpers for the engine and its strategies (testonly): a LeNet-5
// experiment on a slice of Debian's Fashion-MNIST (trained briefly, cached
// under the test's temporary directory), an engine built from it, and the
// metric of a written model re-measured with plain LibTorch.
#ifndef SLIMFIT_SEARCH_ENGINE_TESTING_H_
#define SLIMFIT_SEARCH_ENGINE_TESTING_H_

#include <memory>
#include <string>
#include <vector>

#include "search/engine.h"
#include "search/experiment.pb.h"

namespace slimfit::testing {

// lenet5 (2 reference epochs) on 3,000 training and 600 val / test images,
// output under TempDir()/runs/<name>, with `compression` (a text proto;
// strategy "bisection" unless it names one).
Experiment LenetSlice(const std::string& name, const std::string& compression);
// The same slice and recipe for another zoo model (resnet_small: residual
// blocks to remove).
Experiment ZooSlice(const std::string& zoo, const std::string& name, const std::string& compression);

struct BuiltEngine {
  Experiment experiment;  // with defaults
  std::unique_ptr<Engine> engine;
  std::vector<std::string> lines;  // the progress it said
};

// The engine for `e` (progress collected in `lines`); engine is null after
// a failed setup (reported as a test failure).
std::unique_ptr<BuiltEngine> BuildEngine(const Experiment& e);

// eval_key of the model file at `path`, loaded with torch::jit::load (no
// slimfit code), on the experiment's eval split, or on test.
double MetricOfFile(const Experiment& e, const std::string& path, bool on_test = false);

}  // namespace slimfit::testing

#endif  // SLIMFIT_SEARCH_ENGINE_TESTING_H_
