#include "graph/layer_table.h"

#include <torch/csrc/jit/api/module.h>
#include <torch/csrc/jit/ir/ir.h>
#include <torch/csrc/jit/passes/constant_propagation.h>
#include <torch/csrc/jit/passes/inliner.h>

#include <algorithm>
#include <map>
#include <optional>
#include <set>
#include <unordered_map>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "common/status_macros.h"
#include "common/torch_status.h"

namespace slimfit {
namespace {

using torch::jit::Node;
using torch::jit::Value;

}  // namespace

std::string LayerOpType(const Node* n, const std::vector<int64_t>& weight_shape, int64_t* groups) {
  const std::string kind = n->kind().toQualString();
  if (auto conv = AsConvolution(n)) {
    const int64_t g = ConstantInt(n->input(conv->groups_input)).value_or(0);
    if (groups != nullptr) *groups = g;
    const size_t dims = weight_shape.size() >= 3 ? weight_shape.size() - 2 : 2;
    if (conv->transposed) return absl::StrCat("ConvTranspose", dims, "d");
    if (dims == 2 && g != 1 && weight_shape.size() == 4 && weight_shape[1] == 1) {
      return "DepthwiseConv2d";
    }
    return absl::StrCat("Conv", dims, "d");
  }
  if (kind == "aten::linear" || kind == "aten::addmm" || kind == "aten::matmul") return "Linear";
  if (kind == "aten::batch_norm") return "BatchNorm";
  if (kind == "aten::layer_norm") return "LayerNorm";
  if (kind == "aten::group_norm") return "GroupNorm";
  if (kind == "aten::embedding") return "Embedding";
  return kind;
}

namespace {

bool ReadsOnlyShape(const Node* n) {
  const c10::Symbol k = n->kind();
  return k == c10::aten::size || k == c10::aten::dim || k == c10::aten::len || k == c10::prim::dtype ||
         k == c10::prim::device;
}

struct Collector {
  const Value* self;
  const std::unordered_map<std::string, at::Tensor>* params;
  std::map<std::string, size_t> layer_of_module;  // module path+op → index
  LayerTable* table;
  std::map<std::string, bool> consumed;
  std::vector<Node*>* nodes;

  void Walk(torch::jit::Block* block) {
    for (Node* n : block->nodes()) {
      for (torch::jit::Block* b : n->blocks()) Walk(b);
      // Attribute reads, and ops that read only a parameter's shape (a
      // pruned grouped conv computes its groups from weight.size(1)), are
      // not the layer that uses it.
      if (n->kind() == c10::prim::GetAttr || ReadsOnlyShape(n)) continue;
      std::vector<std::string> used;
      for (const Value* in : n->inputs()) {
        auto path = AttrPath(in, self);
        if (path && params->count(*path)) used.push_back(*path);
      }
      if (used.empty()) continue;
      // Weight first: the operand named "weight", else the first one.
      std::stable_sort(used.begin(), used.end(), [](const std::string& a, const std::string& b) {
        auto is_weight = [](const std::string& s) {
          return s == "weight" || (s.size() > 7 && s.compare(s.size() - 7, 7, ".weight") == 0);
        };
        return is_weight(a) && !is_weight(b);
      });
      const std::string& first = used.front();
      Layer layer;
      layer.module_path = ModulePathOf(first);
      layer.op_kind = n->kind().toQualString();
      layer.weight_shape = params->at(first).sizes().vec();
      layer.op_type = LayerOpType(n, layer.weight_shape, &layer.groups);
      for (const auto& p : used) {
        if (consumed[p]) continue;  // a parameter counts once, for its first consumer
        consumed[p] = true;
        layer.parameters.push_back(p);
        layer.num_params += params->at(p).numel();
      }
      if (layer.parameters.empty()) continue;
      table->params_in_layers += layer.num_params;
      table->layers.push_back(std::move(layer));
      nodes->push_back(n);
    }
  }
};

// Replaces reads of bool / int / float / string / None attributes (any the
// graph writes excepted) by constants of their current value — `training`
// included: the graph describes the model in its current mode.
void FreezeScalarAttributes(torch::jit::Graph& graph, const torch::jit::Module& module) {
  std::vector<Node*> nodes;
  CollectNodes(graph.block(), &nodes);
  std::set<std::string> written;
  for (Node* n : nodes) {
    if (n->kind() == c10::prim::SetAttr) written.insert(n->s(c10::attr::name));
  }
  const Value* self = graph.inputs().at(0);
  for (Node* n : nodes) {
    if (n->kind() != c10::prim::GetAttr) continue;
    const std::string name = n->s(c10::attr::name);
    if (written.count(name) || !n->output()->hasUses()) continue;
    auto path = AttrPath(n->output(), self);
    if (!path) continue;
    auto value = AttrAt(module, *path);
    if (!value || !(value->isBool() || value->isInt() || value->isDouble() || value->isString() ||
                    value->isNone())) {
      continue;
    }
    torch::jit::WithInsertPoint guard(n);
    n->output()->replaceAllUsesWith(graph.insertConstant(*value));
  }
}

}  // namespace

std::optional<c10::IValue> AttrAt(const torch::jit::Module& root, const std::string& path) {
  c10::IValue cur = root._ivalue();
  size_t start = 0;
  while (true) {
    if (!cur.isObject()) return std::nullopt;
    const size_t dot = path.find('.', start);
    const std::string part = path.substr(start, dot == std::string::npos ? std::string::npos : dot - start);
    const auto& obj = cur.toObjectRef();
    if (!obj.type()->hasAttribute(part)) return std::nullopt;
    cur = obj.getAttr(part);
    if (dot == std::string::npos) return cur;
    start = dot + 1;
  }
}

void CollectNodes(torch::jit::Block* b, std::vector<Node*>* out) {
  for (Node* n : b->nodes()) {
    out->push_back(n);
    for (torch::jit::Block* inner : n->blocks()) CollectNodes(inner, out);
  }
}

std::optional<int64_t> ConstantInt(const Value* v) {
  auto iv = torch::jit::toIValue(v);
  if (iv && iv->isInt()) return iv->toInt();
  return std::nullopt;
}

std::optional<std::vector<int64_t>> ConstantIntList(const Value* v) {
  auto iv = torch::jit::toIValue(v);
  if (iv && iv->isIntList()) return iv->toIntVector();
  if (iv && iv->isInt()) return std::vector<int64_t>{iv->toInt()};
  return std::nullopt;
}

bool IsTensorValue(const Value* v) { return v->type()->kind() == c10::TypeKind::TensorType; }

std::string ModulePathOf(const std::string& tensor_path) {
  const size_t dot = tensor_path.rfind('.');
  return dot == std::string::npos ? "" : tensor_path.substr(0, dot);
}

std::optional<ConvolutionCall> AsConvolution(const Node* n) {
  const std::string kind = n->kind().toQualString();
  ConvolutionCall c;
  if (kind == "aten::_convolution" || kind == "aten::convolution") {
    c.groups_input = 8;
    auto t = n->inputs().size() > 6 ? torch::jit::toIValue(n->input(6)) : c10::nullopt;
    if (!t || !t->isBool()) return std::nullopt;  // a run-time transposed flag: unknowable
    c.transposed = t->toBool();
  } else if (kind != "aten::conv1d" && kind != "aten::conv2d" && kind != "aten::conv3d") {
    return std::nullopt;
  }
  if (n->inputs().size() <= c.groups_input) return std::nullopt;
  return c;
}

std::optional<std::string> AttrPath(const Value* v, const Value* self) {
  std::vector<std::string> parts;
  while (v != self) {
    const Node* n = v->node();
    if (n->kind() != c10::prim::GetAttr) return std::nullopt;
    parts.push_back(n->s(c10::attr::name));
    v = n->input(0);
  }
  std::reverse(parts.begin(), parts.end());
  return absl::StrJoin(parts, ".");
}

namespace {

int CountCalls(const torch::jit::Block* block) {
  int n = 0;
  for (const torch::jit::Node* node : block->nodes()) {
    n += node->kind() == c10::prim::CallMethod || node->kind() == c10::prim::CallFunction;
    for (const torch::jit::Block* sub : node->blocks()) n += CountCalls(sub);
  }
  return n;
}

}  // namespace

// torch::jit::Inline splices in each callee's cached "optimized" graph, and
// that graph is inlined itself only if it was first built while the graph
// executor's optimizations were on: a forward pass run while they are off
// (Trainer::Train turns them off) caches the plain graph, and one Inline
// would leave a Sequential's children as calls, their layers missing from
// the table. So: one pass per level of nesting, until no call is left (a
// pass may add calls, the callee's own; a call Inline cannot take, to a
// non-graph function, stays: at most 32 levels).
void InlineAllLevels(torch::jit::Graph& graph) {
  for (int level = 0; level < 32 && CountCalls(graph.block()) > 0; ++level) torch::jit::Inline(graph);
}

absl::StatusOr<LayerGraph> BuildLayerGraph(const Model& model) {
  return TorchCallOr("reading the model's graph", [&] {
    const torch::jit::Module& m = model.module();
    std::unordered_map<std::string, at::Tensor> params;
    LayerGraph out;
    for (const auto& p : m.named_parameters(/*recurse=*/true)) {
      params.emplace(p.name, p.value);
      out.table.total_params += p.value.numel();
    }
    out.graph = m.get_method("forward").graph()->copy();
    InlineAllLevels(*out.graph);
    // Scripted modules branch on module constants and plain attributes
    // (nn.Conv2d's `if self.padding_mode != "zeros"`, torchvision's
    // `if self.use_res_connect`, `if not self.training`): substitute this
    // instance's values and fold the branches, so the ops they guard are
    // top-level like in traced graphs.
    FreezeScalarAttributes(*out.graph, m);
    torch::jit::ConstantPropagation(out.graph);
    Collector c{out.graph->inputs().at(0), &params, {}, &out.table, {}, &out.nodes};
    c.Walk(out.graph->block());
    return out;
  });
}

absl::StatusOr<LayerTable> BuildLayerTable(const Model& model) {
  ASSIGN_OR_RETURN(LayerGraph g, BuildLayerGraph(model));
  return std::move(g.table);
}

std::string FormatLayerTable(const LayerTable& table) {
  size_t path_w = 11, type_w = 7;
  std::vector<std::string> shapes;
  for (const Layer& l : table.layers) {
    path_w = std::max(path_w, l.module_path.size());
    type_w = std::max(type_w, l.op_type.size());
    shapes.push_back(absl::StrCat("[", absl::StrJoin(l.weight_shape, ", "), "]"));
  }
  size_t shape_w = 12;
  for (const auto& s : shapes) shape_w = std::max(shape_w, s.size());
  std::string out = absl::StrFormat("%-*s  %-*s  %-*s  %10s\n", path_w, "module path", type_w,
                                    "op type", shape_w, "weight shape", "params");
  for (size_t i = 0; i < table.layers.size(); ++i) {
    const Layer& l = table.layers[i];
    absl::StrAppendFormat(&out, "%-*s  %-*s  %-*s  %10d\n", path_w,
                          l.module_path.empty() ? "(root)" : l.module_path, type_w, l.op_type,
                          shape_w, shapes[i], l.num_params);
  }
  absl::StrAppendFormat(&out, "%d layers, %d parameters", table.layers.size(), table.total_params);
  if (table.params_in_layers != table.total_params) {
    absl::StrAppendFormat(&out, " (%d not used by forward)", table.total_params - table.params_in_layers);
  }
  out += "\n";
  return out;
}

}  // namespace slimfit
