// File: graph/pruning_test_util.h
//
// Test helpers shared by graph/ and pruners/ tests: the models pruning must
// handle (every zoo model, Python-traced and -scripted models with residual
// adds, depthwise convs, concatenation, a gate and flatten → linear), with
// non-trivial batch-norm statistics, and the masked-vs-pruned check.
#ifndef SLIMFIT_GRAPH_PRUNING_TEST_UTIL_H_
#define SLIMFIT_GRAPH_PRUNING_TEST_UTIL_H_

#include <ATen/core/Tensor.h>

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "graph/dependency_graph.h"
#include "graph/surgery.h"
#include "model/model.h"

namespace slimfit::testing {

struct PruningTestModel {
  std::string name;
  Model model;
  std::vector<int64_t> input_shape;  // one sample, without the batch axis
};

// lenet5, vgg_small, resnet_small, mobilenetv2_small (narrowed, 16x16
// inputs to keep tests fast), graph/testdata/mixed_{traced,scripted}.pt,
// dense_scripted.pt (a list grown with append) and
// grouped_{traced,scripted}.pt (ResNeXt-style grouped convs) and
// shuffle_{traced,scripted}.pt (ShuffleNetV2-style chunk + channel shuffle),
// everyday_{traced,scripted}.pt (instance norm, PReLU, crops, squeeze);
// every batch-norm γ, β and running statistic randomised (seeded).
absl::StatusOr<std::vector<PruningTestModel>> PruningTestModels();

// `model`'s output for `x` in eval mode, without gradients (the model's
// mode is set to eval).
at::Tensor EvalForward(const Model& model, const at::Tensor& x);

// A batch of `batch` seeded random inputs for `shape`.
at::Tensor RandomInput(const std::vector<int64_t>& shape, int64_t batch, uint64_t seed = 1);

// Removes about `fraction` of every group's prunable units (seeded choice).
PruningPlan RandomPlan(const DependencyGraph& graph, double fraction, uint64_t seed);

// max |pruned(x) - masked(x)| in eval mode, where masked is `model` with the
// plan's channels zeroed (the model itself is not changed).
absl::StatusOr<double> MaskedVsPrunedDiff(const Model& model, const Model& pruned,
                                          const DependencyGraph& graph, const PruningPlan& plan,
                                          const at::Tensor& x);

}  // namespace slimfit::testing

#endif  // SLIMFIT_GRAPH_PRUNING_TEST_UTIL_H_
