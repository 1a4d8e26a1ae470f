// File: kernels/cuda_kernels.h
//
// The raw launches behind kernels/channel_norms.h and kernels/lsq_fake_quant.h:
// pointers, sizes and a stream, no LibTorch types (nvcc compiles the .cu
// files that define them; the gcc-compiled wrappers turn tensors into these).
// Every pointer is device memory of float32, contiguous; every launch is
// asynchronous on `stream` and returns the launch's error (cudaSuccess when it
// was queued).
#ifndef SLIMFIT_KERNELS_CUDA_KERNELS_H_
#define SLIMFIT_KERNELS_CUDA_KERNELS_H_

#include <cuda_runtime_api.h>

#include <cstdint>

namespace slimfit::kernels {

// --- channel norms: one launch for many weights -----------------------------

// Segments per launch: the table travels as a kernel parameter (under the
// 4 KiB parameter limit every CUDA version has); more weights take more
// launches.
inline constexpr int kMaxNormSegments = 96;

struct NormSegment {
  const float* weight = nullptr;  // rows x cols, row-major
  int64_t rows = 0;               // output channels
  int64_t cols = 0;               // elements per output channel
  int64_t first_row = 0;          // where its rows start in `out`
};

struct NormSegments {
  NormSegment segment[kMaxNormSegments];
  int count = 0;
  int64_t total_rows = 0;  // sum of rows
};

// kind 1: out[first_row + r] = sum_j |w[r, j]|; kind 2: sqrt(sum_j w[r, j]^2).
// One warp per row of every segment, all in one launch.
cudaError_t LaunchChannelNorms(const NormSegments& segments, int kind, float* out, cudaStream_t stream);

// --- LSQ per-channel fake quantisation (learned step sizes) -----------------

// x viewed as [outer, channels, inner] (channels = the quantisation axis).
struct LsqShape {
  int64_t outer = 1;
  int64_t channels = 1;
  int64_t inner = 1;
  int quant_min = -128;
  int quant_max = 127;
};

// y = (clamp(round(x / s_c) + z_c, qmin, qmax) - z_c) * s_c, with z_c the
// zero point rounded and clamped to [qmin, qmax] (as PyTorch's
// _fake_quantize_learnable_per_channel_affine).
cudaError_t LaunchLsqForward(const float* x, const float* scale, const float* zero_point, const LsqShape& shape,
                             float* y, cudaStream_t stream);

// The backward pass in one launch: dx (straight-through inside the range,
// zero outside) and the per-channel gradients of the scale and the zero
// point, reduced in the same kernel (LSQ's, scaled by grad_factor).
// dscale and dzero_point (one float per channel) are overwritten.
cudaError_t LaunchLsqBackward(const float* dy, const float* x, const float* scale, const float* zero_point,
                              const LsqShape& shape, float grad_factor, float* dx, float* dscale, float* dzero_point,
                              cudaStream_t stream);

}  // namespace slimfit::kernels

#endif  // SLIMFIT_KERNELS_CUDA_KERNELS_H_
