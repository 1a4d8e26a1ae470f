#include "model/zoo/zoo.h"

#include <ATen/ATen.h>
#include <torch/csrc/autograd/autograd.h>
#include <torch/csrc/jit/api/module.h>

#include "common/status_matchers.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace slimfit {
namespace {

using ::slimfit::testing::StatusIs;
using ::testing::ElementsAre;
using ::testing::HasSubstr;

at::Tensor Forward(Model& m, const at::Tensor& x) {
  return m.module().forward({x}).toTensor();
}

struct Shape {
  int64_t c, h, w, classes;
};

ZooOptions OptionsFor(const Shape& s) {
  ZooOptions o;
  o.in_channels = s.c;
  o.height = s.h;
  o.width = s.w;
  o.num_classes = s.classes;
  return o;
}

class ZooModelTest : public ::testing::TestWithParam<std::tuple<std::string, Shape>> {};

TEST_P(ZooModelTest, ForwardGivesLogitsForEachSample) {
  const auto& [name, s] = GetParam();
  ASSERT_OK_AND_ASSIGN(Model m, CreateZooModel(name, OptionsFor(s)));
  m.Eval();
  at::Tensor y = Forward(m, at::randn({3, s.c, s.h, s.w}));
  EXPECT_THAT(y.sizes().vec(), ElementsAre(3, s.classes));
  EXPECT_TRUE(at::isfinite(y).all().item<bool>());
  EXPECT_EQ(m.metadata().name(), name);
  EXPECT_EQ(m.metadata().num_classes(), s.classes);
  EXPECT_THAT(FirstInputShape(m.metadata()), ElementsAre(1, s.c, s.h, s.w));
}

TEST_P(ZooModelTest, EveryParameterGetsAGradient) {
  const auto& [name, s] = GetParam();
  ASSERT_OK_AND_ASSIGN(Model m, CreateZooModel(name, OptionsFor(s)));
  m.Train();
  at::Tensor loss = Forward(m, at::randn({4, s.c, s.h, s.w})).pow(2).mean();
  loss.backward();
  for (const auto& [pname, p] : m.NamedParameters()) {
    ASSERT_TRUE(p.grad().defined()) << name << ": no grad for " << pname;
    EXPECT_GT(p.grad().abs().sum().item<double>(), 0.0) << name << ": zero grad for " << pname;
  }
}

TEST_P(ZooModelTest, SameSeedSameWeightsOtherSeedOtherWeights) {
  const auto& [name, s] = GetParam();
  ZooOptions o = OptionsFor(s);
  ASSERT_OK_AND_ASSIGN(Model a, CreateZooModel(name, o));
  ASSERT_OK_AND_ASSIGN(Model b, CreateZooModel(name, o));
  o.seed = 7;
  ASSERT_OK_AND_ASSIGN(Model c, CreateZooModel(name, o));
  auto pa = a.NamedParameters(), pb = b.NamedParameters(), pc = c.NamedParameters();
  ASSERT_EQ(pa.size(), pb.size());
  bool any_differs = false;
  for (size_t i = 0; i < pa.size(); ++i) {
    EXPECT_EQ(pa[i].first, pb[i].first);
    EXPECT_TRUE(pa[i].second.equal(pb[i].second)) << pa[i].first;
    any_differs |= !pa[i].second.equal(pc[i].second);
  }
  EXPECT_TRUE(any_differs);
}

class ZooBatchNormModelTest : public ZooModelTest {};

TEST_P(ZooBatchNormModelTest, TrainModeUpdatesBatchNormStatisticsEvalDoesNot) {
  const auto& [name, s] = GetParam();
  ASSERT_OK_AND_ASSIGN(Model m, CreateZooModel(name, OptionsFor(s)));
  ASSERT_FALSE(m.NamedBuffers().empty()) << name << " has no batch norm";
  const at::Tensor x = at::randn({4, s.c, s.h, s.w}) * 3 + 1;
  const at::Tensor before = m.NamedBuffers()[0].second.clone();
  m.Eval();
  Forward(m, x);
  EXPECT_TRUE(m.NamedBuffers()[0].second.equal(before));
  m.Train();
  Forward(m, x);
  EXPECT_FALSE(m.NamedBuffers()[0].second.equal(before));
}

INSTANTIATE_TEST_SUITE_P(
    AllModels, ZooModelTest,
    ::testing::Combine(::testing::Values("lenet5", "vgg_small", "resnet_small",
                                         "mobilenetv2_small"),
                       ::testing::Values(Shape{1, 28, 28, 10}, Shape{3, 32, 32, 100})),
    [](const auto& info) {
      return std::get<0>(info.param) + "_" + std::to_string(std::get<1>(info.param).h);
    });

// lenet5 has no batch norm.
INSTANTIATE_TEST_SUITE_P(
    ModelsWithBatchNorm, ZooBatchNormModelTest,
    ::testing::Combine(::testing::Values("vgg_small", "resnet_small", "mobilenetv2_small"),
                       ::testing::Values(Shape{1, 28, 28, 10}, Shape{3, 32, 32, 100})),
    [](const auto& info) {
      return std::get<0>(info.param) + "_" + std::to_string(std::get<1>(info.param).h);
    });

TEST(ZooTest, LeNet5ParameterCountMatchesHandCount) {
  ASSERT_OK_AND_ASSIGN(Model m, CreateZooModel("lenet5"));
  // LeNet-5 (LeCun et al. 1998) on 28x28 with padding 2: 5x5 convolutions of
  // 1 -> 6 and 6 -> 16 channels, then 16*5*5 -> 120 -> 84 -> 10; weights plus biases.
  auto conv = [](int64_t in, int64_t out, int64_t k) { return in * out * k * k + out; };
  auto linear = [](int64_t in, int64_t out) { return in * out + out; };
  EXPECT_EQ(m.NumParameters(),
            conv(1, 6, 5) + conv(6, 16, 5) + linear(16 * 5 * 5, 120) + linear(120, 84) + linear(84, 10));
}

TEST(ZooTest, ResNetSmallHasResidualStagesAndDownsampleShortcuts) {
  ASSERT_OK_AND_ASSIGN(Model m, CreateZooModel("resnet_small"));
  std::vector<std::string> names;
  for (const auto& [n, p] : m.NamedParameters()) names.push_back(n);
  EXPECT_THAT(names, ::testing::Contains("layer2.b0.downsample.conv.weight"));
  EXPECT_THAT(names, ::testing::Contains("layer3.b1.conv2.weight"));
  EXPECT_THAT(names, ::testing::Not(::testing::Contains("layer1.b0.downsample.conv.weight")));
}

TEST(ZooTest, MobileNetV2SmallUsesDepthwiseConvolutions) {
  ASSERT_OK_AND_ASSIGN(Model m, CreateZooModel("mobilenetv2_small"));
  for (const auto& [n, p] : m.NamedParameters()) {
    if (n == "block1.dw_conv.weight") {
      EXPECT_EQ(p.size(1), 1) << "depthwise: one input channel per group";
      EXPECT_EQ(p.size(0), 64);  // 16 channels * expansion 4
      return;
    }
  }
  FAIL() << "block1.dw_conv.weight not found";
}

TEST(ZooTest, WidthMultiplierScalesChannels) {
  ZooOptions o;
  o.width_multiplier = 0.5;
  ASSERT_OK_AND_ASSIGN(Model m, CreateZooModel("vgg_small", o));
  EXPECT_EQ(m.NamedParameters()[0].second.size(0), 16);
}

TEST(ZooTest, UnknownNameListsTheZoo) {
  EXPECT_THAT(CreateZooModel("resnet50"),
              StatusIs(absl::StatusCode::kNotFound,
                       "not a registered zoo model, got \"resnet50\"; valid: lenet5, mobilenetv2_small, "
                       "resnet_small, vgg_small"));
}

TEST(ZooTest, BadOptionsNameTheField) {
  ZooOptions o;
  o.num_classes = 0;
  EXPECT_THAT(CreateZooModel("lenet5", o),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("zoo.num_classes: out of range, got 0; valid: [1, 1048576]")));
  o = ZooOptions();
  o.height = 6;
  EXPECT_THAT(
      CreateZooModel("lenet5", o),
      StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("zoo.height: too small for lenet5, got 6; valid: >= 12")));
  o = ZooOptions();
  o.width_multiplier = -1;
  EXPECT_THAT(CreateZooModel("resnet_small", o),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("zoo.width_multiplier: out of range, got -1; valid: (0, 16]")));
}

}  // namespace
}  // namespace slimfit
