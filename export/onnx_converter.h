// File: export/onnx_converter.h (internal to //export:onnx)
//
// The state one export walks the TorchScript graph with, and the op tables.
// A converter reads its node's inputs through the Converter (tensor names,
// constants, int lists that may be computed at run time, quantization
// parameters) and writes ONNX nodes and initializers through it; it binds
// each of the node's outputs to an ONNX name (or, for a compile-time
// value, leaves it a constant). Errors are InvalidArgument naming the node.
#ifndef SLIMFIT_EXPORT_ONNX_CONVERTER_H_
#define SLIMFIT_EXPORT_ONNX_CONVERTER_H_

#include <ATen/core/Tensor.h>
#include <ATen/core/ivalue.h>
#include <torch/csrc/jit/api/module.h>
#include <torch/csrc/jit/ir/ir.h>

#include <cstdint>
#include <functional>
#include <initializer_list>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "onnx/onnx_pb.h"

namespace slimfit::onnx_export {

// A quantized tensor's parameters: initializer names and values.
struct QParams {
  std::string scale;       // float scalar
  std::string zero_point;  // uint8 scalar
  double scale_value = 1.0;
  int64_t zero_point_value = 0;
};

class Converter {
 public:
  Converter(onnx::GraphProto* graph, const torch::jit::Module* module);

  // --- names ---------------------------------------------------------------
  // A graph-unique ONNX name starting with `hint`.
  std::string Fresh(absl::string_view hint);
  // Keeps `name` from Fresh (the graph's output names, given at the end).
  void Reserve(const std::string& name);
  // Binds `v` (a node output) to the ONNX tensor `name`, with its rank if known.
  void Bind(const torch::jit::Value* v, const std::string& name, std::optional<int64_t> rank);
  bool IsBound(const torch::jit::Value* v) const { return names_.contains(v); }

  // --- reading inputs ------------------------------------------------------
  // The ONNX tensor of `v`: a bound value, or an initializer made from a
  // constant (a tensor, or a number as a float / int64 scalar).
  absl::StatusOr<std::string> Tensor(const torch::jit::Value* v);
  // `v` as a float tensor: quantized values are dequantized first, unless
  // the op being converted only moves or compares bytes (SetKeepQuantized).
  absl::StatusOr<std::string> FloatTensor(const torch::jit::Value* v);
  void SetKeepQuantized(bool keep) { keep_quantized_ = keep; }
  // The compile-time value of `v`, if it has one.
  std::optional<c10::IValue> Constant(const torch::jit::Value* v) const;
  absl::StatusOr<int64_t> Int(const torch::jit::Value* v) const;
  absl::StatusOr<double> Double(const torch::jit::Value* v) const;
  absl::StatusOr<bool> Bool(const torch::jit::Value* v) const;
  absl::StatusOr<std::vector<int64_t>> Ints(const torch::jit::Value* v) const;
  // An int list as a 1-D int64 tensor; elements may be computed at run time
  // (x.size(0)).
  absl::StatusOr<std::string> IntsTensor(const torch::jit::Value* v);
  // The tensors of a list: prim::ListConstruct's inputs, then what
  // aten::append added (AppendToList) up to the node being converted.
  absl::StatusOr<std::vector<const torch::jit::Value*>> ListElements(const torch::jit::Value* v) const;
  absl::Status AppendToList(const torch::jit::Value* list, const torch::jit::Value* element);
  void SetList(const torch::jit::Value* list, std::vector<const torch::jit::Value*> elements) {
    lists_[list] = std::move(elements);
  }
  // Records a value the export knows at compile time (a static size):
  // Constant() returns it.
  void SetKnown(const torch::jit::Value* v, c10::IValue value) { known_[v] = std::move(value); }
  // The object a prim::GetAttr chain from the module (or a constant) names.
  absl::StatusOr<c10::IValue> Object(const torch::jit::Value* v) const;
  std::optional<int64_t> Rank(const torch::jit::Value* v) const;
  // A dim's size when it does not vary: recorded on the run on zeros, else
  // from shape analysis; never the batch dim unless the batch is fixed.
  std::optional<int64_t> StaticSize(const torch::jit::Value* v, int64_t dim) const;
  void SetRecordedShapes(absl::flat_hash_map<const torch::jit::Value*, std::vector<int64_t>> shapes, bool fixed_batch) {
    recorded_shapes_ = std::move(shapes);
    fixed_batch_ = fixed_batch;
  }
  // `dim` counted from the front (negative dims need the rank).
  absl::StatusOr<int64_t> NormalizedDim(const torch::jit::Value* tensor, int64_t dim) const;

  // --- quantization --------------------------------------------------------
  const QParams* QuantParams(const torch::jit::Value* v) const;
  QParams MakeQParams(double scale, int64_t zero_point, absl::string_view hint);
  // By value: `q` may point into the map this inserts into.
  void SetQParams(const torch::jit::Value* v, QParams q) { qparams_[v] = std::move(q); }
  std::string Quantize(const std::string& x, const QParams& q, absl::string_view hint);
  std::string Dequantize(const std::string& x, const QParams& q, absl::string_view hint);
  // (float(x) - zero point) * scale: what DequantizeLinear computes, written
  // out for the input of a layer LibTorch keeps in float inside an int8
  // model (mixed precision). ONNX Runtime's WeightBiasQuantization takes
  // DequantizeLinear → Conv / Gemm (float weights) → QuantizeLinear for a
  // quantized layer and quantizes the weights slimfit kept float: measured
  // 97.5 % instead of 99.45 % agreement on a mixed mobilenetv2_small.
  std::string DequantizeByArithmetic(const std::string& x, const QParams& q, absl::string_view hint);

  // --- writing -------------------------------------------------------------
  onnx::NodeProto* AddNode(absl::string_view op, const std::vector<std::string>& inputs,
                           const std::vector<std::string>& outputs);
  // One-output node; returns its output's name.
  std::string Op(absl::string_view op, const std::vector<std::string>& inputs, absl::string_view hint,
                 onnx::NodeProto** node = nullptr);
  std::string AddInitializer(absl::string_view hint, const at::Tensor& t);
  std::string Int64s(absl::string_view hint, const std::vector<int64_t>& values);
  std::string FloatScalar(absl::string_view hint, double value);

  // The node being converted (names and errors).
  void SetNode(const torch::jit::Node* n) { node_ = n; }
  absl::Status NodeError(absl::string_view problem) const;

  onnx::GraphProto* graph() { return graph_; }

 private:
  onnx::GraphProto* graph_;
  const torch::jit::Module* module_;
  const torch::jit::Node* node_ = nullptr;
  bool keep_quantized_ = false;
  absl::flat_hash_map<const torch::jit::Value*, std::string> names_;
  absl::flat_hash_map<const torch::jit::Value*, int64_t> ranks_;
  absl::flat_hash_map<const torch::jit::Value*, QParams> qparams_;
  absl::flat_hash_map<const torch::jit::Value*, std::vector<const torch::jit::Value*>> lists_;
  absl::flat_hash_map<const torch::jit::Value*, c10::IValue> known_;
  absl::flat_hash_map<const torch::jit::Value*, std::vector<int64_t>> recorded_shapes_;
  bool fixed_batch_ = false;
  absl::flat_hash_map<std::string, int> next_suffix_;
  absl::flat_hash_set<std::string> taken_;
  absl::flat_hash_map<const torch::jit::Value*, std::string> dequantized_names_;
  absl::flat_hash_map<const torch::jit::Value*, std::string> arithmetic_dequantized_names_;
};

void SetInts(onnx::NodeProto* node, absl::string_view name, const std::vector<int64_t>& values);
void SetInt(onnx::NodeProto* node, absl::string_view name, int64_t value);
void SetFloat(onnx::NodeProto* node, absl::string_view name, float value);
void SetString(onnx::NodeProto* node, absl::string_view name, absl::string_view value);

// Emitters the float and the quantized converters share: each writes the
// float op(s) for its inputs (jit values read through `c`) and returns the
// output's ONNX name; the caller binds it (or quantizes it first).
// A None weight / bias becomes ones / zeros of `param_shape`.
absl::StatusOr<std::string> EmitBatchNorm(Converter& c, const torch::jit::Value* x, const torch::jit::Value* weight,
                                          const torch::jit::Value* bias, const torch::jit::Value* mean,
                                          const torch::jit::Value* var, const torch::jit::Value* eps,
                                          absl::string_view hint);
absl::StatusOr<std::string> EmitInstanceNorm(Converter& c, const torch::jit::Value* x, const torch::jit::Value* weight,
                                             const torch::jit::Value* bias, const torch::jit::Value* eps,
                                             absl::string_view hint);
absl::StatusOr<std::string> EmitLayerNorm(Converter& c, const torch::jit::Value* x,
                                          const torch::jit::Value* normalized_shape, const torch::jit::Value* weight,
                                          const torch::jit::Value* bias, const torch::jit::Value* eps,
                                          absl::string_view hint);
// Concat of a list's tensors (dequantized) along `dim`.
absl::StatusOr<std::string> EmitConcat(Converter& c, const torch::jit::Value* list, const torch::jit::Value* dim,
                                       absl::string_view hint);

// Convolutions, linear and matmul: layers with weights that run in float.
bool IsFloatLayer(const torch::jit::Node* n);

// Where a node came from: "file:line" of its source, or "no source line".
std::string SourceLine(const torch::jit::Node* n);

using OpConverter = std::function<absl::Status(Converter&, const torch::jit::Node*)>;

// Helpers every converter file uses.
inline const torch::jit::Value* In(const torch::jit::Node* n, size_t i) { return n->input(i); }
// The node's first output's debug name: the hint its ONNX names start with.
inline std::string Hint(const torch::jit::Node* n) { return n->output(0)->debugName(); }
inline bool IsNone(const torch::jit::Value* v) { return v->type()->kind() == c10::TypeKind::NoneType; }
// The output is the input (dropout, contiguous, ...); a quantized input's
// parameters go with it. onnx_ops_shapes.cc.
absl::Status Identity(Converter& c, const torch::jit::Node* n);

// The float op tables, by file; FloatOps merges them.
void AddLayerOps(std::map<std::string, OpConverter>& ops);
void AddElementwiseOps(std::map<std::string, OpConverter>& ops);
void AddShapeOps(std::map<std::string, OpConverter>& ops);

// Float ops by qualified name ("aten::conv2d"), export/onnx_ops.cc.
const std::map<std::string, OpConverter>& FloatOps();
// Ops of int8 models (quantize_per_tensor, dequantize, quantized::*),
// export/onnx_quantized_ops.cc.
const std::map<std::string, OpConverter>& QuantizedOps();
// How a float op LibTorch also runs on a quantized tensor (keeping the
// input's scale and zero point) is exported: its converter runs on the
// dequantized input and the output is quantized again (kRequantize), or it
// runs on the uint8 tensor itself, which only moves or compares values
// (reshapes, max pooling: kSameBytes).
enum class QuantizedInputRule { kRequantize, kSameBytes };
const absl::flat_hash_map<std::string, QuantizedInputRule>& OpsOnQuantizedInputs();

}  // namespace slimfit::onnx_export

#endif  // SLIMFIT_EXPORT_ONNX_CONVERTER_H_
