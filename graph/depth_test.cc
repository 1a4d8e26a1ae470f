// Depth pruning: each test model's identity-shortcut blocks are found (the
// expected lists follow from the architectures: a block with stride 1 and
// as many channels out as in); removing one equals the model with that
// branch's last layer zeroed (so the branch adds nothing), on every model
// and block; the input model is unchanged; the result saves, reloads,
// freezes smaller and trains; consecutive blocks (one's shortcut is the
// other's output) and unknown names are handled.
#include "graph/depth.h"

#include <ATen/ATen.h>
#include <ATen/core/grad_mode.h>
#include <torch/csrc/jit/api/module.h>

#include <map>
#include <set>

#include "absl/strings/match.h"
#include "absl/strings/str_split.h"
#include "common/status_matchers.h"
#include "gmock/gmock.h"
#include "graph/freeze.h"
#include "graph/layer_table.h"
#include "graph/pruning_test_util.h"
#include "gtest/gtest.h"

namespace slimfit {
namespace {

using ::slimfit::testing::EvalForward;
using ::slimfit::testing::PruningTestModel;
using ::slimfit::testing::PruningTestModels;
using ::slimfit::testing::RandomInput;
using ::slimfit::testing::StatusIs;
using ::testing::ElementsAre;
using ::testing::ElementsAreArray;
using ::testing::HasSubstr;
using ::testing::IsEmpty;

std::vector<std::string> Paths(const std::vector<ResidualBlock>& blocks) {
  std::vector<std::string> out;
  for (const ResidualBlock& b : blocks) out.push_back(b.path);
  return out;
}

// Which blocks each test model has (graph/pruning_test_util.h's models).
const std::map<std::string, std::vector<std::string>>& ExpectedBlocks() {
  static const auto* kBlocks = new std::map<std::string, std::vector<std::string>>{
      {"lenet5", {}},
      {"vgg_small", {}},
      // layer2.b0 and layer3.b0 downsample (stride 2, a conv on the shortcut).
      {"resnet_small", {"layer1.b0", "layer1.b1", "layer2.b1", "layer3.b1"}},
      // Stages (t, c, n, s) = (1, 16, 1, 1), (4, 24, 2, 2), (4, 32, 2, 2),
      // (4, 64, 2, 1) after a 16-channel stem: the blocks that keep width
      // and stride are 0, 2, 4 and 6.
      {"mobilenetv2_small", {"block0", "block2", "block4", "block6"}},
      {"mixed_traced", {"branch"}},  // x + self.branch(x)
      {"mixed_scripted", {"branch"}},
      {"dense_scripted", {}},  // concatenations only
      // x + expand(group(reduce(x))): top-level layers, named first..last.
      {"grouped_traced", {"reduce.0..expand.1"}},
      {"grouped_scripted", {"reduce.0..expand.1"}},
      {"shuffle_traced", {}},  // chunk, cat and a shuffle: no add
      {"shuffle_scripted", {}},
      {"everyday_traced", {}},  // a gate, no add
      {"everyday_scripted", {}},
  };
  return *kBlocks;
}

TEST(DepthTest, FindsEachModelsIdentityShortcutBlocks) {
  ASSERT_OK_AND_ASSIGN(std::vector<PruningTestModel> models, PruningTestModels());
  ASSERT_EQ(models.size(), ExpectedBlocks().size());
  for (const PruningTestModel& t : models) {
    SCOPED_TRACE(t.name);
    ASSERT_OK_AND_ASSIGN(std::vector<ResidualBlock> blocks, FindResidualBlocks(t.model));
    ASSERT_TRUE(ExpectedBlocks().count(t.name));
    EXPECT_THAT(Paths(blocks), ElementsAreArray(ExpectedBlocks().at(t.name)));
    if (t.name == "resnet_small") {
      EXPECT_THAT(blocks[1].layers,
                  ElementsAre("layer1.b1.conv1", "layer1.b1.bn1", "layer1.b1.conv2", "layer1.b1.bn2"));
    }
  }
}

// `model` with the last layer of `block` zeroed: its branch then outputs 0.
Model ZeroedBranch(const Model& model, const ResidualBlock& block) {
  absl::StatusOr<Model> copy = model.Clone();
  EXPECT_OK(copy.status());
  torch::jit::Module last = copy->module();
  for (absl::string_view part : absl::StrSplit(block.layers.back(), '.'))
    last = last.attr(std::string(part)).toModule();
  at::NoGradGuard no_grad;
  EXPECT_TRUE(last.hasattr("weight")) << block.layers.back();
  last.attr("weight").toTensor().zero_();
  if (last.hasattr("bias") && last.attr("bias").isTensor()) last.attr("bias").toTensor().zero_();
  return *std::move(copy);
}

TEST(DepthTest, RemovingABlockEqualsZeroingItsBranchAndLeavesTheInputAlone) {
  ASSERT_OK_AND_ASSIGN(std::vector<PruningTestModel> models, PruningTestModels());
  int removed = 0;
  for (const PruningTestModel& t : models) {
    SCOPED_TRACE(t.name);
    const at::Tensor x = RandomInput(t.input_shape, 4);
    const at::Tensor before = EvalForward(t.model, x);
    ASSERT_OK_AND_ASSIGN(std::vector<ResidualBlock> blocks, FindResidualBlocks(t.model));
    for (const ResidualBlock& b : blocks) {
      SCOPED_TRACE(b.path);
      ASSERT_OK_AND_ASSIGN(Model shallower, RemoveBlocks(t.model, {b.path}));
      const at::Tensor got = EvalForward(shallower, x), want = EvalForward(ZeroedBranch(t.model, b), x);
      EXPECT_LE((got - want).abs().max().item<double>(), 1e-4 * std::max(1.0, want.abs().max().item<double>()));
      // The branch mattered (so the comparison means something), and the
      // input model still computes what it did.
      EXPECT_GT((got - before).abs().max().item<double>(), 1e-6);
      EXPECT_TRUE(at::equal(EvalForward(t.model, x), before));
      // The block is gone, the others are still there.
      ASSERT_OK_AND_ASSIGN(std::vector<ResidualBlock> left, FindResidualBlocks(shallower));
      std::vector<std::string> others;
      for (const ResidualBlock& o : blocks) {
        if (o.path != b.path) others.push_back(o.path);
      }
      EXPECT_THAT(Paths(left), ElementsAreArray(others));
      // Its layers' weights are gone from the parameter count.
      int64_t branch_params = 0;
      for (const auto& p : t.model.module().named_parameters(/*recurse=*/true)) {
        for (const std::string& layer : b.layers) {
          if (absl::StartsWith(p.name, layer + ".")) branch_params += p.value.numel();
        }
      }
      EXPECT_GT(branch_params, 0);
      EXPECT_EQ(shallower.NumParameters(), t.model.NumParameters() - branch_params);
      ASSERT_OK_AND_ASSIGN(LayerTable table, BuildLayerTable(shallower));
      for (const Layer& l : table.layers) {
        for (const std::string& gone : b.layers) EXPECT_NE(l.module_path, gone);
      }
      ++removed;
    }
  }
  EXPECT_EQ(removed, 4 + 4 + 1 + 1 + 1 + 1);
}

TEST(DepthTest, TheResultSavesReloadsFreezesSmallerAndTrains) {
  ASSERT_OK_AND_ASSIGN(std::vector<PruningTestModel> models, PruningTestModels());
  const PruningTestModel& resnet = models[2];
  ASSERT_EQ(resnet.name, "resnet_small");
  ASSERT_OK_AND_ASSIGN(Model shallower, RemoveBlocks(resnet.model, {"layer1.b1", "layer2.b1"}));
  const at::Tensor x = RandomInput(resnet.input_shape, 2);
  ASSERT_OK_AND_ASSIGN(std::string bytes, shallower.ToBytes());
  ASSERT_OK_AND_ASSIGN(Model reloaded, Model::FromBytes(bytes));
  EXPECT_TRUE(at::allclose(EvalForward(reloaded, x), EvalForward(shallower, x)));
  // Frozen, the removed blocks' weights are gone from the file.
  ASSERT_OK_AND_ASSIGN(Model frozen_before, FrozenForInference(resnet.model));
  ASSERT_OK_AND_ASSIGN(Model frozen_after, FrozenForInference(shallower));
  ASSERT_OK_AND_ASSIGN(std::string b0, frozen_before.ToBytes());
  ASSERT_OK_AND_ASSIGN(std::string b1, frozen_after.ToBytes());
  EXPECT_LT(b1.size(), b0.size());
  EXPECT_LE((EvalForward(frozen_after, x) - EvalForward(shallower, x)).abs().max().item<double>(), 1e-4);
  // Training: the kept layers get gradients, the removed ones none.
  torch::jit::Module m = reloaded.module();
  m.train();
  at::Tensor loss = m.forward({x}).toTensor().pow(2).sum();
  loss.backward();
  std::set<std::string> with_grad;
  for (const auto& p : m.named_parameters(/*recurse=*/true)) {
    if (p.value.grad().defined()) with_grad.insert(p.name);
  }
  EXPECT_TRUE(with_grad.count("conv1.weight"));
  EXPECT_TRUE(with_grad.count("layer1.b0.conv1.weight"));
  EXPECT_FALSE(with_grad.count("layer1.b1.conv1.weight"));
  EXPECT_FALSE(with_grad.count("layer2.b1.bn2.weight"));
}

// A module whose forward is a 3x3 convolution by its own weight (no bias).
torch::jit::Module ConvModule(const std::string& type) {
  torch::jit::Module c("__torch__.depth_test." + type);
  c.register_parameter("weight", at::randn({3, 3, 3, 3}) * 0.1, /*is_buffer=*/false);
  c.define("def forward(self, x):\n    return torch.conv2d(x, self.weight, None, 1, 1)\n");
  return c;
}

// A model of type `type` with two ConvModules, c1 and c2, and `forward`.
Model TwoConvs(const std::string& type, const std::string& forward) {
  torch::jit::Module root("__torch__.depth_test." + type);
  for (const char* name : {"c1", "c2"}) root.register_module(name, ConvModule(type + "Conv_" + name));
  root.define(forward);
  return Model(root);
}

// root(x) = x + c1(x), then + c2(·): c2's shortcut is c1's add.
Model ChainOfTwo() {
  return TwoConvs("Chain",
                  "def forward(self, x):\n"
                  "    x = x + self.c1.forward(x)\n"
                  "    return x + self.c2.forward(x)\n");
}

TEST(DepthTest, ConsecutiveBlocksAndUnknownNames) {
  const Model chain = ChainOfTwo();
  ASSERT_OK_AND_ASSIGN(std::vector<ResidualBlock> blocks, FindResidualBlocks(chain));
  EXPECT_THAT(Paths(blocks), ElementsAre("c1", "c2"));
  const at::Tensor x = at::randn({2, 3, 5, 5});
  // Both gone (listed twice, in any order): the identity.
  ASSERT_OK_AND_ASSIGN(Model none, RemoveBlocks(chain, {"c2", "c1", "c2"}));
  EXPECT_TRUE(at::equal(EvalForward(none, x), x));
  // The first gone: x + c2(x).
  ASSERT_OK_AND_ASSIGN(Model second, RemoveBlocks(chain, {"c1"}));
  at::Tensor c2 = at::conv2d(x, chain.module().attr("c2").toModule().attr("weight").toTensor(), {}, 1, 1);
  EXPECT_TRUE(at::allclose(EvalForward(second, x), x + c2, 1e-5, 1e-6));
  EXPECT_THAT(RemoveBlocks(chain, {"c3"}).status(),
              StatusIs(absl::StatusCode::kNotFound,
                       HasSubstr("residual block \"c3\": not a removable block of this model; the removable ones "
                                 "are: c1, c2")));
  ASSERT_OK_AND_ASSIGN(std::vector<PruningTestModel> models, PruningTestModels());
  EXPECT_THAT(RemoveBlocks(models[0].model, {"conv1"}).status(),
              StatusIs(absl::StatusCode::kNotFound, HasSubstr("the removable ones are: none")));
  ASSERT_OK_AND_ASSIGN(std::vector<ResidualBlock> lenet, FindResidualBlocks(models[0].model));
  EXPECT_THAT(lenet, IsEmpty());
}

// out = c(x); out += x — the in-place form torchvision's blocks use — and
// x += c(x), which writes into the shortcut and so is not a removable block.
Model InPlaceAdds() {
  return TwoConvs("InPlace",
                  "def forward(self, x):\n"
                  "    out = self.c1.forward(x)\n"
                  "    out += x\n"
                  "    y = torch.relu(out)\n"
                  "    y += self.c2.forward(y)\n"
                  "    return y\n");
}

TEST(DepthTest, AnInPlaceAddIntoTheBranchIsABlockIntoTheShortcutIsNot) {
  const Model m = InPlaceAdds();
  ASSERT_OK_AND_ASSIGN(std::vector<ResidualBlock> blocks, FindResidualBlocks(m));
  EXPECT_THAT(Paths(blocks), ElementsAre("c1"));
  ASSERT_OK_AND_ASSIGN(Model shallower, RemoveBlocks(m, {"c1"}));
  const at::Tensor x = at::randn({2, 3, 5, 5});
  // Without c1: y = relu(x); y += c2(y).
  const at::Tensor y = at::relu(x);
  const at::Tensor c2 = at::conv2d(y, m.module().attr("c2").toModule().attr("weight").toTensor(), {}, 1, 1);
  EXPECT_TRUE(at::allclose(EvalForward(shallower, x), y + c2, 1e-5, 1e-6));
}

// torchvision's scripted InvertedResidual: `if self.use_res: x + c(x)`.
Model FlaggedResidual(bool use_res) {
  torch::jit::Module root("__torch__.depth_test.Flagged");
  root.register_module("c", ConvModule("FlaggedConv"));
  root.register_attribute("use_res", c10::BoolType::get(), use_res);
  root.define(
      "def forward(self, x):\n"
      "    if self.use_res:\n"
      "        return x + self.c.forward(x)\n"
      "    else:\n"
      "        return self.c.forward(x)\n");
  return Model(root);
}

TEST(DepthTest, AnAddUnderAFlagCountsOnlyWhenTheFlagTakesIt) {
  ASSERT_OK_AND_ASSIGN(std::vector<ResidualBlock> on, FindResidualBlocks(FlaggedResidual(true)));
  EXPECT_THAT(Paths(on), ElementsAre("c"));
  ASSERT_OK_AND_ASSIGN(std::vector<ResidualBlock> off, FindResidualBlocks(FlaggedResidual(false)));
  EXPECT_THAT(off, IsEmpty());  // the add is in the branch this model never takes
  ASSERT_OK_AND_ASSIGN(Model removed, RemoveBlocks(FlaggedResidual(true), {"c"}));
  const at::Tensor x = at::randn({2, 3, 5, 5});
  EXPECT_TRUE(at::equal(EvalForward(removed, x), x));
}

}  // namespace
}  // namespace slimfit
