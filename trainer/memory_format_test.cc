#include "trainer/memory_format.h"

#include <ATen/ATen.h>
#include <gtest/gtest.h>
#include <torch/csrc/jit/api/module.h>

#include <map>
#include <string>

#include "common/status_matchers.h"
#include "model/test_models.h"
#include "model/zoo/zoo.h"

namespace slimfit {
namespace {

// Every parameter's values, copied (contiguous) for comparison.
std::map<std::string, at::Tensor> Values(Model& m) {
  std::map<std::string, at::Tensor> v;
  for (auto& [name, p] : m.NamedParameters()) v[name] = p.detach().clone(at::MemoryFormat::Contiguous);
  return v;
}

Model LinearOnly() {
  return testing::ScriptedTestModel("LinearOnly",
                                    "def forward(self, x: Tensor) -> Tensor:\n"
                                    "    return torch.linear(x, self.w, self.b)\n",
                                    {{"w", at::randn({3, 4})}, {"b", at::zeros({3})}});
}

TEST(ChooseWeightFormat, AutoIsChannelsLastForConvolutionsOnTheCpu) {
  ASSERT_OK_AND_ASSIGN(Model resnet, CreateZooModel("resnet_small"));
  EXPECT_EQ(ChooseWeightFormat(TrainerConfig::MEMORY_FORMAT_AUTO, resnet), at::MemoryFormat::ChannelsLast);
  Model linear = LinearOnly();
  EXPECT_EQ(ChooseWeightFormat(TrainerConfig::MEMORY_FORMAT_AUTO, linear), at::MemoryFormat::Contiguous);
}

TEST(ChooseWeightFormat, ExplicitChoicesAreKept) {
  ASSERT_OK_AND_ASSIGN(Model resnet, CreateZooModel("resnet_small"));
  EXPECT_EQ(ChooseWeightFormat(TrainerConfig::CONTIGUOUS, resnet), at::MemoryFormat::Contiguous);
  Model linear = LinearOnly();
  EXPECT_EQ(ChooseWeightFormat(TrainerConfig::CHANNELS_LAST, linear), at::MemoryFormat::ChannelsLast);
}

TEST(WeightLayout, ChangesTheSameTensorsInPlaceAndPutsThemBack) {
  ASSERT_OK_AND_ASSIGN(Model model, CreateZooModel("resnet_small"));
  const auto before = Values(model);
  // The weights whose NCHW and NHWC layouts differ (derived here: 1x1
  // kernels and single-channel inputs are laid out the same either way).
  std::map<std::string, at::Tensor> held;
  for (auto& [name, p] : model.NamedParameters()) {
    if (p.dim() == 4 && !p.is_contiguous(at::MemoryFormat::ChannelsLast)) held[name] = p;
  }
  ASSERT_GE(held.size(), 10u) << "resnet_small has 3x3 convolutions of 16+ channels";
  {
    WeightLayout layout;
    ASSERT_OK(layout.Apply(model, at::MemoryFormat::ChannelsLast));
    EXPECT_EQ(layout.changed(), static_cast<int>(held.size()));
    EXPECT_EQ(layout.current(), at::MemoryFormat::ChannelsLast);
    // The tensors held before Apply see the change: optimizers and hooks stay valid.
    for (auto& [name, p] : held) {
      EXPECT_TRUE(p.is_contiguous(at::MemoryFormat::ChannelsLast)) << name;
      EXPECT_FALSE(p.is_contiguous()) << name;
      EXPECT_TRUE(p.requires_grad()) << name;
    }
    for (auto& [name, p] : model.NamedParameters()) EXPECT_TRUE(at::equal(p, before.at(name))) << name;
  }  // the destructor restores
  for (auto& [name, p] : held) EXPECT_TRUE(p.is_contiguous()) << name;
  for (auto& [name, p] : model.NamedParameters()) EXPECT_TRUE(at::equal(p, before.at(name))) << name;
}

TEST(WeightLayout, RestoreIsIdempotentAndContiguousIsANoOp) {
  ASSERT_OK_AND_ASSIGN(Model model, CreateZooModel("vgg_small"));
  WeightLayout layout;
  ASSERT_OK(layout.Apply(model, at::MemoryFormat::Contiguous));
  EXPECT_EQ(layout.changed(), 0);
  ASSERT_OK(layout.Apply(model, at::MemoryFormat::ChannelsLast));
  EXPECT_GT(layout.changed(), 0);
  layout.Restore();
  layout.Restore();
  EXPECT_EQ(layout.changed(), 0);
  EXPECT_EQ(layout.current(), at::MemoryFormat::Contiguous);
  for (auto& [name, p] : model.NamedParameters()) EXPECT_TRUE(p.is_contiguous()) << name;
}

TEST(WeightLayout, ChannelsLastOutputsMatchContiguous) {
  ASSERT_OK_AND_ASSIGN(Model model, CreateZooModel("resnet_small"));
  model.Eval();
  const at::Tensor x = at::randn({4, 1, 28, 28});
  const at::Tensor want = model.module().forward({x}).toTensor();
  WeightLayout layout;
  ASSERT_OK(layout.Apply(model, at::MemoryFormat::ChannelsLast));
  const at::Tensor got = model.module().forward({x}).toTensor();
  EXPECT_TRUE(at::allclose(got, want, 1e-4, 1e-5)) << (got - want).abs().max().item<float>();
}

}  // namespace
}  // namespace slimfit
