// LaunchChannelNorms (kernels/cuda_kernels.h): one warp per output channel of
// every weight in the table, one launch.
#include "kernels/cuda_kernels.h"

namespace slimfit::kernels {
namespace {

constexpr int kWarpsPerBlock = 8;

__global__ void ChannelNormsKernel(const NormSegments segments, int kind, float* out) {
  const int64_t row = (static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x) / 32;
  const int lane = threadIdx.x % 32;
  if (row >= segments.total_rows) return;  // the whole warp: row is per warp
  // The last segment starting at or before `row` (empty segments share their
  // first_row with the next one, which this picks).
  int lo = 0, hi = segments.count - 1;
  while (lo < hi) {
    const int mid = (lo + hi + 1) / 2;
    if (segments.segment[mid].first_row <= row) {
      lo = mid;
    } else {
      hi = mid - 1;
    }
  }
  const NormSegment& s = segments.segment[lo];
  const float* w = s.weight + (row - s.first_row) * s.cols;
  float acc = 0.f;
  for (int64_t j = lane; j < s.cols; j += 32) {
    const float v = w[j];
    acc += kind == 1 ? fabsf(v) : v * v;
  }
  for (int offset = 16; offset > 0; offset /= 2) acc += __shfl_down_sync(0xffffffffu, acc, offset);
  if (lane == 0) out[row] = kind == 1 ? acc : sqrtf(acc);
}

}  // namespace

cudaError_t LaunchChannelNorms(const NormSegments& segments, int kind, float* out, cudaStream_t stream) {
  if (segments.total_rows == 0) return cudaSuccess;
  const int64_t blocks = (segments.total_rows + kWarpsPerBlock - 1) / kWarpsPerBlock;
  ChannelNormsKernel<<<static_cast<unsigned>(blocks), kWarpsPerBlock * 32, 0, stream>>>(segments, kind, out);
  return cudaGetLastError();
}

}  // namespace slimfit::kernels
