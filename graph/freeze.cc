#include "graph/freeze.h"

#include <ATen/core/grad_mode.h>
#include <torch/csrc/jit/api/module.h>
#include <torch/csrc/jit/ir/ir.h>
#include <torch/csrc/jit/passes/constant_propagation.h>
#include <torch/csrc/jit/passes/dead_code_elimination.h>
#include <torch/csrc/jit/passes/freeze_module.h>
#include <torch/csrc/jit/passes/frozen_conv_folding.h>
#include <torch/csrc/jit/passes/remove_dropout.h>

#include <utility>
#include <vector>

#include "common/status_macros.h"
#include "common/torch_status.h"
#include "graph/capture.h"
#include "graph/layer_table.h"

namespace slimfit {
namespace {

using torch::jit::Graph;
using torch::jit::Node;

// Traced models call aten::_convolution; the folding passes (and the
// quantization patterns) know conv1d / conv2d. Non-transposed ones with a
// constant weight are rewritten.
void RewriteConvolutions(Graph& graph) {
  std::vector<Node*> todo;
  for (Node* n : graph.nodes()) {
    if (n->kind() == c10::Symbol::fromQualString("aten::_convolution")) todo.push_back(n);
  }
  for (Node* n : todo) {
    const auto call = AsConvolution(n);
    const auto weight = ConstantTensor(n->input(1));
    if (!call || call->transposed || !weight) continue;
    const char* kind = weight->dim() == 4 ? "aten::conv2d" : weight->dim() == 3 ? "aten::conv1d" : nullptr;
    if (kind == nullptr) continue;
    Node* conv = graph.create(c10::Symbol::fromQualString(kind),
                              {n->input(0), n->input(1), n->input(2), n->input(3), n->input(4), n->input(5),
                               n->input(call->groups_input)});
    conv->insertBefore(n);
    conv->output()->setType(n->output()->type());
    conv->setScope(n->scope());
    if (n->callstack()) conv->setCallStack(*n->callstack());
    n->output()->replaceAllUsesWith(conv->output());
    n->destroy();
  }
}

// Pruning surgery makes a grouped convolution's `groups` the run-time
// expression input.size(1) // weight.size(1) (a scripted class's graph is
// shared by instances of different widths). In the frozen graph every
// convolution is one instance's own, so its groups are a constant again:
// one run on zero inputs of the recorded shapes gives each such
// convolution's input channels. Without a constant `groups` LibTorch's
// folding passes skip the convolution (its batch norm would stay). Returns
// how many convolutions got their constant back; with no recorded input
// shapes, or when the run fails, the graph is left as it is (it still
// computes the right thing, only less folded).
int MakeGroupsConstant(Model& frozen, Graph& graph, const ModelMetadata& metadata) {
  std::vector<std::pair<Node*, size_t>> convs;  // and the index of their groups input
  std::vector<torch::jit::Value*> conv_inputs;
  for (Node* n : graph.nodes()) {
    const auto call = AsConvolution(n);
    if (!call || ConstantInt(n->input(call->groups_input))) continue;
    convs.emplace_back(n, call->groups_input);
    conv_inputs.push_back(n->input(0));
  }
  if (convs.empty()) return 0;
  const std::optional<std::vector<c10::IValue>> inputs = ZeroInputs(metadata);
  if (!inputs) return 0;
  absl::StatusOr<Captured> run = RunAndCapture(frozen, graph, conv_inputs, *inputs);
  if (!run.ok()) return 0;
  int count = 0;
  for (size_t i = 0; i < convs.size(); ++i) {
    const auto [n, groups_input] = convs[i];
    const at::Tensor& x = run->tensors[i];
    const std::optional<at::Tensor> weight = ConstantTensor(n->input(1));
    if (!x.defined() || x.dim() < 2 || !weight || weight->dim() < 2) continue;
    const int64_t in_per_group = weight->size(1);
    if (in_per_group <= 0 || x.size(1) % in_per_group != 0) continue;
    torch::jit::WithInsertPoint guard(n);
    n->replaceInput(groups_input, graph.insertConstant(x.size(1) / in_per_group));
    ++count;
  }
  return count;
}

}  // namespace

std::optional<at::Tensor> ConstantTensor(const torch::jit::Value* v) {
  if (v->node()->kind() != c10::prim::Constant) return std::nullopt;
  auto iv = torch::jit::toIValue(v);
  if (!iv || !iv->isTensor()) return std::nullopt;
  return iv->toTensor();
}

absl::StatusOr<torch::jit::Module> FreezeAndFold(const Model& model) {
  ASSIGN_OR_RETURN(Model copy, model.Clone());
  copy.Eval();
  return TorchCallOr("freezing the model", [&] {
    at::NoGradGuard no_grad;
    torch::jit::Module f = torch::jit::freeze_module(copy.module());
    auto graph = f.get_method("forward").graph();
    torch::jit::removeDropout(graph);
    RewriteConvolutions(*graph);
    Model as_model(f);
    MakeGroupsConstant(as_model, *graph, model.metadata());
    torch::jit::FoldFrozenConvBatchnorm(graph);
    torch::jit::FoldFrozenConvAddOrSub(graph);
    torch::jit::FoldFrozenConvMulOrDiv(graph);
    torch::jit::ConstantPropagation(graph);
    torch::jit::EliminateDeadCode(graph);
    if (!f.type()->hasAttribute("training")) f.register_attribute("training", c10::BoolType::get(), false);
    return f;
  });
}

absl::StatusOr<Model> FrozenForInference(const Model& model) {
  ASSIGN_OR_RETURN(torch::jit::Module frozen, FreezeAndFold(model));
  return Model(std::move(frozen), model.metadata());
}

}  // namespace slimfit
