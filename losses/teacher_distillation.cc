#include "losses/teacher_distillation.h"

#include <ATen/ATen.h>
#include <c10/core/GradMode.h>

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <unordered_map>
#include <utility>

#include "absl/cleanup/cleanup.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/hash.h"
#include "common/status_macros.h"
#include "common/torch_status.h"

namespace slimfit {
namespace {

using internal::PredictionOf;

absl::Status CheckLogits(const at::Tensor& p, const char* whose) {
  if (p.dim() == 2 && p.size(1) >= 2 && p.is_floating_point()) return absl::OkStatus();
  return absl::FailedPreconditionError(absl::StrCat(
      "distillation needs [batch, classes >= 2] floating-point logits; the ", whose, "'s prediction is [",
      absl::StrJoin(p.sizes(), ", "), "] ", c10::toString(p.scalar_type())));
}

class TeacherLoss : public LossFunction {
 public:
  TeacherLoss(LossFunction* base, Model* teacher, std::shared_ptr<ForwardPass> forward_pass, TeacherOptions options)
      : LossFunction(std::move(forward_pass)), base_(base), on_device_(teacher), options_(options) {}

  absl::StatusOr<LossTerms> operator()(Model& model, const Batch& batch) override {
    // The base loss as it is (with any terms its operator() adds); the
    // student's output is taken from its forward pass, not computed twice.
    std::optional<c10::IValue> seen;
    absl::StatusOr<LossTerms> base_terms;
    {
      forward_pass().set_output_observer([&seen](const c10::IValue& v) {
        if (!seen) seen = v;
      });
      absl::Cleanup unobserve = [this] { forward_pass().set_output_observer(nullptr); };
      base_terms = (*base_)(model, batch);
    }
    RETURN_IF_ERROR(base_terms.status());
    LossTerms terms = *std::move(base_terms);
    c10::IValue output;
    if (seen) {
      output = *seen;
    } else {  // the base ran the model some other way
      ASSIGN_OR_RETURN(output, forward_pass().Forward(model, batch, device()));
    }
    ASSIGN_OR_RETURN(at::Tensor student, PredictionOf(output, options_.output_index));
    RETURN_IF_ERROR(CheckLogits(student, "student"));
    at::Tensor teacher;
    const std::optional<uint64_t> key = options_.cache_teacher_outputs ? BatchKey(batch) : std::nullopt;
    if (auto hit = key ? cache_.find(*key) : cache_.end(); hit != cache_.end()) {
      teacher = hit->second;
      if (options_.stats != nullptr) ++options_.stats->cache_hits;
    } else {
      const auto t0 = std::chrono::steady_clock::now();
      bool cached = false;
      c10::NoGradGuard no_grad;
      Model& teacher_model = on_device_.get();
      teacher_model.Eval();
      ASSIGN_OR_RETURN(c10::IValue t_out, forward_pass().Forward(teacher_model, batch, device()),
                       "distillation teacher");
      ASSIGN_OR_RETURN(teacher, PredictionOf(t_out, options_.output_index), "distillation teacher");
      if (key && cached_bytes_ + teacher.nbytes() <= kMaxCachedBytes) {
        teacher = teacher.clone();  // not a view into the teacher's output
        cached_bytes_ += teacher.nbytes();
        cache_.emplace(*key, teacher);
        cached = true;
      }
      if (options_.stats != nullptr) {
        const double took = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
        ++options_.stats->forwards;
        options_.stats->forward_seconds += took;
        if (cached) options_.stats->cached_forward_seconds += took;
      }
    }
    RETURN_IF_ERROR(CheckLogits(teacher, "teacher"));
    if (teacher.sizes() != student.sizes()) {
      return absl::FailedPreconditionError(absl::StrCat("distillation: the teacher's prediction [",
                                                        absl::StrJoin(teacher.sizes(), ", "),
                                                        "] and the student's [", absl::StrJoin(student.sizes(), ", "),
                                                        "] differ"));
    }
    return TorchCallOr("distillation", [&] {
      const double t = options_.temperature, a = options_.alpha;
      for (auto& [name, value] : terms.terms) value = value * (1 - a);
      at::Tensor soft = at::kl_div(at::log_softmax(student / t, 1), at::log_softmax(teacher.detach() / t, 1),
                                   at::Reduction::None, /*log_target=*/true)
                            .sum(1)
                            .mean() *
                        (t * t * a);
      terms.terms.emplace_back("distill_kl", soft);
      return terms;
    });
  }

  absl::StatusOr<LossTerms> FromOutput(const c10::IValue& output, const Batch& batch) override {
    return base_->FromOutput(output, batch);
  }

  absl::Status ToDevice(c10::Device device) override {
    RETURN_IF_ERROR(LossFunction::ToDevice(device));
    RETURN_IF_ERROR(base_->ToDevice(device));
    if (device != cached_on_) {  // predictions live where the teacher ran
      cache_.clear();
      cached_bytes_ = 0;
      cached_on_ = device;
    }
    return on_device_.MoveTo(device);
  }

 private:
  // The batch's identity for the cache: FNV-1a over every tensor's dtype,
  // shape and bytes. None (no caching) when an element is not a contiguous
  // CPU tensor: hashing a device tensor would cost a copy.
  static std::optional<uint64_t> BatchKey(const Batch& batch) {
    uint64_t h = kFnv1aOffset;
    for (const c10::IValue& v : batch) {
      if (!v.isTensor()) return std::nullopt;
      const at::Tensor& t = v.toTensor();
      if (!t.device().is_cpu() || !t.is_contiguous() || t.is_sparse()) return std::nullopt;
      const int8_t dtype = static_cast<int8_t>(t.scalar_type());
      h = Fnv1a(&dtype, sizeof(dtype), h);
      for (int64_t d : t.sizes()) h = Fnv1a(&d, sizeof(d), h);
      h = Fnv1a(t.data_ptr(), t.nbytes(), h);
    }
    return h;
  }

  // Teacher predictions are cached up to this many bytes (10-class
  // predictions for 10,000 batches of 128 take 51 MB).
  static constexpr size_t kMaxCachedBytes = size_t{256} << 20;

  LossFunction* base_;
  TeacherOnDevice on_device_;
  TeacherOptions options_;
  c10::Device cached_on_ = c10::kCPU;
  std::unordered_map<uint64_t, at::Tensor> cache_;  // BatchKey → the teacher's prediction
  size_t cached_bytes_ = 0;
};

}  // namespace

std::unique_ptr<LossFunction> WithTeacher(LossFunction* base, Model* teacher,
                                          std::shared_ptr<ForwardPass> forward_pass, TeacherOptions options) {
  return std::make_unique<TeacherLoss>(base, teacher, std::move(forward_pass), options);
}

absl::Status CanDistill(const c10::IValue& output, int output_index) {
  ASSIGN_OR_RETURN(at::Tensor p, PredictionOf(output, output_index));
  return CheckLogits(p, "model");
}

}  // namespace slimfit
