#include "model/weight_layout.h"

#include <ATen/ATen.h>
#include <gtest/gtest.h>
#include <torch/csrc/jit/api/module.h>

#include <map>
#include <string>

#include "absl/strings/str_cat.h"
#include "common/status_matchers.h"
#include "model/test_models.h"

namespace slimfit {
namespace {

using ::slimfit::testing::StatusIs;

// Every parameter's values, copied (contiguous) for comparison.
std::map<std::string, at::Tensor> Values(Model& m) {
  std::map<std::string, at::Tensor> v;
  for (auto& [name, p] : m.NamedParameters()) v[name] = p.detach().clone(at::MemoryFormat::Contiguous);
  return v;
}

// Three convolutions: a stem of one input channel and a 1x1 (both laid out
// the same either way) around a 3x3 of 8 channels (not), then pool and fc.
Model Convs() {
  return testing::ScriptedTestModel(
      "Convs",
      "def forward(self, x: Tensor) -> Tensor:\n"
      "    y = torch.relu(torch.conv2d(x, self.stem, None, [1, 1], [1, 1], [1, 1], 1))\n"
      "    y = torch.relu(torch.conv2d(y, self.c3, None, [1, 1], [1, 1], [1, 1], 1))\n"
      "    y = torch.conv2d(y, self.c1, None, [1, 1], [0, 0], [1, 1], 1)\n"
      "    y = torch.flatten(torch.adaptive_avg_pool2d(y, [1, 1]), 1)\n"
      "    return torch.linear(y, self.fc_w, self.fc_b)\n",
      {{"stem", at::randn({8, 1, 3, 3})},
       {"c3", at::randn({8, 8, 3, 3}) * 0.2},
       {"c1", at::randn({8, 8, 1, 1}) * 0.3},
       {"fc_w", at::randn({3, 8})},
       {"fc_b", at::zeros({3})}});
}

Model LinearOnly() {
  return testing::ScriptedTestModel("LinearOnly",
                                    "def forward(self, x: Tensor) -> Tensor:\n"
                                    "    return torch.linear(x, self.w, self.b)\n",
                                    {{"w", at::randn({3, 4})}, {"b", at::zeros({3})}});
}

TEST(PreferredWeightFormat, ChannelsLastForConvolutionsOnTheCpu) {
  Model convs = Convs();
  EXPECT_EQ(PreferredWeightFormat(convs), at::MemoryFormat::ChannelsLast);
  Model linear = LinearOnly();
  EXPECT_EQ(PreferredWeightFormat(linear), at::MemoryFormat::Contiguous);
}

TEST(PreferredWeightFormat, ContiguousWhenAWidthIsNotAMultipleOfEight) {
  const std::string source =
      "def forward(self, x: Tensor) -> Tensor:\n"
      "    return torch.conv2d(torch.conv2d(x, self.a, None, [1, 1], [1, 1], [1, 1], 1), self.b,\n"
      "                        None, [1, 1], [1, 1], [1, 1], 1)\n";
  for (int64_t width : {12, 11, 4}) {
    Model m = testing::ScriptedTestModel("Pruned", source,
                                         {{"a", at::randn({16, 8, 3, 3})}, {"b", at::randn({width, 16, 3, 3})}});
    EXPECT_EQ(PreferredWeightFormat(m), at::MemoryFormat::Contiguous) << width;
    Model n = testing::ScriptedTestModel("Pruned", source,
                                         {{"a", at::randn({width, 8, 3, 3})}, {"b", at::randn({16, width, 3, 3})}});
    EXPECT_EQ(PreferredWeightFormat(n), at::MemoryFormat::Contiguous) << width;
  }
  Model aligned = testing::ScriptedTestModel("Aligned", source,
                                             {{"a", at::randn({24, 8, 3, 3})}, {"b", at::randn({16, 24, 3, 3})}});
  EXPECT_EQ(PreferredWeightFormat(aligned), at::MemoryFormat::ChannelsLast);
  // A stem reading an RGB image is fine; a pruned layer reading 5 channels is not.
  Model rgb = testing::ScriptedTestModel("Rgb", source,
                                         {{"a", at::randn({16, 3, 3, 3})}, {"b", at::randn({16, 16, 3, 3})}});
  EXPECT_EQ(PreferredWeightFormat(rgb), at::MemoryFormat::ChannelsLast);
  Model five = testing::ScriptedTestModel("Five", source,
                                          {{"a", at::randn({16, 5, 3, 3})}, {"b", at::randn({16, 16, 3, 3})}});
  EXPECT_EQ(PreferredWeightFormat(five), at::MemoryFormat::Contiguous);
}

TEST(WeightLayout, ChangesTheSameTensorsInPlaceAndPutsThemBack) {
  Model model = Convs();
  const auto before = Values(model);
  // Every 4-D weight, with its strides before.
  std::map<std::string, std::pair<at::Tensor, std::vector<int64_t>>> held;
  for (auto& [name, p] : model.NamedParameters()) {
    if (p.dim() == 4) held[name] = {p, p.strides().vec()};
  }
  ASSERT_EQ(held.size(), 3u) << "stem, c3, c1";
  {
    WeightLayout layout;
    ASSERT_OK(layout.Apply(model, at::MemoryFormat::ChannelsLast));
    EXPECT_EQ(layout.changed(), 3);
    EXPECT_EQ(layout.current(), at::MemoryFormat::ChannelsLast);
    // The tensors held before Apply see the change (optimizers and hooks stay
    // valid), with channels-last strides as LibTorch lays out a new tensor:
    // also the stem's and the 1x1's, whose NCHW strides were contiguous in
    // both layouts.
    for (auto& [name, held_p] : held) {
      const at::Tensor& p = held_p.first;
      EXPECT_EQ(p.strides(), at::empty(p.sizes(), at::MemoryFormat::ChannelsLast).strides()) << name;
      EXPECT_EQ(p.suggest_memory_format(), at::MemoryFormat::ChannelsLast) << name;
      EXPECT_TRUE(p.requires_grad()) << name;
    }
    for (auto& [name, p] : model.NamedParameters()) EXPECT_TRUE(at::equal(p, before.at(name))) << name;
  }  // the destructor restores
  for (auto& [name, held_p] : held) EXPECT_EQ(held_p.first.strides().vec(), held_p.second) << name;
  for (auto& [name, p] : model.NamedParameters()) EXPECT_TRUE(at::equal(p, before.at(name))) << name;
}

// The point of restriding a one-channel stem: a convolution takes its
// output's layout from its operands' strides, so the stem's output (and the
// layers after it) run channels-last, as after PyTorch's
// `module.to(memory_format=torch.channels_last)`.
TEST(WeightLayout, AOneChannelStemWritesChannelsLastActivations) {
  Model model = Convs();
  const at::Tensor x = at::randn({4, 1, 12, 12});
  auto stem_output = [&] {
    at::Tensor stem = model.module().attr("stem").toTensor();
    return at::conv2d(x, stem, {}, 1, 1).suggest_memory_format();
  };
  EXPECT_EQ(stem_output(), at::MemoryFormat::Contiguous);
  WeightLayout layout;
  ASSERT_OK(layout.Apply(model, at::MemoryFormat::ChannelsLast));
  EXPECT_EQ(stem_output(), at::MemoryFormat::ChannelsLast);
  layout.Restore();
  EXPECT_EQ(stem_output(), at::MemoryFormat::Contiguous);
}

TEST(WeightLayout, RestoreIsIdempotentAndContiguousIsANoOp) {
  Model model = Convs();
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
  Model model = Convs();
  model.Eval();
  const at::Tensor x = at::randn({4, 1, 12, 12});
  const at::Tensor want = model.module().forward({x}).toTensor();
  WeightLayout layout;
  ASSERT_OK(layout.Apply(model, at::MemoryFormat::ChannelsLast));
  const at::Tensor got = model.module().forward({x}).toTensor();
  EXPECT_TRUE(at::allclose(got, want, 1e-4, 1e-5)) << (got - want).abs().max().item<float>();
}

// RunOrRestore: a run that passes keeps the layout; one that fails only with
// the layout applied is retried with the weights restored, and says the
// layout was refused; one that fails both ways returns its second error and
// blames nothing; with nothing changed there is no retry.
TEST(WeightLayout, RunOrRestoreRetriesWithTheWeightsAsTheyWere) {
  Model model = Convs();
  at::Tensor c3;
  for (auto& [name, p] : model.NamedParameters()) {
    if (name == "c3") c3 = p;
  }
  ASSERT_TRUE(c3.defined());
  auto needs_nchw = [&]() -> absl::Status {
    return c3.is_contiguous() ? absl::OkStatus() : absl::InvalidArgumentError("view needs NCHW");
  };
  {
    WeightLayout layout;
    ASSERT_OK(layout.Apply(model, at::MemoryFormat::ChannelsLast));
    int runs = 0;
    absl::Status refused;
    ASSERT_OK_AND_ASSIGN(int v, layout.RunOrRestore([&]() -> absl::StatusOr<int> { return ++runs; }, &refused));
    EXPECT_EQ(v, 1);
    EXPECT_EQ(runs, 1);
    EXPECT_OK(refused);
    EXPECT_EQ(layout.current(), at::MemoryFormat::ChannelsLast);
  }
  {
    WeightLayout layout;
    ASSERT_OK(layout.Apply(model, at::MemoryFormat::ChannelsLast));
    absl::Status refused;
    EXPECT_OK(layout.RunOrRestore(needs_nchw, &refused));
    EXPECT_THAT(refused, StatusIs(absl::StatusCode::kInvalidArgument, "view needs NCHW"));
    EXPECT_EQ(layout.changed(), 0);
    EXPECT_TRUE(c3.is_contiguous());
  }
  {
    WeightLayout layout;
    ASSERT_OK(layout.Apply(model, at::MemoryFormat::ChannelsLast));
    int runs = 0;
    absl::Status refused;
    const absl::Status s = layout.RunOrRestore(
        [&] { return absl::InternalError(absl::StrCat("broken ", ++runs)); }, &refused);
    EXPECT_THAT(s, StatusIs(absl::StatusCode::kInternal, "broken 2"));
    EXPECT_OK(refused);
    EXPECT_EQ(layout.changed(), 0);
  }
  {
    WeightLayout layout;  // nothing applied
    int runs = 0;
    const absl::Status s = layout.RunOrRestore([&] { return absl::InternalError(absl::StrCat("broken ", ++runs)); });
    EXPECT_THAT(s, StatusIs(absl::StatusCode::kInternal, "broken 1"));
  }
}

}  // namespace
}  // namespace slimfit
