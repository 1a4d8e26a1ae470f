#include "graph/freeze.h"

#include <ATen/ATen.h>
#include <torch/csrc/jit/api/module.h>

#include "common/status_matchers.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "model/zoo/zoo.h"

namespace slimfit {
namespace {

int CountKind(const torch::jit::Module& m, const char* kind) {
  int n = 0;
  for (const torch::jit::Node* node : m.get_method("forward").graph()->nodes()) {
    if (node->kind() == c10::Symbol::fromQualString(kind)) ++n;
  }
  return n;
}

TEST(FreezeTest, FoldsBatchNormAndMatchesEvalOutput) {
  ASSERT_OK_AND_ASSIGN(Model model, CreateZooModel("resnet_small"));
  // Non-trivial running statistics, so folding has something to fold.
  at::manual_seed(3);
  for (auto& [name, buffer] : model.NamedBuffers()) {
    if (name.find("running_mean") != std::string::npos) buffer.copy_(at::randn_like(buffer) * 0.1);
    if (name.find("running_var") != std::string::npos) buffer.copy_(at::rand_like(buffer) + 0.5);
  }
  model.Eval();
  const at::Tensor x = at::randn({4, 1, 28, 28});
  const at::Tensor want = model.module().forward({x}).toTensor();

  ASSERT_OK_AND_ASSIGN(Model frozen, FrozenForInference(model));
  EXPECT_EQ(CountKind(frozen.module(), "aten::batch_norm"), 0);
  EXPECT_GT(CountKind(frozen.module(), "aten::conv2d"), 0);
  EXPECT_TRUE(frozen.NamedParameters().empty());
  const at::Tensor got = frozen.module().forward({x}).toTensor();
  EXPECT_LT((got - want).abs().max().item<double>(), 1e-4);

  // The input model is untouched: still trainable, batch norms still there.
  EXPECT_FALSE(model.NamedParameters().empty());
  EXPECT_GT(CountKind(model.module(), "prim::CallMethod"), 0);
}

TEST(FreezeTest, SavedFrozenModelReloadsAndRuns) {
  ASSERT_OK_AND_ASSIGN(Model model, CreateZooModel("vgg_small"));
  model.Eval();
  ASSERT_OK_AND_ASSIGN(Model frozen, FrozenForInference(model));
  const std::string path = ::testing::TempDir() + "/frozen.pt";
  ASSERT_OK(frozen.Save(path));
  ASSERT_OK_AND_ASSIGN(Model loaded, Model::Load(path));
  const at::Tensor x = at::randn({2, 1, 28, 28});
  EXPECT_TRUE(at::allclose(loaded.module().forward({x}).toTensor(), model.module().forward({x}).toTensor(), 1e-4,
                           1e-4));
}

}  // namespace
}  // namespace slimfit
