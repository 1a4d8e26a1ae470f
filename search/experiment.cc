#include "search/experiment.h"

#include <ATen/Context.h>
#include <c10/core/Device.h>

#include <algorithm>
#include <cctype>
#include <cmath>
#include <set>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/field_error.h"
#include "common/files.h"
#include "common/status_macros.h"
#include "common/text_proto.h"
#include "common/torch_status.h"
#include "model/device.h"
#include "model/zoo/zoo.h"
#include "optimizers/factories.h"
#include "pruners/pruner.h"
#include "pruners/pruner.pb.h"
#include "quantizers/int8.h"
#include "search/strategy.h"
#include "trainer/trainer.h"

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
        return FieldErrorWithCode(absl::StatusCode::kNotFound, "model.path",
                                  absl::StrCat("not a readable file (", size.status().message(), ")"), Quoted(m.path()),
                                  "a TorchScript file");
      }
      // Each of these describes how a zoo model is trained; a file is used as it is.
      const char* zoo_only = m.has_reference_training()  ? "model.reference_training"
                             : m.reference_epochs() != 0 ? "model.reference_epochs"
                             : m.width_multiplier() != 0 ? "model.width_multiplier"
                                                         : nullptr;
      if (zoo_only != nullptr) {
        return FieldError(zoo_only, "set with model.path; it describes how a zoo model is trained", "set",
                          "unset with model.path (a file is used as it is)");
      }
      break;
    }
    case ModelSpec::kZoo:
      if (!ZooRegistry().Contains(m.zoo())) {
        return FieldError("model.zoo", "not a zoo model", Quoted(m.zoo()), absl::StrJoin(ZooModelNames(), ", "));
      }
      break;
    case ModelSpec::SOURCE_NOT_SET:
      return FieldError("model", "no model set", "", "path (a TorchScript file) or zoo (a zoo model name)");
  }
  if (m.reference_epochs() < 0) {
    return FieldError("model.reference_epochs", "negative", m.reference_epochs(), ">= 0 (0 = 6)");
  }
  if (m.width_multiplier() < 0 || m.width_multiplier() > 16) {
    return FieldError("model.width_multiplier", "out of range", m.width_multiplier(), "(0, 16] (0 = 1)");
  }
  // data
  if (e.data().dataset_case() == DataConfig::DATASET_NOT_SET) {
    return FieldError("data", "no dataset set", "", absl::StrJoin(OneofFieldNames(e.data(), "dataset"), ", "));
  }
  return ValidateEngineConfig(e);
}

absl::Status ValidateEngineConfig(const Experiment& e) {
  // name: it names a directory.
  for (char c : e.name()) {
    if (!(std::isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '-' || c == '.')) {
      return FieldError("name", "not a directory name", Quoted(e.name()),
                        "letters, digits, '_', '-' and '.' (it names runs/<name>)");
    }
  }
  // evaluation and trainer
  static const std::set<std::string> kSplits = {"", "train", "val", "test"};
  if (!kSplits.count(e.evaluation().eval_split())) {
    return FieldError("evaluation.eval_split", "not a split", Quoted(e.evaluation().eval_split()), "train, val, test");
  }
  if (!e.full_trainer().eval_key().empty() && !e.evaluation().eval_key().empty() &&
      e.full_trainer().eval_key() != e.evaluation().eval_key()) {
    return FieldError("full_trainer.eval_key",
                      absl::StrCat("differs from evaluation.eval_key \"", e.evaluation().eval_key(), "\""),
                      Quoted(e.full_trainer().eval_key()), "unset (the engine listens to evaluation.eval_key)");
  }
  if (!e.full_trainer().has_optimizer() ||
      e.full_trainer().optimizer().optimizer_case() == OptimizerConfig::OPTIMIZER_NOT_SET) {
    return FieldError("full_trainer.optimizer", "required", "",
                      "an optimizer, e.g. optimizer { sgd { momentum: 0.9 } lr: 0.01 }");
  }
  // The trainers' optimizer and scheduler blocks, before any training (the
  // reference's recipe is model.reference_training when set). A schedule
  // whose length the run fills in gets a stand-in length here.
  auto check_trainer = [](const TrainerConfig& given, const std::string& path) -> absl::Status {
    TrainerConfig t = given;
    FillScheduleLength(&t, /*steps_per_epoch=*/1);
    if (t.has_optimizer()) {
      RETURN_IF_ERROR(MakeOptimizerFactory(t.optimizer()).status(), AtField(path + ".optimizer"));
    }
    RETURN_IF_ERROR(MakeSchedulerFactory(t.scheduler()).status(), AtField(path + ".scheduler"));
    return absl::OkStatus();
  };
  RETURN_IF_ERROR(check_trainer(e.full_trainer(), "full_trainer"));
  if (e.model().has_reference_training()) {
    RETURN_IF_ERROR(check_trainer(e.model().reference_training(), "model.reference_training"));
  }
  // compression
  const CompressionConfig& c = e.compression();
  if (c.has_delta() && (!std::isfinite(c.delta()) || c.delta() < 0)) {
    return FieldError("compression.delta", "not a finite number >= 0", c.delta(),
                      ">= 0, the allowed drop of eval_key in its units");
  }
  if (c.level() < 0 || c.level() > 2) {
    return FieldError("compression.level", "not a level", c.level(),
                      "1 (structured pruning) or 2 (pruning + int8 quantization); 0 = 1");
  }
  const std::vector<std::string> pruners = StructuredPrunerNames();
  for (int i = 0; i < c.pruners_size(); ++i) {
    const std::string& p = c.pruners(i);
    if (p == "level") {
      return FieldError(IndexedField("compression.pruners", i),
                        "unstructured pruning makes no model smaller or faster here", Quoted(p),
                        absl::StrJoin(pruners, ", "));
    }
    if (std::find(pruners.begin(), pruners.end(), p) == pruners.end()) {
      return FieldError(IndexedField("compression.pruners", i), "not a structured pruner", Quoted(p),
                        absl::StrJoin(pruners, ", "));
    }
  }
  if (c.has_quantization()) {
    if (c.level() == 1) {
      return FieldError("compression.quantization", "quantization runs at level 2", "set with level 1",
                        "level: 2, or no quantization block");
    }
    RETURN_IF_ERROR(ValidateQuantizationConfig(c.quantization()), AtField("compression.quantization"));
  }
  if (!std::isfinite(c.time_budget_minutes()) || c.time_budget_minutes() < 0) {
    return FieldError("compression.time_budget_minutes", "not a finite number >= 0", c.time_budget_minutes(),
                      ">= 0 (0 = none)");
  }
  if (c.candidate_epochs() < 0) {
    return FieldError("compression.candidate_epochs", "negative", c.candidate_epochs(), ">= 0 (0 = default)");
  }
  if (c.final_epochs() < 0) {
    return FieldError("compression.final_epochs", "negative", c.final_epochs(), ">= 0 (0 = default)");
  }
  if (!c.strategy().empty() && !StrategyRegistry().Contains(c.strategy())) {
    return FieldError("compression.strategy", "not a registered strategy", Quoted(c.strategy()),
                      absl::StrJoin(StrategyRegistry().Names(), ", "));
  }
  const DistillationConfig& d = c.distillation();
  if (d.has_alpha() && !(d.alpha() >= 0 && d.alpha() <= 1)) {
    return FieldError("compression.distillation.alpha", "out of range", d.alpha(), "[0, 1] (default 0.5)");
  }
  if (!(d.temperature() >= 0) || !std::isfinite(d.temperature())) {
    return FieldError("compression.distillation.temperature", "not a finite number >= 0", d.temperature(),
                      "> 0 (0 = 4)");
  }
  const SearchTuning& t = c.tuning();
  if (t.probes() < 0 || t.probes() > 50) {
    return FieldError("compression.tuning.probes", "out of range", t.probes(), "[1, 50] (0 = default)");
  }
  if (t.has_promising_slack() && !(t.promising_slack() >= 0 && std::isfinite(t.promising_slack()))) {
    return FieldError("compression.tuning.promising_slack", "not a finite number >= 0", t.promising_slack(),
                      ">= 0, in units of delta (default 1)");
  }
  if (t.max_finals() < 0 || t.max_finals() > 50) {
    return FieldError("compression.tuning.max_finals", "out of range", t.max_finals(), "[1, 50] (0 = default)");
  }
  if (!(t.max_ratio() >= 0 && t.max_ratio() < 1)) {
    return FieldError("compression.tuning.max_ratio", "out of range", t.max_ratio(),
                      "(0, 1): the share of a group's channels a cut may remove (0 = 0.95)");
  }
  if (!(t.sensitivity_budget_fraction() >= 0 && t.sensitivity_budget_fraction() <= 1)) {
    return FieldError("compression.tuning.sensitivity_budget_fraction", "out of range", t.sensitivity_budget_fraction(),
                      "(0, 1] (0 = 0.3)");
  }
  for (int i = 0; i < t.lr_factors_size(); ++i) {
    if (!(t.lr_factors(i) > 0 && t.lr_factors(i) <= 10)) {
      return FieldError(IndexedField("compression.tuning.lr_factors", i), "out of range", t.lr_factors(i),
                        "(0, 10]: a factor of full_trainer.optimizer.lr");
    }
  }
  if (!(t.step_factor() == 0 || (t.step_factor() >= 1.05 && t.step_factor() <= 10))) {
    return FieldError("compression.tuning.step_factor", "out of range", t.step_factor(),
                      "[1.05, 10]: each gradual step's MAC reduction (0 = 1.5)");
  }
  for (int i = 0; i < t.round_to_size(); ++i) {
    if (!(t.round_to(i) >= 1 && t.round_to(i) <= 1024)) {
      return FieldError(IndexedField("compression.tuning.round_to", i), "out of range", t.round_to(i),
                        "[1, 1024]: a channel multiple (1 = never round)");
    }
  }
  if (t.sensitivity_samples() < -1) {
    return FieldError("compression.tuning.sensitivity_samples", "out of range", t.sensitivity_samples(),
                      ">= -1 (0 = sized to the budget, N = a sample of N, -1 = the whole eval split)");
  }
  if (t.has_lr_tie() && !(t.lr_tie() >= 0 && t.lr_tie() <= 1)) {
    return FieldError("compression.tuning.lr_tie", "out of range", t.lr_tie(),
                      "[0, 1] in units of delta (0 = the best lr trial only; default 0.25)");
  }
  if (t.lr_trial_steps() < 0) {
    return FieldError("compression.tuning.lr_trial_steps", "negative", t.lr_trial_steps(),
                      ">= 0 (0 = an eighth of an epoch, at least 20)");
  }
  // device, threads
  // The name only: whether this machine has the device is found when the
  // engine starts (search/setup.h), not while validating.
  RETURN_IF_ERROR(CheckDeviceName(e.device()), AtField("device"));
  RETURN_IF_ERROR(CheckDeviceName(e.deploy_device()), AtField("deploy_device"));
  const std::string deploy = absl::AsciiStrToLower(e.deploy_device());
  if (!deploy.empty() && deploy != "cpu" && e.compression().level() == 2) {
    return FieldError("deploy_device", "level 2 makes int8 models, which run on the CPU only",
                      Quoted(e.deploy_device()), "cpu with level 2, or level 1");
  }
  if (e.threads() < 0) return FieldError("threads", "negative", e.threads(), ">= 0 (0 = 1)");
  std::set<int> formats;
  for (int i = 0; i < e.export_().formats_size(); ++i) {
    const int f = e.export_().formats(i);
    const std::string field = IndexedField("export.formats", i);
    if (f == ExportConfig::FORMAT_UNSPECIFIED || !ExportConfig::Format_IsValid(f)) {
      return FieldError(field, "is not a format", f, "TORCHSCRIPT or ONNX");
    }
    if (!formats.insert(f).second) {
      return FieldError(field, "is listed twice", ExportConfig::Format_Name(f), "each format at most once");
    }
  }
  return absl::OkStatus();
}

bool ExportsOnnx(const Experiment& e) {
  for (int f : e.export_().formats()) {
    if (f == ExportConfig::ONNX) return true;
  }
  return false;
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
  if (c->strategy().empty()) c->set_strategy("gradual");
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
  if (!t->has_polish()) t->set_polish(true);
  if (!t->has_lr_tie()) t->set_lr_tie(0.25);
  if (t->lr_factors_size() == 0) {
    for (double f : {1.0, 0.3, 0.1}) t->add_lr_factors(f);
  }
  if (t->round_to_size() == 0) {
    for (int m : {16, 8}) t->add_round_to(m);
  }
  if (e.device().empty()) e.set_device("cpu");
  if (e.deploy_device().empty()) e.set_deploy_device("cpu");
  if (e.threads() == 0) e.set_threads(1);
  if (e.output_dir().empty()) e.set_output_dir(absl::StrCat("runs/", e.name()));
  if (e.export_().formats_size() == 0) e.mutable_export_()->add_formats(ExportConfig::TORCHSCRIPT);
  return e;
}

}  // namespace slimfit
