// Runs the saxpy kernel and checks it; exits 0 with a note when no GPU.
#include <cuda_runtime.h>

#include <cmath>
#include <cstdio>
#include <vector>

#include "third_party/cuda_smoke/saxpy.h"

int main() {
  int devices = 0;
  if (cudaGetDeviceCount(&devices) != cudaSuccess || devices == 0) {
    std::printf("cuda_smoke: built and linked; no CUDA device here, kernel not run\n");
    return 0;
  }
  const int n = 1 << 20;
  std::vector<float> x(n, 2.0f), y(n, 1.0f);
  const int err = SaxpyOnGpu(n, 3.0f, x.data(), y.data());
  if (err != 0) {
    std::printf("cuda_smoke: CUDA error %d: %s\n", err, cudaGetErrorString(static_cast<cudaError_t>(err)));
    return 1;
  }
  for (int i = 0; i < n; ++i) {
    if (std::fabs(y[i] - 7.0f) > 1e-6f) {
      std::printf("cuda_smoke: y[%d] = %f, expected 7\n", i, y[i]);
      return 1;
    }
  }
  std::printf("cuda_smoke: saxpy on %d elements correct on %d device(s)\n", n, devices);
  return 0;
}
