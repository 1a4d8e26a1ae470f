#include "export/onnx_prepare.h"

#include <ATen/ATen.h>
#include <torch/csrc/jit/passes/constant_propagation.h>
#include <torch/csrc/jit/passes/dead_code_elimination.h>
#include <torch/csrc/jit/passes/peephole.h>
#include <torch/csrc/jit/passes/shape_analysis.h>
#include <torch/csrc/jit/passes/symbolic_shape_analysis.h>

namespace slimfit::onnx_export {
namespace {

// A prim::If with no outputs whose branches only raise (an nn module's input
// check: `if input.dim() != 4: raise ValueError(...)`): ONNX graphs do not
// check, and what feeds the condition (loops over sizes) has no mapping.
bool IsRaiseOnlyCheck(const torch::jit::Node* n) {
  if (n->kind() != c10::prim::If || n->outputs().size() != 0) return false;
  for (const torch::jit::Block* b : n->blocks()) {
    for (const torch::jit::Node* inner : b->nodes()) {
      c10::Symbol k = inner->kind();
      if (k != c10::prim::RaiseException && k != c10::aten::format && k != c10::prim::Constant &&
          k != c10::prim::Uninitialized) {
        return false;
      }
    }
  }
  return true;
}

}  // namespace

// Specializes the frozen graph to the input ranks and sizes (the batch
// dimension left symbolic, so x.size(0) stays computed at run time): shape
// analysis, then the peepholes that fold dim() / size(d) / len() from it and
// the branches they decide, input checks dropped, dead code removed. Shape
// analysis is best-effort: LibTorch's symbolic pass does not know every op
// (a list built by append), the legacy one is tried next, and a graph
// neither can type is exported as it is.
void Specialize(std::shared_ptr<torch::jit::Graph>& graph, const std::vector<std::vector<int64_t>>& shapes,
                bool fixed_batch) {
  size_t i = 0;
  for (torch::jit::Value* in : graph->inputs()) {
    if (in->type()->cast<c10::ClassType>() != nullptr || i >= shapes.size()) continue;
    std::vector<std::optional<int64_t>> dims(shapes[i].begin(), shapes[i].end());
    if (!fixed_batch && !dims.empty()) dims[0] = std::nullopt;
    in->setType(c10::TensorType::create(at::kFloat, at::kCPU, c10::SymbolicShape(dims),
                                        c10::VaryingShape<c10::Stride>(dims.size()), /*requires_grad=*/false));
    ++i;
  }
  std::shared_ptr<torch::jit::Graph> typed = graph->copy();
  bool shaped = false;
  try {
    torch::jit::PropagateShapesOnGraph(typed);
    shaped = true;
  } catch (...) {
  }
  if (!shaped) {
    typed = graph->copy();
    try {
      torch::jit::PropagateInputShapes(typed);
      shaped = true;
    } catch (...) {
    }
  }
  if (shaped) graph = typed;
  torch::jit::PeepholeOptimize(graph, /*disable_shape_peepholes=*/false);
  torch::jit::ConstantPropagation(graph);
  for (auto it = graph->nodes().begin(); it != graph->nodes().end();) {
    torch::jit::Node* n = *it;
    ++it;
    if (IsRaiseOnlyCheck(n)) n->destroy();
  }
  // A loop whose results nothing uses any more (it fed a dropped check):
  // LibTorch's dead-code pass keeps loops.
  torch::jit::EliminateDeadCode(graph);
  for (auto it = graph->nodes().rbegin(); it != graph->nodes().rend();) {
    torch::jit::Node* n = *it;
    ++it;
    bool unused = true;
    for (const torch::jit::Value* out : n->outputs()) unused = unused && !out->hasUses();
    if (n->kind() == c10::prim::Loop && unused) n->destroy();
  }
  torch::jit::EliminateDeadCode(graph);
}

// Every tensor's shape on one run of `graph` on `inputs`, node by node
// (LibTorch's shape analysis does not follow quantized ops): what static
// sizes the converters need (adaptive pooling, chunk, instance norm).
// Best-effort: it stops at control flow or an op it cannot run alone, and
// returns what it has.
absl::flat_hash_map<const torch::jit::Value*, std::vector<int64_t>> RecordShapes(
    const torch::jit::Graph& graph, const torch::jit::Module& module, const std::vector<c10::IValue>& inputs) {
  absl::flat_hash_map<const torch::jit::Value*, std::vector<int64_t>> shapes;
  absl::flat_hash_map<const torch::jit::Value*, c10::IValue> env;
  size_t k = 0;
  for (const torch::jit::Value* in : graph.inputs()) {
    if (in->type()->cast<c10::ClassType>() != nullptr) {
      env[in] = module._ivalue();
    } else if (k < inputs.size()) {
      env[in] = inputs[k++];
    }
  }
  try {
    at::NoGradGuard no_grad;
    for (const torch::jit::Node* n : graph.nodes()) {
      if (!n->blocks().empty()) break;
      if (n->kind() == c10::prim::Constant) {
        env[n->output()] = torch::jit::toIValue(n->output()).value_or(c10::IValue());
        continue;
      }
      if (n->kind() == c10::prim::GetAttr) {
        env[n->output()] = env.at(n->input(0)).toObjectRef().getAttr(n->s(c10::attr::name));
        continue;
      }
      torch::jit::Stack stack;
      for (const torch::jit::Value* in : n->inputs()) stack.push_back(env.at(in));
      n->getOperation()(stack);
      if (stack.size() != n->outputs().size()) break;
      for (size_t i = 0; i < stack.size(); ++i) {
        if (stack[i].isTensor()) shapes[n->output(i)] = stack[i].toTensor().sizes().vec();
        env[n->output(i)] = std::move(stack[i]);
      }
    }
  } catch (...) {
  }
  return shapes;
}

}  // namespace slimfit::onnx_export
