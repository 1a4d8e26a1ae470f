#include "tools/compare.h"

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "common/field_error.h"
#include "common/status_macros.h"
#include "data/splits.h"
#include "tools/cli.h"
#include "tools/pruning_flags.h"

namespace slimfit {
namespace {

std::string Ratio(double before, double after) {
  return after > 0 ? absl::StrFormat("%.2fx", before / after) : "-";
}

}  // namespace

absl::StatusOr<ToolSubject> LoadToolSubject(const std::string& spec, bool with_data, const std::string& data,
                                            const std::string& data_dir, int batch_size, uint64_t seed) {
  ToolSubject s;
  if (with_data) {
    ASSIGN_OR_RETURN(Job built, BuildToolJob(spec, data, data_dir, batch_size, seed, &s.config));
    s.job = std::make_unique<Job>(std::move(built));
    s.forward_pass = s.job->forward_pass;
  } else {
    ASSIGN_OR_RETURN(Model m, LoadModelOrZoo(ResolveUserPath(spec)), AtField("--model"));
    s.owned = std::make_unique<Model>(std::move(m));
    ASSIGN_OR_RETURN(s.forward_pass, ForwardPassForModel(*s.owned));
  }
  return s;
}

absl::StatusOr<Measured> MeasureModel(Model& model, ForwardPass& fp, Job* job, const DataConfig& data, int threads,
                                      int latency_runs) {
  Measured m;
  ProfilerConfig pc;
  pc.set_threads(threads);
  if (latency_runs <= 0) {
    pc.set_skip_latency(true);
  } else {
    pc.set_runs(latency_runs);
  }
  ASSIGN_OR_RETURN(m.cost, ProfileModel(model, fp, pc));
  if (job != nullptr && job->splits.test != nullptr) {
    ASSIGN_OR_RETURN(auto test, MakeLoader(data, job->splits, "test"));
    ASSIGN_OR_RETURN(Metrics metrics, job->evaluator->Apply(model, *test));
    if (auto a = metrics.Get("accuracy"); a.ok()) m.accuracy = a->value;
  }
  return m;
}

std::string FormatComparison(const Measured& before, const Measured& after, bool counts) {
  std::string out = absl::StrFormat("%-22s %14s %14s %8s\n", "", "before", "after", "ratio");
  auto row = [&](const std::string& what, double b, double a, const char* fmt) {
    absl::StrAppendFormat(&out, "%-22s %14s %14s %8s\n", what, absl::StrFormat(fmt, b), absl::StrFormat(fmt, a),
                          Ratio(b, a));
  };
  if (before.accuracy >= 0) {
    absl::StrAppendFormat(&out, "%-22s %13.2f%% %13.2f%% %+7.2f\n", "test accuracy", before.accuracy,
                          after.accuracy, after.accuracy - before.accuracy);
  }
  if (counts) {
    row("parameters", before.cost.params, after.cost.params, "%.0f");
    row("nonzero parameters", before.cost.nonzero_params, after.cost.nonzero_params, "%.0f");
    row("MMACs / sample", before.cost.macs / 1e6, after.cost.macs / 1e6, "%.3f");
  }
  row("file KiB", before.cost.serialized_bytes / 1024.0, after.cost.serialized_bytes / 1024.0, "%.1f");
  for (size_t i = 0; i < before.cost.latency.size() && i < after.cost.latency.size(); ++i) {
    row(absl::StrFormat("latency ms (batch %d)", before.cost.latency[i].batch_size), before.cost.latency[i].median_ms,
        after.cost.latency[i].median_ms, "%.3f");
  }
  return out;
}

}  // namespace slimfit
