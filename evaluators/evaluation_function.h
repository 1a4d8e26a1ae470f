// File: evaluators/evaluation_function.h
//
// EvaluationFunction: (model, loader) → Metrics — Neutrino's
// EvaluationFunction. Users may implement it directly. The registered
// evaluators are BatchMetrics: they see each batch's model output, so any
// number of them share one pass over the data (MetricsEvaluator).
//
//   EvaluationConfig config;   // evaluators { accuracy { top_k: [1, 5] } } eval_key: "accuracy"
//   ASSIGN_OR_RETURN(auto eval, MakeEvaluator(config, EvaluatorContext{fp}));
//   ASSIGN_OR_RETURN(Metrics m, eval->Apply(model, *val_loader));
//
// Apply puts the model in eval mode and runs without gradients; it leaves the
// model in eval mode. MetricsEvaluator runs a convolutional model on the CPU
// with channels-last weights when its widths suit them (model/weight_layout.h:
// oneDNN's layout; the same values, rounded by a different summation order)
// and hands it back contiguous; a model whose first batch refuses that layout
// runs as it is.
#ifndef SLIMFIT_EVALUATORS_EVALUATION_FUNCTION_H_
#define SLIMFIT_EVALUATORS_EVALUATION_FUNCTION_H_

#include <functional>
#include <memory>
#include <optional>
#include <vector>

#include "absl/status/statusor.h"
#include "common/registry.h"
#include "data/data_loader.h"
#include "evaluators/evaluator.pb.h"
#include "evaluators/metrics.h"
#include "forward_pass/forward_pass.h"
#include "losses/loss_function.h"
#include "model/model.h"

namespace slimfit {

class EvaluationFunction {
 public:
  virtual ~EvaluationFunction() = default;
  virtual absl::StatusOr<Metrics> Apply(Model& model, DataLoader& loader) = 0;
};

// Accumulates a metric over batches.
class BatchMetric {
 public:
  virtual ~BatchMetric() = default;
  virtual void Reset() = 0;
  virtual absl::Status Update(const c10::IValue& output, const Batch& batch) = 0;
  virtual absl::StatusOr<Metrics> Compute() const = 0;
  // Additive state, for evaluating shards of a split in several processes:
  // numbers whose elementwise sum over disjoint parts of the data is the
  // state of their union (counts, sums, a confusion matrix). nullopt (the
  // default): the metric has none and is computed on the whole split.
  virtual std::optional<std::vector<double>> SumState() const { return std::nullopt; }
  // Replaces the accumulated state by `state` (a SumState of this metric).
  virtual absl::Status SetSumState(const std::vector<double>& state) {
    return absl::UnimplementedError("this metric has no additive state");
  }
};

// One pass: forward each batch once, feed every metric. The pass runs on
// `device` (the model is moved there for it and back after it).
class MetricsEvaluator : public EvaluationFunction {
 public:
  MetricsEvaluator(std::shared_ptr<ForwardPass> forward_pass,
                   std::vector<std::unique_ptr<BatchMetric>> metrics, c10::Device device = c10::kCPU);
  absl::StatusOr<Metrics> Apply(Model& model, DataLoader& loader) override;

  // Whether every metric has additive state (ApplyReduced works).
  bool Additive() const;
  // One pass over `loader` (this process's part of the data), then
  // `reduce` turns the concatenated states into the whole data's (e.g. an
  // all-reduce sum over processes), then the metrics are computed from it.
  // FailedPrecondition when a metric has no additive state.
  absl::StatusOr<Metrics> ApplyReduced(Model& model, DataLoader& loader,
                                       const std::function<absl::Status(std::vector<double>&)>& reduce);

 private:
  absl::Status Pass(Model& model, DataLoader& loader);
  absl::StatusOr<Metrics> ComputeAll() const;

  std::shared_ptr<ForwardPass> forward_pass_;
  std::vector<std::unique_ptr<BatchMetric>> metrics_;
  c10::Device device_;
};

struct EvaluatorContext {
  std::shared_ptr<ForwardPass> forward_pass;  // required
  LossContext loss_context;                   // for mean_loss (forward_pass filled in)
  c10::Device device = c10::kCPU;             // where passes run (model/device.h)
};

using BatchMetricFactory = std::function<absl::StatusOr<std::unique_ptr<BatchMetric>>(
    const EvaluatorConfig&, const EvaluatorContext&)>;
Registry<BatchMetricFactory>& EvaluatorRegistry();

// Every evaluator in `config` (default: accuracy) in one MetricsEvaluator.
// Errors name the field relative to `config` ("evaluators[1].classification_report.num_classes: ...",
// common/field_error.h); the caller roots them with AtField("evaluation").

absl::StatusOr<std::unique_ptr<EvaluationFunction>> MakeEvaluator(const EvaluationConfig& config,
                                                                 const EvaluatorContext& context);

}  // namespace slimfit

#endif  // SLIMFIT_EVALUATORS_EVALUATION_FUNCTION_H_
