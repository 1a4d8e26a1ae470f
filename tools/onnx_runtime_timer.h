// File: tools/onnx_runtime_timer.h
//
// The Engine::RuntimeTimer //tools:compress gives its engine: a TorchScript
// file and its ONNX export timed in LibTorch and in ONNX Runtime, in turns in
// one process, by export/verify_onnx.py --latency --no_checks run with
// --python (the venv's, which has onnxruntime). `bazel run //tools:compress`
// passes both flags; run by hand without them, the report says it was not
// timed and why.
//
//   engine.set_runtime_timer(TimeInOnnxRuntime);
//
// Contract: rows for batch 1 and 64, one thread: "LibTorch <version>" then
// "ONNX Runtime <version>", `model` empty (the engine names it). Errors:
// InvalidArgument naming --python or --verify_onnx when unset or not a file;
// Internal with the script's last lines when it prints no figures.
#ifndef SLIMFIT_TOOLS_ONNX_RUNTIME_TIMER_H_
#define SLIMFIT_TOOLS_ONNX_RUNTIME_TIMER_H_

#include <string>
#include <vector>

#include "absl/flags/declare.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "search/report.h"

ABSL_DECLARE_FLAG(std::string, verify_onnx);

namespace slimfit {

absl::StatusOr<std::vector<RuntimeRow>> TimeInOnnxRuntime(const std::string& model_pt, const std::string& model_onnx,
                                                          bool int8);

// The rows from verify_onnx.py's output (its last line is a JSON object with
// libtorch_b1_ms, libtorch_b64_ms, onnxruntime_b1_ms, onnxruntime_b64_ms,
// libtorch_version, onnxruntime_version).
absl::StatusOr<std::vector<RuntimeRow>> ParseRuntimeFigures(absl::string_view output);

}  // namespace slimfit

#endif  // SLIMFIT_TOOLS_ONNX_RUNTIME_TIMER_H_
