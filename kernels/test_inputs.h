// File: kernels/test_inputs.h
//
// Inputs the kernels' tests and benchmark share (testonly): weights shaped
// like a small CNN's, and LSQ cases whose scales put part of every channel
// outside the quantisation range, so both branches of the backward pass run.
#ifndef SLIMFIT_KERNELS_TEST_INPUTS_H_
#define SLIMFIT_KERNELS_TEST_INPUTS_H_

#include <ATen/ATen.h>

#include <string>
#include <vector>

#include "kernels/lsq_fake_quant.h"

namespace slimfit::kernels_test {

// 100 float32 weights (more than one launch's table holds): convs,
// depthwise convs, linears, a 1-D vector and one with no rows.
inline std::vector<at::Tensor> Weights(uint64_t seed) {
  at::manual_seed(seed);
  const std::vector<std::vector<int64_t>> shapes = {{16, 3, 3, 3}, {32, 1, 3, 3}, {10, 512},
                                                    {7},           {0, 4},        {64, 32, 1, 1}};
  std::vector<at::Tensor> out;
  for (int i = 0; i < 100; ++i) out.push_back(at::randn(shapes[i % shapes.size()]));
  return out;
}

struct LsqCase {
  std::string name;
  at::Tensor x, scale, zero_point;
  LsqParams params;
};

// A weight quantised per output channel (axis 0, symmetric) and an
// activation per channel (axis 1, asymmetric, zero points off the integer
// grid). Scales are a third of what would cover each channel's range, so
// part of every channel clips.
inline std::vector<LsqCase> LsqCases(uint64_t seed, int64_t batch = 4) {
  at::manual_seed(seed);
  std::vector<LsqCase> out;
  {
    at::Tensor w = at::randn({24, 8, 3, 3});
    at::Tensor scale = w.abs().flatten(1).amax(1) / (3 * 127.0);
    out.push_back(
        {"weight axis 0", w, scale, at::zeros({24}), LsqParams{0, -127, 127, 1.0 / std::sqrt(w.numel() * 127.0)}});
  }
  {
    at::Tensor a = at::randn({batch, 16, 10, 10}) * 2 + 0.5;
    at::Tensor scale = at::full({16}, 4.0 / (3 * 255.0)) * (1 + at::rand({16}));
    at::Tensor zp = at::rand({16}) * 60 + 100.3;
    out.push_back({"activation axis 1", a, scale, zp, LsqParams{1, 0, 255, 1.0 / std::sqrt(a.numel() * 255.0)}});
  }
  return out;
}

}  // namespace slimfit::kernels_test

#endif  // SLIMFIT_KERNELS_TEST_INPUTS_H_
