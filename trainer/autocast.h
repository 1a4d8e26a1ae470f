// File: trainer/autocast.h
//
// AutocastScope: LibTorch's autocast for one device type while it lives, as
// PyTorch's `with torch.autocast(device_type, dtype)`: ops that autocast
// lists (convolutions, matrix products) run in `dtype`, those it keeps in
// fp32 (losses, softmax, norms' statistics) stay there. The previous state
// (enabled, dtype) comes back on destruction, and the cast-weight cache is
// cleared when the outermost scope ends. TorchScript models run through the
// dispatcher, so this covers them (the trainer runs them without the graph
// optimizer).
//
//   {
//     AutocastScope bf16(c10::DeviceType::CUDA, at::kBFloat16);
//     ASSIGN_OR_RETURN(terms, loss(model, batch));
//   }
//   terms.Total().backward();  // outside, as PyTorch recommends
//
// A nullopt dtype is a scope that changes nothing.
#ifndef SLIMFIT_TRAINER_AUTOCAST_H_
#define SLIMFIT_TRAINER_AUTOCAST_H_

#include <c10/core/DeviceType.h>
#include <c10/core/ScalarType.h>

#include <optional>

namespace slimfit {

class AutocastScope {
 public:
  AutocastScope(c10::DeviceType device_type, std::optional<at::ScalarType> dtype);
  ~AutocastScope();
  AutocastScope(const AutocastScope&) = delete;
  AutocastScope& operator=(const AutocastScope&) = delete;

 private:
  bool active_ = false;
  c10::DeviceType device_type_;
  bool was_enabled_ = false;
  at::ScalarType was_dtype_ = at::kFloat;
};

}  // namespace slimfit

#endif  // SLIMFIT_TRAINER_AUTOCAST_H_
