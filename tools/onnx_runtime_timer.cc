#include "tools/onnx_runtime_timer.h"

#include <google/protobuf/struct.pb.h>
#include <google/protobuf/util/json_util.h>
#include <unistd.h>

#include <string>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_replace.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "common/field_error.h"
#include "tools/cli.h"
#include "tools/python_flag.h"

ABSL_FLAG(std::string, verify_onnx, "",
          "export/verify_onnx.py, to time model.onnx in ONNX Runtime for the report (bazel run passes it)");

namespace slimfit {
namespace {

// One shell word: single-quoted, a quote inside as '\''.
std::string ShellWord(const std::string& s) { return absl::StrCat("'", absl::StrReplaceAll(s, {{"'", "'\\''"}}), "'"); }

}  // namespace

absl::StatusOr<std::vector<RuntimeRow>> ParseRuntimeFigures(absl::string_view output) {
  std::vector<absl::string_view> lines = absl::StrSplit(output, '\n', absl::SkipWhitespace());
  auto fail = [&](const std::string& why) {
    const size_t from = lines.size() > 5 ? lines.size() - 5 : 0;
    return absl::InternalError(absl::StrCat("export/verify_onnx.py: ", why,
                                            "; it printed: ", absl::StrJoin(lines.begin() + from, lines.end(), " | ")));
  };
  if (lines.empty() || !absl::StartsWith(absl::StripAsciiWhitespace(lines.back()), "{")) {
    return fail("no figures (a JSON object) on its last line");
  }
  google::protobuf::Struct figures;
  if (!google::protobuf::util::JsonStringToMessage(std::string(lines.back()), &figures).ok()) {
    return fail("its last line is not JSON");
  }
  const auto& f = figures.fields();
  for (const char* key : {"libtorch_b1_ms", "libtorch_b64_ms", "onnxruntime_b1_ms", "onnxruntime_b64_ms"}) {
    auto it = f.find(key);
    if (it == f.end() || !it->second.has_number_value() || !(it->second.number_value() > 0)) {
      return fail(absl::StrCat("no positive ", key, " (was --latency given?)"));
    }
  }
  auto version = [&](const char* key) {
    auto it = f.find(key);
    return it == f.end() ? std::string("?") : it->second.string_value();
  };
  return std::vector<RuntimeRow>{{"", absl::StrCat("LibTorch ", version("libtorch_version")),
                                  f.at("libtorch_b1_ms").number_value(), f.at("libtorch_b64_ms").number_value()},
                                 {"", absl::StrCat("ONNX Runtime ", version("onnxruntime_version")),
                                  f.at("onnxruntime_b1_ms").number_value(), f.at("onnxruntime_b64_ms").number_value()}};
}

absl::StatusOr<std::vector<RuntimeRow>> TimeInOnnxRuntime(const std::string& model_pt, const std::string& model_onnx,
                                                          bool int8) {
  const std::string given = absl::GetFlag(FLAGS_verify_onnx);
  if (given.empty()) {
    return FieldError("--verify_onnx", "not set (`bazel run //tools:compress` passes export/verify_onnx.py)", "\"\"",
                      "the path of export/verify_onnx.py");
  }
  const std::string script = StartDirectoryPath(given);
  if (::access(script.c_str(), R_OK) != 0) {
    return FieldError("--verify_onnx", absl::StrCat("not a readable file (", script, ")"), Quoted(given),
                      "the path of export/verify_onnx.py");
  }
  // One sample, repeated to batch 64 by the timing; nothing checked (the
  // tests verify agreement on real data).
  const std::string args =
      absl::StrCat(ShellWord(script), " --model ", ShellWord(model_pt), " --onnx ", ShellWord(model_onnx), " --kind ",
                   int8 ? "int8" : "fp32", " --random 1 --latency --no_checks");
  absl::StatusOr<std::string> out = RunTorchPython("", args);
  if (!out.ok()) return out.status();
  return ParseRuntimeFigures(*out);
}

}  // namespace slimfit
