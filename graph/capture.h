// File: graph/capture.h
//
// Running a model's inlined forward graph (from BuildLayerGraph) while
// capturing intermediate tensors: the graph is made to return the requested
// values alongside its output, run once, and restored. This is how the
// profiler measures per-layer shapes, how the dependency graph learns every
// tensor's shape, and how activation-based pruners read activations — on
// models traced or scripted in Python as on zoo models.
//
//   ASSIGN_OR_RETURN(LayerGraph lg, BuildLayerGraph(model));
//   std::vector<torch::jit::Value*> values = TopLevelTensorValues(*lg.graph);
//   ASSIGN_OR_RETURN(Captured c, RunAndCapture(model, *lg.graph, values, inputs));
//
// Contract: only values of the graph's top-level block can be captured (ops
// inside prim::If / prim::Loop blocks are not reachable from the outside).
// With `grad` false the run is under NoGradGuard; with it true the captured
// tensors carry autograd history (for gradients w.r.t. activations).
// Not thread-safe on one graph (it is edited while running).
#ifndef SLIMFIT_GRAPH_CAPTURE_H_
#define SLIMFIT_GRAPH_CAPTURE_H_

#include <ATen/core/Tensor.h>
#include <ATen/core/ivalue.h>

#include <memory>
#include <vector>

#include "absl/status/statusor.h"
#include "model/model.h"

namespace torch::jit {
struct Graph;
struct GraphFunction;
struct Value;
}  // namespace torch::jit

namespace slimfit {

struct Captured {
  c10::IValue output;               // the model's own output
  std::vector<at::Tensor> tensors;  // one per requested value, same order;
                                    // undefined where the run produced none
};

// Graph inputs that are tensors, then every tensor output of a top-level node
// (constants and attribute reads excluded), in definition order.
std::vector<torch::jit::Value*> TopLevelTensorValues(torch::jit::Graph& graph);

// Prepares the instrumented copy once, for running it on many batches
// (activation statistics): the copy is compiled on its first run only.
class TensorCapture {
 public:
  static absl::StatusOr<TensorCapture> Create(torch::jit::Graph& graph,
                                              const std::vector<torch::jit::Value*>& values);
  absl::StatusOr<Captured> Run(Model& model, const std::vector<c10::IValue>& inputs, bool grad = false) const;

 private:
  std::shared_ptr<torch::jit::GraphFunction> fn_;
  size_t num_values_ = 0;
};

// Create + one Run.
absl::StatusOr<Captured> RunAndCapture(Model& model, torch::jit::Graph& graph,
                                       const std::vector<torch::jit::Value*>& values,
                                       const std::vector<c10::IValue>& inputs, bool grad = false);

}  // namespace slimfit

#endif  // SLIMFIT_GRAPH_CAPTURE_H_
