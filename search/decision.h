// File: search/decision.h
//
// Which model a search returns: a pure function of the scored records (no
// training, no I/O), so the rules are unit-tested by table.
//
//   Decision d = Decide({.reference = ref, .fp32 = best_pruned, .int8 = q,
//                        .delta = 1.0, .higher_is_better = true,
//                        .objective = CompressionConfig::LATENCY});
//
// Rules, in order:
//   1. never outside delta: a record counts only when the drop of its
//      metric from the reference's is <= delta (recomputed here from the
//      metrics, not taken from the record's `qualifies` flag);
//   2. int8 when it counts and is better on the objective than the fp32
//      model (or there is no counting fp32 model);
//   3. else the fp32 model when it counts;
//   4. never worse than the reference on the objective: a choice that is
//      not strictly better than the reference gives way to the reference;
//   5. nothing counts: the reference.
// `why` says which rule decided, with the numbers.
#ifndef SLIMFIT_SEARCH_DECISION_H_
#define SLIMFIT_SEARCH_DECISION_H_

#include <string>
#include <vector>

#include "search/experiment.pb.h"
#include "search/search_state.pb.h"

namespace slimfit {

// How much worse `value` is than `reference` (negative: better).
double MetricDrop(double reference, double value, bool higher_is_better);

// The objective of `r` (lower is better). SIZE: serialized bytes; MACS:
// MACs; LATENCY (and the default): the mean of the batch-1 and batch-N
// latency ratios to `reference` (the reference scores 1).
double ObjectiveValue(CompressionConfig::Objective objective, const CandidateRecord& reference,
                      const CandidateRecord& r);

// Whether `objective` is measured latency (LATENCY and the default), not a
// count (SIZE, MACS): only then do timings steer choices.
bool IsLatencyObjective(CompressionConfig::Objective objective);

// The level-2 records: "int8", or (objective SIZE) "weights4".
bool IsQuantizedPhase(const std::string& phase);

// The fine-tuning lr the trials of tune_lr pick, as a factor of
// full_trainer's lr: the largest factor whose drop is within `tie` (metric
// units: lr_tie x delta) of the best finished trial's drop. Diverged trials
// never count; when all diverged, the smallest factor; no trials, 1.
struct LrTrial {
  double factor = 1;
  double drop = 0;  // MetricDrop of the trial's model from the reference
  bool diverged = false;
};
double ChooseLrFactor(const std::vector<LrTrial>& trials, double tie);

struct DecisionInputs {
  const CandidateRecord* reference = nullptr;  // required
  const CandidateRecord* fp32 = nullptr;       // the best pruned fp32 model, if any
  // int8 of fp32 (or of the reference), or for objective SIZE its 4-bit
  // weights (phase "weights4") when smaller, if any.
  const CandidateRecord* int8 = nullptr;
  double delta = 0;
  bool higher_is_better = true;
  CompressionConfig::Objective objective = CompressionConfig::LATENCY;
};

struct Decision {
  enum class Kind { kReference, kFp32, kInt8 };
  Kind kind = Kind::kReference;
  CandidateRecord chosen;  // == *reference for kReference
  std::string why;
};

Decision Decide(const DecisionInputs& in);

// Level 2 when int8 of the chosen fp32 model (`chosen`, whose int8 is
// `int8`) misses delta: the other fp32 models worth quantizing instead,
// best first, at most `max`. One goes in when
//   - it is a pruned model with a stored file (phase "candidate" or
//     "final") or the reference, other than `chosen`;
//   - its drop is within delta and no larger than `chosen`'s (no less room
//     for int8's own drop than the model int8 already failed on);
//   - its predicted int8 beats `chosen` on the objective: its objective x
//     what int8 did to `chosen`'s (int8's effect measured, not assumed: on
//     MACS, int8 changes nothing, so nothing less pruned can win).
// Ordered by that prediction; ties by key. The records' `qualifies` flags
// are not trusted: drops are recomputed from the metrics.
struct Int8FallbackInputs {
  const CandidateRecord* reference = nullptr;  // required
  const CandidateRecord* chosen = nullptr;     // required
  const CandidateRecord* int8 = nullptr;       // required: int8 of chosen
  double delta = 0;
  bool higher_is_better = true;
  CompressionConfig::Objective objective = CompressionConfig::LATENCY;
  int max = 2;
};
std::vector<CandidateRecord> Int8Fallbacks(const Int8FallbackInputs& in, const std::vector<CandidateRecord>& records);

}  // namespace slimfit

#endif  // SLIMFIT_SEARCH_DECISION_H_
