// The CUDA kernels against their CPU references (kernels_test.cc checks
// those against PyTorch) and against PyTorch's own ops on the same device.
// Tagged gpu: it fails, never skips, without a CUDA device.
#include <ATen/ATen.h>
#include <ATen/Context.h>

#include "common/status_matchers.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "kernels/channel_norms.h"
#include "kernels/lsq_fake_quant.h"
#include "kernels/test_inputs.h"

namespace slimfit {
namespace {

using ::slimfit::testing::StatusIs;
using ::testing::HasSubstr;

class KernelsGpuTest : public ::testing::Test {
 protected:
  void SetUp() override { ASSERT_TRUE(at::hasCUDA()) << "this test needs a CUDA device (tag gpu)"; }
  static at::Tensor Cuda(const at::Tensor& t) { return t.to(at::Device("cuda")); }
};

TEST_F(KernelsGpuTest, ChannelNormsMatchTheReferenceAndLibTorch) {
  const std::vector<at::Tensor> weights = kernels_test::Weights(4);
  std::vector<at::Tensor> on_gpu;
  for (const at::Tensor& w : weights) on_gpu.push_back(Cuda(w));
  for (ChannelNorm norm : {ChannelNorm::kL1, ChannelNorm::kL2}) {
    ASSERT_OK_AND_ASSIGN(std::vector<at::Tensor> reference, ChannelNorms(weights, norm));
    ASSERT_OK_AND_ASSIGN(std::vector<at::Tensor> kernel, ChannelNorms(on_gpu, norm));
    ASSERT_OK_AND_ASSIGN(std::vector<at::Tensor> torch_ops, ChannelNormsComposed(on_gpu, norm));
    ASSERT_EQ(kernel.size(), weights.size());
    for (size_t i = 0; i < weights.size(); ++i) {
      EXPECT_TRUE(kernel[i].is_cuda()) << i;
      EXPECT_TRUE(at::allclose(kernel[i].cpu(), reference[i], 1e-5, 1e-5)) << "weight " << i;
      EXPECT_TRUE(at::allclose(kernel[i], torch_ops[i], 1e-5, 1e-5)) << "weight " << i;
    }
  }
}

TEST_F(KernelsGpuTest, LsqForwardMatchesTheReferenceAndPyTorch) {
  for (const kernels_test::LsqCase& c : kernels_test::LsqCases(5, /*batch=*/64)) {
    ASSERT_OK_AND_ASSIGN(at::Tensor reference, LsqFakeQuantize(c.x, c.scale, c.zero_point, c.params));
    ASSERT_OK_AND_ASSIGN(at::Tensor kernel, LsqFakeQuantize(Cuda(c.x), Cuda(c.scale), Cuda(c.zero_point), c.params));
    ASSERT_OK_AND_ASSIGN(at::Tensor torch_op,
                         LsqFakeQuantizeComposed(Cuda(c.x), Cuda(c.scale), Cuda(c.zero_point), c.params));
    EXPECT_TRUE(at::allclose(kernel.cpu(), reference, 0, 1e-6)) << c.name;
    EXPECT_TRUE(at::allclose(kernel, torch_op, 0, 1e-6)) << c.name;
  }
}

TEST_F(KernelsGpuTest, LsqBackwardMatchesTheReferenceAndPyTorch) {
  // batch 64: the activation's channels take several blocks each, whose
  // partial sums meet in atomic adds.
  for (const kernels_test::LsqCase& c : kernels_test::LsqCases(6, /*batch=*/64)) {
    const at::Tensor dy = at::randn(c.x.sizes());
    ASSERT_OK_AND_ASSIGN(LsqGradients reference, LsqFakeQuantizeBackward(dy, c.x, c.scale, c.zero_point, c.params));
    ASSERT_OK_AND_ASSIGN(LsqGradients kernel,
                         LsqFakeQuantizeBackward(Cuda(dy), Cuda(c.x), Cuda(c.scale), Cuda(c.zero_point), c.params));
    ASSERT_OK_AND_ASSIGN(LsqGradients torch_op, LsqFakeQuantizeBackwardComposed(Cuda(dy), Cuda(c.x), Cuda(c.scale),
                                                                                Cuda(c.zero_point), c.params));
    EXPECT_TRUE(at::equal(kernel.dx.cpu(), reference.dx)) << c.name;
    EXPECT_TRUE(at::equal(kernel.dx, torch_op.dx)) << c.name;
    for (const auto& [name, k, r, t] :
         {std::tuple<const char*, at::Tensor, at::Tensor, at::Tensor>{"dscale", kernel.dscale, reference.dscale,
                                                                      torch_op.dscale},
          {"dzero_point", kernel.dzero_point, reference.dzero_point, torch_op.dzero_point}}) {
      const double tol = 1e-4 * r.abs().max().item<double>();
      EXPECT_TRUE(at::allclose(k.cpu(), r, 1e-4, tol)) << c.name << " " << name;
      EXPECT_TRUE(at::allclose(k.cpu(), t.cpu(), 1e-4, tol)) << c.name << " " << name;
    }
  }
}

TEST_F(KernelsGpuTest, TensorsOnTwoDevicesAreAnError) {
  const at::Tensor x = Cuda(at::randn({4, 3}));
  EXPECT_THAT(LsqFakeQuantize(x, at::full({4}, 0.1), Cuda(at::zeros({4})), {}),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("scale: on another device, got cpu")));
  EXPECT_THAT(ChannelNorms({x, at::randn({2, 2})}, ChannelNorm::kL1),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("weights[1]: on another device, got cpu")));
}

}  // namespace
}  // namespace slimfit
