// Layers: convolutions, linear and matmul, norms, pooling, reductions,
// softmax (TorchScript → ONNX opset 17; export/onnx.h has the list).
#include <ATen/ATen.h>

#include <algorithm>
#include <cmath>

#include "absl/strings/str_cat.h"
#include "common/status_macros.h"
#include "export/onnx_converter.h"

namespace slimfit::onnx_export {
namespace {

using torch::jit::Node;
using torch::jit::Value;

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

// aten::layer_norm(x, normalized_shape, weight, bias, eps, cudnn): over the last dims.
absl::Status LayerNorm(Converter& c, const Node* n) {
  ASSIGN_OR_RETURN(std::string y, EmitLayerNorm(c, In(n, 0), In(n, 1), In(n, 2), In(n, 3), In(n, 4), Hint(n)));
  c.Bind(n->output(), y, c.Rank(In(n, 0)));
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

}  // namespace

void AddLayerOps(std::map<std::string, OpConverter>& ops) {
  ops.insert({{"aten::conv1d", Conv},
              {"aten::conv2d", Conv},
              {"aten::conv3d", Conv},
              {"aten::_convolution", TracedConvolution},
              {"aten::conv_transpose2d", ConvTranspose},
              {"aten::linear", Linear},
              {"aten::addmm", Addmm},
              {"aten::matmul", MatMul},
              {"aten::mm", MatMul},
              {"aten::batch_norm", BatchNorm},
              {"aten::instance_norm", InstanceNorm},
              {"aten::layer_norm", LayerNorm},
              {"aten::max_pool2d", MaxPool},
              {"aten::avg_pool2d", AvgPool},
              {"aten::adaptive_avg_pool2d", AdaptivePool("GlobalAveragePool")},
              {"aten::adaptive_max_pool2d", AdaptivePool("GlobalMaxPool")},
              {"aten::mean", Reduce("ReduceMean")},
              {"aten::sum", Reduce("ReduceSum")},
              {"aten::softmax", Softmax("Softmax")},
              {"aten::log_softmax", Softmax("LogSoftmax")}});
}

}  // namespace slimfit::onnx_export
