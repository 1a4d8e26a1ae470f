#include "kernels/channel_norms.h"

#include <ATen/ATen.h>
#include <c10/cuda/CUDAGuard.h>

#include <cmath>

#include "absl/strings/str_cat.h"
#include "common/status_macros.h"
#include "common/torch_status.h"
#include "kernels/cuda_kernels.h"
#include "kernels/cuda_launch.h"

namespace slimfit {
namespace {

absl::Status CheckWeights(const std::vector<at::Tensor>& weights) {
  if (weights.empty()) return absl::OkStatus();
  const c10::Device device = weights[0].defined() ? weights[0].device() : c10::Device(c10::kCPU);
  for (size_t i = 0; i < weights.size(); ++i) {
    RETURN_IF_ERROR(kernels::CheckFloatTensor(absl::StrCat("weights[", i, "]"), weights[i], device));
  }
  return absl::OkStatus();
}

// Elements per output channel of a weight viewed as [size(0), -1] (0 when
// it has no channels).
int64_t Cols(const at::Tensor& w) { return w.size(0) == 0 ? 0 : w.numel() / w.size(0); }

// The reference: one row at a time, left to right, in float32.
std::vector<at::Tensor> Reference(const std::vector<at::Tensor>& weights, ChannelNorm norm) {
  std::vector<at::Tensor> out;
  for (const at::Tensor& weight : weights) {
    const at::Tensor w = weight.contiguous();
    const int64_t rows = w.size(0);
    const int64_t cols = Cols(w);
    at::Tensor n = at::empty({rows}, w.options());
    const float* p = w.data_ptr<float>();
    float* q = n.data_ptr<float>();
    for (int64_t r = 0; r < rows; ++r) {
      float acc = 0.f;
      for (int64_t j = 0; j < cols; ++j) {
        const float v = p[r * cols + j];
        acc += norm == ChannelNorm::kL1 ? std::fabs(v) : v * v;
      }
      q[r] = norm == ChannelNorm::kL1 ? acc : std::sqrt(acc);
    }
    out.push_back(n);
  }
  return out;
}

absl::StatusOr<std::vector<at::Tensor>> OnCuda(const std::vector<at::Tensor>& weights, ChannelNorm norm) {
  const c10::Device device = weights[0].device();
  c10::cuda::CUDAGuard guard(device);
  std::vector<at::Tensor> contiguous;
  int64_t total = 0;
  for (const at::Tensor& w : weights) {
    contiguous.push_back(w.contiguous());
    total += w.size(0);
  }
  at::Tensor all = at::empty({total}, weights[0].options());
  const cudaStream_t stream = kernels::CurrentStream(device);
  int64_t first_row = 0;
  for (size_t start = 0; start < contiguous.size(); start += kernels::kMaxNormSegments) {
    kernels::NormSegments table;
    for (size_t i = start; i < contiguous.size() && table.count < kernels::kMaxNormSegments; ++i) {
      const at::Tensor& w = contiguous[i];
      kernels::NormSegment& s = table.segment[table.count++];
      s.weight = w.data_ptr<float>();
      s.rows = w.size(0);
      s.cols = Cols(w);
      s.first_row = table.total_rows;
      table.total_rows += s.rows;
    }
    RETURN_IF_ERROR(kernels::CudaStatus(
        kernels::LaunchChannelNorms(table, static_cast<int>(norm), all.data_ptr<float>() + first_row, stream),
        absl::StrCat("channel norms of weights[", start, "...]")));
    first_row += table.total_rows;
  }
  std::vector<at::Tensor> out;
  int64_t at_row = 0;
  for (const at::Tensor& w : contiguous) {
    out.push_back(all.narrow(0, at_row, w.size(0)));
    at_row += w.size(0);
  }
  return out;
}

}  // namespace

absl::StatusOr<std::vector<at::Tensor>> ChannelNorms(const std::vector<at::Tensor>& weights, ChannelNorm norm) {
  RETURN_IF_ERROR(CheckWeights(weights));
  if (weights.empty()) return std::vector<at::Tensor>{};
  if (weights[0].is_cuda()) return TorchCallOr("channel norms on CUDA", [&] { return OnCuda(weights, norm); });
  return TorchCallOr("channel norms", [&] { return Reference(weights, norm); });
}

absl::StatusOr<std::vector<at::Tensor>> ChannelNormsComposed(const std::vector<at::Tensor>& weights, ChannelNorm norm) {
  RETURN_IF_ERROR(CheckWeights(weights));
  return TorchCallOr("channel norms (LibTorch ops)", [&] {
    std::vector<at::Tensor> out;
    for (const at::Tensor& w : weights) {
      const at::Tensor flat = w.reshape({w.size(0), Cols(w)});
      out.push_back(norm == ChannelNorm::kL1 ? flat.abs().sum(1) : flat.norm(2, 1));
    }
    return out;
  });
}

}  // namespace slimfit
