// File: tools/compare.h
//
// What //tools:prune and //tools:quantize print: a model measured before and
// after compression — test accuracy (with data), parameters, MACs, file
// size, latency at batch 1 and the loader's batch size — side by side with
// ratios, all from one process.
#ifndef SLIMFIT_TOOLS_COMPARE_H_
#define SLIMFIT_TOOLS_COMPARE_H_

#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "data/data.pb.h"
#include "evaluators/profiler.h"
#include "forward_pass/forward_pass.h"
#include "model/model.h"
#include "tools/job.h"

namespace slimfit {

// The model a compression tool works on: with --data, a Job (model, loaders,
// forward pass, loss, evaluator); without, the model (file or zoo name) and
// a forward pass from --input_shape or its metadata.
struct ToolSubject {
  std::unique_ptr<Job> job;
  std::unique_ptr<Model> owned;
  std::shared_ptr<ForwardPass> forward_pass;
  TrainJob config;  // model and data; the caller adds full_trainer
  Model& model() { return job ? *job->model : *owned; }
};
absl::StatusOr<ToolSubject> LoadToolSubject(const std::string& spec, bool with_data, const std::string& data,
                                            const std::string& data_dir, int batch_size, uint64_t seed);

struct Measured {
  CostReport cost;
  double accuracy = -1;  // test split, when `job` has one
};

// latency_runs <= 0 skips latency.
absl::StatusOr<Measured> MeasureModel(Model& model, ForwardPass& fp, Job* job, const DataConfig& data, int threads,
                                      int latency_runs);

// "before / after / ratio" rows; `counts` false leaves out parameters,
// nonzero parameters and MACs (int8 models pack their weights where the
// profiler does not count them).
std::string FormatComparison(const Measured& before, const Measured& after, bool counts = true);

}  // namespace slimfit

#endif  // SLIMFIT_TOOLS_COMPARE_H_
