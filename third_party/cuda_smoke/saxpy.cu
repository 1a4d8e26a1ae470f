#include "third_party/cuda_smoke/saxpy.h"

#include <cuda_runtime.h>

namespace {
__global__ void Saxpy(int n, float a, const float* x, float* y) {
  const int i = blockIdx.x * blockDim.x + threadIdx.x;
  if (i < n) y[i] = a * x[i] + y[i];
}
}  // namespace

int SaxpyOnGpu(int n, float a, const float* x, float* y) {
  float *dx = nullptr, *dy = nullptr;
  cudaError_t e = cudaMalloc(&dx, n * sizeof(float));
  if (e == cudaSuccess) e = cudaMalloc(&dy, n * sizeof(float));
  if (e == cudaSuccess) e = cudaMemcpy(dx, x, n * sizeof(float), cudaMemcpyHostToDevice);
  if (e == cudaSuccess) e = cudaMemcpy(dy, y, n * sizeof(float), cudaMemcpyHostToDevice);
  if (e == cudaSuccess) {
    Saxpy<<<(n + 255) / 256, 256>>>(n, a, dx, dy);
    e = cudaGetLastError();
  }
  if (e == cudaSuccess) e = cudaMemcpy(y, dy, n * sizeof(float), cudaMemcpyDeviceToHost);
  cudaFree(dx);
  cudaFree(dy);
  return static_cast<int>(e);
}
