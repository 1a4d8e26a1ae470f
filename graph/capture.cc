#include "graph/capture.h"

#include <ATen/core/grad_mode.h>
#include <torch/csrc/jit/api/function_impl.h>
#include <torch/csrc/jit/api/module.h>
#include <torch/csrc/jit/ir/ir.h>

#include <memory>

#include "common/status_macros.h"
#include "common/torch_status.h"
#include "graph/layer_table.h"

namespace slimfit {
std::vector<torch::jit::Value*> TopLevelTensorValues(torch::jit::Graph& graph) {
  std::vector<torch::jit::Value*> values;
  for (torch::jit::Value* in : graph.inputs()) {
    if (IsTensorValue(in)) values.push_back(in);
  }
  for (torch::jit::Node* n : graph.block()->nodes()) {
    if (n->kind() == c10::prim::GetAttr || n->kind() == c10::prim::Constant ||
        n->kind() == c10::prim::Uninitialized) {
      continue;
    }
    for (torch::jit::Value* o : n->outputs()) {
      if (IsTensorValue(o)) values.push_back(o);
    }
  }
  return values;
}

absl::StatusOr<TensorCapture> TensorCapture::Create(torch::jit::Graph& graph,
                                                   const std::vector<torch::jit::Value*>& values) {
  return TorchCallOr("instrumenting the forward graph", [&]() -> absl::StatusOr<TensorCapture> {
    // A private copy of the graph returns (output, values...): the caller's
    // graph is left as it was, and its Value pointers stay valid.
    std::unordered_map<torch::jit::Value*, torch::jit::Value*> map;
    auto copy = std::make_shared<torch::jit::Graph>();
    copy->block()->cloneFrom(graph.block(), [](torch::jit::Value* v) { return v; });
    // Pair each value with its copy by walking both graphs in step.
    for (size_t i = 0; i < graph.inputs().size(); ++i) map[graph.inputs()[i]] = copy->inputs()[i];
    auto src = graph.block()->nodes().begin();
    auto dst = copy->block()->nodes().begin();
    for (; src != graph.block()->nodes().end(); ++src, ++dst) {
      for (size_t i = 0; i < src->outputs().size(); ++i) map[src->outputs()[i]] = dst->outputs()[i];
    }
    std::vector<torch::jit::Value*> outs = {copy->outputs().at(0)};
    for (torch::jit::Value* v : values) outs.push_back(map.at(v));
    torch::jit::Node* tuple = copy->createTuple(outs);
    copy->appendNode(tuple);
    copy->eraseOutput(0);
    copy->registerOutput(tuple->output());
    TensorCapture c;
    c.fn_ = std::make_shared<torch::jit::GraphFunction>("slimfit_capture", copy, nullptr);
    c.num_values_ = values.size();
    return c;
  });
}

absl::StatusOr<Captured> TensorCapture::Run(Model& model, const std::vector<c10::IValue>& inputs,
                                            bool grad) const {
  return TorchCallOr("running the instrumented forward graph", [&]() -> absl::StatusOr<Captured> {
    std::vector<c10::IValue> stack = {model.module()._ivalue()};
    stack.insert(stack.end(), inputs.begin(), inputs.end());
    c10::IValue result;
    {
      at::AutoGradMode mode(grad);
      result = (*fn_)(stack);
    }
    const auto& elems = result.toTupleRef().elements();
    Captured c;
    c.output = elems[0];
    c.tensors.reserve(num_values_);
    // A value of a branch not taken (scripted code's raise paths) is not a
    // tensor: an undefined tensor stands for it.
    for (size_t i = 0; i < num_values_; ++i) {
      c.tensors.push_back(elems[i + 1].isTensor() ? elems[i + 1].toTensor() : at::Tensor());
    }
    return c;
  });
}

absl::StatusOr<Captured> RunAndCapture(Model& model, torch::jit::Graph& graph,
                                       const std::vector<torch::jit::Value*>& values,
                                       const std::vector<c10::IValue>& inputs, bool grad) {
  ASSIGN_OR_RETURN(TensorCapture capture, TensorCapture::Create(graph, values));
  return capture.Run(model, inputs, grad);
}

}  // namespace slimfit
