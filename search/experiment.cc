#include "search/experiment.h"

#include <ATen/Context.h>
#include <c10/core/Device.h>

#include <cctype>
#include <cmath>
#include <algorithm>
#include <set>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/files.h"
#include "common/status_macros.h"
#include "common/text_proto.h"
#include "common/torch_status.h"
#include "model/zoo/zoo.h"
#include "pruners/pruner.h"
#include "pruners/pruner.pb.h"
#include "quantizers/int8.h"
#include "search/strategy.h"

namespace slimfit {
namespace {

// The README's main job: the resnet_small recipe of
// experiments/train/resnet_small_fashion.pbtxt as the reference, then
// compression within 1 accuracy point.
constexpr char kDefaultExperiment[] = R"pb(
  name: "default"
  model { zoo: "resnet_small" reference_epochs: 6 }
  data {
    mnist {}
    train_batch_size: 128
    train_transforms { random_crop { size: 28 padding: 2 } }
    train_transforms { random_horizontal_flip {} }
    train_transforms { normalize { mean: 0.2860 std: 0.3530 } }
    eval_transforms { normalize { mean: 0.2860 std: 0.3530 } }
  }
  loss { cross_entropy {} }
  evaluation {
    evaluators { accuracy { top_k: [ 1, 5 ] } }
    eval_key: "accuracy"
    eval_split: "val"
  }
  full_trainer {
    optimizer {
      sgd { momentum: 0.9 nesterov: true }
      lr: 0.1
      weight_decay: 5e-4
      no_weight_decay_on_bias_and_norm: true
    }
    scheduler { cosine {} interval: ITERATION }
  }
  compression { delta: 1.0 level: 1 objective: LATENCY time_budget_minutes: 15 }
)pb";

const std::vector<std::string>& DefaultPruners() {
  static const auto* names = new std::vector<std::string>{"l1_filter", "fpgm", "taylor"};
  return *names;
}

absl::Status Invalid(const std::string& field, const std::string& value, const std::string& valid) {
  return absl::InvalidArgumentError(absl::StrCat(field, ": ", value, "; ", valid));
}

}  // namespace

absl::StatusOr<Experiment> LoadExperiment(const std::string& path) {
  Experiment e;
  RETURN_IF_ERROR(ParseTextProtoFile(path, &e));
  if (e.name().empty()) {
    std::string stem = path.substr(path.rfind('/') == std::string::npos ? 0 : path.rfind('/') + 1);
    if (absl::EndsWith(stem, ".pbtxt")) stem.resize(stem.size() - 6);
    e.set_name(stem);
  }
  return e;
}

Experiment DefaultExperiment() {
  Experiment e;
  // The constant is checked by experiment_test; a parse failure is a bug.
  if (!ParseTextProto(kDefaultExperiment, "<default experiment>", &e).ok()) e.Clear();
  return e;
}

absl::Status ValidateExperiment(const Experiment& e) {
  // model
  const ModelSpec& m = e.model();
  switch (m.source_case()) {
    case ModelSpec::kPath: {
      auto size = RegularFileSize(m.path());
      if (!size.ok()) {
        return absl::NotFoundError(absl::StrCat("model.path: \"", m.path(), "\" is not a readable file (",
                                                size.status().message(), ")"));
      }
      if (m.has_reference_training() || m.reference_epochs() != 0 || m.width_multiplier() != 0) {
        return Invalid("model.reference_training / reference_epochs / width_multiplier", "set with model.path",
                       "they describe how a zoo model is trained; a file is used as it is");
      }
      break;
    }
    case ModelSpec::kZoo:
      if (!ZooRegistry().Contains(m.zoo())) {
        return Invalid("model.zoo", absl::StrCat("'", m.zoo(), "'"),
                       absl::StrCat("one of ", absl::StrJoin(ZooModelNames(), ", ")));
      }
      break;
    case ModelSpec::SOURCE_NOT_SET:
      return absl::InvalidArgumentError("model: required: path (a TorchScript file) or zoo (a zoo model name)");
  }
  if (m.reference_epochs() < 0) {
    return Invalid("model.reference_epochs", absl::StrCat(m.reference_epochs()), "must be >= 0 (0 = default 6)");
  }
  if (m.width_multiplier() < 0 || m.width_multiplier() > 16) {
    return Invalid("model.width_multiplier", absl::StrCat(m.width_multiplier()), "must be in (0, 16] (0 = default 1)");
  }
  // data
  if (e.data().dataset_case() == DataConfig::DATASET_NOT_SET) {
    return absl::InvalidArgumentError("data: required: one of mnist, cifar, tensor_file, synthetic");
  }
  return ValidateEngineConfig(e);
}

absl::Status ValidateEngineConfig(const Experiment& e) {
  // name: it names a directory.
  for (char c : e.name()) {
    if (!(std::isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '-' || c == '.')) {
      return Invalid("name", absl::StrCat("'", e.name(), "'"), "use letters, digits, '_', '-' and '.' (it names runs/<name>)");
    }
  }
  // evaluation and trainer
  static const std::set<std::string> kSplits = {"", "train", "val", "test"};
  if (!kSplits.count(e.evaluation().eval_split())) {
    return Invalid("evaluation.eval_split", absl::StrCat("'", e.evaluation().eval_split(), "'"),
                   "use train, val or test");
  }
  if (!e.full_trainer().eval_key().empty() && !e.evaluation().eval_key().empty() &&
      e.full_trainer().eval_key() != e.evaluation().eval_key()) {
    return Invalid("full_trainer.eval_key", absl::StrCat("'", e.full_trainer().eval_key(), "'"),
                   absl::StrCat("differs from evaluation.eval_key '", e.evaluation().eval_key(),
                                "'; leave it unset (the engine listens to evaluation.eval_key)"));
  }
  if (!e.full_trainer().has_optimizer() ||
      e.full_trainer().optimizer().optimizer_case() == OptimizerConfig::OPTIMIZER_NOT_SET) {
    return absl::InvalidArgumentError(
        "full_trainer.optimizer: required (e.g. optimizer { sgd { momentum: 0.9 } lr: 0.01 })");
  }
  // compression
  const CompressionConfig& c = e.compression();
  if (c.has_delta() && (!std::isfinite(c.delta()) || c.delta() < 0)) {
    return Invalid("compression.delta", absl::StrCat(c.delta()),
                   "must be a finite number >= 0 (the allowed drop of eval_key, in its units)");
  }
  if (c.level() < 0 || c.level() > 2) {
    return Invalid("compression.level", absl::StrCat(c.level()),
                   "use 1 (structured pruning) or 2 (pruning + int8 quantization); 0 = default 1");
  }
  const std::vector<std::string> pruners = StructuredPrunerNames();
  for (const std::string& p : c.pruners()) {
    if (p == "level") {
      return Invalid("compression.pruners", "'level'",
                     "unstructured pruning makes no model smaller or faster here; use a structured pruner (" +
                         absl::StrJoin(pruners, ", ") + ")");
    }
    if (std::find(pruners.begin(), pruners.end(), p) == pruners.end()) {
      return Invalid("compression.pruners", absl::StrCat("'", p, "'"),
                     absl::StrCat("one of ", absl::StrJoin(pruners, ", ")));
    }
  }
  if (c.has_quantization()) {
    if (c.level() == 1) {
      return Invalid("compression.quantization", "set with level 1",
                     "quantization runs at level 2 (set level: 2, or drop the block)");
    }
    absl::Status s = ValidateQuantizationConfig(c.quantization());
    if (!s.ok()) return absl::Status(s.code(), absl::StrCat("compression.quantization.", s.message()));
  }
  if (!std::isfinite(c.time_budget_minutes()) || c.time_budget_minutes() < 0) {
    return Invalid("compression.time_budget_minutes", absl::StrCat(c.time_budget_minutes()), "must be >= 0 (0 = none)");
  }
  if (c.candidate_epochs() < 0 || c.final_epochs() < 0) {
    return Invalid("compression.candidate_epochs / final_epochs",
                   absl::StrCat(c.candidate_epochs(), " / ", c.final_epochs()), "must be >= 0 (0 = default)");
  }
  if (!c.strategy().empty() && !StrategyRegistry().Contains(c.strategy())) {
    return Invalid("compression.strategy", absl::StrCat("'", c.strategy(), "'"),
                   absl::StrCat("one of ", absl::StrJoin(StrategyRegistry().Names(), ", ")));
  }
  const DistillationConfig& d = c.distillation();
  if (d.has_alpha() && !(d.alpha() >= 0 && d.alpha() <= 1)) {
    return Invalid("compression.distillation.alpha", absl::StrCat(d.alpha()), "must be in [0, 1] (default 0.5)");
  }
  if (!(d.temperature() >= 0) || !std::isfinite(d.temperature())) {
    return Invalid("compression.distillation.temperature", absl::StrCat(d.temperature()),
                   "must be > 0 (0 = default 4)");
  }
  const SearchTuning& t = c.tuning();
  if (t.probes() < 0 || t.probes() > 50) {
    return Invalid("compression.tuning.probes", absl::StrCat(t.probes()), "must be in [1, 50] (0 = default)");
  }
  if (t.has_promising_slack() && !(t.promising_slack() >= 0 && std::isfinite(t.promising_slack()))) {
    return Invalid("compression.tuning.promising_slack", absl::StrCat(t.promising_slack()),
                   "must be a finite number >= 0 (in units of delta; default 1)");
  }
  if (t.max_finals() < 0 || t.max_finals() > 50) {
    return Invalid("compression.tuning.max_finals", absl::StrCat(t.max_finals()), "must be in [1, 50] (0 = default)");
  }
  if (!(t.max_ratio() >= 0 && t.max_ratio() < 1)) {
    return Invalid("compression.tuning.max_ratio", absl::StrCat(t.max_ratio()),
                   "must be in (0, 1): the share of a group's channels a cut may remove (0 = default 0.95)");
  }
  if (!(t.sensitivity_budget_fraction() >= 0 && t.sensitivity_budget_fraction() <= 1)) {
    return Invalid("compression.tuning.sensitivity_budget_fraction", absl::StrCat(t.sensitivity_budget_fraction()),
                   "must be in (0, 1] (0 = default 0.3)");
  }
  for (int i = 0; i < t.lr_factors_size(); ++i) {
    if (!(t.lr_factors(i) > 0 && t.lr_factors(i) <= 10)) {
      return Invalid(absl::StrCat("compression.tuning.lr_factors[", i, "]"), absl::StrCat(t.lr_factors(i)),
                     "must be in (0, 10]: a factor of full_trainer.optimizer.lr");
    }
  }
  if (!(t.step_factor() == 0 || (t.step_factor() >= 1.05 && t.step_factor() <= 10))) {
    return Invalid("compression.tuning.step_factor", absl::StrCat(t.step_factor()),
                   "must be in [1.05, 10]: each gradual step's MAC reduction (0 = default 1.5)");
  }
  for (int i = 0; i < t.round_to_size(); ++i) {
    if (!(t.round_to(i) >= 1 && t.round_to(i) <= 1024)) {
      return Invalid(absl::StrCat("compression.tuning.round_to[", i, "]"), absl::StrCat(t.round_to(i)),
                     "must be in [1, 1024]: a channel multiple (1 = never round)");
    }
  }
  if (t.sensitivity_samples() < -1) {
    return Invalid("compression.tuning.sensitivity_samples", absl::StrCat(t.sensitivity_samples()),
                   "must be >= -1 (0 = sized to the budget, N = a sample of N, -1 = the whole eval split)");
  }
  if (t.lr_trial_steps() < 0) {
    return Invalid("compression.tuning.lr_trial_steps", absl::StrCat(t.lr_trial_steps()),
                   "must be >= 0 (0 = an eighth of an epoch, at least 20)");
  }
  // device, threads
  if (!e.device().empty()) {
    auto device = TorchCallOr("device", [&] { return c10::Device(e.device()); });
    if (!device.ok()) {
      return Invalid("device", absl::StrCat("'", e.device(), "'"), "use cpu, cuda or cuda:<index>");
    }
    if (device->is_cuda() && !at::hasCUDA()) {
      return absl::FailedPreconditionError(
          absl::StrCat("device: '", e.device(), "' but this LibTorch has no CUDA support; use cpu"));
    }
  }
  if (e.threads() < 0) return Invalid("threads", absl::StrCat(e.threads()), "must be >= 0 (0 = default 1)");
  return absl::OkStatus();
}

Experiment WithDefaults(Experiment e) {
  if (e.name().empty()) e.set_name("default");
  if (e.model().source_case() == ModelSpec::kZoo) {
    if (e.model().reference_epochs() == 0) e.mutable_model()->set_reference_epochs(6);
    if (e.model().width_multiplier() == 0) e.mutable_model()->set_width_multiplier(1.0);
  }
  if (e.loss().loss_case() == LossConfig::LOSS_NOT_SET) e.mutable_loss()->mutable_cross_entropy();
  EvaluationConfig* ev = e.mutable_evaluation();
  if (ev->evaluators_size() == 0) ev->add_evaluators()->mutable_accuracy();
  if (ev->eval_key().empty()) ev->set_eval_key("accuracy");
  if (ev->eval_split().empty()) ev->set_eval_split("val");
  e.mutable_full_trainer()->set_eval_key(ev->eval_key());
  e.mutable_full_trainer()->set_eval_split(ev->eval_split());
  CompressionConfig* c = e.mutable_compression();
  if (!c->has_delta()) c->set_delta(1.0);
  if (c->level() == 0) c->set_level(1);
  if (c->objective() == CompressionConfig::OBJECTIVE_DEFAULT) c->set_objective(CompressionConfig::LATENCY);
  if (c->pruners_size() == 0) {
    for (const std::string& p : DefaultPruners()) c->add_pruners(p);
  }
  if (c->candidate_epochs() == 0) c->set_candidate_epochs(c->deepsearch() ? 2 : 1);
  if (c->final_epochs() == 0) c->set_final_epochs(c->deepsearch() ? 10 : 5);
  if (!c->has_tune_lr()) c->set_tune_lr(true);
  if (!c->has_remove_blocks()) c->set_remove_blocks(true);
  if (c->strategy().empty()) c->set_strategy("bisection");
  DistillationConfig* d = c->mutable_distillation();
  if (!d->has_enabled()) d->set_enabled(true);
  if (!d->has_alpha()) d->set_alpha(0.5);
  if (d->temperature() == 0) d->set_temperature(4);
  SearchTuning* t = c->mutable_tuning();
  if (t->probes() == 0) t->set_probes(c->deepsearch() ? 7 : 4);
  if (!t->has_promising_slack()) t->set_promising_slack(1.0);
  if (t->max_finals() == 0) t->set_max_finals(c->deepsearch() ? 4 : 2);
  if (t->max_ratio() == 0) t->set_max_ratio(0.95);
  if (t->sensitivity_budget_fraction() == 0) t->set_sensitivity_budget_fraction(0.3);
  if (t->step_factor() == 0) t->set_step_factor(1.5);
  if (!t->has_latency_aware()) t->set_latency_aware(true);
  if (t->lr_factors_size() == 0) {
    for (double f : {1.0, 0.3, 0.1}) t->add_lr_factors(f);
  }
  if (t->round_to_size() == 0) {
    for (int m : {16, 8}) t->add_round_to(m);
  }
  if (e.device().empty()) e.set_device("cpu");
  if (e.threads() == 0) e.set_threads(1);
  if (e.output_dir().empty()) e.set_output_dir(absl::StrCat("runs/", e.name()));
  return e;
}

}  // namespace slimfit
