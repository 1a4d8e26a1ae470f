// Shape ops: concatenation and splitting, flatten / reshape / view with
// sizes known or computed at run time, transposes, squeeze, slices, lists,
// identities (dropout, contiguous, ...).
#include <ATen/ATen.h>

#include <algorithm>
#include <limits>

#include "absl/strings/str_cat.h"
#include "common/status_macros.h"
#include "export/onnx_converter.h"

namespace slimfit::onnx_export {

absl::Status Identity(Converter& c, const torch::jit::Node* n) {
  ASSIGN_OR_RETURN(std::string x, c.Tensor(In(n, 0)));
  c.Bind(n->output(), x, c.Rank(In(n, 0)));
  if (const QParams* q = c.QuantParams(In(n, 0)); q != nullptr) c.SetQParams(n->output(), *q);
  return absl::OkStatus();
}

namespace {

using torch::jit::Node;
using torch::jit::Value;

absl::Status Cat(Converter& c, const Node* n) {
  ASSIGN_OR_RETURN(std::string y, EmitConcat(c, In(n, 0), In(n, 1), Hint(n)));
  ASSIGN_OR_RETURN(std::vector<const Value*> parts, c.ListElements(In(n, 0)));
  c.Bind(n->output(), y, c.Rank(parts[0]));
  return absl::OkStatus();
}

// aten::flatten(x, start, end)
absl::Status Flatten(Converter& c, const Node* n) {
  ASSIGN_OR_RETURN(std::string x, c.Tensor(In(n, 0)));
  std::optional<int64_t> rank = c.Rank(In(n, 0));
  if (!rank.has_value()) return c.NodeError("flatten needs its input's rank");
  ASSIGN_OR_RETURN(int64_t start, c.Int(In(n, 1)));
  ASSIGN_OR_RETURN(int64_t end, c.Int(In(n, 2)));
  if (start < 0) start += *rank;
  if (end < 0) end += *rank;
  int64_t out_rank = *rank - (end - start);
  if (start >= end) return Identity(c, n);
  if (start == 1 && end == *rank - 1) {
    onnx::NodeProto* node = nullptr;
    c.Bind(n->output(), c.Op("Flatten", {x}, Hint(n), &node), 2);
    SetInt(node, "axis", 1);
    return absl::OkStatus();
  }
  // Reshape to shape[:start] + [-1] + shape[end+1:].
  std::string shape = c.Op("Shape", {x}, Hint(n) + "_shape");
  std::vector<std::string> parts;
  if (start > 0) {
    parts.push_back(c.Op("Slice", {shape, c.Int64s("zero", {0}), c.Int64s("start", {start})}, Hint(n) + "_head"));
  }
  parts.push_back(c.Int64s("minus_one", {-1}));
  if (end + 1 < *rank) {
    parts.push_back(c.Op("Slice", {shape, c.Int64s("end", {end + 1}), c.Int64s("rank", {*rank})}, Hint(n) + "_tail"));
  }
  onnx::NodeProto* concat = nullptr;
  std::string target = c.Op("Concat", parts, Hint(n) + "_target", &concat);
  SetInt(concat, "axis", 0);
  c.Bind(n->output(), c.Op("Reshape", {x, target}, Hint(n)), out_rank);
  return absl::OkStatus();
}

// aten::reshape / view(x, shape)
absl::Status Reshape(Converter& c, const Node* n) {
  ASSIGN_OR_RETURN(std::string x, c.Tensor(In(n, 0)));
  ASSIGN_OR_RETURN(std::string shape, c.IntsTensor(In(n, 1)));
  std::optional<int64_t> rank;
  if (auto fixed = c.Ints(In(n, 1)); fixed.ok()) rank = fixed->size();
  if (auto list = c.ListElements(In(n, 1)); list.ok()) rank = list->size();
  c.Bind(n->output(), c.Op("Reshape", {x, shape}, Hint(n)), rank);
  return absl::OkStatus();
}

absl::Status EmitTranspose(Converter& c, const Node* n, const std::vector<int64_t>& perm) {
  ASSIGN_OR_RETURN(std::string x, c.Tensor(In(n, 0)));
  onnx::NodeProto* node = nullptr;
  c.Bind(n->output(), c.Op("Transpose", {x}, Hint(n), &node), static_cast<int64_t>(perm.size()));
  SetInts(node, "perm", perm);
  return absl::OkStatus();
}

absl::Status Transpose(Converter& c, const Node* n) {
  std::optional<int64_t> rank = c.Rank(In(n, 0));
  if (!rank.has_value()) return c.NodeError("transpose needs its input's rank");
  ASSIGN_OR_RETURN(int64_t d0, c.Int(In(n, 1)));
  ASSIGN_OR_RETURN(int64_t d1, c.Int(In(n, 2)));
  ASSIGN_OR_RETURN(d0, c.NormalizedDim(In(n, 0), d0));
  ASSIGN_OR_RETURN(d1, c.NormalizedDim(In(n, 0), d1));
  std::vector<int64_t> perm(*rank);
  for (int64_t i = 0; i < *rank; ++i) perm[i] = i;
  std::swap(perm[d0], perm[d1]);
  return EmitTranspose(c, n, perm);
}

absl::Status Permute(Converter& c, const Node* n) {
  ASSIGN_OR_RETURN(std::vector<int64_t> perm, c.Ints(In(n, 1)));
  for (int64_t& d : perm) {
    ASSIGN_OR_RETURN(d, c.NormalizedDim(In(n, 0), d));
  }
  return EmitTranspose(c, n, perm);
}

absl::Status MatrixTranspose(Converter& c, const Node* n) {
  if (c.Rank(In(n, 0)).value_or(2) < 2) return Identity(c, n);
  return EmitTranspose(c, n, {1, 0});
}

// aten::squeeze(x, dim) / unsqueeze(x, dim)
OpConverter SqueezeOrUnsqueeze(bool squeeze) {
  return [squeeze](Converter& c, const Node* n) -> absl::Status {
    ASSIGN_OR_RETURN(std::string x, c.Tensor(In(n, 0)));
    std::optional<int64_t> rank = c.Rank(In(n, 0));
    if (n->inputs().size() < 2) {
      if (!squeeze) return c.NodeError("unsqueeze without a dim");
      c.Bind(n->output(), c.Op("Squeeze", {x}, Hint(n)), std::nullopt);
      return absl::OkStatus();
    }
    ASSIGN_OR_RETURN(int64_t dim, c.Int(In(n, 1)));
    if (dim < 0) {
      if (!rank.has_value()) return c.NodeError("a negative dim needs the input's rank");
      dim += *rank + (squeeze ? 0 : 1);
    }
    std::optional<int64_t> out_rank;
    if (rank.has_value()) out_rank = *rank + (squeeze ? -1 : 1);
    c.Bind(n->output(), c.Op(squeeze ? "Squeeze" : "Unsqueeze", {x, c.Int64s("axes", {dim})}, Hint(n)), out_rank);
    return absl::OkStatus();
  };
}

// aten::size(x, dim) → a 0-d int64; aten::size(x) → a 1-d int64.
absl::Status Size(Converter& c, const Node* n) {
  ASSIGN_OR_RETURN(std::string x, c.Tensor(In(n, 0)));
  std::string shape = c.Op("Shape", {x}, Hint(n) + "_shape");
  if (n->inputs().size() < 2) {
    c.Bind(n->output(), shape, 1);
    return absl::OkStatus();
  }
  ASSIGN_OR_RETURN(int64_t dim, c.Int(In(n, 1)));
  ASSIGN_OR_RETURN(dim, c.NormalizedDim(In(n, 0), dim));
  onnx::NodeProto* node = nullptr;
  std::string index = c.AddInitializer("dim", at::scalar_tensor(dim, at::kLong));
  c.Bind(n->output(), c.Op("Gather", {shape, index}, Hint(n), &node), 0);
  SetInt(node, "axis", 0);
  return absl::OkStatus();
}

// aten::Int(tensor) / prim::NumToTensor(int): the same 0-d int64 value.
absl::Status ScalarAlias(Converter& c, const Node* n) {
  ASSIGN_OR_RETURN(std::string x, c.Tensor(In(n, 0)));
  if (n->kind() == c10::aten::Int) {
    onnx::NodeProto* node = nullptr;
    x = c.Op("Cast", {x}, Hint(n), &node);
    SetInt(node, "to", onnx::TensorProto::INT64);
  }
  c.Bind(n->output(), x, 0);
  return absl::OkStatus();
}

// aten::append(list, x): the list is read by its consumers (cat), so only
// recorded; the returned list is the same list.
absl::Status Append(Converter& c, const Node* n) {
  RETURN_IF_ERROR(c.AppendToList(In(n, 0), In(n, 1)));
  ASSIGN_OR_RETURN(std::vector<const Value*> elements, c.ListElements(In(n, 0)));
  c.SetList(n->output(), elements);
  return absl::OkStatus();
}

// aten::chunk(x, chunks, dim) unpacked by prim::ListUnpack: one Split.
absl::Status Chunk(Converter& c, const Node* n) {
  const Value* list = n->output();
  if (list->uses().size() != 1 || list->uses()[0].user->kind() != c10::prim::ListUnpack) {
    return c.NodeError("chunk maps only when prim::ListUnpack takes its result apart");
  }
  const Node* unpack = list->uses()[0].user;
  ASSIGN_OR_RETURN(std::string x, c.FloatTensor(In(n, 0)));
  ASSIGN_OR_RETURN(int64_t chunks, c.Int(In(n, 1)));
  ASSIGN_OR_RETURN(int64_t dim, c.Int(In(n, 2)));
  ASSIGN_OR_RETURN(dim, c.NormalizedDim(In(n, 0), dim));
  const int64_t parts = static_cast<int64_t>(unpack->outputs().size());
  std::vector<std::string> inputs = {x};
  if (std::optional<int64_t> size = c.StaticSize(In(n, 0), dim); size.has_value()) {
    // torch.chunk: ceil(size / chunks) each, the last takes what is left.
    int64_t each = (*size + chunks - 1) / chunks;
    std::vector<int64_t> split;
    for (int64_t i = 0; i < parts; ++i) split.push_back(std::min(each, *size - i * each));
    inputs.push_back(c.Int64s("split", split));
  }
  std::vector<std::string> outputs;
  for (const Value* out : unpack->outputs()) outputs.push_back(c.Fresh(out->debugName()));
  onnx::NodeProto* node = c.AddNode("Split", inputs, outputs);
  SetInt(node, "axis", dim);
  for (size_t i = 0; i < outputs.size(); ++i) {
    c.Bind(unpack->output(i), outputs[i], c.Rank(In(n, 0)));
    // Split of a quantized tensor (the bytes moved as they are): the same parameters.
    if (const QParams* q = c.QuantParams(In(n, 0)); q != nullptr) c.SetQParams(unpack->output(i), *q);
  }
  return absl::OkStatus();
}

// prim::ListUnpack of aten::chunk (bound by Chunk already) or of aten::size(x)
// (each size static when shape analysis knows it, else computed).
absl::Status ListUnpack(Converter& c, const Node* n) {
  const Node* producer = In(n, 0)->node();
  if (producer->kind() == c10::aten::size && producer->inputs().size() == 1) {
    ASSIGN_OR_RETURN(std::string x, c.Tensor(producer->input(0)));
    std::string shape;
    for (size_t i = 0; i < n->outputs().size(); ++i) {
      if (std::optional<int64_t> size = c.StaticSize(producer->input(0), i); size.has_value()) {
        c.SetKnown(n->output(i), c10::IValue(*size));
        continue;
      }
      if (shape.empty()) shape = c.Op("Shape", {x}, Hint(n) + "_shape");
      onnx::NodeProto* node = nullptr;
      std::string index = c.AddInitializer("dim", at::scalar_tensor(static_cast<int64_t>(i), at::kLong));
      c.Bind(n->output(i), c.Op("Gather", {shape, index}, n->output(i)->debugName(), &node), 0);
      SetInt(node, "axis", 0);
    }
    return absl::OkStatus();
  }
  for (const Value* out : n->outputs()) {
    if (!c.IsBound(out)) return c.NodeError("prim::ListUnpack maps only after aten::chunk or aten::size");
  }
  return absl::OkStatus();
}

// aten::slice(x, dim, start, end, step); None bounds are the ends.
absl::Status Slice(Converter& c, const Node* n) {
  ASSIGN_OR_RETURN(std::string x, c.Tensor(In(n, 0)));
  ASSIGN_OR_RETURN(int64_t dim, c.Int(In(n, 1)));
  int64_t start = 0, end = std::numeric_limits<int64_t>::max();
  if (!IsNone(In(n, 2))) {
    ASSIGN_OR_RETURN(start, c.Int(In(n, 2)));
  }
  if (!IsNone(In(n, 3))) {
    ASSIGN_OR_RETURN(end, c.Int(In(n, 3)));
  }
  ASSIGN_OR_RETURN(int64_t step, c.Int(In(n, 4)));
  c.Bind(n->output(),
         c.Op("Slice",
              {x, c.Int64s("starts", {start}), c.Int64s("ends", {end}), c.Int64s("axes", {dim}),
               c.Int64s("steps", {step})},
              Hint(n)),
         c.Rank(In(n, 0)));
  return absl::OkStatus();
}

}  // namespace

void AddShapeOps(std::map<std::string, OpConverter>& ops) {
  ops.insert({{"aten::append", Append},
              {"aten::chunk", Chunk},
              {"prim::ListUnpack", ListUnpack},
              {"aten::slice", Slice},
              {"aten::cat", Cat},
              {"aten::flatten", Flatten},
              {"aten::reshape", Reshape},
              {"aten::view", Reshape},
              {"aten::transpose", Transpose},
              {"aten::permute", Permute},
              {"aten::t", MatrixTranspose},
              {"aten::squeeze", SqueezeOrUnsqueeze(true)},
              {"aten::unsqueeze", SqueezeOrUnsqueeze(false)},
              {"aten::size", Size},
              {"aten::Int", ScalarAlias},
              {"prim::NumToTensor", ScalarAlias},
              {"aten::dropout", Identity},
              {"aten::dropout_", Identity},
              {"aten::feature_dropout", Identity},
              {"aten::alpha_dropout", Identity},
              {"aten::contiguous", Identity},
              {"aten::detach", Identity},
              {"aten::clone", Identity},
              // A Python warning (scripted GoogLeNet's "returns a namedtuple"): nothing to compute.
              {"aten::warn", [](Converter&, const Node*) { return absl::OkStatus(); }}});
}

}  // namespace slimfit::onnx_export
