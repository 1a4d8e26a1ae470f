// prune: structured (or unstructured) pruning of any TorchScript model, with a
// physically smaller output and a before/after table.
//
//   # no data: weight-based pruners
//   bazel run //tools:prune -- --model=/abs/in.pt --pruner=fpgm --ratio=0.5 --input_shape=3,224,224
//   # with data: evaluated before/after, fine-tuned
//   bazel run //tools:prune -- --model=resnet_small --data=fashion_mnist
//       --config=experiments/prune/resnet_fpgm_half.pbtxt --out=/abs/out.pt
//
// The config file is a PruningConfig (pruners/pruner.proto); the common
// fields are flags too (tools/pruning_flags.h). With --data the model is
// evaluated before and after (test split) and can be fine-tuned; pruners that
// score on data (taylor, apoz, activation_mean, slim's sparsity phase) need it.
#include "pruners/prune.h"

#include <cstdio>
#include <string>

#include "absl/flags/flag.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "common/field_error.h"
#include "common/files.h"
#include "common/status_macros.h"
#include "common/threads.h"
#include "evaluators/profiler.h"
#include "pruners/pruner.h"
#include "tools/cli.h"
#include "tools/compare.h"
#include "tools/data_flags.h"
#include "tools/job.h"
#include "tools/pruning_flags.h"

ABSL_FLAG(std::string, model, "", "TorchScript file (or a zoo name) to prune");
ABSL_FLAG(std::string, config, "", "a PruningConfig text proto; flags override its fields");
ABSL_FLAG(std::string, out, "", "output TorchScript file (default: runs/prune/<model>/model.pt)");
ABSL_FLAG(int, batch_size, 64, "fine-tuning batch size");
ABSL_FLAG(double, lr, 0.01, "fine-tuning learning rate (SGD, momentum 0.9, cosine)");
ABSL_FLAG(int, threads, 1, "intra-op threads");
ABSL_FLAG(int, latency_runs, 20, "timed runs per latency figure (0: skip latency)");
ABSL_FLAG(uint64_t, seed, 0, "seed");

namespace slimfit {
namespace {

absl::Status Run() {
  const std::string spec = absl::GetFlag(FLAGS_model);
  if (spec.empty()) return FieldError("--model", "required", "\"\"", "a TorchScript file or a zoo name");
  ASSIGN_OR_RETURN(PruningConfig config, PruningConfigFromFlags(absl::GetFlag(FLAGS_config)));
  RETURN_IF_ERROR(ValidatePruningConfig(config));
  ASSIGN_OR_RETURN(std::unique_ptr<Pruner> probe, MakePruner(config));
  const int threads = ConfigureThreads(absl::GetFlag(FLAGS_threads));
  const bool with_data = DataFlag(kNoData) != kNoData;
  if (!with_data && (probe->needs_data() || config.finetune_epochs() > 0)) {
    return FieldError(
        "--data",
        absl::StrCat("required ", probe->needs_data() ? absl::StrCat("by pruner \"", probe->name(), "\"")
                                                      : std::string("to fine-tune (finetune_epochs > 0)")),
        Quoted(kNoData), "a dataset, e.g. --data=fashion_mnist");
  }

  ASSIGN_OR_RETURN(ToolSubject subject, LoadToolSubject(spec, with_data, DataFlag(kNoData), DataDirFlag(),
                                                        absl::GetFlag(FLAGS_batch_size), absl::GetFlag(FLAGS_seed)));
  if (subject.job) {
    const int epochs = std::max(1, config.has_agp() ? config.agp().epochs() : config.finetune_epochs());
    *subject.config.mutable_full_trainer() =
        FineTuneConfig(absl::GetFlag(FLAGS_lr), epochs, subject.job->train->num_batches(), absl::GetFlag(FLAGS_seed));
  }
  Model& model = subject.model();
  std::unique_ptr<Job>& job = subject.job;
  std::shared_ptr<ForwardPass>& fp = subject.forward_pass;
  TrainJob& tj = subject.config;

  ASSIGN_OR_RETURN(Measured before,
                   MeasureModel(model, *fp, job.get(), tj.data(), threads, absl::GetFlag(FLAGS_latency_runs)));
  PruneDeps deps;
  deps.forward_pass = fp.get();
  if (job) {
    deps.loss = job->loss.get();
    deps.train = job->train.get();
    deps.finetune = &tj.full_trainer();
    deps.evaluator = job->evaluator.get();
    deps.eval = job->eval.get();
    deps.device = job->device;
  }
  ASSIGN_OR_RETURN(PruneResult r, Prune(model, config, deps));
  for (const std::string& line : r.log) std::printf("%s\n", line.c_str());
  ASSIGN_OR_RETURN(Measured after,
                   MeasureModel(r.model, *fp, job.get(), tj.data(), threads, absl::GetFlag(FLAGS_latency_runs)));

  ASSIGN_OR_RETURN(const std::string out, SaveToolOutput(r.model, "prune", spec, absl::GetFlag(FLAGS_out)));

  std::printf("\n%s", FormatPlan(PlanResult{{}, r.layers}).c_str());
  if (!r.unhandled_ops.empty()) {
    std::printf("ops that kept their channels:\n");
    for (const std::string& op : r.unhandled_ops) std::printf("  %s\n", op.c_str());
  }
  std::printf("\n%s", FormatComparison(before, after).c_str());
  std::printf("pruned vs masked max |diff| %.2g; wrote %s\n", r.max_masked_diff, out.c_str());
  return absl::OkStatus();
}

}  // namespace
}  // namespace slimfit

int main(int argc, char** argv) {
  return slimfit::RunTool(argc, argv, "prune",
      "Prunes a TorchScript model (physically smaller output).\n"
      "  bazel run //tools:prune -- --model=IN.pt [--config=prune.pbtxt] [--pruner=fpgm --ratio=0.5]\n"
      "      [--data=fashion_mnist --finetune_epochs=2] [--input_shape=3,224,224] --out=OUT.pt",
      &slimfit::Run);
}
