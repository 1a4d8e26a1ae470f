// The kernels' CPU references against PyTorch's own ops (the golden), and
// their argument errors. The CUDA kernels against these references:
// kernels_gpu_test.cc (tagged gpu).
#include <ATen/ATen.h>

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

TEST(ChannelNormsTest, TheReferenceMatchesLibTorchsReductions) {
  const std::vector<at::Tensor> weights = kernels_test::Weights(1);
  for (ChannelNorm norm : {ChannelNorm::kL1, ChannelNorm::kL2}) {
    ASSERT_OK_AND_ASSIGN(std::vector<at::Tensor> ours, ChannelNorms(weights, norm));
    ASSERT_OK_AND_ASSIGN(std::vector<at::Tensor> torch_ops, ChannelNormsComposed(weights, norm));
    ASSERT_EQ(ours.size(), weights.size());
    for (size_t i = 0; i < weights.size(); ++i) {
      ASSERT_EQ(ours[i].sizes(), at::IntArrayRef({weights[i].size(0)})) << i;
      EXPECT_TRUE(at::allclose(ours[i], torch_ops[i], 1e-5, 1e-6)) << "weight " << i << " norm " << int(norm);
    }
  }
}

TEST(ChannelNormsTest, NoWeightsNoNorms) {
  ASSERT_OK_AND_ASSIGN(std::vector<at::Tensor> out, ChannelNorms({}, ChannelNorm::kL1));
  EXPECT_TRUE(out.empty());
}

TEST(ChannelNormsTest, NamesTheWeightThatIsNotFloatOrElsewhere) {
  EXPECT_THAT(ChannelNorms({at::randn({4, 3}), at::randn({4, 3}, at::kDouble)}, ChannelNorm::kL1),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("weights[1]: not float32, got Double")));
  EXPECT_THAT(ChannelNorms({at::randn({4, 3}), at::empty({4, 3}, at::Device("meta"))}, ChannelNorm::kL2),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("weights[1]: on another device, got meta")));
  EXPECT_THAT(ChannelNorms({at::ones({})}, ChannelNorm::kL2),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("weights[0]: too few dimensions, got 0")));
}

TEST(LsqFakeQuantTest, TheForwardReferenceEqualsPyTorchs) {
  for (const kernels_test::LsqCase& c : kernels_test::LsqCases(2)) {
    ASSERT_OK_AND_ASSIGN(at::Tensor ours, LsqFakeQuantize(c.x, c.scale, c.zero_point, c.params));
    ASSERT_OK_AND_ASSIGN(at::Tensor torch_op, LsqFakeQuantizeComposed(c.x, c.scale, c.zero_point, c.params));
    EXPECT_TRUE(at::allclose(ours, torch_op, 0, 1e-6))
        << c.name << ": max diff " << (ours - torch_op).abs().max().item<float>();
    EXPECT_FALSE(at::equal(ours, c.x)) << c.name << ": nothing was quantised";
  }
}

TEST(LsqFakeQuantTest, TheBackwardReferenceMatchesPyTorchs) {
  for (const kernels_test::LsqCase& c : kernels_test::LsqCases(3)) {
    const at::Tensor dy = at::randn(c.x.sizes());
    ASSERT_OK_AND_ASSIGN(LsqGradients ours, LsqFakeQuantizeBackward(dy, c.x, c.scale, c.zero_point, c.params));
    ASSERT_OK_AND_ASSIGN(LsqGradients torch_op,
                         LsqFakeQuantizeBackwardComposed(dy, c.x, c.scale, c.zero_point, c.params));
    // Both branches ran: part of x clipped (dx = 0) and part passed through.
    const double clipped = ours.dx.eq(0).to(at::kDouble).mean().item<double>();
    EXPECT_GT(clipped, 0.05) << c.name;
    EXPECT_LT(clipped, 0.95) << c.name;
    EXPECT_TRUE(at::equal(ours.dx, torch_op.dx)) << c.name;
    ASSERT_EQ(ours.dscale.sizes(), torch_op.dscale.sizes()) << c.name;
    ASSERT_EQ(ours.dzero_point.sizes(), torch_op.dzero_point.sizes()) << c.name;
    const double ds_tol = 1e-4 * torch_op.dscale.abs().max().item<double>();
    const double dz_tol = 1e-4 * torch_op.dzero_point.abs().max().item<double>();
    EXPECT_TRUE(at::allclose(ours.dscale, torch_op.dscale, 1e-4, ds_tol))
        << c.name << ": max diff " << (ours.dscale - torch_op.dscale).abs().max().item<float>();
    EXPECT_TRUE(at::allclose(ours.dzero_point, torch_op.dzero_point, 1e-4, dz_tol))
        << c.name << ": max diff " << (ours.dzero_point - torch_op.dzero_point).abs().max().item<float>();
  }
}

TEST(LsqFakeQuantTest, NamesTheBadArgument) {
  const at::Tensor x = at::randn({4, 3}), s = at::full({4}, 0.1), z = at::zeros({4});
  EXPECT_THAT(LsqFakeQuantize(x.to(at::kDouble), s, z, {}),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("x: not float32")));
  EXPECT_THAT(
      LsqFakeQuantize(x, s, z, {.axis = 2}),
      StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("axis: not a dimension of x, got 2; valid: [0, 2)")));
  EXPECT_THAT(
      LsqFakeQuantize(x, at::full({3}, 0.1), z, {}),
      StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("scale: not one value per channel, got [3]; valid: [4]")));
  EXPECT_THAT(LsqFakeQuantize(x, s, z, {.quant_min = 5, .quant_max = 5}),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("quant_min: not below quant_max")));
  EXPECT_THAT(LsqFakeQuantizeBackward(at::randn({4, 4}), x, s, z, {}),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("dy: not x's shape, got [4, 4]; valid: [4, 3]")));
  EXPECT_THAT(LsqFakeQuantizeBackward(at::randn({4, 3}), x, s, z, {.grad_factor = NAN}),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("grad_factor: not finite")));
}

}  // namespace
}  // namespace slimfit
