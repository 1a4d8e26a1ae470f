// The search strategies side by side: every named strategy on every named
// experiment, at the same delta, level and time budget, one after another in
// one process, and one table of what each returned (issue 17, item 6):
// test accuracy reference -> result, size, MACs, latency at batch 1 and 64
// (ratios of the reference's timings, both timed in turns at the end of the
// same run), wall time. Each run keeps its own run directory and log, so a
// second invocation resumes the runs it finds finished.
//
//   bazel run //search/benchmark:strategies_benchmark               # zoo x every strategy, 15 min each
//   bazel run //search/benchmark:strategies_benchmark --
//       --experiments=experiments/fashion_mnist_resnet.pbtxt --strategies=gradual,bisection
//       --time_budget_minutes=15 --level=1 --out_dir=runs/strategies      (one line)
//
// The peer rows (Torch-Pruning, PyTorch's int8 PTQ) come from
// search/benchmark/peers.py (docs/search.md), which needs torch-pruning
// from PyPI and so is not part of set-up.
#include <cstdio>
#include <string>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "common/files.h"
#include "common/interrupt.h"
#include "common/status_macros.h"
#include "search/engine.h"
#include "search/experiment.h"
#include "search/setup.h"
#include "search/strategy.h"
#include "tools/cli.h"

ABSL_FLAG(std::string, experiments,
          "experiments/fashion_mnist_resnet.pbtxt,experiments/fashion_mnist_vgg.pbtxt,"
          "experiments/fashion_mnist_mobilenetv2.pbtxt",
          "Comma-separated experiment files (workspace-relative); each runs once per strategy.");
ABSL_FLAG(std::string, strategies, "", "Comma-separated strategy names; empty: every registered one.");
ABSL_FLAG(double, time_budget_minutes, 15, "Each run's compression.time_budget_minutes.");
ABSL_FLAG(double, delta, 1.0, "Each run's compression.delta.");
ABSL_FLAG(int32_t, level, 1, "Each run's compression.level (1 or 2).");
ABSL_FLAG(std::string, out_dir, "runs/strategies_benchmark",
          "Run directories go to <out_dir>/<experiment>_<strategy>, with progress in <same>.log.");
ABSL_FLAG(std::string, references_dir, "runs/references", "Where trained zoo references are cached.");

namespace slimfit {
namespace {

double Ratio(double reference, double result) { return result > 0 ? reference / result : 0; }

struct Row {
  std::string experiment, strategy, line;
};

absl::StatusOr<Row> RunOne(const std::string& file, const std::string& strategy) {
  ASSIGN_OR_RETURN(Experiment e, LoadExperiment(file), file);
  CompressionConfig* c = e.mutable_compression();
  c->set_strategy(strategy);
  c->set_time_budget_minutes(absl::GetFlag(FLAGS_time_budget_minutes));
  c->set_delta(absl::GetFlag(FLAGS_delta));
  c->set_level(absl::GetFlag(FLAGS_level));
  e = WithDefaults(e);
  const std::string dir = absl::StrCat(absl::GetFlag(FLAGS_out_dir), "/", e.name(), "_", strategy);
  e.set_output_dir(dir);
  RETURN_IF_ERROR(ValidateExperiment(e), file);
  SetupOptions options;
  options.references_dir = absl::GetFlag(FLAGS_references_dir);
  ASSIGN_OR_RETURN(EngineInputs in, BuildEngineInputs(e, options), file);
  Engine engine(std::move(in.data), std::move(*in.model), e, in.forward_pass, std::move(in.evaluator),
                std::move(in.loss));
  std::string log;
  engine.set_progress([&](const std::string& line) { absl::StrAppend(&log, line, "\n"); });
  std::printf("  %s, %s: running (progress in %s.log)\n", e.name().c_str(), strategy.c_str(), dir.c_str());
  std::fflush(stdout);
  absl::StatusOr<EngineResult> run = engine.Run();
  const absl::Status wrote = WriteFileAtomically(dir + ".log", log);
  if (!run.ok()) return run.status();
  RETURN_IF_ERROR(wrote, "writing the run's progress");
  const EngineResult& r = *run;
  const CandidateRecord& ref = r.reference;
  const CandidateRecord& got = r.chosen;
  const std::string test = ref.has_test_metric() && got.has_test_metric()
                               ? absl::StrFormat("%.2f -> %.2f (%+.2f)", ref.test_metric(), got.test_metric(),
                                                 got.test_metric() - ref.test_metric())
                               : std::string("no test split");
  Row row;
  row.experiment = e.name();
  row.strategy = strategy;
  row.line =
      absl::StrFormat("| %s | %s | %s | %s %.2f -> %.2f | %.2fx | %.2fx | %.2fx / %.2fx | %.1f min%s |", e.name(),
                      strategy, test, e.evaluation().eval_split(), ref.eval_metric(), got.eval_metric(),
                      Ratio(static_cast<double>(ref.serialized_bytes()), static_cast<double>(got.serialized_bytes())),
                      Ratio(static_cast<double>(ref.macs()), static_cast<double>(got.macs())),
                      Ratio(ref.latency_b1_ms(), got.latency_b1_ms()), Ratio(ref.latency_bn_ms(), got.latency_bn_ms()),
                      r.seconds / 60, r.returned_reference ? " (the reference: nothing qualified)" : "");
  return row;
}

absl::Status Run() {
  InstallInterruptHandler();
  std::vector<std::string> strategies = absl::StrSplit(absl::GetFlag(FLAGS_strategies), ',', absl::SkipWhitespace());
  if (strategies.empty()) strategies = StrategyRegistry().Names();
  for (const std::string& s : strategies) {
    if (!StrategyRegistry().Get(s).ok()) {
      return absl::InvalidArgumentError(absl::StrFormat("--strategies: no strategy %s; valid: %s", s,
                                                        absl::StrJoin(StrategyRegistry().Names(), ", ")));
    }
  }
  const std::vector<std::string> files = absl::StrSplit(absl::GetFlag(FLAGS_experiments), ',', absl::SkipWhitespace());
  if (files.empty())
    return absl::InvalidArgumentError("--experiments: empty; valid: experiment files, comma-separated");
  std::printf("strategies %s on %zu experiment(s): delta %g, level %d, %g minutes each\n",
              absl::StrJoin(strategies, ", ").c_str(), files.size(), absl::GetFlag(FLAGS_delta),
              absl::GetFlag(FLAGS_level), absl::GetFlag(FLAGS_time_budget_minutes));
  RETURN_IF_ERROR(CreateDirectories(absl::GetFlag(FLAGS_out_dir)), "--out_dir");
  std::vector<Row> rows;
  // Strategies alternate within each experiment, so a machine that slows
  // down over the run hits every strategy alike.
  for (const std::string& file : files) {
    for (const std::string& s : strategies) {
      ASSIGN_OR_RETURN(Row row, RunOne(file, s));
      rows.push_back(row);
      if (InterruptRequested()) break;
    }
    if (InterruptRequested()) break;
  }
  std::printf(
      "\n| experiment | strategy | test: reference -> result | scoring split: reference -> result | size | MACs | "
      "latency b1 / b64 | wall |\n| --- | --- | --- | --- | --- | --- | --- | --- |\n");
  for (const Row& r : rows) std::printf("%s\n", r.line.c_str());
  return absl::OkStatus();
}

}  // namespace
}  // namespace slimfit

int main(int argc, char** argv) { return slimfit::RunFromWorkspace(argc, argv, "strategies_benchmark", &slimfit::Run); }
