// File: third_party/cuda_smoke/saxpy.h
// y = a * x + y on the GPU. Returns a cudaError_t value (0 = success).
#ifndef SLIMFIT_THIRD_PARTY_CUDA_SMOKE_SAXPY_H_
#define SLIMFIT_THIRD_PARTY_CUDA_SMOKE_SAXPY_H_

int SaxpyOnGpu(int n, float a, const float* x, float* y);

#endif  // SLIMFIT_THIRD_PARTY_CUDA_SMOKE_SAXPY_H_
