#include "quantizers/quantize.h"

#include <torch/csrc/jit/api/module.h>

#include <algorithm>
#include <functional>
#include <set>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/time/clock.h"
#include "common/field_error.h"
#include "common/status_macros.h"
#include "evaluators/metrics.h"
#include "trainer/trainer.h"

namespace slimfit {
namespace {

// The first `n` batches of another loader (n <= 0: all of them).
class FirstBatches : public DataLoader {
 public:
  FirstBatches(DataLoader& inner, int64_t n) : inner_(inner), n_(n <= 0 ? inner.num_batches() : n) {}
  absl::Status Reset(int64_t epoch) override { return ResetForBatches(epoch, n_); }
  absl::Status ResetForBatches(int64_t epoch, int64_t max_batches) override {
    seen_ = 0;
    return inner_.ResetForBatches(epoch, std::min(n_, max_batches));
  }
  absl::StatusOr<bool> Next(Batch* batch) override {
    if (seen_ >= n_) return false;
    ++seen_;
    return inner_.Next(batch);
  }
  int64_t num_batches() const override { return std::min(n_, inner_.num_batches()); }
  int64_t num_samples() const override {
    return std::min(inner_.num_samples(), num_batches() * inner_.batch_size());
  }
  int64_t batch_size() const override { return inner_.batch_size(); }

 private:
  DataLoader& inner_;
  int64_t n_;
  int64_t seen_ = 0;
};

absl::StatusOr<Metric> Evaluate(Model& model, const QuantizeDeps& deps, DataLoader& loader) {
  ASSIGN_OR_RETURN(Metrics m, deps.evaluator->Apply(model, loader));
  return m.Get(deps.eval_key);
}

absl::Status Calibrate(Int8Quantizer& q, const QuantizationConfig& config, const QuantizeDeps& deps,
                       std::vector<std::string>* log) {
  const int batches = config.calibration_batches() > 0 ? config.calibration_batches() : 32;
  const absl::Time start = absl::Now();
  ASSIGN_OR_RETURN(int seen, q.Calibrate(*deps.calibration, *deps.forward_pass, batches));
  if (seen == 0) return absl::FailedPreconditionError("calibration: the calibration loader gave no batch");
  log->push_back(absl::StrFormat("calibration: %d batches, %.1f s", seen, absl::ToDoubleSeconds(absl::Now() - start)));
  return absl::OkStatus();
}

absl::Status TrainQat(Int8Quantizer& q, const QuantizationConfig& config, const QuantizeDeps& deps,
                      std::vector<std::string>* log) {
  if (deps.loss == nullptr || deps.train == nullptr || deps.trainer == nullptr) {
    return FieldError("qat.epochs",
                      absl::StrCat("needs training data, a loss and a trainer config (QuantizeDeps.",
                                   deps.loss == nullptr    ? "loss"
                                   : deps.train == nullptr ? "train"
                                                           : "trainer",
                                   " is null)"),
                      config.qat().epochs(), "0 without them");
  }
  ASSIGN_OR_RETURN(Model qat, q.MakeQatModel(config.qat()));
  TrainerConfig tc = *deps.trainer;
  tc.set_epochs(config.qat().epochs());
  tc.set_max_steps(0);
  TrainerDeps td;
  td.loss = deps.loss;
  td.train = deps.train;
  td.evaluator = deps.evaluator;
  td.eval = deps.evaluator ? deps.eval : nullptr;
  td.device = deps.device;
  ASSIGN_OR_RETURN(auto trainer, Trainer::Create(tc, td));
  const int64_t freeze =
      config.qat().freeze_observers_step() > 0 ? config.qat().freeze_observers_step() : deps.train->num_batches();
  int64_t steps = 0;
  bool frozen = false;
  TrainerHooks hooks;
  hooks.after_step = [&](Model& m) -> absl::Status {
    if (++steps >= freeze && !frozen && !config.qat().lsq()) {
      frozen = true;
      return Int8Quantizer::FreezeQatObservers(m);
    }
    return absl::OkStatus();
  };
  trainer->AddHooks(hooks);
  ASSIGN_OR_RETURN(TrainResult r, trainer->Train(qat));
  std::string metric;
  for (const auto& [k, v] : r.best.values()) absl::StrAppendFormat(&metric, " %s=%.4g", k, v.value);
  log->push_back(absl::StrFormat("QAT (%s): %d epochs, %d steps, %.1f s%s%s",
                                 config.qat().lsq() ? "learned step sizes" : "moving-average ranges", r.epochs_run,
                                 r.steps, r.seconds, metric,
                                 config.qat().lsq() ? "" : absl::StrCat(", ranges frozen after step ", freeze)));
  return q.AdoptQat(qat);
}

// Mixed precision: the model with every selected layer at the lower
// precision ("int8", or "4-bit" weights); while its drop exceeds max_drop,
// the most sensitive layer (by the drop with only it at the lower
// precision) goes back to the higher one ("fp32", or "8-bit" weights).
// `build(kept)` makes the model with the layers in `kept` at the higher
// precision. Returns the kept layers; fills result's sensitivity, metrics
// and log.
using BuildWithKept = std::function<absl::StatusOr<Model>(const std::set<int>& kept)>;
absl::StatusOr<std::vector<int>> ChooseKeptLayers(const Int8Quantizer& q, const Model& model,
                                                  const QuantizationConfig& config, const QuantizeDeps& deps,
                                                  const BuildWithKept& build, const char* lower, const char* higher,
                                                  QuantizeResult* result) {
  if (deps.evaluator == nullptr || deps.eval == nullptr) {
    return FieldError("mixed_precision.max_drop",
                      absl::StrCat("needs an evaluator and eval data (QuantizeDeps.",
                                   deps.evaluator == nullptr ? "evaluator" : "eval", " is null)"),
                      config.mixed_precision().max_drop(), "0 without them");
  }
  const auto& mp = config.mixed_precision();
  FirstBatches eval(*deps.eval, mp.eval_batches());
  const absl::Time start = absl::Now();
  ASSIGN_OR_RETURN(Model fp, model.Clone());
  fp.Eval();
  ASSIGN_OR_RETURN(const Metric reference, Evaluate(fp, deps, eval));
  std::vector<int> selected;
  for (size_t i = 0; i < q.layers().size(); ++i) {
    if (q.layers()[i].selected) selected.push_back(static_cast<int>(i));
  }
  auto metric_with_kept = [&](const std::set<int>& kept) -> absl::StatusOr<Metric> {
    ASSIGN_OR_RETURN(Model m, build(kept));
    return Evaluate(m, deps, eval);
  };
  ASSIGN_OR_RETURN(const Metric full, metric_with_kept({}));
  result->log.push_back(absl::StrFormat("mixed precision: float %s %.4g, all %d layers %s %.4g (drop %.4g, budget %.4g)",
                                        deps.eval_key, reference.value, selected.size(), lower, full.value,
                                        Drop(reference, full), mp.max_drop()));
  result->metric_float = reference.value;
  result->metric_quantized = full.value;
  if (Drop(reference, full) <= mp.max_drop()) return std::vector<int>{};
  // Sensitivity: only layer i at the lower precision.
  for (int i : selected) {
    std::set<int> kept(selected.begin(), selected.end());
    kept.erase(i);
    ASSIGN_OR_RETURN(Metric m, metric_with_kept(kept));
    result->sensitivity.push_back({i, m.value, Drop(reference, m)});
  }
  std::stable_sort(result->sensitivity.begin(), result->sensitivity.end(),
                   [](const LayerSensitivity& a, const LayerSensitivity& b) { return a.drop > b.drop; });
  std::set<int> kept;
  Metric current = full;
  const int limit = mp.max_fp32_layers() > 0 ? mp.max_fp32_layers() : static_cast<int>(selected.size());
  for (const LayerSensitivity& s : result->sensitivity) {
    if (Drop(reference, current) <= mp.max_drop() || static_cast<int>(kept.size()) >= limit) break;
    kept.insert(s.layer);
    ASSIGN_OR_RETURN(current, metric_with_kept(kept));
    result->log.push_back(absl::StrFormat("  layer %d (%s) kept %s: %s %.4g (drop %.4g)", s.layer,
                                          q.layers()[s.layer].module_path, higher, deps.eval_key, current.value,
                                          Drop(reference, current)));
  }
  result->metric_quantized = current.value;
  result->log.push_back(absl::StrFormat("mixed precision: %d of %d layers kept %s, drop %.4g %s budget, %.1f s",
                                        kept.size(), selected.size(), higher, Drop(reference, current),
                                        Drop(reference, current) <= mp.max_drop() ? "within" : "still over",
                                        absl::ToDoubleSeconds(absl::Now() - start)));
  return std::vector<int>(kept.begin(), kept.end());
}

}  // namespace

absl::StatusOr<QuantizeResult> Quantize(const Model& model, const QuantizationConfig& config,
                                        const QuantizeDeps& deps) {
  if (deps.forward_pass == nullptr) return absl::InvalidArgumentError("QuantizeDeps: forward_pass is null");
  ASSIGN_OR_RETURN(std::unique_ptr<Int8Quantizer> q, Int8Quantizer::Create(model, config));
  QuantizeResult result{Model(torch::jit::Module()), {}, {}, {}, {}, 0, 0, {}, {}};
  if (const int bits = config.weight_only().bits(); bits > 0) {
    if (bits == 4 && config.mixed_precision().max_drop() > 0) {
      ASSIGN_OR_RETURN(result.eight_bit_layers,
                       ChooseKeptLayers(
                           *q, model, config, deps, [&](const std::set<int>& kept) { return q->WeightOnly(4, kept); },
                           "4-bit", "8-bit", &result));
    }
    const std::set<int> eight_bit(result.eight_bit_layers.begin(), result.eight_bit_layers.end());
    ASSIGN_OR_RETURN(result.model, q->WeightOnly(bits, eight_bit));
    result.layers = q->layers();
    result.log.push_back(absl::StrFormat("weight-only: %d-bit weights (%d layer(s) at 8 bits), dequantized at run time",
                                         bits, eight_bit.size()));
    return result;
  }
  if (deps.calibration == nullptr) {
    return absl::InvalidArgumentError(
        "QuantizeDeps: calibration is null; int8 needs calibration data (weight_only.bits needs none)");
  }
  RETURN_IF_ERROR(Calibrate(*q, config, deps, &result.log));
  if (config.qat().epochs() > 0) RETURN_IF_ERROR(TrainQat(*q, config, deps, &result.log));
  if (config.mixed_precision().max_drop() > 0) {
    ASSIGN_OR_RETURN(result.fp32_layers,
                     ChooseKeptLayers(
                         *q, model, config, deps, [&](const std::set<int>& kept) { return q->Convert(kept); }, "int8",
                         "fp32", &result));
  }
  std::set<int> fp32(result.fp32_layers.begin(), result.fp32_layers.end());
  ASSIGN_OR_RETURN(result.model, q->Convert(fp32));
  result.model.Eval();
  result.layers = q->layers();
  for (int l : result.fp32_layers) {
    result.layers[l].selected = false;
    result.layers[l].reason = "mixed precision";
  }
  result.ranges = q->FormatRanges();
  return result;
}

}  // namespace slimfit
