#include "tools/onnx_runtime_timer.h"

#include "absl/flags/flag.h"
#include "common/status_matchers.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tools/python_flag.h"

namespace slimfit {
namespace {

using ::slimfit::testing::StatusIs;
using ::testing::HasSubstr;

// The figures line as export/verify_onnx.py prints it (json.dumps of its
// figures dict): the rows carry its numbers and versions in order.
TEST(ParseRuntimeFiguresTest, TwoRowsFromTheLastLine) {
  const std::string out =
      "2026-12-04 [W:onnxruntime:Default] a warning first\n"
      "{\"model\": \"m.pt\", \"kind\": \"int8\", \"samples\": 1, \"max_rel\": 0.01, \"argmax_agreement\": 1.0, "
      "\"libtorch_version\": \"2.11.0\", \"onnxruntime_version\": \"1.32.0\", \"libtorch_b1_ms\": 0.8054, "
      "\"onnxruntime_b1_ms\": 0.0951, \"libtorch_b64_ms\": 3.621, \"onnxruntime_b64_ms\": 4.689}\n";
  ASSERT_OK_AND_ASSIGN(std::vector<RuntimeRow> rows, ParseRuntimeFigures(out));
  ASSERT_EQ(rows.size(), 2u);
  EXPECT_EQ(rows[0].runtime, "LibTorch 2.11.0");
  EXPECT_DOUBLE_EQ(rows[0].batch1_ms, 0.8054);
  EXPECT_DOUBLE_EQ(rows[0].batch64_ms, 3.621);
  EXPECT_EQ(rows[1].runtime, "ONNX Runtime 1.32.0");
  EXPECT_DOUBLE_EQ(rows[1].batch1_ms, 0.0951);
  EXPECT_DOUBLE_EQ(rows[1].batch64_ms, 4.689);
  EXPECT_EQ(rows[0].model, "");
}

TEST(ParseRuntimeFiguresTest, ErrorsQuoteWhatTheScriptPrinted) {
  EXPECT_THAT(ParseRuntimeFigures("Traceback (most recent call last):\nModuleNotFoundError: onnxruntime\n"),
              StatusIs(absl::StatusCode::kInternal, HasSubstr("ModuleNotFoundError: onnxruntime")));
  EXPECT_THAT(ParseRuntimeFigures(""), StatusIs(absl::StatusCode::kInternal, HasSubstr("no figures")));
  EXPECT_THAT(ParseRuntimeFigures("{\"libtorch_b1_ms\": 1\n"),
              StatusIs(absl::StatusCode::kInternal, HasSubstr("not JSON")));
  // Figures without --latency: no timings.
  EXPECT_THAT(ParseRuntimeFigures("{\"max_rel\": 0.0, \"argmax_agreement\": 1.0}\n"),
              StatusIs(absl::StatusCode::kInternal, HasSubstr("no positive libtorch_b1_ms")));
}

TEST(TimeInOnnxRuntimeTest, UnsetFlagsAreNamed) {
  absl::SetFlag(&FLAGS_verify_onnx, "");
  EXPECT_THAT(TimeInOnnxRuntime("m.pt", "m.onnx", false),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("--verify_onnx")));
  absl::SetFlag(&FLAGS_verify_onnx, "/nonexistent/verify_onnx.py");
  EXPECT_THAT(TimeInOnnxRuntime("m.pt", "m.onnx", false),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("not a readable file")));
  absl::SetFlag(&FLAGS_verify_onnx, "/dev/null");  // readable: the next flag is the one missing
  absl::SetFlag(&FLAGS_python, "");
  EXPECT_THAT(TimeInOnnxRuntime("m.pt", "m.onnx", false),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("--python")));
}

}  // namespace
}  // namespace slimfit
