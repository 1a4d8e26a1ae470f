// Float ops: TorchScript → ONNX opset 17 (see export/onnx.h for the list).
#include <ATen/ATen.h>

#include <algorithm>
#include <cmath>
#include <limits>

#include "absl/strings/str_cat.h"
#include "common/status_macros.h"
#include "export/onnx_converter.h"

namespace slimfit::onnx_export {
namespace {

using torch::jit::Node;
using torch::jit::Value;

const Value* In(const Node* n, size_t i) { return n->input(i); }
std::string Hint(const Node* n) { return n->output(0)->debugName(); }
bool IsNone(const Value* v) { return v->type()->kind() == c10::TypeKind::NoneType; }
// An int (x.size(0) // 2) or an integer tensor (a traced size): int64 in ONNX.
bool IsIntValued(const Value* v) {
  if (v->type()->kind() == c10::TypeKind::IntType) return true;
  if (auto t = v->type()->cast<c10::TensorType>(); t != nullptr && t->scalarType().has_value()) {
    return c10::isIntegralType(*t->scalarType(), /*includeBool=*/false);
  }
  c10::Symbol k = v->node()->kind();
  if (k == c10::prim::Constant) {
    std::optional<c10::IValue> c = torch::jit::toIValue(v);
    if (c.has_value() && c->isTensor()) return c10::isIntegralType(c->toTensor().scalar_type(), false);
    return c.has_value() && c->isInt();
  }
  return k == c10::prim::NumToTensor || k == c10::aten::size;
}

// A binary op's operand: numbers become scalars of the tensor's type.
absl::StatusOr<std::string> Operand(Converter& c, const Value* v, bool int_valued) {
  if (!int_valued) {
    auto constant = c.Constant(v);
    if (constant.has_value() && (constant->isInt() || constant->isDouble())) {
      return c.FloatScalar(absl::StrCat(v->debugName(), "_f"), constant->toScalar().toDouble());
    }
    return c.FloatTensor(v);
  }
  return c.Tensor(v);
}

// `n`'s output = `op`(input 0), rank kept.
OpConverter Unary(std::string op) {
  return [op](Converter& c, const Node* n) -> absl::Status {
    ASSIGN_OR_RETURN(std::string x, c.FloatTensor(In(n, 0)));
    c.Bind(n->output(), c.Op(op, {x}, Hint(n)), c.Rank(In(n, 0)));
    return absl::OkStatus();
  };
}

absl::Status Identity(Converter& c, const Node* n) {
  ASSIGN_OR_RETURN(std::string x, c.Tensor(In(n, 0)));
  c.Bind(n->output(), x, c.Rank(In(n, 0)));
  if (const QParams* q = c.QuantParams(In(n, 0)); q != nullptr) c.SetQParams(n->output(), *q);
  return absl::OkStatus();
}

OpConverter Binary(std::string op) {
  return [op](Converter& c, const Node* n) -> absl::Status {
    bool int_valued = IsIntValued(n->output()) || (op == "Div" && IsIntValued(In(n, 0)) && IsIntValued(In(n, 1)));
    ASSIGN_OR_RETURN(std::string a, Operand(c, In(n, 0), int_valued));
    ASSIGN_OR_RETURN(std::string b, Operand(c, In(n, 1), int_valued));
    // add / sub: other * alpha.
    if ((op == "Add" || op == "Sub") && n->inputs().size() > 2) {
      ASSIGN_OR_RETURN(double alpha, c.Double(In(n, 2)));
      if (alpha != 1.0) b = c.Op("Mul", {b, c.FloatScalar("alpha", alpha)}, absl::StrCat(Hint(n), "_alpha"));
    }
    if (op == "Div" && n->inputs().size() > 2 && !IsNone(In(n, 2))) {
      return c.NodeError("div with a rounding_mode has no mapping");
    }
    std::optional<int64_t> rank = c.Rank(In(n, 0));
    std::optional<int64_t> rank_b = c.Rank(In(n, 1));
    if (rank.has_value() && rank_b.has_value()) rank = std::max(*rank, *rank_b);
    if (!rank.has_value()) rank = rank_b;
    c.Bind(n->output(), c.Op(op, {a, b}, Hint(n)), int_valued ? std::optional<int64_t>(0) : rank);
    return absl::OkStatus();
  };
}

// Clip(x, lo, hi); either bound may be absent.
absl::Status ClipBetween(Converter& c, const Node* n, std::optional<double> lo, std::optional<double> hi) {
  ASSIGN_OR_RETURN(std::string x, c.FloatTensor(In(n, 0)));
  std::string lo_name = lo.has_value() ? c.FloatScalar("clip_min", *lo) : "";
  std::string hi_name = hi.has_value() ? c.FloatScalar("clip_max", *hi) : "";
  c.Bind(n->output(), c.Op("Clip", {x, lo_name, hi_name}, Hint(n)), c.Rank(In(n, 0)));
  return absl::OkStatus();
}

absl::Status Hardtanh(Converter& c, const Node* n) {
  ASSIGN_OR_RETURN(double lo, c.Double(In(n, 1)));
  ASSIGN_OR_RETURN(double hi, c.Double(In(n, 2)));
  return ClipBetween(c, n, lo, hi);
}

absl::Status Clamp(Converter& c, const Node* n) {
  std::optional<double> lo, hi;
  if (!IsNone(In(n, 1))) {
    ASSIGN_OR_RETURN(lo, c.Double(In(n, 1)));
  }
  if (!IsNone(In(n, 2))) {
    ASSIGN_OR_RETURN(hi, c.Double(In(n, 2)));
  }
  return ClipBetween(c, n, lo, hi);
}

absl::Status Silu(Converter& c, const Node* n) {
  ASSIGN_OR_RETURN(std::string x, c.FloatTensor(In(n, 0)));
  std::string s = c.Op("Sigmoid", {x}, absl::StrCat(Hint(n), "_sigmoid"));
  c.Bind(n->output(), c.Op("Mul", {x, s}, Hint(n)), c.Rank(In(n, 0)));
  return absl::OkStatus();
}

absl::Status Gelu(Converter& c, const Node* n) {
  ASSIGN_OR_RETURN(std::string x, c.FloatTensor(In(n, 0)));
  std::string approximate = "none";
  if (n->inputs().size() > 1) {
    auto a = c.Constant(In(n, 1));
    if (!a.has_value() || !a->isString()) return c.NodeError("gelu's approximate must be a constant string");
    approximate = a->toStringRef();
  }
  std::string h = Hint(n);
  std::string inner;
  if (approximate == "none") {  // 0.5 x (1 + erf(x / sqrt 2))
    inner = c.Op("Erf", {c.Op("Mul", {x, c.FloatScalar("inv_sqrt2", M_SQRT1_2)}, h + "_scaled")}, h + "_erf");
  } else if (approximate == "tanh") {  // 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3)))
    std::string cube = c.Op("Mul", {x, c.Op("Mul", {x, x}, h + "_sq")}, h + "_cube");
    std::string sum = c.Op("Add", {x, c.Op("Mul", {cube, c.FloatScalar("gelu_k", 0.044715)}, h + "_k")}, h + "_sum");
    inner =
        c.Op("Tanh", {c.Op("Mul", {sum, c.FloatScalar("sqrt_2_pi", std::sqrt(2.0 / M_PI))}, h + "_s")}, h + "_tanh");
  } else {
    return c.NodeError(absl::StrCat("gelu approximate '", approximate, "' has no mapping"));
  }
  std::string one_plus = c.Op("Add", {inner, c.FloatScalar("one", 1.0)}, h + "_1p");
  std::string half_x = c.Op("Mul", {x, c.FloatScalar("half", 0.5)}, h + "_half");
  c.Bind(n->output(), c.Op("Mul", {half_x, one_plus}, h), c.Rank(In(n, 0)));
  return absl::OkStatus();
}

absl::Status LeakyRelu(Converter& c, const Node* n) {
  ASSIGN_OR_RETURN(std::string x, c.FloatTensor(In(n, 0)));
  double slope = 0.01;
  if (n->inputs().size() > 1) {
    ASSIGN_OR_RETURN(slope, c.Double(In(n, 1)));
  }
  onnx::NodeProto* node = nullptr;
  c.Bind(n->output(), c.Op("LeakyRelu", {x}, Hint(n), &node), c.Rank(In(n, 0)));
  SetFloat(node, "alpha", static_cast<float>(slope));
  return absl::OkStatus();
}

absl::Status Hardsigmoid(Converter& c, const Node* n) {
  ASSIGN_OR_RETURN(std::string x, c.FloatTensor(In(n, 0)));
  onnx::NodeProto* node = nullptr;
  c.Bind(n->output(), c.Op("HardSigmoid", {x}, Hint(n), &node), c.Rank(In(n, 0)));
  SetFloat(node, "alpha", 1.0f / 6.0f);
  SetFloat(node, "beta", 0.5f);
  return absl::OkStatus();
}

// An int list attribute of a conv or pool, `spatial` long (a 1-element list is repeated).
absl::StatusOr<std::vector<int64_t>> Spatial(Converter& c, const Value* v, size_t spatial) {
  ASSIGN_OR_RETURN(std::vector<int64_t> values, c.Ints(v));
  if (values.size() == 1 && spatial > 1) values.assign(spatial, values[0]);
  if (values.size() != spatial) {
    return c.NodeError(
        absl::StrCat("%", v->debugName(), " has ", values.size(), " values for ", spatial, " spatial dims"));
  }
  return values;
}

std::vector<int64_t> Pads(const std::vector<int64_t>& begin, const std::vector<int64_t>& end) {
  std::vector<int64_t> pads = begin;
  pads.insert(pads.end(), end.begin(), end.end());
  return pads;
}

struct ConvArgs {
  const Value* input;
  const Value* weight;
  const Value* bias;
  const Value* stride;
  const Value* padding;
  const Value* dilation;
  const Value* groups;
  bool transposed = false;
  const Value* output_padding = nullptr;
};

absl::Status EmitConv(Converter& c, const Node* n, const ConvArgs& a) {
  auto weight_value = c.Constant(a.weight);
  if (!weight_value.has_value() || !weight_value->isTensor()) {
    return c.NodeError("the weight must be a constant tensor (the model is frozen first)");
  }
  const at::Tensor& w = weight_value->toTensor();
  size_t spatial = static_cast<size_t>(w.dim() - 2);
  ASSIGN_OR_RETURN(std::string x, c.FloatTensor(a.input));
  ASSIGN_OR_RETURN(std::string w_name, c.Tensor(a.weight));
  std::vector<std::string> inputs = {x, w_name};
  if (!IsNone(a.bias)) {
    ASSIGN_OR_RETURN(std::string b, c.Tensor(a.bias));
    inputs.push_back(b);
  }
  ASSIGN_OR_RETURN(std::vector<int64_t> stride, Spatial(c, a.stride, spatial));
  ASSIGN_OR_RETURN(std::vector<int64_t> dilation, Spatial(c, a.dilation, spatial));
  ASSIGN_OR_RETURN(int64_t groups, c.Int(a.groups));
  std::vector<int64_t> pads;
  auto padding_value = c.Constant(a.padding);
  if (padding_value.has_value() && padding_value->isString()) {  // conv2d(padding="same" / "valid")
    std::vector<int64_t> begin(spatial, 0), end(spatial, 0);
    if (padding_value->toStringRef() == "same") {
      for (size_t i = 0; i < spatial; ++i) {
        int64_t total = dilation[i] * (w.size(2 + i) - 1);
        begin[i] = total / 2;
        end[i] = total - begin[i];
      }
    }
    pads = Pads(begin, end);
  } else {
    ASSIGN_OR_RETURN(std::vector<int64_t> padding, Spatial(c, a.padding, spatial));
    pads = Pads(padding, padding);
  }
  std::vector<int64_t> kernel(w.sizes().begin() + 2, w.sizes().end());
  onnx::NodeProto* node = nullptr;
  c.Bind(n->output(), c.Op(a.transposed ? "ConvTranspose" : "Conv", inputs, Hint(n), &node), w.dim());
  SetInts(node, "kernel_shape", kernel);
  SetInts(node, "strides", stride);
  SetInts(node, "pads", pads);
  SetInts(node, "dilations", dilation);
  SetInt(node, "group", groups);
  if (a.transposed && a.output_padding != nullptr) {
    ASSIGN_OR_RETURN(std::vector<int64_t> output_padding, Spatial(c, a.output_padding, spatial));
    SetInts(node, "output_padding", output_padding);
  }
  return absl::OkStatus();
}

// aten::conv1d / conv2d / conv3d(input, weight, bias, stride, padding, dilation, groups)
absl::Status Conv(Converter& c, const Node* n) {
  return EmitConv(c, n, {In(n, 0), In(n, 1), In(n, 2), In(n, 3), In(n, 4), In(n, 5), In(n, 6)});
}

// aten::_convolution(input, weight, bias, stride, padding, dilation, transposed, output_padding, groups, ...)
absl::Status TracedConvolution(Converter& c, const Node* n) {
  ASSIGN_OR_RETURN(bool transposed, c.Bool(In(n, 6)));
  ConvArgs a{In(n, 0), In(n, 1), In(n, 2), In(n, 3), In(n, 4), In(n, 5), In(n, 8), transposed, In(n, 7)};
  return EmitConv(c, n, a);
}

// aten::conv_transpose2d(input, weight, bias, stride, padding, output_padding, groups, dilation)
absl::Status ConvTranspose(Converter& c, const Node* n) {
  ConvArgs a{In(n, 0), In(n, 1), In(n, 2), In(n, 3), In(n, 4), In(n, 7), In(n, 6), true, In(n, 5)};
  return EmitConv(c, n, a);
}

// aten::linear(x, weight, bias): Gemm for 2-D inputs, else MatMul (+ Add).
absl::Status Linear(Converter& c, const Node* n) {
  ASSIGN_OR_RETURN(std::string x, c.FloatTensor(In(n, 0)));
  auto weight_value = c.Constant(In(n, 1));
  if (!weight_value.has_value() || !weight_value->isTensor()) {
    return c.NodeError("the weight must be a constant tensor (the model is frozen first)");
  }
  std::optional<int64_t> rank = c.Rank(In(n, 0));
  std::string bias;
  if (!IsNone(In(n, 2))) {
    ASSIGN_OR_RETURN(bias, c.Tensor(In(n, 2)));
  }
  if (rank == 2) {
    ASSIGN_OR_RETURN(std::string w, c.Tensor(In(n, 1)));
    std::vector<std::string> inputs = {x, w};
    if (!bias.empty()) inputs.push_back(bias);
    onnx::NodeProto* node = nullptr;
    c.Bind(n->output(), c.Op("Gemm", inputs, Hint(n), &node), 2);
    SetInt(node, "transB", 1);
    return absl::OkStatus();
  }
  std::string wt = c.AddInitializer(absl::StrCat(In(n, 1)->debugName(), "_t"), weight_value->toTensor().t());
  std::string y = c.Op("MatMul", {x, wt}, bias.empty() ? Hint(n) : Hint(n) + "_matmul");
  if (!bias.empty()) y = c.Op("Add", {y, bias}, Hint(n));
  c.Bind(n->output(), y, rank);
  return absl::OkStatus();
}

// aten::addmm(bias, x, w, beta, alpha) = beta bias + alpha x w
absl::Status Addmm(Converter& c, const Node* n) {
  ASSIGN_OR_RETURN(std::string bias, c.FloatTensor(In(n, 0)));
  ASSIGN_OR_RETURN(std::string x, c.FloatTensor(In(n, 1)));
  ASSIGN_OR_RETURN(std::string w, c.FloatTensor(In(n, 2)));
  ASSIGN_OR_RETURN(double beta, c.Double(In(n, 3)));
  ASSIGN_OR_RETURN(double alpha, c.Double(In(n, 4)));
  onnx::NodeProto* node = nullptr;
  c.Bind(n->output(), c.Op("Gemm", {x, w, bias}, Hint(n), &node), 2);
  SetFloat(node, "alpha", static_cast<float>(alpha));
  SetFloat(node, "beta", static_cast<float>(beta));
  return absl::OkStatus();
}

absl::Status MatMul(Converter& c, const Node* n) {
  ASSIGN_OR_RETURN(std::string a, c.FloatTensor(In(n, 0)));
  ASSIGN_OR_RETURN(std::string b, c.FloatTensor(In(n, 1)));
  std::optional<int64_t> rank = c.Rank(In(n, 0));
  std::optional<int64_t> rank_b = c.Rank(In(n, 1));
  c.Bind(n->output(), c.Op("MatMul", {a, b}, Hint(n)),
         rank.has_value() && rank_b.has_value() ? std::optional<int64_t>(std::max(*rank, *rank_b)) : std::nullopt);
  return absl::OkStatus();
}

// aten::batch_norm(x, weight, bias, mean, var, training, momentum, eps, cudnn)
absl::Status BatchNorm(Converter& c, const Node* n) {
  ASSIGN_OR_RETURN(bool training, c.Bool(In(n, 5)));
  if (training) return c.NodeError("batch norm in training mode has no inference mapping");
  ASSIGN_OR_RETURN(std::string y,
                   EmitBatchNorm(c, In(n, 0), In(n, 1), In(n, 2), In(n, 3), In(n, 4), In(n, 7), Hint(n)));
  c.Bind(n->output(), y, c.Rank(In(n, 0)));
  return absl::OkStatus();
}

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

// max_pool2d(x, kernel, stride, padding, dilation, ceil_mode)
absl::Status MaxPool(Converter& c, const Node* n) {
  ASSIGN_OR_RETURN(std::string x, c.FloatTensor(In(n, 0)));
  ASSIGN_OR_RETURN(std::vector<int64_t> kernel, Spatial(c, In(n, 1), 2));
  ASSIGN_OR_RETURN(std::vector<int64_t> stride, c.Ints(In(n, 2)));
  if (stride.empty()) {
    stride = kernel;
  } else {
    ASSIGN_OR_RETURN(stride, Spatial(c, In(n, 2), 2));
  }
  ASSIGN_OR_RETURN(std::vector<int64_t> padding, Spatial(c, In(n, 3), 2));
  ASSIGN_OR_RETURN(std::vector<int64_t> dilation, Spatial(c, In(n, 4), 2));
  ASSIGN_OR_RETURN(bool ceil, c.Bool(In(n, 5)));
  onnx::NodeProto* node = nullptr;
  c.Bind(n->output(), c.Op("MaxPool", {x}, Hint(n), &node), 4);
  SetInts(node, "kernel_shape", kernel);
  SetInts(node, "strides", stride);
  SetInts(node, "pads", Pads(padding, padding));
  SetInts(node, "dilations", dilation);
  SetInt(node, "ceil_mode", ceil ? 1 : 0);
  return absl::OkStatus();
}

// avg_pool2d(x, kernel, stride, padding, ceil_mode, count_include_pad, divisor_override)
absl::Status AvgPool(Converter& c, const Node* n) {
  ASSIGN_OR_RETURN(std::string x, c.FloatTensor(In(n, 0)));
  ASSIGN_OR_RETURN(std::vector<int64_t> kernel, Spatial(c, In(n, 1), 2));
  ASSIGN_OR_RETURN(std::vector<int64_t> stride, c.Ints(In(n, 2)));
  if (stride.empty()) {
    stride = kernel;
  } else {
    ASSIGN_OR_RETURN(stride, Spatial(c, In(n, 2), 2));
  }
  ASSIGN_OR_RETURN(std::vector<int64_t> padding, Spatial(c, In(n, 3), 2));
  ASSIGN_OR_RETURN(bool ceil, c.Bool(In(n, 4)));
  ASSIGN_OR_RETURN(bool count_include_pad, c.Bool(In(n, 5)));
  if (n->inputs().size() > 6 && !IsNone(In(n, 6))) return c.NodeError("avg_pool2d divisor_override has no mapping");
  onnx::NodeProto* node = nullptr;
  c.Bind(n->output(), c.Op("AveragePool", {x}, Hint(n), &node), 4);
  SetInts(node, "kernel_shape", kernel);
  SetInts(node, "strides", stride);
  SetInts(node, "pads", Pads(padding, padding));
  SetInt(node, "ceil_mode", ceil ? 1 : 0);
  SetInt(node, "count_include_pad", count_include_pad ? 1 : 0);
  return absl::OkStatus();
}

// adaptive_avg_pool2d / adaptive_max_pool2d to 1x1: the global pools.
// Average pooling to other sizes, when shape analysis knows the input's
// height and width: the pooling is linear in each spatial dim, so it is
// MatMul by the [out, in] averaging matrices (PyTorch's windows: start
// floor(i in / out), end ceil((i + 1) in / out)), exact for every size.
at::Tensor AdaptiveAveragingMatrix(int64_t in, int64_t out) {
  at::Tensor m = at::zeros({out, in});
  for (int64_t i = 0; i < out; ++i) {
    const int64_t start = (i * in) / out, end = ((i + 1) * in + out - 1) / out;
    m.index_put_({i, at::indexing::Slice(start, end)}, 1.0 / static_cast<double>(end - start));
  }
  return m;
}

OpConverter AdaptivePool(std::string global_op) {
  return [global_op](Converter& c, const Node* n) -> absl::Status {
    ASSIGN_OR_RETURN(std::vector<int64_t> size, Spatial(c, In(n, 1), 2));
    ASSIGN_OR_RETURN(std::string x, c.FloatTensor(In(n, 0)));
    if (size[0] == 1 && size[1] == 1) {
      c.Bind(n->output(0), c.Op(global_op, {x}, Hint(n)), c.Rank(In(n, 0)));
      return absl::OkStatus();
    }
    std::optional<int64_t> h = c.StaticSize(In(n, 0), 2), w = c.StaticSize(In(n, 0), 3);
    if (global_op != "GlobalAveragePool" || !h.has_value() || !w.has_value()) {
      return c.NodeError(
          "adaptive pooling to a size other than 1x1 maps only for average pooling of an input "
          "whose height and width are known from the input shape");
    }
    std::string h_matrix = c.AddInitializer("adaptive_rows", AdaptiveAveragingMatrix(*h, size[0]));
    std::string w_matrix_t = c.AddInitializer("adaptive_cols", AdaptiveAveragingMatrix(*w, size[1]).t());
    std::string y = c.Op("MatMul", {x, w_matrix_t}, Hint(n) + "_cols");  // [N, C, H, out_w]
    c.Bind(n->output(0), c.Op("MatMul", {h_matrix, y}, Hint(n)), 4);     // [N, C, out_h, out_w]
    return absl::OkStatus();
  };
}

// aten::layer_norm(x, normalized_shape, weight, bias, eps, cudnn): over the last dims.
absl::Status LayerNorm(Converter& c, const Node* n) {
  ASSIGN_OR_RETURN(std::string y, EmitLayerNorm(c, In(n, 0), In(n, 1), In(n, 2), In(n, 3), In(n, 4), Hint(n)));
  c.Bind(n->output(), y, c.Rank(In(n, 0)));
  return absl::OkStatus();
}

// aten::mean(x, dims, keepdim, dtype) / sum(...)
OpConverter Reduce(std::string op) {
  return [op](Converter& c, const Node* n) -> absl::Status {
    ASSIGN_OR_RETURN(std::string x, c.FloatTensor(In(n, 0)));
    if (n->inputs().size() < 3) return c.NodeError("a reduction over every dim has no mapping");
    ASSIGN_OR_RETURN(std::vector<int64_t> dims, c.Ints(In(n, 1)));
    for (int64_t& d : dims) {
      ASSIGN_OR_RETURN(d, c.NormalizedDim(In(n, 0), d));
    }
    ASSIGN_OR_RETURN(bool keepdim, c.Bool(In(n, 2)));
    std::optional<int64_t> rank = c.Rank(In(n, 0));
    if (rank.has_value() && !keepdim) *rank -= static_cast<int64_t>(dims.size());
    onnx::NodeProto* node = nullptr;
    if (op == "ReduceSum") {  // opset 13: axes is an input
      c.Bind(n->output(), c.Op(op, {x, c.Int64s("axes", dims)}, Hint(n), &node), rank);
    } else {
      c.Bind(n->output(), c.Op(op, {x}, Hint(n), &node), rank);
      SetInts(node, "axes", dims);
    }
    SetInt(node, "keepdims", keepdim ? 1 : 0);
    return absl::OkStatus();
  };
}

OpConverter Softmax(std::string op) {
  return [op](Converter& c, const Node* n) -> absl::Status {
    ASSIGN_OR_RETURN(std::string x, c.FloatTensor(In(n, 0)));
    ASSIGN_OR_RETURN(int64_t dim, c.Int(In(n, 1)));
    onnx::NodeProto* node = nullptr;
    c.Bind(n->output(), c.Op(op, {x}, Hint(n), &node), c.Rank(In(n, 0)));
    SetInt(node, "axis", dim);
    return absl::OkStatus();
  };
}

// aten::floor_divide(a, b): integer Div for ints (sizes, non-negative), else Floor(Div).
absl::Status FloorDivide(Converter& c, const Node* n) {
  if (IsIntValued(In(n, 0)) && IsIntValued(In(n, 1))) return Binary("Div")(c, n);
  ASSIGN_OR_RETURN(std::string a, c.FloatTensor(In(n, 0)));
  ASSIGN_OR_RETURN(std::string b, Operand(c, In(n, 1), false));
  c.Bind(n->output(), c.Op("Floor", {c.Op("Div", {a, b}, Hint(n) + "_div")}, Hint(n)), c.Rank(In(n, 0)));
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

// aten::instance_norm(x, weight, bias, running_mean, running_var, use_input_stats, momentum, eps, cudnn)
absl::Status InstanceNorm(Converter& c, const Node* n) {
  ASSIGN_OR_RETURN(bool use_input_stats, c.Bool(In(n, 5)));
  if (!use_input_stats) return c.NodeError("instance norm with running statistics has no mapping");
  ASSIGN_OR_RETURN(std::string y, EmitInstanceNorm(c, In(n, 0), In(n, 1), In(n, 2), In(n, 7), Hint(n)));
  c.Bind(n->output(), y, c.Rank(In(n, 0)));
  return absl::OkStatus();
}

// aten::prelu(x, weight): the slope reshaped to broadcast over channels (dim 1).
absl::Status Prelu(Converter& c, const Node* n) {
  auto weight = c.Constant(In(n, 1));
  if (!weight.has_value() || !weight->isTensor()) return c.NodeError("prelu's weight must be a constant tensor");
  std::optional<int64_t> rank = c.Rank(In(n, 0));
  at::Tensor slope = weight->toTensor();
  if (slope.numel() > 1) {
    if (!rank.has_value()) return c.NodeError("prelu with one slope per channel needs the input's rank");
    std::vector<int64_t> shape(std::max<int64_t>(*rank - 1, 1), 1);
    shape[0] = slope.numel();
    slope = slope.reshape(shape);
  }
  ASSIGN_OR_RETURN(std::string x, c.FloatTensor(In(n, 0)));
  c.Bind(n->output(), c.Op("PRelu", {x, c.AddInitializer(In(n, 1)->debugName(), slope)}, Hint(n)), rank);
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

const std::map<std::string, OpConverter>& FloatOps() {
  static const auto* ops = new std::map<std::string, OpConverter>{
      {"aten::conv1d", Conv},
      {"aten::conv2d", Conv},
      {"aten::conv3d", Conv},
      {"aten::_convolution", TracedConvolution},
      {"aten::conv_transpose2d", ConvTranspose},
      {"aten::linear", Linear},
      {"aten::addmm", Addmm},
      {"aten::matmul", MatMul},
      {"aten::mm", MatMul},
      {"aten::batch_norm", BatchNorm},
      {"aten::relu", Unary("Relu")},
      {"aten::relu_", Unary("Relu")},
      {"aten::sigmoid", Unary("Sigmoid")},
      {"aten::sigmoid_", Unary("Sigmoid")},
      {"aten::tanh", Unary("Tanh")},
      {"aten::tanh_", Unary("Tanh")},
      {"aten::hardswish", Unary("HardSwish")},
      {"aten::hardswish_", Unary("HardSwish")},
      {"aten::hardsigmoid", Hardsigmoid},
      {"aten::hardsigmoid_", Hardsigmoid},
      {"aten::silu", Silu},
      {"aten::silu_", Silu},
      {"aten::gelu", Gelu},
      {"aten::leaky_relu", LeakyRelu},
      {"aten::leaky_relu_", LeakyRelu},
      {"aten::hardtanh", Hardtanh},
      {"aten::hardtanh_", Hardtanh},
      {"aten::relu6", [](Converter& c, const Node* n) { return ClipBetween(c, n, 0.0, 6.0); }},
      {"aten::relu6_", [](Converter& c, const Node* n) { return ClipBetween(c, n, 0.0, 6.0); }},
      {"aten::clamp", Clamp},
      {"aten::clamp_", Clamp},
      {"aten::add", Binary("Add")},
      {"aten::add_", Binary("Add")},
      {"aten::sub", Binary("Sub")},
      {"aten::sub_", Binary("Sub")},
      {"aten::mul", Binary("Mul")},
      {"aten::mul_", Binary("Mul")},
      {"aten::div", Binary("Div")},
      {"aten::div_", Binary("Div")},
      {"aten::floordiv", Binary("Div")},
      {"aten::floor_divide", FloorDivide},
      {"aten::append", Append},
      {"aten::chunk", Chunk},
      {"prim::ListUnpack", ListUnpack},
      {"aten::instance_norm", InstanceNorm},
      {"aten::layer_norm", LayerNorm},
      {"aten::prelu", Prelu},
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
      {"aten::max_pool2d", MaxPool},
      {"aten::avg_pool2d", AvgPool},
      {"aten::adaptive_avg_pool2d", AdaptivePool("GlobalAveragePool")},
      {"aten::adaptive_max_pool2d", AdaptivePool("GlobalMaxPool")},
      {"aten::mean", Reduce("ReduceMean")},
      {"aten::sum", Reduce("ReduceSum")},
      {"aten::softmax", Softmax("Softmax")},
      {"aten::log_softmax", Softmax("LogSoftmax")},
      {"aten::dropout", Identity},
      {"aten::dropout_", Identity},
      {"aten::feature_dropout", Identity},
      {"aten::alpha_dropout", Identity},
      {"aten::contiguous", Identity},
      {"aten::detach", Identity},
      {"aten::clone", Identity},
      // A Python warning (scripted GoogLeNet's "returns a namedtuple"): nothing to compute.
      {"aten::warn", [](Converter&, const Node*) { return absl::OkStatus(); }},
  };
  return *ops;
}

const absl::flat_hash_map<std::string, QuantizedInputRule>& OpsOnQuantizedInputs() {
  using R = QuantizedInputRule;
  static const auto* ops = new absl::flat_hash_map<std::string, QuantizedInputRule>{
      {"aten::max_pool2d", R::kSameBytes},
      {"aten::avg_pool2d", R::kRequantize},
      {"aten::adaptive_avg_pool2d", R::kRequantize},
      {"aten::adaptive_max_pool2d", R::kRequantize},
      {"aten::mean", R::kRequantize},
      {"aten::flatten", R::kSameBytes},
      {"aten::reshape", R::kSameBytes},
      {"aten::view", R::kSameBytes},
      {"aten::transpose", R::kSameBytes},
      {"aten::permute", R::kSameBytes},
      {"aten::squeeze", R::kSameBytes},
      {"aten::unsqueeze", R::kSameBytes},
      {"aten::dropout", R::kSameBytes},
      {"aten::contiguous", R::kSameBytes},
      {"aten::size", R::kSameBytes},
      {"aten::chunk", R::kSameBytes},
      {"aten::append", R::kSameBytes},
  };
  return *ops;
}

}  // namespace slimfit::onnx_export
