// File: model/weight_layout.h
//
// The layout a model's 4-D weights are kept in while it runs.
//
// LibTorch's CPU convolutions run in oneDNN, whose kernels work in
// channels-last (NHWC). With NCHW weights every convolution, forward and
// backward, reorders its operands into and out of oneDNN's layout; with
// channels-last weights a convolution's output takes the weight's layout, so
// the activations follow and most reorders go (inputs may stay NCHW). The
// values are unchanged, only the strides; sums may round differently (float
// tolerance). trainer/benchmark measures a training epoch both ways; the
// trainer (full_trainer.memory_format) and the evaluators use it.
//
// WeightLayout switches every NCHW-contiguous 4-D floating parameter of a
// model to a memory format in place (Tensor::set_data: the same tensors, so
// optimizers and hooks that hold them stay valid) and puts those it changed
// back to their own strides on Restore() or destruction, so what the caller
// saves or prunes afterwards is laid out as it was. Ones already in another
// layout are left alone. Weights that are contiguous in both layouts (a
// stem of one input channel, 1x1 kernels) are restrided too, as PyTorch's
// `module.to(memory_format=...)` does: a convolution takes its output's
// layout from its operands' strides, and such a weight's NCHW strides read
// as NCHW. Left alone, the first convolution on a one-channel image wrote
// NCHW activations, and the stem's batch norm, relu and the first residual
// add ran in NCHW or mixed layouts with copies between them (perf, a
// resnet_small training epoch on Fashion-MNIST, 2026-12-02).
//
//   WeightLayout layout;
//   RETURN_IF_ERROR(layout.Apply(model, PreferredWeightFormat(model)));
//   ... train or evaluate ...
//   layout.Restore();  // or let it go out of scope
//
// A model may refuse channels-last activations (a `.view` of a convolution's
// output needs NCHW strides): callers run a first batch through
// RunOrRestore, which retries it with the weights as they were
// (trainer/trainer.h, evaluators/evaluation_function.h).
#ifndef SLIMFIT_MODEL_WEIGHT_LAYOUT_H_
#define SLIMFIT_MODEL_WEIGHT_LAYOUT_H_

#include <ATen/core/Tensor.h>
#include <c10/core/MemoryFormat.h>

#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "model/model.h"

namespace slimfit {

// Channels-last when `model` has 4-D floating parameters (2-D convolutions'
// weights), all on the CPU, all with output channels and input channels per
// group in multiples of 8 (or at most 4 input channels: a stem reading an
// image, a depthwise conv); contiguous otherwise. oneDNN's NHWC kernels are
// fast only for such widths: one conv3x3-bn-relu pair at batch 128, 1
// thread, forward and backward, channels-last time / NCHW time (2026-11-30;
// trainer/benchmark/layout_widths.py reprints it):
//   width       4     5     8     9    11    12    16    20    24    32    46    48    64
//   28x28    1.89  2.00  0.73  1.50  1.82  1.57  0.80  1.01  0.60  0.88  0.90  0.98  1.06
//   14x14    2.50  2.51  1.03  1.64  1.53  1.22  0.89  0.99  0.80  0.95  1.07  0.96  0.88
//   7x7      1.94  1.96  0.87  1.13  1.29  1.98  0.95  1.02  0.80  0.73  1.01  0.96  0.92
// A stem of 1, 3 or 4 input channels into 16 or 32 ran 0.72-0.85x of NCHW's
// time at 32x32. Pruned widths are rarely multiples of 8, so pruned models
// mostly stay contiguous. On a GPU: contiguous (cuDNN's preference is not measured here).
at::MemoryFormat PreferredWeightFormat(const Model& model);

// "channels-last" or "contiguous".
std::string MemoryFormatName(at::MemoryFormat format);

class WeightLayout {
 public:
  WeightLayout() = default;
  WeightLayout(const WeightLayout&) = delete;
  WeightLayout& operator=(const WeightLayout&) = delete;
  ~WeightLayout() { Restore(); }

  // Lays out `model`'s NCHW-contiguous 4-D floating parameters in `format`
  // (Contiguous: nothing to do). A second call restores first.
  absl::Status Apply(Model& model, at::MemoryFormat format);

  // Puts the parameters Apply changed back to the strides they had. Idempotent.
  void Restore();

  // Runs `run` (returning absl::Status or absl::StatusOr<T>). When it fails
  // while parameters are changed, Restore()s and runs it once more, and
  // returns that. `refused`, if given, gets the first error when the second
  // run passes: the layout, not the model, was the cause. Failing both ways
  // leaves `refused` alone.
  template <typename Fn>
  std::invoke_result_t<Fn&> RunOrRestore(Fn&& run, absl::Status* refused = nullptr) {
    std::invoke_result_t<Fn&> result = run();
    if (result.ok() || changed_.empty()) return result;
    absl::Status first;
    if constexpr (std::is_same_v<std::invoke_result_t<Fn&>, absl::Status>) {
      first = result;
    } else {
      first = result.status();
    }
    Restore();
    std::invoke_result_t<Fn&> again = run();
    if (again.ok() && refused != nullptr) *refused = std::move(first);
    return again;
  }

  // The format the changed parameters are in now (Contiguous when none are).
  at::MemoryFormat current() const { return changed_.empty() ? at::MemoryFormat::Contiguous : format_; }

  // How many parameters Apply changed and Restore has not yet put back.
  int changed() const { return static_cast<int>(changed_.size()); }

 private:
  std::vector<std::pair<at::Tensor, std::vector<int64_t>>> changed_;  // each with its strides before
  at::MemoryFormat format_ = at::MemoryFormat::Contiguous;
};

}  // namespace slimfit

#endif  // SLIMFIT_MODEL_WEIGHT_LAYOUT_H_
