// profile: the cost of a model — per-layer parameters, nonzero parameters,
// output shapes and MACs (counted on the graph with real shapes), totals,
// serialized size, peak activation estimate, and measured latency at batch 1
// and --batch_size with a fixed thread count. Writes JSON with --json.
//
//   bazel run //tools:profile -- --model=resnet_small
//   bazel run //tools:profile -- --model=traced.pt --input_shape=3,32,32 --json=cost.json
#include <cstdio>
#include <string>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "common/field_error.h"
#include "common/files.h"
#include "common/status_macros.h"
#include "evaluators/profiler.h"
#include "tools/cli.h"

ABSL_FLAG(std::string, model, "", "TorchScript file, or a zoo model name");
ABSL_FLAG(std::string, input_shape, "",
          "per-sample input shape, e.g. 3,32,32 (default: from the model's metadata)");
ABSL_FLAG(int, batch_size, 64, "second latency batch size (the first is 1)");
ABSL_FLAG(int, runs, 50, "timed runs per latency figure");
ABSL_FLAG(int, warmup_runs, 5, "untimed runs first");
ABSL_FLAG(int, threads, 1, "intra-op threads while timing");
ABSL_FLAG(std::string, json, "", "also write the report here as JSON");

namespace slimfit {
namespace {

absl::Status Run() {
  ASSIGN_OR_RETURN(Model model, LoadModelOrZoo(absl::GetFlag(FLAGS_model)));
  ForwardPass fp;
  const std::string shape_flag = absl::GetFlag(FLAGS_input_shape);
  if (!shape_flag.empty()) {
    ModelMetadata md;
    ASSIGN_OR_RETURN(*md.add_inputs(), InputShapeFlag(shape_flag));
    RETURN_IF_ERROR(fp.InferFromMetadata(md));
  } else if (!fp.InferFromMetadata(model.metadata()).ok()) {
    return FieldError("--input_shape", "required: the model records no input shape", "\"\"",
                      "comma-separated sizes >= 1, e.g. 3,32,32");
  }
  ProfilerConfig c;
  c.set_batch_size(absl::GetFlag(FLAGS_batch_size));
  c.set_runs(absl::GetFlag(FLAGS_runs));
  c.set_warmup_runs(absl::GetFlag(FLAGS_warmup_runs));
  c.set_threads(absl::GetFlag(FLAGS_threads));
  ASSIGN_OR_RETURN(CostReport r, ProfileModel(model, fp, c));
  std::printf("%s", FormatCostReport(r).c_str());
  if (!absl::GetFlag(FLAGS_json).empty()) {
    RETURN_IF_ERROR(WriteFileAtomically(ResolveUserPath(absl::GetFlag(FLAGS_json)), CostReportToJson(r)));
  }
  return absl::OkStatus();
}

}  // namespace
}  // namespace slimfit

int main(int argc, char** argv) {
  return slimfit::RunTool(argc, argv, "profile",
                          "Prints a model's per-layer cost table and totals.\n"
                          "  bazel run //tools:profile -- --model=PATH_OR_ZOO_NAME [--input_shape=C,H,W]",
                          &slimfit::Run);
}
