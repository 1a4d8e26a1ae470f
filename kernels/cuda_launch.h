// File: kernels/cuda_launch.h
//
// What the kernels' wrappers share (internal to //kernels): checking that a
// tensor is what a kernel takes, the stream LibTorch is using on a device,
// and a CUDA error as a Status.
#ifndef SLIMFIT_KERNELS_CUDA_LAUNCH_H_
#define SLIMFIT_KERNELS_CUDA_LAUNCH_H_

#include <ATen/core/Tensor.h>
#include <cuda_runtime_api.h>

#include <string>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"

namespace slimfit::kernels {

// OK when `t` is defined, float32, has at least `min_dim` dims and sits on
// `device`; else InvalidArgument "<field>: <problem>, got ...; valid: ...".
absl::Status CheckFloatTensor(absl::string_view field, const at::Tensor& t, const c10::Device& device,
                              int64_t min_dim = 1);

// LibTorch's current stream on `device` (a CUDA device), as CUDA's handle.
cudaStream_t CurrentStream(const c10::Device& device);

// OK for cudaSuccess, else Internal "<what>: <CUDA's message>".
absl::Status CudaStatus(cudaError_t error, absl::string_view what);

}  // namespace slimfit::kernels

#endif  // SLIMFIT_KERNELS_CUDA_LAUNCH_H_
