// Structured pruning of a trained resnet_small on Fashion-MNIST, every
// structured pruner at 2x, 4x and 8x fewer MACs, side by side in one run:
// test accuracy right after pruning and after a short fine-tune, MACs,
// parameters, and measured CPU latency at batch 1 and 64 (one thread), each
// as a ratio to the unpruned model (timed again beside each candidate), plus
// latency speedup at batch 64 / MAC reduction.
//
//   # the trained model (once):
//   bazel run //tools:train -- --model=resnet_small --epochs=15 --augment --lr=0.1 --batch_size=128
//       --out=runs/train/resnet_small_fashion
//   bazel run //pruners/benchmark:pruning_benchmark -- --finetune_epochs=1
//
// The per-layer ratio for each MAC target is found by bisection on the dry-run
// plan (channel counts do not depend on the pruner), so every pruner is
// compared at the same architecture.
#include <cmath>
#include <cstdio>
#include <string>
#include <vector>

#include <unistd.h>

#include "absl/flags/flag.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_split.h"
#include "common/status_macros.h"
#include "common/text_proto.h"
#include "common/threads.h"
#include "evaluators/profiler.h"
#include "graph/surgery.h"
#include "pruners/plan.h"
#include "pruners/prune.h"
#include "pruners/pruner.h"
#include "tools/cli.h"
#include "tools/job.h"

ABSL_FLAG(std::string, model, "runs/train/resnet_small_fashion/model.pt", "trained model (see the header)");
ABSL_FLAG(std::string, pruners, "", "comma-separated pruners (default: every structured pruner registered)");
ABSL_FLAG(std::string, targets, "2,4,8", "MAC reduction targets");
ABSL_FLAG(int, finetune_epochs, 1, "fine-tuning epochs after pruning");
ABSL_FLAG(int64_t, finetune_samples, 0, "fine-tune on this many training samples (0 = all)");
ABSL_FLAG(double, lr, 0.01, "fine-tuning learning rate (SGD momentum 0.9, cosine)");
ABSL_FLAG(int, latency_runs, 30, "timed runs per latency figure");
ABSL_FLAG(int, round_to, 0, "round kept channels to a multiple of this");

namespace slimfit {
namespace {

absl::StatusOr<CostReport> Cost(Model& m, ForwardPass& fp, bool latency) {
  ProfilerConfig pc;
  pc.set_runs(absl::GetFlag(FLAGS_latency_runs));
  pc.set_skip_latency(!latency);
  return ProfileModel(m, fp, pc);
}

absl::StatusOr<double> Accuracy(Model& m, Job& job, const TrainJob& tj) {
  ASSIGN_OR_RETURN(auto test, MakeLoader(tj.data(), job.splits, "test"));
  ASSIGN_OR_RETURN(Metrics metrics, job.evaluator->Apply(m, *test));
  ASSIGN_OR_RETURN(Metric a, metrics.Get("accuracy"));
  return a.value;
}

absl::Status Run() {
  ConfigureThreads(1);
  TrainJob tj;
  tj.set_model(absl::GetFlag(FLAGS_model));
  ASSIGN_OR_RETURN(*tj.mutable_data(), PresetData("fashion_mnist", "", false));
  tj.mutable_data()->set_train_batch_size(128);
  tj.mutable_data()->set_max_train_samples(absl::GetFlag(FLAGS_finetune_samples));
  ASSIGN_OR_RETURN(Job job, BuildJob(tj, true), "loading the trained model (see the benchmark's header)");
  TrainerConfig t = FineTuneConfig(absl::GetFlag(FLAGS_lr), absl::GetFlag(FLAGS_finetune_epochs),
                                   job.train->num_batches(), /*seed=*/0);
  t.set_progress(TrainerConfig::NONE);
  Model& model = *job.model;
  ForwardPass& fp = *job.forward_pass;

  ASSIGN_OR_RETURN(CostReport base, Cost(model, fp, true));
  ASSIGN_OR_RETURN(double base_acc, Accuracy(model, job, tj));
  ASSIGN_OR_RETURN(DependencyGraph graph, AnalyzeModel(model, fp));
  std::printf("resnet_small (trained): %.2f%% test, %.2f MMACs, %lld params, latency b1 %.3f ms, b64 %.2f ms\n",
              base_acc, base.macs / 1e6, static_cast<long long>(base.params), base.latency[0].median_ms,
              base.latency[1].median_ms);

  std::vector<double> targets;
  for (absl::string_view s : absl::StrSplit(absl::GetFlag(FLAGS_targets), ',')) targets.push_back(std::stod(std::string(s)));
  std::printf("\n%-16s %6s %6s %8s %8s %9s %9s %10s %9s %9s %7s\n", "pruner", "target", "ratio", "MACs", "params",
              "lat b1", "lat b64", "speed/MAC", "acc cut", "acc ft", "drop");
  for (double target : targets) {
    // Bisection on the per-layer ratio for the MAC target.
    double lo = 0, hi = 0.95, ratio = 0.5;
    for (int it = 0; it < 14; ++it) {
      ratio = 0.5 * (lo + hi);
      PruningConfig c;
      c.mutable_l1_filter();
      c.set_ratio(ratio);
      c.set_max_ratio(0.95);
      c.set_round_to(absl::GetFlag(FLAGS_round_to));
      ASSIGN_OR_RETURN(PlanResult plan, MakePlan(graph, c, nullptr));
      ASSIGN_OR_RETURN(Model pruned, ApplyPruning(model, graph, plan.plan));
      ASSIGN_OR_RETURN(CostReport cost, Cost(pruned, fp, false));
      const double reduction = static_cast<double>(base.macs) / static_cast<double>(cost.macs);
      (reduction < target ? lo : hi) = ratio;
    }
    ratio = hi;
    std::vector<std::string> names = absl::StrSplit(absl::GetFlag(FLAGS_pruners), ',', absl::SkipEmpty());
    if (names.empty()) {
      names = StructuredPrunerNames();
    }
    for (const std::string& name : names) {
      PruningConfig c;
      RETURN_IF_ERROR(ParseTextProto(absl::StrCat(name, " {}"), "pruner", &c));
      if (name == "slim") c.mutable_slim()->set_sparsity_epochs(1);
      c.set_ratio(ratio);
      c.set_max_ratio(0.95);
      c.set_round_to(absl::GetFlag(FLAGS_round_to));
      PruneDeps deps;
      deps.forward_pass = &fp;
      deps.loss = job.loss.get();
      deps.train = job.train.get();
      deps.finetune = &t;
      ASSIGN_OR_RETURN(PruneResult r, Prune(model, c, deps), name);
      ASSIGN_OR_RETURN(double acc_cut, Accuracy(r.model, job, tj));
      c.set_finetune_epochs(absl::GetFlag(FLAGS_finetune_epochs));
      double acc_ft = acc_cut;
      if (c.finetune_epochs() > 0) {
        // Fine-tune the cut model (Prune's one-shot path does the same).
        TrainerDeps td;
        td.loss = job.loss.get();
        td.train = job.train.get();
        TrainerConfig ft = t;
        ft.set_epochs(c.finetune_epochs());
        ASSIGN_OR_RETURN(auto trainer, Trainer::Create(ft, td));
        RETURN_IF_ERROR(trainer->Train(r.model).status());
        ASSIGN_OR_RETURN(acc_ft, Accuracy(r.model, job, tj));
      }
      // The baseline is timed again right before each candidate, so VM
      // drift between rows does not enter the ratios.
      ASSIGN_OR_RETURN(CostReport base_now, Cost(model, fp, true));
      ASSIGN_OR_RETURN(CostReport cost, Cost(r.model, fp, true));
      const double mac_x = static_cast<double>(base.macs) / static_cast<double>(cost.macs);
      const double b1 = base_now.latency[0].median_ms / cost.latency[0].median_ms;
      const double b64 = base_now.latency[1].median_ms / cost.latency[1].median_ms;
      std::printf("%-16s %5.0fx %6.3f %7.2fx %7.2fx %8.2fx %8.2fx %9.2f %8.2f%% %8.2f%% %+7.2f\n",
                  std::string(name).c_str(), target, ratio, mac_x,
                  static_cast<double>(base.params) / static_cast<double>(cost.params), b1, b64,
                  b64 / mac_x, acc_cut, acc_ft, acc_ft - base_acc);
      std::fflush(stdout);
    }
  }
  return absl::OkStatus();
}

}  // namespace
}  // namespace slimfit

int main(int argc, char** argv) {
  return slimfit::RunFromWorkspace(argc, argv, "pruning_benchmark", &slimfit::Run);
}
