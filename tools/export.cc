// export: writes a TorchScript model (fp32 or slimfit's int8) in another
// format. ONNX (opset 17): float ops as ONNX ops, int8 models as QDQ
// (QuantizeLinear / DequantizeLinear around the float ops, int8 weights with
// per-channel scales), checked by ONNX's checker before it is written
// (export/onnx.h says what maps).
//
//   bazel run //tools:export -- --model=runs/default/model.pt --format=onnx --out=runs/default/model.onnx
//   bazel run //tools:export -- --model=/abs/m.pt --format=onnx --input_shape=3,224,224 --out=/abs/m.onnx
//
// --input_shape is per sample; without it, the shapes the model's metadata
// records (every model slimfit writes has them). The batch dimension is
// dynamic ("batch") unless --fixed_batch.
#include <cstdio>
#include <string>

#include "absl/flags/flag.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "common/field_error.h"
#include "common/status_macros.h"
#include "export/onnx.h"
#include "tools/cli.h"

ABSL_FLAG(std::string, model, "", "TorchScript file, or a zoo model name");
ABSL_FLAG(std::string, format, "onnx", "output format; valid: onnx");
ABSL_FLAG(std::string, out, "", "output file (default: the model's path with .onnx)");
ABSL_FLAG(std::string, input_shape, "", "per-sample input shape, e.g. 1,28,28 (default: the model's metadata)");
ABSL_FLAG(bool, fixed_batch, false, "export the batch dimension as recorded instead of dynamic");

namespace slimfit {
namespace {

absl::Status Run() {
  const std::string spec = absl::GetFlag(FLAGS_model);
  if (spec.empty()) return FieldError("--model", "is required", "\"\"", "a .pt file or a zoo model name");
  if (absl::GetFlag(FLAGS_format) != "onnx") {
    return FieldError("--format", "is not a known format", Quoted(absl::GetFlag(FLAGS_format)), "onnx");
  }
  ASSIGN_OR_RETURN(Model model, LoadModelOrZoo(spec));
  OnnxExportOptions options;
  options.fixed_batch = absl::GetFlag(FLAGS_fixed_batch);
  if (!absl::GetFlag(FLAGS_input_shape).empty()) {
    ASSIGN_OR_RETURN(TensorSpec input, InputShapeFlag(absl::GetFlag(FLAGS_input_shape)));
    options.input_shapes.emplace_back(input.shape().begin(), input.shape().end());
  }
  std::string out = absl::GetFlag(FLAGS_out);
  if (out.empty()) {
    if (!absl::EndsWith(spec, ".pt")) return FieldError("--out", "is required for a zoo model", "\"\"", "a path");
    out = spec.substr(0, spec.size() - 3) + ".onnx";
  }
  out = ResolveUserPath(out);
  ASSIGN_OR_RETURN(OnnxExportSummary summary, WriteOnnx(model, out, options));
  std::printf("wrote %s: %lld bytes, %lld nodes, %s\n", out.c_str(), static_cast<long long>(summary.bytes),
              static_cast<long long>(summary.nodes), summary.quantized ? "int8 (QDQ)" : "fp32");
  std::string ops;
  for (const auto& [op, count] : summary.op_counts) absl::StrAppend(&ops, ops.empty() ? "" : ", ", op, " x", count);
  std::printf("ops: %s\n", ops.c_str());
  return absl::OkStatus();
}

}  // namespace
}  // namespace slimfit

int main(int argc, char** argv) {
  return slimfit::RunTool(argc, argv, "export",
                          "Writes a TorchScript model as ONNX.\n"
                          "  export --model=M.pt --format=onnx --out=M.onnx [--input_shape=1,28,28]",
                          &slimfit::Run);
}
