// compress: the main job. Runs the compression search of an experiment file
// (search/experiment.proto) and writes the run directory: model.pt (plain
// TorchScript: loads with torch.jit.load and in LibTorch), reference.pt,
// report.json / report.md / report.html, metrics.jsonl and state/.
//
//   bazel run //tools:compress                                  # the built-in default
//   bazel run //tools:compress -- --experiment=experiments/fashion_mnist_resnet.pbtxt
//   bazel run //tools:compress -- --experiment=my.pbtxt --time_budget_minutes=20 --level=2
//
// Ctrl-C (or SIGTERM) stops at the next safe point — between two training
// steps — writes the best qualifying model so far and the report, and exits
// with 130 (143); a second Ctrl-C ends it at once. Killed at any point
// (SIGKILL included), the same command resumes from the last completed
// candidate or fine-tuning epoch. A zoo reference is trained
// once per recipe and cached in --references_dir.
//
// On several processes (c10d + Gloo; the same experiment on every rank,
// whose files must be at the same paths on every machine):
//   bazel build //tools:compress //tools:launch
//   bazel-bin/tools/launch --nproc_per_node=2 -- bazel-bin/tools/compress --experiment=e.pbtxt
// candidates are spread over the ranks and the final fine-tunes are
// data-parallel; rank 0 prints and writes the run directory.
#include <cstdio>
#include <string>

#include "absl/flags/flag.h"
#include "absl/strings/str_cat.h"
#include "common/files.h"
#include "common/interrupt.h"
#include "common/status_macros.h"
#include "common/text_proto.h"
#include "search/engine.h"
#include "search/experiment.h"
#include "search/setup.h"
#include "tools/cli.h"
#include "tools/device_flag.h"
#include "tools/distributed_flags.h"
#include "tools/onnx_runtime_timer.h"

ABSL_FLAG(std::string, experiment, "", "Experiment file (.pbtxt); empty: the built-in default (Fashion-MNIST, "
                                       "a zoo resnet_small trained once, delta 1.0, level 1).");
ABSL_FLAG(std::string, output_dir, "", "Overrides the experiment's output_dir (default runs/<name>).");
ABSL_FLAG(double, delta, -1, "Overrides compression.delta.");
ABSL_FLAG(int32_t, level, 0, "Overrides compression.level (1 or 2).");
ABSL_FLAG(double, time_budget_minutes, -1, "Overrides compression.time_budget_minutes.");
ABSL_FLAG(std::string, strategy, "", "Overrides compression.strategy (bisection, gradual).");
ABSL_FLAG(std::string, references_dir, "runs/references", "Where trained zoo references are cached.");

namespace slimfit {
namespace {

absl::Status Run() {
  // Ctrl-C / SIGTERM: stop at the next safe point and write the best so far.
  InstallInterruptHandler();
  Experiment e;
  const std::string file = absl::GetFlag(FLAGS_experiment);
  if (file.empty()) {
    e = DefaultExperiment();
  } else {
    ASSIGN_OR_RETURN(e, LoadExperiment(ResolveUserPath(file)), "--experiment");
  }
  if (FlagGiven("delta")) e.mutable_compression()->set_delta(absl::GetFlag(FLAGS_delta));
  if (FlagGiven("level")) e.mutable_compression()->set_level(absl::GetFlag(FLAGS_level));
  if (FlagGiven("time_budget_minutes")) {
    e.mutable_compression()->set_time_budget_minutes(absl::GetFlag(FLAGS_time_budget_minutes));
  }
  if (FlagGiven("strategy")) e.mutable_compression()->set_strategy(absl::GetFlag(FLAGS_strategy));
  if (FlagGiven("output_dir")) e.set_output_dir(absl::GetFlag(FLAGS_output_dir));
  RETURN_IF_ERROR(ApplyDeviceFlag(e.mutable_device()));
  e = WithDefaults(e);
  // Paths as the user meant them (bazel run starts in the runfiles tree).
  e.set_output_dir(ResolveUserPath(e.output_dir()));
  if (e.model().source_case() == ModelSpec::kPath) e.mutable_model()->set_path(ResolveUserPath(e.model().path()));
  if (e.data().has_mnist() && !e.data().mnist().directory().empty()) {
    e.mutable_data()->mutable_mnist()->set_directory(ResolveUserPath(e.data().mnist().directory()));
  }
  if (e.data().has_cifar()) e.mutable_data()->mutable_cifar()->set_directory(ResolveUserPath(e.data().cifar().directory()));
  RETURN_IF_ERROR(ValidateExperiment(e));
  ASSIGN_OR_RETURN(std::unique_ptr<ProcessGroup> group, ConnectIfDistributed());
  RETURN_IF_ERROR(QuietUnlessRoot(group.get()));
  const CompressionConfig& c = e.compression();
  if (group != nullptr) std::printf("distributed: %d ranks\n", group->world_size());
  std::printf("experiment %s: %s, level %d%s, objective %s, delta %g on %s (%s); output %s\n", e.name().c_str(),
              e.model().source_case() == ModelSpec::kZoo ? ("zoo " + e.model().zoo()).c_str() : e.model().path().c_str(),
              c.level(), c.deepsearch() ? " (deepsearch)" : "", CompressionConfig::Objective_Name(c.objective()).c_str(),
              c.delta(), e.evaluation().eval_key().c_str(), e.evaluation().eval_split().c_str(), e.output_dir().c_str());
  std::fflush(stdout);
  SetupOptions options;
  options.references_dir = ResolveUserPath(absl::GetFlag(FLAGS_references_dir));
  ASSIGN_OR_RETURN(EngineInputs in, BuildEngineInputs(e, options, group.get()));
  std::printf("reference: %s\n", in.reference_source.c_str());
  Engine engine(std::move(in.data), std::move(*in.model), e, in.forward_pass, std::move(in.evaluator),
                std::move(in.loss));
  engine.set_group(group.get());
  engine.set_runtime_timer(TimeInOnnxRuntime);  // export ONNX: the report's Runtimes section
  ASSIGN_OR_RETURN(EngineResult r, engine.Run());
  std::printf("\n%s\n%s\n", r.why.c_str(), r.summary.c_str());
  std::printf("model:  %s/model.pt%s\nreport: %s/report.html (also report.md, report.json)\n", r.run_dir.c_str(),
              r.returned_reference ? " (the reference)" : "", r.run_dir.c_str());
  if (ExportsOnnx(e)) {
    const std::string onnx = r.run_dir + "/model.onnx";
    std::printf("onnx:   %s\n", RegularFileSize(onnx).ok() ? onnx.c_str() : "not written (the report says why)");
  }
  std::printf("wall time %.1f min (%d record(s) reused from state/)\n", r.seconds / 60, r.reused);
  for (const std::string& f : r.failures) std::printf("skipped (failed): %s\n", f.c_str());
  if (!r.warning.empty()) std::printf("warning: %s\n", r.warning.c_str());
  if (r.interrupted) {
    return absl::CancelledError(absl::StrCat(InterruptRequested() ? InterruptMessage() : "another rank was interrupted",
                                             ": ", r.run_dir,
                                             " holds the best model so far; run the same command again to resume"));
  }
  return absl::OkStatus();
}

}  // namespace
}  // namespace slimfit

int main(int argc, char** argv) {
  return slimfit::RunTool(argc, argv, "compress",
      "Compresses a model within delta of its metric (pruning, then int8 at level 2).\n"
      "  bazel run //tools:compress [-- --experiment=experiments/fashion_mnist_resnet.pbtxt]\n"
      "      [--level=2] [--delta=1.0] [--time_budget_minutes=15] [--output_dir=runs/x]",
      &slimfit::Run);
}
