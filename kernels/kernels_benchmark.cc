// bazel run //kernels:kernels_benchmark (needs a CUDA device; tags benchmark,
// gpu): each CUDA kernel against the same computation composed from
// LibTorch's ops, on the same inputs, timed until the device has finished.
// Prints one row per case: microseconds per call for each, and LibTorch's
// time over the kernel's (above 1: the kernel is faster). A kernel is kept in
// use only where that ratio is above 1 on the device it will run on (issue
// 19; docs/gpu.md records the figures).
#include <ATen/ATen.h>
#include <ATen/Context.h>
#include <cuda_runtime_api.h>

#include <chrono>
#include <cstdio>
#include <functional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "kernels/channel_norms.h"
#include "kernels/lsq_fake_quant.h"

namespace slimfit {
namespace {

// Median microseconds of `runs` calls, each synchronised.
double Micros(const std::function<absl::Status()>& call, int runs = 200) {
  for (int i = 0; i < 10; ++i) (void)call();
  cudaDeviceSynchronize();
  std::vector<double> us;
  for (int i = 0; i < runs; ++i) {
    const auto start = std::chrono::steady_clock::now();
    const absl::Status s = call();
    cudaDeviceSynchronize();
    us.push_back(std::chrono::duration<double, std::micro>(std::chrono::steady_clock::now() - start).count());
    if (!s.ok()) {
      std::fprintf(stderr, "%s\n", s.ToString().c_str());
      std::exit(1);
    }
  }
  std::nth_element(us.begin(), us.begin() + us.size() / 2, us.end());
  return us[us.size() / 2];
}

void Row(const std::string& what, double ours, double torch_ops) {
  std::printf("%-58s %10.1f %10.1f %8.2fx\n", what.c_str(), ours, torch_ops, torch_ops / ours);
}

int Main() {
  if (!at::hasCUDA()) {
    std::fprintf(stderr, "kernels_benchmark: no CUDA device is visible to this process\n");
    return 1;
  }
  const at::Device cuda("cuda");
  std::printf("%-58s %10s %10s %9s\n", "case", "kernel us", "LibTorch us", "ratio");
  // Channel norms over the convolutions of a ResNet-50 (53 weights).
  std::vector<at::Tensor> weights;
  weights.push_back(at::randn({64, 3, 7, 7}, cuda));
  const int widths[] = {64, 128, 256, 512}, blocks[] = {3, 4, 6, 3};
  int64_t in = 64;
  for (int stage = 0; stage < 4; ++stage) {
    const int64_t w = widths[stage];
    for (int b = 0; b < blocks[stage]; ++b) {
      weights.push_back(at::randn({w, in, 1, 1}, cuda));
      weights.push_back(at::randn({w, w, 3, 3}, cuda));
      weights.push_back(at::randn({4 * w, w, 1, 1}, cuda));
      if (b == 0) weights.push_back(at::randn({4 * w, in, 1, 1}, cuda));
      in = 4 * w;
    }
  }
  for (ChannelNorm norm : {ChannelNorm::kL1, ChannelNorm::kL2}) {
    const std::string name = std::string("channel norms ") + (norm == ChannelNorm::kL1 ? "L1" : "L2") +
                             ", ResNet-50's " + std::to_string(weights.size()) + " convs";
    Row(name, Micros([&] { return ChannelNorms(weights, norm).status(); }),
        Micros([&] { return ChannelNormsComposed(weights, norm).status(); }));
  }
  // LSQ: a conv weight per output channel, activations per channel.
  struct Case {
    std::string name;
    std::vector<int64_t> shape;
    LsqParams params;
  };
  const std::vector<Case> cases = {
      {"LSQ weight [512, 512, 3, 3], axis 0", {512, 512, 3, 3}, {0, -127, 127, 1e-3}},
      {"LSQ activation [128, 64, 56, 56], axis 1", {128, 64, 56, 56}, {1, 0, 255, 1e-4}},
      {"LSQ activation [256, 256, 14, 14], axis 1", {256, 256, 14, 14}, {1, 0, 255, 1e-4}},
  };
  for (const Case& c : cases) {
    const at::Tensor x = at::randn(c.shape, cuda), dy = at::randn(c.shape, cuda);
    const int64_t channels = c.shape[c.params.axis];
    const at::Tensor scale = at::full({channels}, 3.0 / c.params.quant_max, cuda);
    const at::Tensor zp = at::full({channels}, c.params.quant_min < 0 ? 0.0 : 128.0, cuda);
    Row(c.name + " forward", Micros([&] { return LsqFakeQuantize(x, scale, zp, c.params).status(); }),
        Micros([&] { return LsqFakeQuantizeComposed(x, scale, zp, c.params).status(); }));
    Row(c.name + " backward", Micros([&] { return LsqFakeQuantizeBackward(dy, x, scale, zp, c.params).status(); }),
        Micros([&] { return LsqFakeQuantizeBackwardComposed(dy, x, scale, zp, c.params).status(); }));
  }
  return 0;
}

}  // namespace
}  // namespace slimfit

int main() { return slimfit::Main(); }
