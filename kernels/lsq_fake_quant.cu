// LaunchLsqForward and LaunchLsqBackward (kernels/cuda_kernels.h).
//
// The backward pass is where QAT with learned step sizes spends its time:
// composed from LibTorch ops it writes three full-size tensors (dx and the
// elementwise scale and zero-point gradients) and reads two back to reduce
// them per channel. Here each block reads its slice of one channel's x and
// dy once, writes dx, and reduces the two gradients in registers and shared
// memory before one atomic add per block.
#include "kernels/cuda_kernels.h"

namespace slimfit::kernels {
namespace {

constexpr int kThreads = 256;
// Elements one block of the backward pass takes from a channel, at least.
constexpr int64_t kElementsPerBlock = 4 * kThreads;

__device__ __forceinline__ float RoundedZeroPoint(float z, const LsqShape& s) {
  return fminf(fmaxf(nearbyintf(z), static_cast<float>(s.quant_min)), static_cast<float>(s.quant_max));
}

// Index: int32_t when every index fits (64-bit division is emulated on the
// GPU and would cost more than the memory traffic), else int64_t.
template <typename Index>
__global__ void LsqForwardKernel(const float* __restrict__ x, const float* __restrict__ scale,
                                 const float* __restrict__ zero_point, const LsqShape s, float* __restrict__ y) {
  const Index n = static_cast<Index>(s.outer * s.channels * s.inner);
  const Index inner = static_cast<Index>(s.inner), channels = static_cast<Index>(s.channels);
  for (Index i = static_cast<Index>(blockIdx.x) * blockDim.x + threadIdx.x; i < n;
       i += static_cast<Index>(gridDim.x) * blockDim.x) {
    const Index c = (i / inner) % channels;
    const float sc = scale[c];
    const float z = RoundedZeroPoint(zero_point[c], s);
    const float q = fminf(fmaxf(z + nearbyintf(x[i] * (1.0f / sc)), static_cast<float>(s.quant_min)),
                          static_cast<float>(s.quant_max));
    y[i] = (q - z) * sc;
  }
}

// Sum of v over the block, valid in thread 0.
__device__ __forceinline__ float BlockSum(float v, float* shared) {
  for (int offset = 16; offset > 0; offset /= 2) v += __shfl_down_sync(0xffffffffu, v, offset);
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  if (lane == 0) shared[warp] = v;
  __syncthreads();
  v = threadIdx.x < blockDim.x / 32 ? shared[threadIdx.x] : 0.f;
  if (warp == 0) {
    for (int offset = 16; offset > 0; offset /= 2) v += __shfl_down_sync(0xffffffffu, v, offset);
  }
  __syncthreads();
  return v;
}

// grid: (channels, splits). Block (c, k) takes every splits-th chunk of
// channel c's outer * inner elements.
template <typename Index>
__global__ void LsqBackwardKernel(const float* __restrict__ dy, const float* __restrict__ x,
                                  const float* __restrict__ scale, const float* __restrict__ zero_point,
                                  const LsqShape s, float grad_factor, float* __restrict__ dx,
                                  float* __restrict__ dscale, float* __restrict__ dzero_point) {
  __shared__ float shared[kThreads / 32];
  const Index c = static_cast<Index>(blockIdx.x);
  const float sc = scale[c];
  const float inv = 1.0f / sc;
  const float z = RoundedZeroPoint(zero_point[c], s);
  const float qmin = static_cast<float>(s.quant_min), qmax = static_cast<float>(s.quant_max);
  const Index per_channel = static_cast<Index>(s.outer * s.inner);
  const Index inner = static_cast<Index>(s.inner), channels = static_cast<Index>(s.channels);
  float ds = 0.f, dz = 0.f;
  for (Index k = static_cast<Index>(blockIdx.y) * blockDim.x + threadIdx.x; k < per_channel;
       k += static_cast<Index>(gridDim.y) * blockDim.x) {
    const Index o = k / inner, j = k - o * inner;
    const Index i = (o * channels + c) * inner + j;
    const float xi = x[i], g = dy[i];
    const float q = z + nearbyintf(xi * inv);
    if (q < qmin || q > qmax) {
      dx[i] = 0.f;
      ds += g * ((q < qmin ? qmin : qmax) - z);
      dz -= g * sc;
    } else {
      dx[i] = g;
      ds += g * ((q - z) * sc - xi) * inv;
    }
  }
  ds = BlockSum(ds, shared);
  dz = BlockSum(dz, shared);
  if (threadIdx.x == 0) {
    atomicAdd(dscale + c, ds * grad_factor);
    atomicAdd(dzero_point + c, dz * grad_factor);
  }
}

// Whether every index below n (and a grid stride past it) fits in int32_t.
bool FitsInt32(int64_t n) { return n + 65535LL * 16 * kThreads < 2147483647LL; }

}  // namespace

cudaError_t LaunchLsqForward(const float* x, const float* scale, const float* zero_point, const LsqShape& shape,
                             float* y, cudaStream_t stream) {
  const int64_t n = shape.outer * shape.channels * shape.inner;
  if (n == 0) return cudaSuccess;
  const int64_t blocks = (n + kThreads - 1) / kThreads;
  const unsigned grid = static_cast<unsigned>(blocks < 65535 * 16 ? blocks : 65535 * 16);
  if (FitsInt32(n)) {
    LsqForwardKernel<int32_t><<<grid, kThreads, 0, stream>>>(x, scale, zero_point, shape, y);
  } else {
    LsqForwardKernel<int64_t><<<grid, kThreads, 0, stream>>>(x, scale, zero_point, shape, y);
  }
  return cudaGetLastError();
}

cudaError_t LaunchLsqBackward(const float* dy, const float* x, const float* scale, const float* zero_point,
                              const LsqShape& shape, float grad_factor, float* dx, float* dscale, float* dzero_point,
                              cudaStream_t stream) {
  if (shape.channels == 0) return cudaSuccess;
  const size_t bytes = static_cast<size_t>(shape.channels) * sizeof(float);
  if (cudaError_t e = cudaMemsetAsync(dscale, 0, bytes, stream); e != cudaSuccess) return e;
  if (cudaError_t e = cudaMemsetAsync(dzero_point, 0, bytes, stream); e != cudaSuccess) return e;
  const int64_t per_channel = shape.outer * shape.inner;
  if (per_channel == 0) return cudaSuccess;
  int64_t splits = (per_channel + kElementsPerBlock - 1) / kElementsPerBlock;
  if (splits > 65535) splits = 65535;
  if (shape.channels > 2147483647LL) return cudaErrorInvalidValue;
  const dim3 grid(static_cast<unsigned>(shape.channels), static_cast<unsigned>(splits));
  if (FitsInt32(shape.outer * shape.channels * shape.inner)) {
    LsqBackwardKernel<int32_t><<<grid, kThreads, 0, stream>>>(dy, x, scale, zero_point, shape, grad_factor, dx,
                                                              dscale, dzero_point);
  } else {
    LsqBackwardKernel<int64_t><<<grid, kThreads, 0, stream>>>(dy, x, scale, zero_point, shape, grad_factor, dx,
                                                              dscale, dzero_point);
  }
  return cudaGetLastError();
}

}  // namespace slimfit::kernels
