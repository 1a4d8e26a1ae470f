// The ops of slimfit's int8 models (quantizers/int8.h) as ONNX QDQ: every
// quantized op becomes DequantizeLinear on its inputs, the float op, and
// QuantizeLinear at the op's output scale and zero point. Weights are int8
// initializers behind a DequantizeLinear with their per-channel (axis 0) or
// per-tensor scales; biases are int32 at input scale x weight scale, zero
// point 0 (what ONNX Runtime's QDQ fusion into QLinearConv / QGemm expects).
#include <ATen/ATen.h>
#include <ATen/native/quantized/PackedParams.h>

#include <algorithm>
#include <cmath>

#include "absl/strings/str_cat.h"
#include "common/status_macros.h"
#include "export/onnx_converter.h"

namespace slimfit::onnx_export {
namespace {

using torch::jit::Node;
using torch::jit::Value;

// quint8 activations only: LibTorch's int8 models (fbgemm, onednn, qnnpack) use them.
absl::Status CheckQuint8(Converter& c, const Value* dtype) {
  ASSIGN_OR_RETURN(int64_t d, c.Int(dtype));
  if (d != static_cast<int64_t>(at::kQUInt8)) {
    return c.NodeError(absl::StrCat("activation dtype ", c10::toString(static_cast<at::ScalarType>(d)),
                                    " has no mapping; valid: quint8"));
  }
  return absl::OkStatus();
}

// The output's QParams from the op's (scale, zero_point) inputs.
absl::StatusOr<QParams> OutputQParams(Converter& c, const Node* n, const Value* scale, const Value* zero_point) {
  ASSIGN_OR_RETURN(double s, c.Double(scale));
  ASSIGN_OR_RETURN(int64_t z, c.Int(zero_point));
  if (z < 0 || z > 255) return c.NodeError(absl::StrCat("zero point ", z, " is outside quint8's 0..255"));
  return c.MakeQParams(s, z, Hint(n));
}

// Binds `n`'s output to Quantize(y) at `q`.
void BindQuantized(Converter& c, const Node* n, const std::string& y, const QParams& q, std::optional<int64_t> rank) {
  c.Bind(n->output(), c.Quantize(y, q, Hint(n)), rank);
  c.SetQParams(n->output(), q);
}

absl::StatusOr<const QParams*> InputQParams(Converter& c, const Value* v) {
  const QParams* q = c.QuantParams(v);
  if (q == nullptr) return c.NodeError(absl::StrCat("%", v->debugName(), " is not a quantized tensor"));
  return q;
}

// DequantizeLinear(int8 weight) with its scales; `scales` receives them per output channel.
absl::StatusOr<std::string> DequantizedWeight(Converter& c, const at::Tensor& w, absl::string_view hint,
                                              at::Tensor* scales) {
  if (w.scalar_type() != at::kQInt8) return c.NodeError("the packed weight is not qint8");
  std::string data = c.AddInitializer(absl::StrCat(hint, "_int8"), w.int_repr());
  std::string scale, zero_point;
  onnx::NodeProto* node = nullptr;
  std::string out;
  switch (w.qscheme()) {
    case at::kPerChannelAffine:
    case at::kPerChannelSymmetric:
    case at::kPerChannelAffineFloatQParams: {
      if (w.q_per_channel_axis() != 0) return c.NodeError("per-channel weight scales must be along axis 0");
      *scales = w.q_per_channel_scales().to(at::kFloat);
      scale = c.AddInitializer(absl::StrCat(hint, "_scale"), *scales);
      zero_point = c.AddInitializer(absl::StrCat(hint, "_zero_point"), w.q_per_channel_zero_points().to(at::kChar));
      out = c.Op("DequantizeLinear", {data, scale, zero_point}, absl::StrCat(hint, "_dq"), &node);
      SetInt(node, "axis", 0);
      return out;
    }
    case at::kPerTensorAffine:
    case at::kPerTensorSymmetric:
      *scales = at::full({w.size(0)}, w.q_scale(), at::kFloat);
      scale = c.FloatScalar(absl::StrCat(hint, "_scale"), w.q_scale());
      zero_point = c.AddInitializer(absl::StrCat(hint, "_zero_point"),
                                    at::scalar_tensor(w.q_zero_point(), at::kLong).to(at::kChar));
      return c.Op("DequantizeLinear", {data, scale, zero_point}, absl::StrCat(hint, "_dq"));
    default:
      return c.NodeError("the weight's quantization scheme has no mapping");
  }
}

// A quantized layer's bias: DequantizeLinear(int32 bias) at input scale x
// weight scales, the input of the Conv / Gemm the runtime fuses (`fused`).
// When a value does not fit int32 (a near-constant input gives a tiny input
// scale), ONNX Runtime's fusion is not exact (measured: off by 158 steps on
// GoogLeNet's classifier), so the bias is a float initializer added after
// the op instead (`added_after`, shaped to broadcast over `rank`): that one
// layer runs in float. Both empty without a bias.
struct LayerBias {
  std::string fused;
  std::string added_after;
};

LayerBias QuantizedBias(Converter& c, const std::optional<at::Tensor>& bias, double input_scale,
                        const at::Tensor& weight_scales, int64_t rank, absl::string_view hint) {
  if (!bias.has_value() || !bias->defined()) return {};
  at::Tensor scale = weight_scales.to(at::kDouble) * input_scale;
  at::Tensor ratio = at::round(bias->to(at::kDouble) / scale);
  if (!ratio.abs().le(static_cast<double>(INT32_MAX)).all().item<bool>()) {
    std::vector<int64_t> shape(std::max<int64_t>(rank - 1, 1), 1);
    shape[0] = bias->numel();
    return {"", c.AddInitializer(absl::StrCat(hint, "_float"), bias->to(at::kFloat).reshape(shape))};
  }
  std::string data = c.AddInitializer(absl::StrCat(hint, "_int32"), ratio.to(at::kInt));
  std::string s = c.AddInitializer(absl::StrCat(hint, "_scale"), scale.to(at::kFloat));
  std::string z = c.AddInitializer(absl::StrCat(hint, "_zero_point"), at::zeros({scale.numel()}, at::kInt));
  onnx::NodeProto* node = nullptr;
  std::string out = c.Op("DequantizeLinear", {data, s, z}, absl::StrCat(hint, "_dq"), &node);
  SetInt(node, "axis", 0);
  return {out, ""};
}

// aten::quantize_per_tensor(x, scale, zero_point, dtype)
absl::Status QuantizePerTensor(Converter& c, const Node* n) {
  RETURN_IF_ERROR(CheckQuint8(c, In(n, 3)));
  ASSIGN_OR_RETURN(std::string x, c.FloatTensor(In(n, 0)));
  ASSIGN_OR_RETURN(QParams q, OutputQParams(c, n, In(n, 1), In(n, 2)));
  BindQuantized(c, n, x, q, c.Rank(In(n, 0)));
  return absl::OkStatus();
}

absl::Status Dequantize(Converter& c, const Node* n) {
  // A quantized constant (LibTorch quantizes a lone batch norm's parameters): its float values.
  // Known at export time, so the consumers read it as a constant.
  if (auto constant = c.Constant(In(n, 0)); constant.has_value() && constant->isTensor()) {
    c.SetKnown(n->output(), c10::IValue(constant->toTensor().dequantize()));
    return absl::OkStatus();
  }
  ASSIGN_OR_RETURN(const QParams* q, InputQParams(c, In(n, 0)));
  ASSIGN_OR_RETURN(std::string x, c.Tensor(In(n, 0)));
  // Feeding a layer kept in float: by arithmetic (Converter::DequantizeByArithmetic).
  bool feeds_float_layer = false;
  for (const torch::jit::Use& use : n->output()->uses()) feeds_float_layer |= IsFloatLayer(use.user);
  c.Bind(n->output(), feeds_float_layer ? c.DequantizeByArithmetic(x, *q, Hint(n)) : c.Dequantize(x, *q, Hint(n)),
         c.Rank(In(n, 0)));
  return absl::OkStatus();
}

// quantized::conv2d[_relu](x, packed, scale, zero_point)
OpConverter QuantizedConv(bool relu) {
  return [relu](Converter& c, const Node* n) -> absl::Status {
    ASSIGN_OR_RETURN(const QParams* in_q, InputQParams(c, In(n, 0)));
    double input_scale = in_q->scale_value;
    ASSIGN_OR_RETURN(c10::IValue packed_value, c.Object(In(n, 1)));
    c10::intrusive_ptr<ConvPackedParamsBase<2>> packed;
    try {
      packed = packed_value.toCustomClass<ConvPackedParamsBase<2>>();
    } catch (const std::exception& e) {
      return c.NodeError(absl::StrCat("input 1 is not Conv2dPackedParams: ", e.what()));
    }
    if (packed->transpose()) return c.NodeError("quantized transposed convolution has no mapping");
    auto [weight, bias] = packed->unpack();
    ASSIGN_OR_RETURN(std::string x, c.FloatTensor(In(n, 0)));
    at::Tensor scales;
    std::string hint = Hint(n);
    ASSIGN_OR_RETURN(std::string w, DequantizedWeight(c, weight, hint + "_weight", &scales));
    std::vector<std::string> inputs = {x, w};
    const LayerBias b = QuantizedBias(c, bias, input_scale, scales, weight.dim(), hint + "_bias");
    if (!b.fused.empty()) inputs.push_back(b.fused);
    onnx::NodeProto* node = nullptr;
    std::string y = c.Op("Conv", inputs, hint + "_conv", &node);
    auto stride = packed->stride().vec();
    auto padding = packed->padding().vec();
    auto dilation = packed->dilation().vec();
    std::vector<int64_t> pads = padding;
    pads.insert(pads.end(), padding.begin(), padding.end());
    SetInts(node, "kernel_shape", std::vector<int64_t>(weight.sizes().begin() + 2, weight.sizes().end()));
    SetInts(node, "strides", stride);
    SetInts(node, "pads", pads);
    SetInts(node, "dilations", dilation);
    SetInt(node, "group", packed->groups());
    if (!b.added_after.empty()) y = c.Op("Add", {y, b.added_after}, hint + "_bias_add");
    if (relu) y = c.Op("Relu", {y}, hint + "_relu");
    ASSIGN_OR_RETURN(QParams q, OutputQParams(c, n, In(n, 2), In(n, 3)));
    BindQuantized(c, n, y, q, 4);
    return absl::OkStatus();
  };
}

// quantized::linear[_relu](x, packed, scale, zero_point)
OpConverter QuantizedLinear(bool relu) {
  return [relu](Converter& c, const Node* n) -> absl::Status {
    ASSIGN_OR_RETURN(const QParams* in_q, InputQParams(c, In(n, 0)));
    double input_scale = in_q->scale_value;
    ASSIGN_OR_RETURN(c10::IValue packed_value, c.Object(In(n, 1)));
    c10::intrusive_ptr<LinearPackedParamsBase> packed;
    try {
      packed = packed_value.toCustomClass<LinearPackedParamsBase>();
    } catch (const std::exception& e) {
      return c.NodeError(absl::StrCat("input 1 is not LinearPackedParams: ", e.what()));
    }
    auto [weight, bias] = packed->unpack();
    ASSIGN_OR_RETURN(std::string x, c.FloatTensor(In(n, 0)));
    at::Tensor scales;
    std::string hint = Hint(n);
    ASSIGN_OR_RETURN(std::string w, DequantizedWeight(c, weight, hint + "_weight", &scales));
    std::optional<int64_t> rank = c.Rank(In(n, 0));
    const LayerBias b = QuantizedBias(c, bias, input_scale, scales, /*rank=*/1, hint + "_bias");
    std::string y;
    if (rank == 2) {
      std::vector<std::string> inputs = {x, w};
      if (!b.fused.empty()) inputs.push_back(b.fused);
      onnx::NodeProto* node = nullptr;
      y = c.Op("Gemm", inputs, hint + "_gemm", &node);
      SetInt(node, "transB", 1);
    } else {
      onnx::NodeProto* node = nullptr;
      std::string wt = c.Op("Transpose", {w}, hint + "_weight_t", &node);
      SetInts(node, "perm", {1, 0});
      y = c.Op("MatMul", {x, wt}, hint + "_matmul");
      if (!b.fused.empty()) y = c.Op("Add", {y, b.fused}, hint + "_add");
    }
    if (!b.added_after.empty()) y = c.Op("Add", {y, b.added_after}, hint + "_bias_add");
    if (relu) y = c.Op("Relu", {y}, hint + "_relu");
    ASSIGN_OR_RETURN(QParams q, OutputQParams(c, n, In(n, 2), In(n, 3)));
    BindQuantized(c, n, y, q, rank);
    return absl::OkStatus();
  };
}

// quantized::add / mul [_relu](a, b, scale, zero_point)
OpConverter QuantizedBinary(std::string op, bool relu) {
  return [op, relu](Converter& c, const Node* n) -> absl::Status {
    ASSIGN_OR_RETURN(std::string a, c.FloatTensor(In(n, 0)));
    ASSIGN_OR_RETURN(std::string b, c.FloatTensor(In(n, 1)));
    std::string y = c.Op(op, {a, b}, Hint(n) + "_float");
    if (relu) y = c.Op("Relu", {y}, Hint(n) + "_relu");
    ASSIGN_OR_RETURN(QParams q, OutputQParams(c, n, In(n, 2), In(n, 3)));
    BindQuantized(c, n, y, q, c.Rank(In(n, 0)));
    return absl::OkStatus();
  };
}

// quantized::cat(tensors, dim, scale, zero_point)
absl::Status QuantizedCat(Converter& c, const Node* n) {
  ASSIGN_OR_RETURN(std::string y, EmitConcat(c, In(n, 0), In(n, 1), Hint(n) + "_float"));
  ASSIGN_OR_RETURN(std::vector<const Value*> parts, c.ListElements(In(n, 0)));
  ASSIGN_OR_RETURN(QParams q, OutputQParams(c, n, In(n, 2), In(n, 3)));
  BindQuantized(c, n, y, q, c.Rank(parts[0]));
  return absl::OkStatus();
}

// quantized::hardswish(x, scale, zero_point) and friends: float op, then Q.
OpConverter QuantizedUnary(std::string op) {
  return [op](Converter& c, const Node* n) -> absl::Status {
    ASSIGN_OR_RETURN(std::string x, c.FloatTensor(In(n, 0)));
    std::string y = c.Op(op, {x}, Hint(n) + "_float");
    ASSIGN_OR_RETURN(QParams q, OutputQParams(c, n, In(n, 1), In(n, 2)));
    BindQuantized(c, n, y, q, c.Rank(In(n, 0)));
    return absl::OkStatus();
  };
}

// aten::sigmoid / hardsigmoid / tanh on a quantized tensor: LibTorch's fixed
// output parameters (scale 1/256, zero point 0; tanh 2/256, 128).
OpConverter FixedQParamsUnary(std::string op, double scale, int64_t zero_point) {
  return [op, scale, zero_point](Converter& c, const Node* n) -> absl::Status {
    ASSIGN_OR_RETURN(std::string x, c.FloatTensor(In(n, 0)));
    onnx::NodeProto* node = nullptr;
    std::string y = c.Op(op, {x}, Hint(n) + "_float", &node);
    if (op == "HardSigmoid") {
      SetFloat(node, "alpha", 1.0f / 6.0f);
      SetFloat(node, "beta", 0.5f);
    }
    BindQuantized(c, n, y, c.MakeQParams(scale, zero_point, Hint(n)), c.Rank(In(n, 0)));
    return absl::OkStatus();
  };
}

// quantized::batch_norm / batch_norm2d(x, weight, bias, mean, var, eps, scale, zero_point)
absl::Status QuantizedBatchNorm(Converter& c, const Node* n) {
  ASSIGN_OR_RETURN(std::string y,
                   EmitBatchNorm(c, In(n, 0), In(n, 1), In(n, 2), In(n, 3), In(n, 4), In(n, 5), Hint(n) + "_float"));
  ASSIGN_OR_RETURN(QParams q, OutputQParams(c, n, In(n, 6), In(n, 7)));
  BindQuantized(c, n, y, q, c.Rank(In(n, 0)));
  return absl::OkStatus();
}

// quantized::instance_norm(x, weight, bias, eps, scale, zero_point)
absl::Status QuantizedInstanceNorm(Converter& c, const Node* n) {
  ASSIGN_OR_RETURN(std::string y, EmitInstanceNorm(c, In(n, 0), In(n, 1), In(n, 2), In(n, 3), Hint(n) + "_float"));
  ASSIGN_OR_RETURN(QParams q, OutputQParams(c, n, In(n, 4), In(n, 5)));
  BindQuantized(c, n, y, q, c.Rank(In(n, 0)));
  return absl::OkStatus();
}

// quantized::layer_norm(x, normalized_shape, weight, bias, eps, scale, zero_point)
absl::Status QuantizedLayerNorm(Converter& c, const Node* n) {
  ASSIGN_OR_RETURN(std::string y,
                   EmitLayerNorm(c, In(n, 0), In(n, 1), In(n, 2), In(n, 3), In(n, 4), Hint(n) + "_float"));
  ASSIGN_OR_RETURN(QParams q, OutputQParams(c, n, In(n, 5), In(n, 6)));
  BindQuantized(c, n, y, q, c.Rank(In(n, 0)));
  return absl::OkStatus();
}

// relu / relu6 / hardtanh / clamp of a quantized tensor: a Clip of its
// uint8 values at the bounds quantized as LibTorch's quantized clamp does
// (zero point + round(bound / scale), within 0..255): exact, and no
// DequantizeLinear / QuantizeLinear pair for the runtime to remove.
OpConverter QuantizedClip(std::optional<double> lo, std::optional<double> hi, int bound_inputs) {
  return [lo, hi, bound_inputs](Converter& c, const Node* n) -> absl::Status {
    ASSIGN_OR_RETURN(const QParams* q, InputQParams(c, In(n, 0)));
    const QParams in_q = *q;
    std::optional<double> low = lo, high = hi;
    if (bound_inputs > 0 && c.Constant(In(n, 1)).has_value() && !c.Constant(In(n, 1))->isNone()) {
      ASSIGN_OR_RETURN(low, c.Double(In(n, 1)));
    }
    if (bound_inputs > 1 && c.Constant(In(n, 2)).has_value() && !c.Constant(In(n, 2))->isNone()) {
      ASSIGN_OR_RETURN(high, c.Double(In(n, 2)));
    }
    auto quantized_bound = [&](double bound) {
      double v = static_cast<double>(in_q.zero_point_value) + std::nearbyint(bound / in_q.scale_value);
      return c.AddInitializer("clip_bound", at::scalar_tensor(std::clamp(v, 0.0, 255.0), at::kLong).to(at::kByte));
    };
    ASSIGN_OR_RETURN(std::string x, c.Tensor(In(n, 0)));
    std::string lo_name = low.has_value() ? quantized_bound(*low) : "";
    std::string hi_name = high.has_value() ? quantized_bound(*high) : "";
    c.Bind(n->output(), c.Op("Clip", {x, lo_name, hi_name}, Hint(n)), c.Rank(In(n, 0)));
    c.SetQParams(n->output(), in_q);
    return absl::OkStatus();
  };
}

}  // namespace

const std::map<std::string, OpConverter>& QuantizedOps() {
  static const auto* ops = new std::map<std::string, OpConverter>{
      {"aten::quantize_per_tensor", QuantizePerTensor},
      {"aten::dequantize", Dequantize},
      {"quantized::conv2d", QuantizedConv(false)},
      {"quantized::conv2d_relu", QuantizedConv(true)},
      {"quantized::linear", QuantizedLinear(false)},
      {"quantized::linear_relu", QuantizedLinear(true)},
      {"quantized::add", QuantizedBinary("Add", false)},
      {"quantized::add_relu", QuantizedBinary("Add", true)},
      {"quantized::mul", QuantizedBinary("Mul", false)},
      {"quantized::mul_relu", QuantizedBinary("Mul", true)},
      {"quantized::cat", QuantizedCat},
      {"quantized::hardswish", QuantizedUnary("HardSwish")},
      {"quantized::batch_norm", QuantizedBatchNorm},
      {"quantized::batch_norm2d", QuantizedBatchNorm},
      {"quantized::instance_norm", QuantizedInstanceNorm},
      {"quantized::layer_norm", QuantizedLayerNorm},
      // Keyed by the float op: used only when its input is quantized.
      {"aten::relu", QuantizedClip(0.0, std::nullopt, 0)},
      {"aten::relu_", QuantizedClip(0.0, std::nullopt, 0)},
      {"aten::relu6", QuantizedClip(0.0, 6.0, 0)},
      {"aten::relu6_", QuantizedClip(0.0, 6.0, 0)},
      {"aten::hardtanh", QuantizedClip(std::nullopt, std::nullopt, 2)},
      {"aten::hardtanh_", QuantizedClip(std::nullopt, std::nullopt, 2)},
      {"aten::clamp", QuantizedClip(std::nullopt, std::nullopt, 2)},
      {"aten::clamp_", QuantizedClip(std::nullopt, std::nullopt, 2)},
      {"aten::sigmoid", FixedQParamsUnary("Sigmoid", 1.0 / 256, 0)},
      {"aten::hardsigmoid", FixedQParamsUnary("HardSigmoid", 1.0 / 256, 0)},
      {"aten::tanh", FixedQParamsUnary("Tanh", 2.0 / 256, 128)},
  };
  return *ops;
}

}  // namespace slimfit::onnx_export
