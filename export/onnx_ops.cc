// The float op table (its converters: onnx_ops_layers.cc, onnx_ops_elementwise.cc,
// onnx_ops_shapes.cc) and how float ops run on quantized tensors.
#include "export/onnx_converter.h"

namespace slimfit::onnx_export {

const std::map<std::string, OpConverter>& FloatOps() {
  static const auto* ops = [] {
    auto* table = new std::map<std::string, OpConverter>;
    AddLayerOps(*table);
    AddElementwiseOps(*table);
    AddShapeOps(*table);
    return table;
  }();
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
