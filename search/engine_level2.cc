// Engine::Search: level 2, int8 of the level-1 result.
#include <optional>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "common/field_error.h"
#include "common/interrupt.h"
#include "common/status_macros.h"
#include "quantizers/int8.h"
#include "quantizers/quantize.h"
#include "search/decision.h"
#include "search/engine_search.h"

namespace slimfit {

absl::StatusOr<std::optional<CandidateRecord>> Engine::Search::Level2(const std::optional<CandidateRecord>& fp32,
                                                                      bool interrupted, CandidateRecord* int8_base) {
  std::optional<CandidateRecord> int8;
  if (comp_.level() < 2) return int8;
  if (interrupted) {
    Say(absl::StrCat("[quantize] skipped: ", InterruptMessage()));
    return int8;
  }
  const CandidateRecord& base = fp32 ? *fp32 : reference_;
  *int8_base = base;
  Phase("quantize",
        absl::StrCat("int8 (", QuantizedEngineName(comp_.quantization().engine()), ") of: ", base.description()));
  ASSIGN_OR_RETURN(int8, Quantized(base));
  auto say_int8 = [&](const char* what, const CandidateRecord& q) {
    Say(absl::StrFormat("  %s: %s = %.4g (%+.2f)  latency b1 %.3f ms, b%d %.2f ms, %.1f KiB", what,
                        c_.evaluation().eval_key(), q.eval_metric(), -DropOf(q.eval_metric()), q.latency_b1_ms(),
                        kLatencyBatch, q.latency_bn_ms(), q.serialized_bytes() / 1024.0));
  };
  say_int8("int8", *int8);
  // PTQ missed delta: one epoch of quantization-aware training (on the
  // fine-tuning loss, so distilled from the reference) when it fits.
  if (!int8->qualifies() && comp_.quantization().qat().epochs() == 0 &&
      comp_.quantization().weight_only().bits() == 0) {
    ASSIGN_OR_RETURN(bool fits, Fits(2 * EpochSeconds()));
    if (fits) {
      Say("  int8 missed the target: 1 epoch of quantization-aware training");
      ASSIGN_OR_RETURN(std::optional<CandidateRecord> qat, Attempt("quantization-aware training", Quantized(base, 1)));
      if (qat) {
        say_int8("int8 QAT", *qat);
        if (qat->qualifies()) int8 = qat;
      }
    } else {
      Say(absl::StrCat("  ", StopReason(), ": no time for quantization-aware training"));
    }
  }
  // Still missing: int8 of another fp32 model, one with no less room whose
  // int8 (as int8 changed this one) would still beat this fp32 model.
  if (!int8->qualifies() && fp32) {
    const CandidateRecord missed = *int8;
    const Int8FallbackInputs in{
        &reference_,       &base,         &missed, comp_.delta(), reference_metric_.higher_is_better,
        comp_.objective(), kInt8Fallbacks};
    for (const CandidateRecord& other : Int8Fallbacks(in, store_->All())) {
      ASSIGN_OR_RETURN(bool fits, Fits(missed.seconds()));
      if (!fits) {
        Say(absl::StrCat("  ", StopReason(), ": no time for int8 of another model"));
        break;
      }
      Say(absl::StrFormat("  int8 of another qualifying model instead: %s (%s %+.2f)", other.description(),
                          c_.evaluation().eval_key(), -DropOf(other.eval_metric())));
      ASSIGN_OR_RETURN(std::optional<CandidateRecord> q, Attempt("int8 of another model", Quantized(other)));
      if (!q) continue;
      say_int8("int8", *q);
      if (q->qualifies()) {
        int8 = q;
        *int8_base = other;
        break;
      }
    }
  }
  // SIZE: 4-bit weights (weight-only, dequantized at run time) beside int8,
  // unless the quantization block chose weight-only itself.
  if (comp_.objective() == CompressionConfig::SIZE && comp_.quantization().weight_only().bits() == 0) {
    ASSIGN_OR_RETURN(std::optional<CandidateRecord> w4, Attempt("4-bit weight quantization", Quantized(base, 0, 4)));
    if (w4) {
      say_int8("4-bit weights", *w4);
      if (w4->qualifies() && (!int8->qualifies() || w4->serialized_bytes() < int8->serialized_bytes())) {
        Say("  4-bit weights qualify and are smaller: they go on instead of int8");
        int8 = w4;
        *int8_base = base;
      }
    }
  }
  EndPhase();
  return int8;
}

absl::StatusOr<std::optional<CandidateRecord>> Engine::Search::Attempt(
    const std::string& what, absl::StatusOr<std::optional<CandidateRecord>> made) {
  if (made.ok()) return *std::move(made);
  if (absl::IsCancelled(made.status())) {
    Say(absl::StrCat("  ", made.status().message(), ": ", what, " stops"));
    return std::nullopt;
  }
  if (absl::IsDataLoss(made.status())) {
    RETURN_IF_ERROR(SkipFailed(what, made.status()));
    return std::nullopt;
  }
  return made.status();
}

absl::StatusOr<std::optional<CandidateRecord>> Engine::Search::Quantized(const CandidateRecord& base, int qat_epochs,
                                                                         int weight_bits) {
  const std::string key = weight_bits > 0  ? absl::StrCat("w", weight_bits, "|", base.key())
                          : qat_epochs > 0 ? absl::StrCat("int8_qat", qat_epochs, TrainingKey(), "|", base.key())
                                           : absl::StrCat("int8|", base.key());
  if (const CandidateRecord* r = Reuse(key)) return std::optional<CandidateRecord>(*r);
  const auto t0 = Clock::now();
  QuantizationConfig qc = comp_.quantization();
  if (qat_epochs > 0) qc.mutable_qat()->set_epochs(qat_epochs);
  if (weight_bits > 0) qc.mutable_weight_only()->set_bits(weight_bits);
  if (!qc.has_activation()) qc.mutable_activation()->mutable_mse();
  const double margin = -(DropOf(base.eval_metric()) - comp_.delta());
  if (!qc.has_mixed_precision() && margin > 0) qc.mutable_mixed_precision()->set_max_drop(margin);
  ASSIGN_OR_RETURN(Model fp32, base.key() == "reference" ? e_.model_.Clone() : LoadStored(base));
  TrainerConfig qat = FineTuneConfig(std::max(1, qc.qat().epochs()), 0, false);
  QuantizeDeps deps;
  deps.forward_pass = e_.forward_pass_.get();
  deps.calibration = e_.data_.train.get();
  deps.evaluator = e_.evaluator_.get();
  deps.eval = e_.data_.eval.get();
  deps.eval_key = c_.evaluation().eval_key();
  deps.loss = Loss();
  deps.train = e_.data_.train.get();
  deps.trainer = &qat;
  deps.device = device_;
  ASSIGN_OR_RETURN(QuantizeResult q, Quantize(fp32, qc, deps), AtField("compression.quantization"));
  for (const std::string& line : q.log) Say(absl::StrCat("  ", line));
  CandidateRecord rec = base;
  rec.set_key(key);
  rec.set_phase(weight_bits > 0 ? "weights4" : "int8");
  rec.set_model_file("");
  rec.set_description(weight_bits > 0
                          ? absl::StrFormat("%s; 4-bit weights (%zu layer(s) at 8 bits), dequantized at run time",
                                            base.description(), q.eight_bit_layers.size())
                          : absl::StrFormat("%s; int8%s (%zu layer(s) kept fp32)", base.description(),
                                            qat_epochs > 0 ? absl::StrFormat(", QAT %d epoch(s)", qat_epochs) : "",
                                            q.fp32_layers.size()));
  RETURN_IF_ERROR(Measure(fp32, &q.model, &rec));
  rec.set_seconds(SecondsSince(t0));
  // The layers left at the higher precision: fp32 (int8), 8 bits (weights4).
  std::vector<std::string> kept_paths;
  for (int i : weight_bits > 0 ? q.eight_bit_layers : q.fp32_layers) kept_paths.push_back(q.layers[i].module_path);
  rec.set_note(absl::StrJoin(kept_paths, ","));
  RETURN_IF_ERROR(Keep(rec, &q.model));
  return std::optional<CandidateRecord>(*store_->Find(key));
}

}  // namespace slimfit
