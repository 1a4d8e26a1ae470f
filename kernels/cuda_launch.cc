#include "kernels/cuda_launch.h"

#include <c10/cuda/CUDAStream.h>

#include "absl/strings/str_cat.h"
#include "common/field_error.h"

namespace slimfit::kernels {

absl::Status CheckFloatTensor(absl::string_view field, const at::Tensor& t, const c10::Device& device,
                              int64_t min_dim) {
  if (!t.defined()) return FieldError(field, "undefined tensor", "none", "a float32 tensor");
  if (t.scalar_type() != at::kFloat) {
    return FieldError(field, "not float32", c10::toString(t.scalar_type()), "Float (float32)");
  }
  if (t.dim() < min_dim) {
    return FieldError(field, "too few dimensions", t.dim(), absl::StrCat(">= ", min_dim));
  }
  if (t.device() != device) {
    return FieldError(field, "on another device", t.device().str(), device.str());
  }
  return absl::OkStatus();
}

cudaStream_t CurrentStream(const c10::Device& device) {
  return c10::cuda::getCurrentCUDAStream(device.index()).stream();
}

absl::Status CudaStatus(cudaError_t error, absl::string_view what) {
  if (error == cudaSuccess) return absl::OkStatus();
  return absl::InternalError(absl::StrCat(what, ": ", cudaGetErrorName(error), " (", cudaGetErrorString(error), ")"));
}

}  // namespace slimfit::kernels
