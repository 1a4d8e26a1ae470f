// File: graph/layer_table.h
//
// LayerTable: the layers of any TorchScript model, found from its inlined
// `forward` graph rather than from module class names, so it works the same
// on models scripted or traced in Python and on models built in C++.
//
// A layer is a graph op that consumes one or more of the model's parameters.
// Each parameter operand is traced back through its prim::GetAttr chain to
// `self`, which names it ("layer1.0.conv1.weight"); the layer's module path is
// that name without the last component. Known ops get a readable type:
//   aten::conv{1,2,3}d, aten::_convolution   → Conv1d/Conv2d/Conv3d
//                                              (DepthwiseConv2d when groups ==
//                                              in_channels == out_channels/k)
//   aten::linear, aten::addmm, aten::matmul  → Linear
//   aten::batch_norm                         → BatchNorm
//   aten::layer_norm / group_norm            → LayerNorm / GroupNorm
//   aten::embedding                          → Embedding
// and any other op keeps its kind ("aten::prelu"). Ops inside prim::If /
// prim::Loop blocks are included (blocks are walked recursively).
//
//   ASSIGN_OR_RETURN(LayerTable table, BuildLayerTable(model));
//   for (const Layer& l : table.layers) ...
#ifndef SLIMFIT_GRAPH_LAYER_TABLE_H_
#define SLIMFIT_GRAPH_LAYER_TABLE_H_

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "model/model.h"

namespace torch::jit {
struct Block;
struct Graph;
struct Node;
struct Value;
}  // namespace torch::jit

namespace slimfit {

struct Layer {
  std::string module_path;              // "layer1.b0.conv1" ("" for the root)
  std::string op_type;                  // "Conv2d", "Linear", ..., or the op kind
  std::string op_kind;                  // "aten::conv2d"
  std::vector<std::string> parameters;  // full names, weight first
  std::vector<int64_t> weight_shape;    // shape of the first parameter
  int64_t num_params = 0;               // elements of all its parameters
  int64_t groups = 1;                   // convolutions only; 0: computed at run time
};

struct LayerTable {
  std::vector<Layer> layers;            // in graph (execution) order
  int64_t total_params = 0;             // all parameters of the model
  int64_t params_in_layers = 0;         // those that some layer consumes
};

// Fails (Internal, with torch's message) only if the model has no forward
// method or its graph cannot be inlined.
absl::StatusOr<LayerTable> BuildLayerTable(const Model& model);

// The inlined forward graph the table was read from, with this instance's
// scalar attributes (flags, sizes, `training`) folded in as constants — so
// it describes the model in its current train/eval mode — and each layer's op
// node in it (nodes[i] is table.layers[i]'s). For passes that instrument or
// rewrite the graph (profiling, dependency analysis).
struct LayerGraph {
  std::shared_ptr<torch::jit::Graph> graph;
  LayerTable table;
  std::vector<torch::jit::Node*> nodes;
};
absl::StatusOr<LayerGraph> BuildLayerGraph(const Model& model);

// Inlines every method and function call in `graph`, one pass per level of
// nesting (a callee's cached graph may itself hold calls), at most 32.
void InlineAllLevels(torch::jit::Graph& graph);

// The dotted attribute path of `v` from the graph's `self` input
// ("layer1.0.conv1.weight"), if `v` is reached only through prim::GetAttr.
std::optional<std::string> AttrPath(const torch::jit::Value* v, const torch::jit::Value* self);

// The attribute of `root` at dotted `path` ("layer1.0.use_res_connect",
// "layer1.0.conv1": a submodule is an object IValue), if every part exists.
std::optional<c10::IValue> AttrAt(const torch::jit::Module& root, const std::string& path);

// Appends every node of `b`, and of the blocks nested in its nodes, in
// graph order (a node before the nodes of its own blocks).
void CollectNodes(torch::jit::Block* b, std::vector<torch::jit::Node*>* out);

// Small readers of TorchScript IR shared by graph/ passes.
// The int a value holds when it is a constant.
std::optional<int64_t> ConstantInt(const torch::jit::Value* v);
// The ints a constant int list holds (a constant int: a list of one, as
// `stride=2` stands for every dimension), if `v` is such a constant.
std::optional<std::vector<int64_t>> ConstantIntList(const torch::jit::Value* v);
// Whether `v` is a Tensor-typed value.
bool IsTensorValue(const torch::jit::Value* v);
// "layer1.conv.weight" → "layer1.conv"; "weight" → "".
std::string ModulePathOf(const std::string& tensor_path);
// A convolution call — aten::conv1d/2d/3d (input, weight, bias, stride,
// padding, dilation, groups) or aten::_convolution / aten::convolution
// (..., transposed, output_padding, groups, ...): where its `groups` operand
// is, and whether it is transposed; nullopt for other ops and for a
// transposed flag that is not a constant.
struct ConvolutionCall {
  size_t groups_input = 6;
  bool transposed = false;
};
std::optional<ConvolutionCall> AsConvolution(const torch::jit::Node* n);

// The readable type of a layer op with weight shape `weight_shape` (the
// names listed above: Conv2d, DepthwiseConv2d, ConvTranspose2d, Linear, ...,
// else the op kind); a convolution's groups go to `groups` when given: the
// constant, or 0 when computed at run time (a pruned model's grouped convs:
// input.size(1) // weight.size(1), depthwise when the weight has one input
// channel per group).
std::string LayerOpType(const torch::jit::Node* n, const std::vector<int64_t>& weight_shape,
                        int64_t* groups = nullptr);

// The table as aligned text, one layer per line plus a total line.
std::string FormatLayerTable(const LayerTable& table);

}  // namespace slimfit

#endif  // SLIMFIT_GRAPH_LAYER_TABLE_H_
