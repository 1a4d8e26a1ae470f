#include "graph/surgery.h"

#include <ATen/ATen.h>
#include <ATen/core/grad_mode.h>
#include <torch/csrc/jit/api/module.h>

#include "common/status_matchers.h"
#include "gmock/gmock.h"
#include "graph/dependency_graph.h"
#include "graph/layer_table.h"
#include "graph/pruning_test_util.h"
#include "gtest/gtest.h"

namespace slimfit {
namespace {

using ::slimfit::testing::EvalForward;
using ::slimfit::testing::MaskedVsPrunedDiff;
using ::slimfit::testing::PruningTestModels;
using ::slimfit::testing::RandomInput;
using ::slimfit::testing::RandomPlan;
using ::slimfit::testing::StatusIs;
using ::testing::HasSubstr;

TEST(SurgeryTest, PrunedEqualsMaskedOnEveryTestModel) {
  ASSERT_OK_AND_ASSIGN(auto models, PruningTestModels());
  for (auto& [name, model, shape] : models) {
    SCOPED_TRACE(name);
    ASSERT_OK_AND_ASSIGN(DependencyGraph dg, BuildDependencyGraph(model, {RandomInput(shape, 2)}));
    for (double fraction : {0.25, 0.5, 0.9}) {
      PruningPlan plan = RandomPlan(dg, fraction, /*seed=*/7);
      ASSERT_FALSE(plan.empty());
      ASSERT_OK_AND_ASSIGN(Model pruned, ApplyPruning(model, dg, plan));
      EXPECT_LT(pruned.NumParameters(), model.NumParameters());
      // Every producer weight shrank by exactly the channels removed.
      for (const auto& [space, chans] : plan.removed) {
        const ChannelSpace& s = dg.spaces[space];
        for (const auto& [pname, t] : pruned.NamedParameters()) {
          if (pname == s.weight) {
            EXPECT_EQ(t.size(s.weight_dim), s.size - static_cast<int64_t>(chans.size()));
          }
        }
      }
      const at::Tensor x = RandomInput(shape, 3, /*seed=*/11);
      ASSERT_OK_AND_ASSIGN(double diff, MaskedVsPrunedDiff(model, pruned, dg, plan, x));
      EXPECT_LE(diff, 1e-4) << "fraction " << fraction;
      // Saved and reloaded, it gives the same outputs.
      const std::string path = ::slimfit::testing::TempPath(name + ".pt");
      ASSERT_OK(pruned.Save(path));
      ASSERT_OK_AND_ASSIGN(Model reloaded, Model::Load(path));
      EXPECT_TRUE(at::allclose(EvalForward(reloaded, x), EvalForward(pruned, x), 1e-5, 1e-6));
    }
  }
}

// A pruned model is pruned again (the search's gradual chain cuts each link
// from the last): its dependency graph has the same groups, none of them
// more blocked (pruned grouped convs' run-time `groups` included), and the
// second cut equals its masked model.
TEST(SurgeryTest, APrunedModelPrunesAgainLikeTheOriginal) {
  ASSERT_OK_AND_ASSIGN(auto models, PruningTestModels());
  for (auto& [name, model, shape] : models) {
    SCOPED_TRACE(name);
    ASSERT_OK_AND_ASSIGN(DependencyGraph dg, BuildDependencyGraph(model, {RandomInput(shape, 2)}));
    ASSERT_OK_AND_ASSIGN(Model once, ApplyPruning(model, dg, RandomPlan(dg, 0.25, /*seed=*/3)));
    ASSERT_OK_AND_ASSIGN(DependencyGraph again, BuildDependencyGraph(once, {RandomInput(shape, 2)}));
    EXPECT_EQ(again.groups.size(), dg.groups.size());
    EXPECT_EQ(again.unhandled_ops, dg.unhandled_ops);
    ASSERT_EQ(again.spaces.size(), dg.spaces.size());
    for (size_t s = 0; s < dg.spaces.size(); ++s) {
      EXPECT_EQ(again.spaces[s].module_path, dg.spaces[s].module_path);
      EXPECT_EQ(again.spaces[s].op_type, dg.spaces[s].op_type);
      EXPECT_EQ(again.spaces[s].blocked_reason, dg.spaces[s].blocked_reason) << dg.spaces[s].module_path;
    }
    const PruningPlan plan = RandomPlan(again, 0.25, /*seed=*/4);
    ASSERT_FALSE(plan.empty());
    ASSERT_OK_AND_ASSIGN(Model twice, ApplyPruning(once, again, plan));
    EXPECT_LT(twice.NumParameters(), once.NumParameters());
    ASSERT_OK_AND_ASSIGN(double diff, MaskedVsPrunedDiff(once, twice, again, plan, RandomInput(shape, 3, 11)));
    EXPECT_LE(diff, 1e-4);
  }
}

TEST(SurgeryTest, ApplyPruningLeavesTheInputModelUnchanged) {
  ASSERT_OK_AND_ASSIGN(auto models, PruningTestModels());
  Model& model = models[2].model;  // resnet_small
  const at::Tensor x = RandomInput(models[2].input_shape, 2);
  const at::Tensor before = EvalForward(model, x);
  const int64_t params = model.NumParameters();
  ASSERT_OK_AND_ASSIGN(DependencyGraph dg, BuildDependencyGraph(model, {x}));
  ASSERT_OK_AND_ASSIGN(Model pruned, ApplyPruning(model, dg, RandomPlan(dg, 0.5, 3)));
  EXPECT_EQ(model.NumParameters(), params);
  EXPECT_TRUE(at::equal(EvalForward(model, x), before));
}

TEST(SurgeryTest, DepthwiseGroupsFollowThePrunedChannels) {
  ASSERT_OK_AND_ASSIGN(auto models, PruningTestModels());
  Model& model = models[3].model;  // mobilenetv2_small
  const at::Tensor x = RandomInput(models[3].input_shape, 2);
  ASSERT_OK_AND_ASSIGN(DependencyGraph dg, BuildDependencyGraph(model, {x}));
  ASSERT_OK_AND_ASSIGN(Model pruned, ApplyPruning(model, dg, RandomPlan(dg, 0.5, 5)));
  // A depthwise weight lost channels and the model still runs at batch 5.
  bool shrunk = false;
  for (const auto& [name, t] : pruned.NamedParameters()) {
    for (const auto& [orig, ot] : model.NamedParameters()) {
      if (name == orig && t.dim() == 4 && t.size(1) == 1 && t.size(0) < ot.size(0)) shrunk = true;
    }
  }
  EXPECT_TRUE(shrunk);
  EXPECT_EQ(EvalForward(pruned, RandomInput(models[3].input_shape, 5)).size(0), 5);
  // The layer table still sees depthwise convs (not the weight.size(1) that
  // computes their groups): groups a run-time value, MACs counted.
  ASSERT_OK_AND_ASSIGN(LayerTable table, BuildLayerTable(pruned));
  int depthwise = 0;
  for (const Layer& l : table.layers) {
    if (l.module_path.find("dw_conv") == std::string::npos) continue;
    ++depthwise;
    EXPECT_EQ(l.op_type, "DepthwiseConv2d") << l.module_path;
    EXPECT_EQ(l.groups, 0) << l.module_path;
  }
  EXPECT_EQ(depthwise, 7);
}

TEST(SurgeryTest, RejectsRemovingABlockedChannel) {
  ASSERT_OK_AND_ASSIGN(auto models, PruningTestModels());
  Model& model = models[0].model;  // lenet5
  ASSERT_OK_AND_ASSIGN(DependencyGraph dg, BuildDependencyGraph(model, {RandomInput(models[0].input_shape, 2)}));
  const int fc = static_cast<int>(dg.spaces.size()) - 1;  // the classifier: reaches the output
  PruningPlan plan;
  plan.removed[fc] = {0};
  EXPECT_THAT(ApplyPruning(model, dg, plan).status(),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("channel 0 cannot be removed: reaches the model output")));
}

TEST(SurgeryTest, RejectsRemovingEveryChannelOfALayer) {
  ASSERT_OK_AND_ASSIGN(auto models, PruningTestModels());
  Model& model = models[0].model;
  ASSERT_OK_AND_ASSIGN(DependencyGraph dg, BuildDependencyGraph(model, {RandomInput(models[0].input_shape, 2)}));
  PruningPlan plan;
  for (int64_t c = 0; c < dg.spaces[0].size; ++c) plan.removed[0].push_back(c);
  EXPECT_THAT(ValidatePlan(dg, plan),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("at least one must stay")));
}

TEST(SurgeryTest, RejectsRemovingHalfOfACoupledUnit) {
  ASSERT_OK_AND_ASSIGN(auto models, PruningTestModels());
  Model& model = models[2].model;  // resnet_small: residual adds couple spaces
  ASSERT_OK_AND_ASSIGN(DependencyGraph dg, BuildDependencyGraph(model, {RandomInput(models[2].input_shape, 2)}));
  for (const ChannelGroup& g : dg.groups) {
    if (g.spaces.size() < 2) continue;
    PruningPlan plan;
    plan.removed[g.units[0].members[0].space] = {g.units[0].members[0].channel};
    EXPECT_THAT(ValidatePlan(dg, plan),
                StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("must be removed with it")));
    return;
  }
  FAIL() << "resnet_small has no coupled group";
}

}  // namespace
}  // namespace slimfit
