#include "search/decision.h"

#include <algorithm>
#include <map>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"

namespace slimfit {

double MetricDrop(double reference, double value, bool higher_is_better) {
  return higher_is_better ? reference - value : value - reference;
}

double ObjectiveValue(CompressionConfig::Objective objective, const CandidateRecord& reference,
                      const CandidateRecord& r) {
  switch (objective) {
    case CompressionConfig::SIZE:
      return static_cast<double>(r.serialized_bytes());
    case CompressionConfig::MACS:
      return static_cast<double>(r.macs());
    default:
      return 0.5 * (r.latency_b1_ms() / std::max(1e-9, reference.latency_b1_ms()) +
                    r.latency_bn_ms() / std::max(1e-9, reference.latency_bn_ms()));
  }
}

bool IsLatencyObjective(CompressionConfig::Objective objective) {
  return objective != CompressionConfig::SIZE && objective != CompressionConfig::MACS;
}

bool IsQuantizedPhase(const std::string& phase) { return phase == "int8" || phase == "weights4"; }

double ChooseLrFactor(const std::vector<LrTrial>& trials, double tie) {
  double best_drop = 0;
  bool any_finished = false;
  for (const LrTrial& t : trials) {
    if (t.diverged) continue;
    best_drop = any_finished ? std::min(best_drop, t.drop) : t.drop;
    any_finished = true;
  }
  if (!any_finished) {
    if (trials.empty()) return 1;
    return std::min_element(trials.begin(), trials.end(),
                            [](const LrTrial& a, const LrTrial& b) { return a.factor < b.factor; })
        ->factor;
  }
  double chosen = 0;
  for (const LrTrial& t : trials) {
    if (!t.diverged && t.drop <= best_drop + tie + 1e-9) chosen = std::max(chosen, t.factor);
  }
  return chosen;
}

Decision Decide(const DecisionInputs& in) {
  const CandidateRecord& ref = *in.reference;
  auto counts = [&](const CandidateRecord* r) {
    return r != nullptr && MetricDrop(ref.eval_metric(), r->eval_metric(), in.higher_is_better) <= in.delta + 1e-9;
  };
  auto objective = [&](const CandidateRecord& r) { return ObjectiveValue(in.objective, ref, r); };
  const double target = in.higher_is_better ? ref.eval_metric() - in.delta : ref.eval_metric() + in.delta;

  Decision d;
  const bool fp32_counts = counts(in.fp32), int8_counts = counts(in.int8);
  // What the quantized record is: int8, or (objective SIZE) 4-bit weights.
  const std::string q = in.int8 != nullptr && in.int8->phase() == "weights4" ? "4-bit weights" : "int8";
  if (int8_counts && (!fp32_counts || objective(*in.int8) < objective(*in.fp32))) {
    d.kind = Decision::Kind::kInt8;
    d.chosen = *in.int8;
    d.why = fp32_counts ? absl::StrCat(q, " on the pruned model stays within delta and is the best on the objective")
            : in.fp32 != nullptr
                ? absl::StrCat(q, " stays within delta (the pruned fp32 model behind it does not count on its own)")
                : absl::StrCat(q, " of the reference (no pruned model qualified) stays within delta");
  } else if (fp32_counts) {
    d.kind = Decision::Kind::kFp32;
    d.chosen = *in.fp32;
    if (in.int8 == nullptr) {
      d.why = "the pruned model within delta that is best on the objective";
    } else if (!int8_counts) {
      d.why = absl::StrFormat("the pruned fp32 model: its %s form missed the target (%.4g vs %.4g)", q,
                              in.int8->eval_metric(), target);
    } else {
      d.why = absl::StrFormat(
          "the pruned fp32 model: its %s form qualifies but is no better on the objective (%.3f vs %.3f)", q,
          objective(*in.int8), objective(*in.fp32));
    }
  } else {
    d.kind = Decision::Kind::kReference;
    d.chosen = ref;
    d.why = absl::StrFormat("no candidate stayed within delta %g of the reference (target %.4g)", in.delta, target);
    return d;
  }
  if (objective(d.chosen) >= objective(ref)) {
    d.why = absl::StrFormat("nothing qualifying beat the reference on the objective (%.3f vs %.3f)",
                            objective(d.chosen), objective(ref));
    d.kind = Decision::Kind::kReference;
    d.chosen = ref;
  }
  return d;
}

std::vector<CandidateRecord> Int8Fallbacks(const Int8FallbackInputs& in, const std::vector<CandidateRecord>& records) {
  const CandidateRecord& ref = *in.reference;
  auto drop = [&](const CandidateRecord& r) {
    return MetricDrop(ref.eval_metric(), r.eval_metric(), in.higher_is_better);
  };
  auto objective = [&](const CandidateRecord& r) { return ObjectiveValue(in.objective, ref, r); };
  const double chosen_objective = objective(*in.chosen);
  if (chosen_objective <= 0) return {};
  const double effect = objective(*in.int8) / chosen_objective;  // what int8 did to the chosen model
  const double room = drop(*in.chosen);
  // One model per shape (the same MACs and parameters: a candidate and its
  // final fine-tune), the one with the most room.
  std::map<std::pair<int64_t, int64_t>, const CandidateRecord*> by_shape;
  auto consider = [&](const CandidateRecord& r) {
    if (r.key() == in.chosen->key() || drop(r) > in.delta + 1e-9 || drop(r) > room + 1e-9) return;
    if (objective(r) * effect >= chosen_objective) return;
    const CandidateRecord*& kept = by_shape[{r.macs(), r.params()}];
    if (kept == nullptr || drop(r) < drop(*kept)) kept = &r;
  };
  for (const CandidateRecord& r : records) {
    if ((r.phase() == "candidate" || r.phase() == "final") && !r.model_file().empty()) consider(r);
  }
  consider(ref);
  std::vector<std::pair<double, const CandidateRecord*>> picks;  // (predicted int8 objective, record)
  for (const auto& [shape, r] : by_shape) picks.emplace_back(objective(*r) * effect, r);
  std::sort(picks.begin(), picks.end(), [](const auto& a, const auto& b) {
    return a.first != b.first ? a.first < b.first : a.second->key() < b.second->key();
  });
  std::vector<CandidateRecord> out;
  for (const auto& [predicted, r] : picks) {
    if (static_cast<int>(out.size()) >= in.max) break;
    out.push_back(*r);
  }
  return out;
}

}  // namespace slimfit
