// File: losses/teacher_distillation.h
//
// WithTeacher: knowledge distillation (Hinton et al., 2015) added to any
// LossFunction, so a pruned model learns from the model it was cut from.
// The training terms are the base loss's terms (operator(), so terms a
// wrapper such as PatchCriterion adds are kept), each scaled by (1 - alpha),
// plus
//   "distill_kl" = alpha * T^2 * KL(softmax(teacher / T) || softmax(student / T))
// averaged over the batch, the teacher run on the same batch in eval mode
// without gradients. FromOutput (what evaluators call) stays the base's.
//
// The teacher is fixed and runs in eval mode, so its prediction depends on
// the batch alone: with cache_teacher_outputs (default) each prediction is
// kept by the batch's content (a hash of every tensor's dtype, shape and
// bytes; CPU batches only, up to 256 MB) and a batch seen before costs a
// lookup instead of the teacher's forward. A search fine-tunes many
// candidates on the same (seed, epoch) batch order, so after the first
// fine-tune the teacher is mostly not run at all; the loss is the same. A
// caller that changes the teacher's weights between calls must turn the
// cache off (cache_teacher_outputs = false).
//
//   auto loss = WithTeacher(base.get(), &reference, forward_pass, {.alpha = 0.5, .temperature = 4});
//   trainer deps.loss = loss.get();
//
// Contract: `base` and `teacher` are not owned and must outlive the result.
// Predictions (element output_index of a tuple / list output) must be
// [batch, classes] logits with classes >= 2 from both models: otherwise the
// call fails with FailedPrecondition naming the shapes (CanDistill checks a
// model's output up front). No exception escapes.
#ifndef SLIMFIT_LOSSES_TEACHER_DISTILLATION_H_
#define SLIMFIT_LOSSES_TEACHER_DISTILLATION_H_

#include <cstdint>
#include <memory>

#include "absl/status/status.h"
#include "losses/loss_function.h"
#include "model/model.h"

namespace slimfit {

// What the teacher cost, for a caller that times training (a search
// estimating its next fine-tune: after the first, the cached predictions
// make the teacher nearly free).
struct TeacherStats {
  int64_t forwards = 0;        // batches the teacher ran on
  double forward_seconds = 0;  // their wall time
  // Of forward_seconds, the runs whose prediction was cached: a later call
  // on the same batch is a lookup (the rest repeat: uncacheable batches,
  // or the cache full).
  double cached_forward_seconds = 0;
  int64_t cache_hits = 0;
};

struct TeacherOptions {
  double alpha = 0.5;        // weight of the soft term, in [0, 1]
  double temperature = 4.0;  // > 0
  int output_index = 0;      // which element of a tuple output is the prediction
  bool cache_teacher_outputs = true;  // see above
  TeacherStats* stats = nullptr;      // optional, not owned: updated by every call
};

// `forward_pass` is the one `base` runs the model through (its output is
// observed there, so the student runs once per step).
std::unique_ptr<LossFunction> WithTeacher(LossFunction* base, Model* teacher,
                                          std::shared_ptr<ForwardPass> forward_pass, TeacherOptions options);

// OK when `output`'s prediction is [batch, classes >= 2] logits; else
// FailedPrecondition saying what it is.
absl::Status CanDistill(const c10::IValue& output, int output_index);

}  // namespace slimfit

#endif  // SLIMFIT_LOSSES_TEACHER_DISTILLATION_H_
