#include "pruners/prune.h"

#include <ATen/ATen.h>
#include <ATen/core/grad_mode.h>
#include <torch/csrc/jit/api/module.h>

#include <cmath>
#include <map>
#include <memory>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "common/field_error.h"
#include "common/status_macros.h"
#include "common/torch_status.h"
#include "graph/surgery.h"
#include "pruners/pruner.h"
#include "trainer/batch_norm_stats.h"
#include "trainer/trainer.h"

namespace slimfit {
namespace {

constexpr int kDefaultAgpFrequency = 10;

// A LossFunction that borrows another (PatchCriterion takes ownership).
class BorrowedLoss : public LossFunction {
 public:
  explicit BorrowedLoss(LossFunction* base)
      : LossFunction(std::shared_ptr<ForwardPass>(std::shared_ptr<ForwardPass>(), &base->forward_pass())),
        base_(base) {}
  absl::StatusOr<LossTerms> operator()(Model& model, const Batch& batch) override { return (*base_)(model, batch); }
  absl::StatusOr<LossTerms> FromOutput(const c10::IValue& output, const Batch& batch) override {
    return base_->FromOutput(output, batch);
  }

 private:
  LossFunction* base_;
};

bool CanTrain(const PruneDeps& deps) { return deps.finetune && deps.train && deps.loss; }

absl::Status FineTune(Model& model, int epochs, const PruneDeps& deps, const std::vector<TrainerHooks>& hooks,
                      LossFunction* loss, std::vector<std::string>* log, const std::string& what) {
  if (epochs <= 0) return absl::OkStatus();
  if (!CanTrain(deps)) {
    log->push_back(absl::StrCat(what, ": skipped (no data to train on)"));
    return absl::OkStatus();
  }
  TrainerConfig cfg = *deps.finetune;
  cfg.set_epochs(epochs);
  cfg.set_max_steps(0);
  TrainerDeps td;
  td.loss = loss ? loss : deps.loss;
  td.evaluator = deps.evaluator;
  td.train = deps.train;
  td.eval = deps.evaluator ? deps.eval : nullptr;
  td.device = deps.device;
  ASSIGN_OR_RETURN(auto trainer, Trainer::Create(cfg, td));
  for (const TrainerHooks& h : hooks) trainer->AddHooks(h);
  ASSIGN_OR_RETURN(TrainResult r, trainer->Train(model));
  std::string metric;
  for (const auto& [k, v] : r.best.values()) absl::StrAppendFormat(&metric, " %s=%.4g", k, v.value);
  log->push_back(absl::StrFormat("%s: %d epochs, %.1f s%s", what, r.epochs_run, r.seconds, metric));
  return absl::OkStatus();
}

absl::StatusOr<double> MaskedDiff(const Model& original, const Model& pruned, const DependencyGraph& graph,
                                  const PruningPlan& plan, ForwardPass& fp) {
  ASSIGN_OR_RETURN(Model masked, original.Clone());
  RETURN_IF_ERROR(ApplyMasks(masked, graph, plan));
  ASSIGN_OR_RETURN(ModelInputs x, fp.CreateRandomModelInputs(2));
  return TorchCallOr("checking the pruned model against the masked one", [&]() -> absl::StatusOr<double> {
    at::NoGradGuard no_grad;
    torch::jit::Module a = masked.module(), b = pruned.module();
    a.eval();
    b.eval();
    c10::IValue ya = a.forward(x), yb = b.forward(x);
    auto first = [](const c10::IValue& v) -> at::Tensor {
      if (v.isTensor()) return v.toTensor();
      if (v.isTuple()) return v.toTupleRef().elements()[0].toTensor();
      if (v.isList()) return v.toListRef()[0].toTensor();
      return at::Tensor();
    };
    at::Tensor ta = first(ya), tb = first(yb);
    if (!ta.defined() || !tb.defined()) return 0.0;
    if (ta.sizes() != tb.sizes()) {
      return absl::InternalError("the pruned model's output shape differs from the original's");
    }
    const double diff = (ta - tb).abs().max().item<double>();
    const double scale = std::max(1.0, ta.abs().max().item<double>());
    if (!(diff <= 1e-3 * scale)) {
      return absl::InternalError(absl::StrFormat(
          "the pruned model's outputs differ from the masked model's by %g (scale %g): this model uses an op "
          "the channel analysis mishandles; no model was written. Please report it with the model's graph.",
          diff, scale));
    }
    return diff;
  });
}

constexpr int kDefaultRecalibrationBatches = 50;

// Re-estimates batch-norm running statistics on training batches: the
// average of their batch statistics, whatever the model's momentum
// (trainer/batch_norm_stats.h).
absl::Status RecalibrateBatchNorm(Model& model, const PruningConfig& config, const PruneDeps& deps,
                                  std::vector<std::string>* log) {
  const int batches = config.has_bn_recalibration_batches() ? config.bn_recalibration_batches()
                                                            : kDefaultRecalibrationBatches;
  if (batches <= 0 || deps.train == nullptr) return absl::OkStatus();
  ASSIGN_OR_RETURN(int seen, UpdateBatchNorm(model, *deps.train, batches, *deps.forward_pass));
  if (seen > 0) log->push_back(absl::StrFormat("batch-norm statistics re-estimated on %d batches", seen));
  return absl::OkStatus();
}

// Masks: multiply weights after each step and gradients after backward.
struct MaskState {
  std::map<std::string, at::Tensor> masks;
  absl::Status ApplyToTensors(Model& m) {
    return TorchCall("applying pruning masks", [&] {
      at::NoGradGuard no_grad;
      for (auto& [n, t] : m.NamedParameters()) {
        auto it = masks.find(n);
        if (it != masks.end()) t.mul_(it->second);
      }
      for (auto& [n, t] : m.NamedBuffers()) {
        auto it = masks.find(n);
        if (it != masks.end()) t.mul_(it->second);
      }
    });
  }
  absl::Status ApplyToGrads(Model& m) {
    return TorchCall("masking gradients", [&] {
      for (auto& [n, t] : m.NamedParameters()) {
        auto it = masks.find(n);
        if (it != masks.end() && t.grad().defined()) t.mutable_grad().mul_(it->second);
      }
    });
  }
  TrainerHooks Hooks() {
    TrainerHooks h;
    h.after_backward = [this](Model& m) { return ApplyToGrads(m); };
    h.after_step = [this](Model& m) { return ApplyToTensors(m); };
    return h;
  }
};

// Sparsity training (slim) when the pruner asks for it.
absl::Status SparsityPhase(Model& model, Pruner& pruner, const PruneDeps& deps, std::vector<std::string>* log) {
  if (pruner.sparsity_epochs() <= 0 || !pruner.SparsityTerm()) return absl::OkStatus();
  if (!CanTrain(deps)) {
    log->push_back("sparsity training: skipped (no data); scoring the model as it is");
    return absl::OkStatus();
  }
  auto patched = PatchCriterion(std::make_unique<BorrowedLoss>(deps.loss), pruner.name() + "_l1",
                                pruner.SparsityTerm());
  return FineTune(model, pruner.sparsity_epochs(), deps, {}, patched.get(), log, "sparsity training");
}

absl::StatusOr<ChannelScores> Score(Model& model, Pruner& pruner, const DependencyGraph& graph,
                                    const PruneDeps& deps) {
  PrunerContext ctx{&graph, deps.forward_pass, deps.loss, deps.train};
  return pruner.ScoreChannels(model, ctx);
}

// One structured step: (analyse,) score, plan, cut, check. `model` is the
// caller's working copy (scoring may touch its gradients and mode; it is not
// cut). `graph` is its dependency graph when the caller already has one
// (weights may have changed since, the structure not); null: analyse.
struct StepResult {
  Model model;
  PlanResult plan;
  std::vector<std::string> unhandled_ops;
  double diff = 0;
};

absl::StatusOr<StepResult> StructuredStep(Model& model, const DependencyGraph* graph, const PruningConfig& config,
                                          Pruner& pruner, const PruneDeps& deps,
                                          const std::function<double(double)>& ratio_map) {
  DependencyGraph analysed;
  if (graph == nullptr) {
    ASSIGN_OR_RETURN(analysed, AnalyzeModel(model, *deps.forward_pass));
    graph = &analysed;
  }
  ASSIGN_OR_RETURN(ChannelScores scores, Score(model, pruner, *graph, deps));
  ASSIGN_OR_RETURN(PlanResult plan, MakePlan(*graph, config, &scores, pruner.normalize_per_space(), ratio_map));
  ASSIGN_OR_RETURN(Model pruned, ApplyPruning(model, *graph, plan.plan));
  ASSIGN_OR_RETURN(double diff, MaskedDiff(model, pruned, *graph, plan.plan, *deps.forward_pass));
  return StepResult{std::move(pruned), std::move(plan), graph->unhandled_ops, diff};
}

// The cut at the full ratio on result->model (whose dependency graph is
// `graph`), which it replaces; then batch-norm re-estimation.
absl::Status FinalCut(const PruningConfig& config, Pruner& pruner, const PruneDeps& deps,
                      const DependencyGraph& graph, PruneResult* result) {
  ASSIGN_OR_RETURN(StepResult step, StructuredStep(result->model, &graph, config, pruner, deps, nullptr));
  result->model = std::move(step.model);
  result->layers = step.plan.layers;
  result->plan = step.plan.plan;
  result->unhandled_ops = step.unhandled_ops;
  result->max_masked_diff = step.diff;
  return RecalibrateBatchNorm(result->model, config, deps, &result->log);
}

absl::StatusOr<PruneResult> PruneLevel(const Model& model, const PruningConfig& config, Pruner& pruner,
                                       const PruneDeps& deps) {
  ASSIGN_OR_RETURN(Model work, model.Clone());
  ASSIGN_OR_RETURN(DependencyGraph graph, AnalyzeModel(work, *deps.forward_pass));
  ASSIGN_OR_RETURN(PlanResult sel, MakePlan(graph, config, nullptr));
  std::map<std::string, double> ratio_of;
  for (size_t s = 0; s < graph.spaces.size(); ++s) {
    if (sel.layers[s].selected) ratio_of[graph.spaces[s].weight] = sel.layers[s].ratio_asked;
  }
  std::set<std::string> weights;
  for (const auto& [w, r] : ratio_of) weights.insert(w);
  PrunerContext ctx{&graph, deps.forward_pass, deps.loss, deps.train};
  ASSIGN_OR_RETURN(auto scores, pruner.ScoreWeights(work, weights, ctx));
  MaskState masks;
  int64_t zeros = 0, total = 0;
  RETURN_IF_ERROR(TorchCall("level: choosing weights", [&] {
    auto threshold_of = [](const at::Tensor& s, double ratio) {
      const int64_t k = static_cast<int64_t>(std::llround(ratio * static_cast<double>(s.numel())));
      if (k <= 0) return -1.0;
      return std::get<0>(s.flatten().kthvalue(k)).item<double>();
    };
    double global_threshold = -1;
    if (config.global()) {
      std::vector<at::Tensor> all;
      for (auto& [n, s] : scores) all.push_back(s.flatten());
      if (!all.empty()) global_threshold = threshold_of(at::cat(all), config.ratio());
    }
    for (auto& [n, s] : scores) {
      const double th = config.global() ? global_threshold : threshold_of(s, ratio_of[n]);
      at::Tensor mask = (s > th).to(s.scalar_type());
      zeros += mask.numel() - mask.count_nonzero().item<int64_t>();
      total += mask.numel();
      masks.masks[n] = mask;
    }
  }));
  RETURN_IF_ERROR(masks.ApplyToTensors(work));
  PruneResult result{std::move(work)};
  RETURN_IF_ERROR(FineTune(result.model, config.finetune_epochs(), deps, {masks.Hooks()}, nullptr, &result.log,
                           "fine-tune (masked)"));
  result.sparsity = total ? static_cast<double>(zeros) / static_cast<double>(total) : 0;
  result.log.insert(result.log.begin(), absl::StrFormat("level: %d of %d weights zeroed (%.1f%%)", zeros, total,
                                                        100.0 * result.sparsity));
  result.layers = sel.layers;
  return result;
}

}  // namespace

absl::StatusOr<DependencyGraph> AnalyzeModel(Model& model, ForwardPass& forward_pass) {
  ASSIGN_OR_RETURN(ModelInputs x, forward_pass.CreateRandomModelInputs(2));
  return BuildDependencyGraph(model, x);
}

absl::Status ReestimateBatchNorm(Model& model, int batches, const PruneDeps& deps) {
  PruningConfig config;
  config.set_bn_recalibration_batches(batches);
  std::vector<std::string> log;
  return RecalibrateBatchNorm(model, config, deps, &log);
}

absl::StatusOr<PruneResult> Prune(const Model& model, const PruningConfig& config, const PruneDeps& deps) {
  if (deps.forward_pass == nullptr) return absl::InvalidArgumentError("PruneDeps: forward_pass is null");
  RETURN_IF_ERROR(ValidatePruningConfig(config));
  ASSIGN_OR_RETURN(std::unique_ptr<Pruner> pruner, MakePruner(config));
  if (pruner->needs_data() && (deps.train == nullptr || (pruner->name() == "taylor" && !deps.loss))) {
    return absl::FailedPreconditionError(absl::StrCat("pruner \"", pruner->name(),
                                                      "\" scores channels on training batches: give it data"));
  }
  if (!pruner->structured()) {
    if (config.has_iterative() || config.has_agp()) {
      return FieldError(config.has_iterative() ? "pruning.iterative" : "pruning.agp",
                        "pruning.level applies one_shot only (its masks are kept through finetune_epochs)", "set",
                        "unset, for one_shot");
    }
    return PruneLevel(model, config, *pruner, deps);
  }
  ASSIGN_OR_RETURN(Model clone, model.Clone());
  PruneResult result{std::move(clone)};
  Model& work = result.model;
  // The structure is analysed once; sparsity training and AGP's masked
  // training change weights, not shapes, so the graph stays valid until a cut.
  ASSIGN_OR_RETURN(DependencyGraph graph, AnalyzeModel(work, *deps.forward_pass));
  RETURN_IF_ERROR(pruner->CheckApplicable(graph));
  RETURN_IF_ERROR(SparsityPhase(work, *pruner, deps, &result.log));

  if (config.has_iterative()) {
    const int steps = config.iterative().steps();
    auto step_ratio = [steps](double r) { return 1.0 - std::pow(1.0 - r, 1.0 / steps); };
    std::vector<LayerPlan> first_layers;
    for (int i = 1; i <= steps; ++i) {
      ASSIGN_OR_RETURN(StepResult step,
                       StructuredStep(work, i == 1 ? &graph : nullptr, config, *pruner, deps, step_ratio));
      if (i == 1) first_layers = step.plan.layers;
      result.max_masked_diff = std::max(result.max_masked_diff, step.diff);
      result.unhandled_ops = step.unhandled_ops;
      result.plan = step.plan.plan;
      work = std::move(step.model);
      result.log.push_back(absl::StrFormat("step %d/%d: %d parameters", i, steps, work.NumParameters()));
      RETURN_IF_ERROR(RecalibrateBatchNorm(work, config, deps, &result.log));
      RETURN_IF_ERROR(FineTune(work, config.iterative().finetune_epochs(), deps, {}, nullptr, &result.log,
                               absl::StrCat("fine-tune after step ", i)));
    }
    // Report against the original channel counts.
    ASSIGN_OR_RETURN(DependencyGraph final_graph, AnalyzeModel(work, *deps.forward_pass));
    result.layers = first_layers;
    for (LayerPlan& l : result.layers) {
      const int s = final_graph.SpaceOf(l.module_path == "(root)" ? "" : l.module_path);
      if (s >= 0) l.kept = final_graph.spaces[s].size;
    }
    return result;
  }

  if (config.has_agp()) {
    if (!CanTrain(deps)) {
      return FieldErrorWithCode(absl::StatusCode::kFailedPrecondition, "pruning.agp",
                                "prunes while training, and no train data was given", "set",
                                "another schedule, or train data (PruneDeps.train)");
    }
    const int64_t total_steps = std::max<int64_t>(1, config.agp().epochs() * deps.train->num_batches());
    const int freq = config.agp().frequency() ? config.agp().frequency() : kDefaultAgpFrequency;
    // Data-driven scores are taken once (the loader belongs to training).
    ASSIGN_OR_RETURN(ChannelScores fixed_scores, Score(work, *pruner, graph, deps));
    MaskState masks;
    int64_t step = 0;
    auto update = [&](Model& m, int64_t t) -> absl::Status {
      ChannelScores scores = fixed_scores;
      if (!pruner->needs_data()) {
        ASSIGN_OR_RETURN(scores, Score(m, *pruner, graph, deps));
      }
      const double frac = 1.0 - std::pow(1.0 - static_cast<double>(t) / static_cast<double>(total_steps), 3.0);
      ASSIGN_OR_RETURN(PlanResult plan, MakePlan(graph, config, &scores, pruner->normalize_per_space(),
                                                 [frac](double r) { return r * frac; }));
      ASSIGN_OR_RETURN(masks.masks, MakeMasks(m, graph, plan.plan));
      return masks.ApplyToTensors(m);
    };
    TrainerHooks hooks = masks.Hooks();
    hooks.after_step = [&](Model& m) -> absl::Status {
      ++step;
      if (step % freq == 0 || step == total_steps) RETURN_IF_ERROR(update(m, std::min(step, total_steps)));
      return masks.ApplyToTensors(m);
    };
    RETURN_IF_ERROR(FineTune(work, config.agp().epochs(), deps, {hooks}, nullptr, &result.log,
                             "agp fine-tune (masked)"));
    // The final cut at the full ratio, on the trained weights.
    RETURN_IF_ERROR(FinalCut(config, *pruner, deps, graph, &result));
    return result;
  }

  // One-shot.
  RETURN_IF_ERROR(FinalCut(config, *pruner, deps, graph, &result));
  RETURN_IF_ERROR(
      FineTune(result.model, config.finetune_epochs(), deps, {}, nullptr, &result.log, "fine-tune"));
  return result;
}

}  // namespace slimfit
