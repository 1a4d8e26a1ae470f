#include "graph/freeze.h"

#include <ATen/ATen.h>
#include <torch/csrc/jit/api/module.h>

#include "common/status_matchers.h"
#include "gmock/gmock.h"
#include "graph/dependency_graph.h"
#include "graph/layer_table.h"
#include "graph/pruning_test_util.h"
#include "graph/surgery.h"
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

// Convolutions whose `groups` is not a constant (LibTorch's folding passes
// skip them), in every method of `m` and its submodules.
int CountRunTimeGroups(const torch::jit::Module& m) {
  int n = 0;
  for (const torch::jit::Module& sub : m.modules()) {
    for (const torch::jit::Method& method : sub.get_methods()) {
      for (const torch::jit::Node* node : method.graph()->nodes()) {
        const auto call = AsConvolution(node);
        if (call && !ConstantInt(node->input(call->groups_input))) ++n;
      }
    }
  }
  return n;
}

void RecordInputShape(Model& model, const std::vector<int64_t>& sample_shape) {
  model.mutable_metadata().clear_inputs();
  TensorSpec* spec = model.mutable_metadata().add_inputs();
  spec->add_shape(1);
  for (int64_t d : sample_shape) spec->add_shape(d);
  spec->set_dtype("float32");
}

// Surgery gives pruned grouped (depthwise) convolutions a run-time `groups`;
// frozen, they must fold as the unpruned model's do: as many batch norms
// left as in the frozen unpruned model (none on the zoo's mobilenetv2).
TEST(FreezeTest, APrunedModelFoldsAsMuchAsTheUnprunedOne) {
  ASSERT_OK_AND_ASSIGN(auto models, testing::PruningTestModels());
  int with_groups = 0;
  int mobilenet_batch_norms = -1;
  for (auto& [name, model, shape] : models) {
    SCOPED_TRACE(name);
    RecordInputShape(model, shape);
    ASSERT_OK_AND_ASSIGN(DependencyGraph dg, BuildDependencyGraph(model, {testing::RandomInput(shape, 2)}));
    ASSERT_OK_AND_ASSIGN(Model pruned, ApplyPruning(model, dg, testing::RandomPlan(dg, 0.5, /*seed=*/5)));
    with_groups += CountRunTimeGroups(pruned.module()) > 0 ? 1 : 0;
    ASSERT_OK_AND_ASSIGN(Model frozen_reference, FrozenForInference(model));
    ASSERT_OK_AND_ASSIGN(Model frozen, FrozenForInference(pruned));
    EXPECT_EQ(CountRunTimeGroups(frozen.module()), 0);
    EXPECT_EQ(CountKind(frozen.module(), "aten::batch_norm"), CountKind(frozen_reference.module(), "aten::batch_norm"));
    if (name == "mobilenetv2_small") mobilenet_batch_norms = CountKind(frozen.module(), "aten::batch_norm");
    const at::Tensor x = testing::RandomInput(shape, 3, /*seed=*/11);
    EXPECT_LT((testing::EvalForward(frozen, x) - testing::EvalForward(pruned, x)).abs().max().item<double>(), 1e-4);
  }
  // mobilenetv2_small's depthwise convs and the grouped test models.
  EXPECT_GE(with_groups, 3);
  EXPECT_EQ(mobilenet_batch_norms, 0);
}

// With no recorded input shapes the groups stay a run-time expression: the
// frozen model is less folded but still computes the pruned model's output.
TEST(FreezeTest, WithoutRecordedInputsAPrunedDepthwiseModelStillMatches) {
  ASSERT_OK_AND_ASSIGN(auto models, testing::PruningTestModels());
  auto& [name, model, shape] = models[3];
  ASSERT_EQ(name, "mobilenetv2_small");
  model.mutable_metadata().clear_inputs();
  ASSERT_OK_AND_ASSIGN(DependencyGraph dg, BuildDependencyGraph(model, {testing::RandomInput(shape, 2)}));
  ASSERT_OK_AND_ASSIGN(Model pruned, ApplyPruning(model, dg, testing::RandomPlan(dg, 0.5, /*seed=*/5)));
  ASSERT_OK_AND_ASSIGN(Model frozen, FrozenForInference(pruned));
  EXPECT_GT(CountRunTimeGroups(frozen.module()), 0);
  const at::Tensor x = testing::RandomInput(shape, 3, /*seed=*/11);
  EXPECT_LT((testing::EvalForward(frozen, x) - testing::EvalForward(pruned, x)).abs().max().item<double>(), 1e-4);
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
