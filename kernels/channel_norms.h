// File: kernels/channel_norms.h
//
// Per-output-channel norms of many weights at once — the score magnitude
// pruners rank channels by (L1: sum |w|, L2: sqrt(sum w^2), over every dim
// but the first), for every prunable layer of a model in one call.
//
//   ASSIGN_OR_RETURN(std::vector<at::Tensor> norms, ChannelNorms(weights, ChannelNorm::kL1));
//   // norms[i]: float32 [weights[i].size(0)], on the weights' device
//
// On a CUDA device it is one kernel launch for up to kMaxNormSegments (96)
// weights (kernels/cuda_kernels.h) where LibTorch's ops take one reduction
// per weight; on the CPU it is the reference, a plain loop with the same
// arithmetic. ChannelNormsComposed is the same built from LibTorch ops (one
// reduction per weight): what the kernel is tested and benchmarked against
// (//kernels:kernels_benchmark).
//
// Every weight must be float32 with at least one dim, all on one device;
// otherwise InvalidArgument naming "weights[i]". A CUDA failure is Internal.
// Sums are in float32 in either order, so the CPU and the GPU agree to float
// rounding, not bit for bit.
#ifndef SLIMFIT_KERNELS_CHANNEL_NORMS_H_
#define SLIMFIT_KERNELS_CHANNEL_NORMS_H_

#include <ATen/core/Tensor.h>

#include <vector>

#include "absl/status/statusor.h"

namespace slimfit {

enum class ChannelNorm { kL1 = 1, kL2 = 2 };

absl::StatusOr<std::vector<at::Tensor>> ChannelNorms(const std::vector<at::Tensor>& weights, ChannelNorm norm);

// The same from LibTorch's ops (abs().sum(1) or norm(2, 1) of each weight
// flattened to 2-D), on whatever device the weights are.
absl::StatusOr<std::vector<at::Tensor>> ChannelNormsComposed(const std::vector<at::Tensor>& weights, ChannelNorm norm);

}  // namespace slimfit

#endif  // SLIMFIT_KERNELS_CHANNEL_NORMS_H_
