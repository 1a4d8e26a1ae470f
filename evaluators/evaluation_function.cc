#include "evaluators/evaluation_function.h"

#include <ATen/ATen.h>
#include <c10/core/GradMode.h>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/field_error.h"
#include "common/status_macros.h"
#include "common/text_proto.h"
#include "common/torch_status.h"
#include "model/device.h"
#include "model/weight_layout.h"

namespace slimfit {

MetricsEvaluator::MetricsEvaluator(std::shared_ptr<ForwardPass> forward_pass,
                                   std::vector<std::unique_ptr<BatchMetric>> metrics,
                                   c10::Device device)
    : forward_pass_(std::move(forward_pass)), metrics_(std::move(metrics)), device_(device) {}

absl::Status MetricsEvaluator::Pass(Model& model, DataLoader& loader) {
  model.Eval();
  c10::NoGradGuard no_grad;
  for (auto& m : metrics_) m->Reset();
  // On this evaluator's device for the pass, back where it was after it.
  ASSIGN_OR_RETURN(ModelOnDevice on_device, ModelOnDevice::Enter(model, device_), "evaluating");
  RETURN_IF_ERROR(loader.Reset(0));
  // Convolutions on the CPU run with channels-last weights for the pass
  // (model/weight_layout.h), contiguous again after it; a model whose first
  // batch refuses them is evaluated as it is.
  WeightLayout layout;
  RETURN_IF_ERROR(layout.Apply(model, PreferredWeightFormat(model)), "evaluating");
  bool probe = layout.changed() > 0;
  Batch batch;
  while (true) {
    ASSIGN_OR_RETURN(bool more, loader.Next(&batch));
    if (!more) break;
    if (BatchRows(batch) == 0) continue;  // a shard's empty slice (data/sharded_loader.h)
    auto run = [&] { return forward_pass_->Forward(model, batch, on_device.device()); };
    absl::StatusOr<c10::IValue> forward = probe ? layout.RunOrRestore(run) : run();
    probe = false;
    ASSIGN_OR_RETURN(c10::IValue out, std::move(forward), "evaluating");
    for (auto& m : metrics_) RETURN_IF_ERROR(m->Update(out, batch));
  }
  return absl::OkStatus();
}

absl::StatusOr<Metrics> MetricsEvaluator::ComputeAll() const {
  Metrics all;
  for (auto& m : metrics_) {
    ASSIGN_OR_RETURN(Metrics one, m->Compute());
    all.Merge(one);
  }
  return all;
}

absl::StatusOr<Metrics> MetricsEvaluator::Apply(Model& model, DataLoader& loader) {
  RETURN_IF_ERROR(Pass(model, loader));
  return ComputeAll();
}

bool MetricsEvaluator::Additive() const {
  for (const auto& m : metrics_) {
    if (!m->SumState().has_value()) return false;
  }
  return true;
}

absl::StatusOr<Metrics> MetricsEvaluator::ApplyReduced(
    Model& model, DataLoader& loader, const std::function<absl::Status(std::vector<double>&)>& reduce) {
  if (!Additive()) return absl::FailedPreconditionError("evaluation: a metric has no additive state to reduce");
  RETURN_IF_ERROR(Pass(model, loader));
  std::vector<double> state;
  std::vector<size_t> sizes;
  for (const auto& m : metrics_) {
    std::vector<double> one = *m->SumState();
    sizes.push_back(one.size());
    state.insert(state.end(), one.begin(), one.end());
  }
  RETURN_IF_ERROR(reduce(state), "evaluation: reducing the metrics");
  size_t at = 0;
  for (size_t i = 0; i < metrics_.size(); ++i) {
    RETURN_IF_ERROR(metrics_[i]->SetSumState(std::vector<double>(state.begin() + at, state.begin() + at + sizes[i])));
    at += sizes[i];
  }
  return ComputeAll();
}

Registry<BatchMetricFactory>& EvaluatorRegistry() {
  static auto* registry = new Registry<BatchMetricFactory>("evaluator");
  return *registry;
}

absl::StatusOr<std::unique_ptr<EvaluationFunction>> MakeEvaluator(const EvaluationConfig& config,
                                                                 const EvaluatorContext& context) {
  if (context.forward_pass == nullptr) return absl::InvalidArgumentError("EvaluatorContext: forward_pass is null");
  std::vector<EvaluatorConfig> entries(config.evaluators().begin(), config.evaluators().end());
  if (entries.empty()) entries.emplace_back().mutable_accuracy();
  std::vector<std::unique_ptr<BatchMetric>> metrics;
  for (size_t i = 0; i < entries.size(); ++i) {
    const EvaluatorConfig& e = entries[i];
    const std::string name = SetOneofField(e, "evaluator");
    const std::string where = IndexedField("evaluators", static_cast<int>(i));
    if (name.empty()) {
      return FieldError(where, "no evaluator set", "", absl::StrJoin(EvaluatorRegistry().Names(), ", "));
    }
    ASSIGN_OR_RETURN(BatchMetricFactory factory, EvaluatorRegistry().Get(name), AtField(JoinFieldPath(where, name)));
    ASSIGN_OR_RETURN(auto metric, TorchCallOr("", [&] { return factory(e, context); }), AtField(where));

    metrics.push_back(std::move(metric));
  }
  return std::make_unique<MetricsEvaluator>(context.forward_pass, std::move(metrics), context.device);
}

}  // namespace slimfit
