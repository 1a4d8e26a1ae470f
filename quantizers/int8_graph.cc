// Reading and fixing the graph for int8 (quantizers/int8_internal.h).
#include <torch/csrc/jit/ir/constants.h>
#include <torch/csrc/jit/passes/dead_code_elimination.h>

#include <cmath>
#include <limits>
#include <optional>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/status_macros.h"
#include "common/torch_status.h"
#include "graph/freeze.h"
#include "graph/layer_table.h"
#include "quantizers/int8_internal.h"

namespace slimfit::int8_internal {

bool IsLayerKind(const Node* n) {
  const std::string kind = n->kind().toQualString();
  return kind == "aten::conv1d" || kind == "aten::conv2d" || kind == "aten::linear";
}

std::string CallPath(const Node* n) {
  auto cs = n->callstack();
  if (!cs) return "";
  std::vector<std::string> parts;
  for (const auto& entry : (*cs)->vec()) {
    const auto& info = std::get<2>(entry);
    if (info) parts.push_back(info->instance_name());
  }
  return absl::StrJoin(parts, ".");
}

// The root-level observer call nodes, by observer name.
std::map<std::string, Node*> ObserverCalls(Graph& graph) {
  std::map<std::string, Node*> out;
  for (Node* n : graph.nodes()) {
    if (n->kind() != c10::prim::CallMethod || n->s(c10::attr::name) != "forward") continue;
    Node* get = n->input(0)->node();
    if (get->kind() != c10::prim::GetAttr || get->input(0) != graph.inputs()[0]) continue;
    const std::string& name = get->s(c10::attr::name);
    if (absl::StartsWith(name, "_observer_")) out[name] = n;
  }
  return out;
}

// The layer index of a node that reads `quant_w_<i>` as its weight.
int LayerOfNode(const Node* n) {
  if (!IsLayerKind(n) || n->inputs().size() < 2) return -1;
  const Value* w = n->input(1);
  // Through a weight observer call.
  if (w->node()->kind() == c10::prim::CallMethod) w = w->node()->input(1);
  if (w->node()->kind() != c10::prim::GetAttr) return -1;
  const std::string& name = w->node()->s(c10::attr::name);
  if (!absl::StartsWith(name, kWeightPrefix)) return -1;
  int index = -1;
  if (!absl::SimpleAtoi(name.substr(sizeof(kWeightPrefix) - 1), &index)) return -1;
  return index;
}

// Each top-level conv / linear with a constant float weight becomes a layer;
// its weight (and bias) become parameters quant_w_<i> (quant_b_<i>) of the
// root module, read through GetAttr.
absl::Status Reparameterize(torch::jit::Module& frozen, std::vector<QuantLayer>* layers,
                            std::map<std::string, at::Tensor>* weights) {
  auto graph = frozen.get_method("forward").graph();
  std::vector<Node*> nodes;
  for (Node* n : graph->nodes()) {
    if (IsLayerKind(n)) nodes.push_back(n);
  }
  for (Node* n : nodes) {
    auto w = ConstantTensor(n->input(1));
    if (!w || !w->is_floating_point()) continue;
    const int index = static_cast<int>(layers->size());
    QuantLayer layer;
    layer.module_path = CallPath(n);
    layer.op_type = LayerOpType(n, w->sizes().vec());
    layer.weight_shape = w->sizes().vec();
    layer.weight_param = absl::StrCat(kWeightPrefix, index);
    RETURN_IF_ERROR(TorchCall("re-parameterizing a layer", [&] {
      torch::jit::WithInsertPoint guard(n);
      frozen.register_parameter(layer.weight_param, w->detach().clone(), false);
      n->replaceInput(1, graph->insertGetAttr(graph->inputs()[0], layer.weight_param));
      (*weights)[layer.weight_param] = w->detach().clone();
      if (auto b = ConstantTensor(n->input(2))) {
        const std::string bname = absl::StrCat(kBiasPrefix, index);
        frozen.register_parameter(bname, b->detach().clone(), false);
        n->replaceInput(2, graph->insertGetAttr(graph->inputs()[0], bname));
        (*weights)[bname] = b->detach().clone();
      }
    }));
    layers->push_back(std::move(layer));
  }
  torch::jit::EliminateDeadCode(graph);
  return absl::OkStatus();
}

absl::Status SliceStridedPointwiseConvs(Graph& graph) {
  std::vector<Node*> layers;
  for (Node* n : graph.nodes()) {
    if (IsLayerKind(n)) layers.push_back(n);
  }
  for (Node* n : layers) {
    const auto w = ConstantTensor(n->input(1));
    if (!w || w->dim() < 3) continue;  // a linear layer
    const auto stride = ConstantIntList(n->input(3));
    const auto padding = ConstantIntList(n->input(4));
    if (!stride || !padding) continue;
    const int64_t spatial = w->dim() - 2;
    if (static_cast<int64_t>(stride->size()) != spatial || static_cast<int64_t>(padding->size()) != spatial) {
      continue;
    }
    bool pointwise = true, strided = false;
    for (int64_t d = 0; d < spatial; ++d) {
      pointwise = pointwise && w->size(2 + d) == 1 && (*padding)[d] == 0;
      strided = strided || (*stride)[d] > 1;
    }
    if (!pointwise || !strided) continue;
    RETURN_IF_ERROR(TorchCall("slicing a strided 1x1 convolution's input", [&] {
      torch::jit::WithInsertPoint guard(n);
      Value* x = n->input(0);
      for (int64_t d = 0; d < spatial; ++d) {
        if ((*stride)[d] == 1) continue;
        // Counted from the end: an unbatched input has no batch dimension.
        x = graph.insert(c10::aten::slice, {x, d - spatial, c10::IValue(), c10::IValue(), (*stride)[d]});
      }
      n->replaceInput(0, x);
      n->replaceInput(3, graph.insertConstant(std::vector<int64_t>(spatial, 1)));
    }));
  }
  return absl::OkStatus();
}

// An observer between a conv / linear and its only user, a ReLU, moves after
// the ReLU (or goes, if the ReLU's output is observed already), so that
// conversion fuses conv+relu / linear+relu.
absl::Status MoveObserversAfterRelu(Graph& graph) {
  for (auto& observed : ObserverCalls(graph)) {
    Node* call = observed.second;  // (a structured binding cannot be captured in C++17)
    Value* in = call->input(1);
    Value* out = call->output();
    if (!IsLayerKind(in->node())) continue;
    if (in->uses().size() != 1 || out->uses().size() != 1) continue;
    Node* relu = out->uses()[0].user;
    const std::string kind = relu->kind().toQualString();
    if (kind != "aten::relu" && kind != "aten::relu_") continue;
    bool relu_observed = false;
    for (const auto& u : relu->output()->uses()) {
      if (u.user->kind() == c10::prim::CallMethod) relu_observed = true;
    }
    RETURN_IF_ERROR(TorchCall("moving an observer after a ReLU", [&] {
      relu->replaceInput(0, in);
      if (relu_observed) {
        out->replaceAllUsesWith(in);
        call->destroy();
      } else {
        call->moveAfter(relu);
        relu->output()->replaceAllUsesWith(out);
        call->replaceInput(1, relu->output());
      }
    }));
  }
  return absl::OkStatus();
}

// Scales become float literals in the saved code; an integral one (a huge
// range: every float32 >= 2^24 is integral) is printed without a decimal
// point and reloads as an int, which quantized ops refuse. Integral float
// constants move to the next representable double.
void MakeFloatConstantsPrintable(Graph& graph) {
  for (Node* n : graph.nodes()) {
    for (size_t i = 0; i < n->inputs().size(); ++i) {
      Value* v = n->input(i);
      if (v->node()->kind() != c10::prim::Constant || !v->type()->isSubtypeOf(*c10::FloatType::get())) continue;
      const double d = torch::jit::toIValue(v)->toDouble();
      if (std::floor(d) != d || std::isinf(d)) continue;
      torch::jit::WithInsertPoint guard(n);
      n->replaceInput(i, graph.insertConstant(std::nextafter(d, std::numeric_limits<double>::infinity())));
    }
  }
}

// LibTorch's InsertQuantDeQuant dequantizes a returned tuple (a scripted
// model's NamedTuple output holding a quantized tensor) as a whole, which
// fails at run time; dequantize its tensor elements instead.
void DequantizeTupleElements(Graph& graph) {
  std::vector<Node*> todo;
  for (Node* n : graph.nodes()) {
    if (n->kind() == c10::Symbol::fromQualString("aten::dequantize") &&
        n->input(0)->node()->kind() == c10::prim::TupleConstruct) {
      todo.push_back(n);
    }
  }
  for (Node* n : todo) {
    Node* tuple = n->input(0)->node();
    torch::jit::WithInsertPoint guard(n);
    std::vector<Value*> elements;
    for (Value* e : tuple->inputs()) {
      if (e->type()->isSubtypeOf(*c10::TensorType::get())) {
        Node* d = graph.create(c10::Symbol::fromQualString("aten::dequantize"), {e});
        d->output()->setType(c10::TensorType::get());
        graph.insertNode(d);
        elements.push_back(d->output());
      } else {
        elements.push_back(e);
      }
    }
    c10::TupleTypePtr type = tuple->output()->type()->cast<c10::TupleType>();
    Node* rebuilt = graph.createTuple(elements, type && type->schema() ? type : nullptr);
    graph.insertNode(rebuilt);
    n->output()->replaceAllUsesWith(rebuilt->output());
    n->destroy();
  }
  torch::jit::EliminateDeadCode(graph.block());
}

}  // namespace slimfit::int8_internal
