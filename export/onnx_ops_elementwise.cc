// Element-wise ops: activations (composed where opset 17 has none:
// silu, gelu), arithmetic with tensors or scalars, integer size arithmetic.
#include <ATen/ATen.h>
#include <torch/csrc/jit/ir/constants.h>

#include <cmath>

#include "absl/strings/str_cat.h"
#include "common/status_macros.h"
#include "export/onnx_converter.h"

namespace slimfit::onnx_export {
namespace {

using torch::jit::Node;
using torch::jit::Value;

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

// aten::floor_divide(a, b): integer Div for ints (sizes, non-negative), else Floor(Div).
absl::Status FloorDivide(Converter& c, const Node* n) {
  if (IsIntValued(In(n, 0)) && IsIntValued(In(n, 1))) return Binary("Div")(c, n);
  ASSIGN_OR_RETURN(std::string a, c.FloatTensor(In(n, 0)));
  ASSIGN_OR_RETURN(std::string b, Operand(c, In(n, 1), false));
  c.Bind(n->output(), c.Op("Floor", {c.Op("Div", {a, b}, Hint(n) + "_div")}, Hint(n)), c.Rank(In(n, 0)));
  return absl::OkStatus();
}

}  // namespace

void AddElementwiseOps(std::map<std::string, OpConverter>& ops) {
  ops.insert({{"aten::relu", Unary("Relu")},
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
              {"aten::prelu", Prelu}});
}

}  // namespace slimfit::onnx_export
