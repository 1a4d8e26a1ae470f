// File: trainer/memory_format.h
//
// The layout a model's 4-D weights are kept in while it trains.
//
// LibTorch's CPU convolutions run in oneDNN, whose kernels work in
// channels-last (NHWC). With NCHW weights every convolution, forward and
// backward, reorders its operands into and out of oneDNN's layout; with
// channels-last weights a convolution's output takes the weight's layout, so
// the activations follow and most reorders go. The values are unchanged,
// only the strides; sums may round differently (float tolerance).
// trainer/benchmark measures the epoch both ways.
//
// WeightLayout switches every contiguous 4-D floating parameter of a model
// to a memory format in place (Tensor::set_data: the same tensors, so
// optimizers and hooks that hold them stay valid) and puts those it changed
// back to contiguous on Restore() or destruction, so what the caller saves
// or prunes afterwards is laid out as it was.
//
//   WeightLayout layout;
//   RETURN_IF_ERROR(layout.Apply(model, ChooseWeightFormat(config.memory_format(), model)));
//   ... train ...
//   layout.Restore();  // or let it go out of scope
//
// A model may refuse channels-last activations (a `.view` of a convolution's
// output needs NCHW strides): the trainer tries its first step, and in AUTO
// mode falls back to contiguous weights, saying so (trainer/trainer.h).
#ifndef SLIMFIT_TRAINER_MEMORY_FORMAT_H_
#define SLIMFIT_TRAINER_MEMORY_FORMAT_H_

#include <ATen/core/Tensor.h>
#include <c10/core/MemoryFormat.h>

#include <string>
#include <vector>

#include "absl/status/status.h"
#include "model/model.h"
#include "trainer/trainer.pb.h"

namespace slimfit {

// What `requested` means for `model`: CONTIGUOUS and CHANNELS_LAST as said;
// MEMORY_FORMAT_AUTO is channels-last when the model has a 4-D floating
// parameter on the CPU (a 2-D convolution's weight), contiguous otherwise
// (no convolution, or on a GPU, where cuDNN's choice is not measured here).
at::MemoryFormat ChooseWeightFormat(TrainerConfig::MemoryFormat requested, Model& model);

// "channels-last" or "contiguous".
std::string MemoryFormatName(at::MemoryFormat format);

class WeightLayout {
 public:
  WeightLayout() = default;
  WeightLayout(const WeightLayout&) = delete;
  WeightLayout& operator=(const WeightLayout&) = delete;
  ~WeightLayout() { Restore(); }

  // Lays out `model`'s contiguous 4-D floating parameters in `format`
  // (Contiguous: nothing to do). Call once; a second call restores first.
  absl::Status Apply(Model& model, at::MemoryFormat format);

  // Puts the parameters Apply changed back to contiguous. Idempotent.
  void Restore();

  // The format the changed parameters are in now (Contiguous when none are).
  at::MemoryFormat current() const { return changed_.empty() ? at::MemoryFormat::Contiguous : format_; }

  // How many parameters Apply changed and Restore has not yet put back.
  int changed() const { return static_cast<int>(changed_.size()); }

 private:
  std::vector<at::Tensor> changed_;
  at::MemoryFormat format_ = at::MemoryFormat::Contiguous;
};

}  // namespace slimfit

#endif  // SLIMFIT_TRAINER_MEMORY_FORMAT_H_
