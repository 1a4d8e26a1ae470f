// File: export/onnx.h
//
// ONNX export of slimfit's models, fp32 and int8, for ONNX Runtime, TensorRT
// or OpenVINO users. The TorchScript graph is frozen (graph/freeze.h: batch
// norm folded, dropout gone), then each node maps to ONNX nodes (opset 17,
// IR 8) on the ONNX 1.12 protobufs; the result passes ONNX's checker and
// strict shape inference before anything is written.
//
//   OnnxExportOptions options;                      // input shapes: metadata
//   RETURN_IF_ERROR(WriteOnnx(model, "runs/x/model.onnx", options));
//
// What maps (export/onnx_ops_{layers,elementwise,shapes}.cc,
// export/onnx_quantized_ops.cc; docs/export.md has the table): conv
// (grouped, depthwise, dilated, transposed; traced _convolution), linear /
// addmm / matmul, batch / instance / layer norm, relu / relu6 / hardtanh /
// clamp / hardswish / hardsigmoid / sigmoid / silu / gelu / tanh /
// leaky_relu / prelu, add / sub / mul / div / floor_divide, cat / chunk /
// slice, flatten / reshape / view / transpose / permute / squeeze /
// unsqueeze with sizes known or computed (x.size(0)), max / avg / adaptive
// pooling, mean / sum, softmax / log_softmax, lists built by append;
// dropout, contiguous and warnings vanish. int8 models (quantizers/int8.h)
// become QDQ: QuantizeLinear / DequantizeLinear around float ops, int8
// weights with per-channel scales (axis 0), int32 biases at input scale x
// weight scale (float, added after the layer, when they do not fit int32),
// which ONNX Runtime fuses into its int8 kernels. Ops LibTorch runs on a
// quantized tensor with its input's scale are a Clip of the uint8 values
// (relu, hardtanh, clamp), run on the uint8 tensor (max pooling, reshapes)
// or DQ → op → Q at the same scale (average pooling). A layer kept in float
// reads its input dequantized by arithmetic, so the runtime does not
// quantize its weights.
//
// Contract: the model is not modified. Inputs are float tensors of the
// shapes `options.input_shapes` gives, or the model metadata records; the
// first dimension is named "batch" (dynamic) unless `fixed_batch`. An op
// with no mapping is InvalidArgument naming the op, the node and its source
// line, and every other op that has none; the checker's complaints are
// Internal. Nothing is written unless the whole model exported and checked
// (the file is replaced atomically).
#ifndef SLIMFIT_EXPORT_ONNX_H_
#define SLIMFIT_EXPORT_ONNX_H_

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "model/model.h"

namespace slimfit {

struct OnnxExportOptions {
  // One shape per forward() input, batch dimension included. Empty: the
  // shapes the model's metadata records (model/model.h).
  std::vector<std::vector<int64_t>> input_shapes;
  // The exported graph's first dimension is the recorded one, not "batch".
  bool fixed_batch = false;
};

// What an export produced, for reports and logs.
struct OnnxExportSummary {
  int64_t bytes = 0;
  int64_t nodes = 0;
  bool quantized = false;                // has QuantizeLinear / DequantizeLinear
  std::map<std::string, int> op_counts;  // ONNX op type -> nodes
};

// The serialized, checked ONNX ModelProto of `model`.
absl::StatusOr<std::string> ExportOnnx(const Model& model, const OnnxExportOptions& options,
                                       OnnxExportSummary* summary = nullptr);

// ExportOnnx, written atomically to `path` (nothing written on error).
absl::StatusOr<OnnxExportSummary> WriteOnnx(const Model& model, const std::string& path,
                                            const OnnxExportOptions& options);

}  // namespace slimfit

#endif  // SLIMFIT_EXPORT_ONNX_H_
