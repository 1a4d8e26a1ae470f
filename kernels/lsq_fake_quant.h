// File: kernels/lsq_fake_quant.h
//
// Per-channel fake quantisation with learned step sizes (LSQ, Esser et al.
// 2020): QAT's hot spot, as PyTorch's
// torch._fake_quantize_learnable_per_channel_affine computes it —
//
//   z_c = clamp(round(zero_point_c), qmin, qmax)
//   y   = (clamp(round(x / scale_c) + z_c, qmin, qmax) - z_c) * scale_c
//
// and its backward pass: dx = dy where x quantises inside [qmin, qmax] (the
// straight-through estimator), 0 outside; dscale_c and dzero_point_c the LSQ
// gradients summed over channel c, times grad_factor.
//
//   LsqParams p{.axis = 0, .quant_min = -127, .quant_max = 127, .grad_factor = g};
//   ASSIGN_OR_RETURN(at::Tensor y, LsqFakeQuantize(w, scale, zero_point, p));
//   ASSIGN_OR_RETURN(LsqGradients g, LsqFakeQuantizeBackward(dy, w, scale, zero_point, p));
//
// On a CUDA device the backward pass is one kernel that reads x and dy once,
// writes dx and reduces both per-channel gradients in the same launch
// (kernels/cuda_kernels.h), where LibTorch's op writes three full-size
// tensors and reduces two of them afterwards. On the CPU both passes are the
// reference, a plain loop with the kernel's arithmetic. The *Composed
// functions call PyTorch's own ops: what the kernels are tested and
// benchmarked against.
//
// Errors (InvalidArgument, naming the argument): x, dy, scale or zero_point
// not float32 or on another device than x; scale or zero_point not 1-D of
// x.size(axis) elements; dy not x's shape; axis outside [0, x.dim());
// quant_min >= quant_max; grad_factor not finite. A CUDA failure is Internal.
#ifndef SLIMFIT_KERNELS_LSQ_FAKE_QUANT_H_
#define SLIMFIT_KERNELS_LSQ_FAKE_QUANT_H_

#include <ATen/core/Tensor.h>

#include <cstdint>

#include "absl/status/statusor.h"

namespace slimfit {

struct LsqParams {
  int64_t axis = 0;
  int64_t quant_min = -128;
  int64_t quant_max = 127;
  double grad_factor = 1.0;
};

struct LsqGradients {
  at::Tensor dx;           // x's shape
  at::Tensor dscale;       // [x.size(axis)]
  at::Tensor dzero_point;  // [x.size(axis)]
};

absl::StatusOr<at::Tensor> LsqFakeQuantize(const at::Tensor& x, const at::Tensor& scale, const at::Tensor& zero_point,
                                           const LsqParams& params);

absl::StatusOr<LsqGradients> LsqFakeQuantizeBackward(const at::Tensor& dy, const at::Tensor& x, const at::Tensor& scale,
                                                     const at::Tensor& zero_point, const LsqParams& params);

// PyTorch's ops: _fake_quantize_learnable_per_channel_affine and its
// _backward, on whatever device x is.
absl::StatusOr<at::Tensor> LsqFakeQuantizeComposed(const at::Tensor& x, const at::Tensor& scale,
                                                   const at::Tensor& zero_point, const LsqParams& params);
absl::StatusOr<LsqGradients> LsqFakeQuantizeBackwardComposed(const at::Tensor& dy, const at::Tensor& x,
                                                             const at::Tensor& scale, const at::Tensor& zero_point,
                                                             const LsqParams& params);

}  // namespace slimfit

#endif  // SLIMFIT_KERNELS_LSQ_FAKE_QUANT_H_
