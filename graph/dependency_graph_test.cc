#include "graph/dependency_graph.h"

#include <map>
#include <set>
#include <string>

#include "common/status_matchers.h"
#include "gmock/gmock.h"
#include "graph/pruning_test_util.h"
#include "gtest/gtest.h"

namespace slimfit {
namespace {

using ::slimfit::testing::PruningTestModels;
using ::slimfit::testing::RandomInput;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::UnorderedElementsAreArray;

// Module paths of each group's spaces, as sets.
std::set<std::set<std::string>> Groups(const DependencyGraph& dg) {
  std::set<std::set<std::string>> out;
  for (const ChannelGroup& g : dg.groups) {
    std::set<std::string> members;
    for (int s : g.spaces) members.insert(dg.spaces[s].module_path);
    out.insert(members);
  }
  return out;
}

const ChannelSpace& Space(const DependencyGraph& dg, const std::string& path) {
  const int s = dg.SpaceOf(path);
  EXPECT_GE(s, 0) << path;
  return dg.spaces[s < 0 ? 0 : s];
}

// The slots of `tensor` in `role`.
std::vector<const TensorSlot*> SlotsOf(const DependencyGraph& dg, const std::string& tensor, SlotRole role) {
  std::vector<const TensorSlot*> out;
  for (const TensorSlot& slot : dg.slots) {
    if (slot.tensor == tensor && slot.role == role) out.push_back(&slot);
  }
  return out;
}

absl::StatusOr<DependencyGraph> Build(const std::string& name) {
  ASSIGN_OR_RETURN(auto models, PruningTestModels());
  for (auto& m : models) {
    if (m.name == name) return BuildDependencyGraph(m.model, {RandomInput(m.input_shape, 2)});
  }
  return absl::NotFoundError(name);
}

void ExpectMixedStructure(const DependencyGraph& dg) {
  // The residual add couples stem and branch; cat([x, y]) feeds a depthwise
  // conv with multiplier 2, whose outputs the gate multiplies by se_expand's.
  EXPECT_EQ(Groups(dg), (std::set<std::set<std::string>>{
                            {"stem.0", "branch.0", "pw.0", "dw2.0", "se_expand"},
                            {"se_reduce"},
                            {"mix.0"},
                            {"fc1"},
                            {"fc2"}}));
  // Units of that group: stem/branch channel c with dw2 outputs 2c, 2c+1
  // (and se_expand's 2c, 2c+1); pw channel c with dw2 outputs 16+2c, 16+2c+1.
  const ChannelGroup& g = dg.groups[Space(dg, "dw2.0").group];
  EXPECT_EQ(g.units.size(), 8u + 12u);
  EXPECT_EQ(g.prunable_units(), 20);
  // flatten → fc1: each of mix's 16 channels owns 4*4 inputs of fc1.
  const auto fc1 = SlotsOf(dg, "fc1.weight", SlotRole::kConsumerWeight);
  ASSERT_EQ(fc1.size(), 1u);
  EXPECT_EQ(fc1[0]->dim, 1);
  EXPECT_EQ(fc1[0]->block, 16);
  EXPECT_EQ(fc1[0]->channels.size(), 16u);
  // The classifier reaches the output: kept.
  const ChannelSpace& fc2 = Space(dg, "fc2");
  EXPECT_EQ(dg.groups[fc2.group].prunable_units(), 0);
  EXPECT_EQ(fc2.blocked_reason, "reaches the model output");
  EXPECT_TRUE(dg.unhandled_ops.empty()) << FormatDependencyGroups(dg);
}

TEST(DependencyGraphTest, PythonTracedModelWithResidualCatDepthwiseAndGate) {
  ASSERT_OK_AND_ASSIGN(DependencyGraph dg, Build("mixed_traced"));
  ExpectMixedStructure(dg);
}

TEST(DependencyGraphTest, PythonScriptedModelGivesTheSameGroups) {
  ASSERT_OK_AND_ASSIGN(DependencyGraph dg, Build("mixed_scripted"));
  ExpectMixedStructure(dg);
}

TEST(DependencyGraphTest, ResidualStagesShareOneGroup) {
  ASSERT_OK_AND_ASSIGN(DependencyGraph dg, Build("resnet_small"));
  // Every block's conv2 is added to its input: per stage, the stage's
  // conv2s (and its downsample / the stem) form one group; conv1s are alone.
  int coupled = 0, block_conv1s = 0;
  for (const ChannelGroup& g : dg.groups) {
    if (g.spaces.size() > 1) ++coupled;
    for (int s : g.spaces) {
      if (dg.spaces[s].module_path.find("conv1") != std::string::npos &&
          dg.spaces[s].module_path != "conv1" && dg.spaces[s].module_path != "stem.conv") {
        ++block_conv1s;
        EXPECT_EQ(g.spaces.size(), 1u) << dg.spaces[s].module_path;
      }
    }
  }
  // Every residual block has a conv1 (two blocks in each of three stages).
  EXPECT_EQ(block_conv1s, 6) << FormatDependencyGroups(dg);
  EXPECT_GE(coupled, 2) << FormatDependencyGroups(dg);
}

TEST(DependencyGraphTest, EveryZooModelIsFullyUnderstood) {
  ASSERT_OK_AND_ASSIGN(auto models, PruningTestModels());
  for (auto& m : models) {
    ASSERT_OK_AND_ASSIGN(DependencyGraph dg, BuildDependencyGraph(m.model, {RandomInput(m.input_shape, 2)}));
    EXPECT_TRUE(dg.unhandled_ops.empty()) << m.name << "\n" << FormatDependencyGroups(dg);
    // Only the classifier is kept whole; and in scripted `everyday`, the
    // layer before nn.InstanceNorm2d (see InstanceNormPReLUCropsAndSqueeze).
    int blocked_groups = 0;
    for (const ChannelGroup& g : dg.groups) blocked_groups += g.prunable_units() == 0 ? 1 : 0;
    EXPECT_EQ(blocked_groups, m.name == "everyday_scripted" ? 2 : 1) << m.name << "\n" << FormatDependencyGroups(dg);
    // Every space channel has an activation tap.
    std::set<std::pair<int, int64_t>> tapped;
    for (const auto& tap : dg.taps) {
      for (const ChannelRef& c : tap.channels) {
        if (c.space >= 0) tapped.insert({c.space, c.channel});
      }
    }
    int64_t channels = 0;
    for (const ChannelSpace& s : dg.spaces) channels += s.size;
    EXPECT_EQ(static_cast<int64_t>(tapped.size()), channels) << m.name;
  }
}

TEST(DependencyGraphTest, ScriptedListGrownWithAppendIsFollowed) {
  // DenseNet style: feats = [stem]; feats.append(l1(cat(feats))); ...
  ASSERT_OK_AND_ASSIGN(DependencyGraph dg, Build("dense_scripted"));
  EXPECT_EQ(Groups(dg), (std::set<std::set<std::string>>{{"stem.0"}, {"l1.2"}, {"l2.2"}, {"fc"}}));
  EXPECT_TRUE(dg.unhandled_ops.empty()) << FormatDependencyGroups(dg);
  EXPECT_EQ(dg.groups[Space(dg, "l1.2").group].prunable_units(), 4);
  // l2's batch norm covers stem's 8 channels then l1's 4.
  int l2_bn_slots = 0;
  for (const TensorSlot& slot : dg.slots) {
    if (slot.tensor == "l2.0.weight") {
      ++l2_bn_slots;
      ASSERT_EQ(slot.channels.size(), 12u);
      EXPECT_EQ(slot.channels[0].space, Space(dg, "stem.0").id);
      EXPECT_EQ(slot.channels[8].space, Space(dg, "l1.2").id);
    }
  }
  EXPECT_GE(l2_bn_slots, 1) << "no slot for l2.0.weight";
}

// The units of the group holding `path`, each as its members' (layer, channel)s.
std::set<std::set<std::pair<std::string, int64_t>>> Units(const DependencyGraph& dg, const std::string& path) {
  std::set<std::set<std::pair<std::string, int64_t>>> out;
  for (const ChannelUnit& u : dg.groups[Space(dg, path).group].units) {
    std::set<std::pair<std::string, int64_t>> members;
    for (const ChannelRef& m : u.members) members.insert({dg.spaces[m.space].module_path, m.channel});
    out.insert(members);
  }
  return out;
}

void ExpectGroupedStructure(const DependencyGraph& dg) {
  EXPECT_TRUE(dg.unhandled_ops.empty()) << FormatDependencyGroups(dg);
  EXPECT_EQ(Groups(dg), (std::set<std::set<std::string>>{
                            {"stem.0", "expand.0"}, {"reduce.0"}, {"group.0"}, {"widen.0"}, {"fc"}}));
  // Derived from the layer shapes: a grouped conv with g groups of `per`
  // channels couples channel j with j + per, j + 2*per, ... (its input side
  // and its output side alike).
  auto coupled = [](const std::vector<std::string>& paths, int64_t groups, int64_t per) {
    std::set<std::set<std::pair<std::string, int64_t>>> units;
    for (int64_t j = 0; j < per; ++j) {
      std::set<std::pair<std::string, int64_t>> u;
      for (int64_t g = 0; g < groups; ++g) {
        for (const std::string& p : paths) u.insert({p, g * per + j});
      }
      units.insert(u);
    }
    return units;
  };
  EXPECT_EQ(Units(dg, "reduce.0"), coupled({"reduce.0"}, 4, 16 / 4));        // group's input
  EXPECT_EQ(Units(dg, "group.0"), coupled({"group.0"}, 4, 16 / 4));          // group's output
  EXPECT_EQ(Units(dg, "stem.0"), coupled({"stem.0", "expand.0"}, 2, 16 / 2));  // widen's input
  EXPECT_EQ(Units(dg, "widen.0"), coupled({"widen.0"}, 2, 24 / 2));          // widen's output
  EXPECT_EQ(Space(dg, "group.0").op_type, "GroupedConv2d");
  // The consumer slot of a grouped weight covers one group's positions.
  const auto widen = SlotsOf(dg, "widen.0.weight", SlotRole::kConsumerWeight);
  ASSERT_EQ(widen.size(), 1u);
  EXPECT_EQ(widen[0]->dim, 1);
  EXPECT_EQ(widen[0]->channels.size(), 8u);
}

TEST(DependencyGraphTest, GroupedConvsCoupleTheSamePositionInEveryGroupTraced) {
  ASSERT_OK_AND_ASSIGN(DependencyGraph dg, Build("grouped_traced"));
  ExpectGroupedStructure(dg);
}

TEST(DependencyGraphTest, GroupedConvsCoupleTheSamePositionInEveryGroupScripted) {
  ASSERT_OK_AND_ASSIGN(DependencyGraph dg, Build("grouped_scripted"));
  ExpectGroupedStructure(dg);
}

void ExpectShuffleStructure(const DependencyGraph& dg) {
  EXPECT_TRUE(dg.unhandled_ops.empty()) << FormatDependencyGroups(dg);
  // branch.3 is depthwise: it passes branch.0's channels through.
  EXPECT_EQ(Groups(dg), (std::set<std::set<std::string>>{
                            {"stem.0", "branch.5"}, {"branch.0"}, {"down.0"}, {"pw"}, {"fc"}}));
  // permute(0, 2, 3, 1) → pw (a linear over channels) → permute(0, 3, 1, 2):
  // down's channels are pw's inputs, pw's outputs reach fc through the pool.
  EXPECT_EQ(dg.groups[Space(dg, "down.0").group].prunable_units(), 24);
  EXPECT_EQ(dg.groups[Space(dg, "pw").group].prunable_units(), 24);
  // x1, x2 = stem.chunk(2): stem channel j goes with j + 8. cat(x1, branch)
  // viewed as [N, 2, 8, H, W] (2 constant): position j of x1 goes with
  // position j of the branch.
  std::set<std::set<std::pair<std::string, int64_t>>> want;
  for (int64_t j = 0; j < 8; ++j) want.insert({{"stem.0", j}, {"stem.0", j + 8}, {"branch.5", j}});
  EXPECT_EQ(Units(dg, "stem.0"), want);
  // After the transpose and the view back, down.0 reads x1[0], branch[0],
  // x1[1], branch[1], ...: torchvision's channel order.
  const int stem = Space(dg, "stem.0").id, branch = Space(dg, "branch.5").id;
  const auto down = SlotsOf(dg, "down.0.weight", SlotRole::kConsumerWeight);
  ASSERT_EQ(down.size(), 1u);
  ASSERT_EQ(down[0]->channels.size(), 16u);
  for (int64_t p = 0; p < 16; ++p) {
    EXPECT_EQ(down[0]->channels[p], (ChannelRef{p % 2 == 0 ? stem : branch, p / 2})) << "position " << p;
  }
}

TEST(DependencyGraphTest, ChunkAndChannelShuffleAreFollowedTraced) {
  ASSERT_OK_AND_ASSIGN(DependencyGraph dg, Build("shuffle_traced"));
  ExpectShuffleStructure(dg);
}

TEST(DependencyGraphTest, ChunkAndChannelShuffleAreFollowedScripted) {
  ASSERT_OK_AND_ASSIGN(DependencyGraph dg, Build("shuffle_scripted"));
  ExpectShuffleStructure(dg);
}

TEST(DependencyGraphTest, ConstantViewShapeKeepsItsChannelsAndSaysWhy) {
  ASSERT_OK_AND_ASSIGN(Model m, Model::Load("graph/testdata/const_view_traced.pt"));
  ASSERT_OK_AND_ASSIGN(DependencyGraph dg, BuildDependencyGraph(m, {RandomInput({1, 16, 16}, 2)}));
  const ChannelSpace& conv2 = Space(dg, "conv2");
  EXPECT_EQ(dg.groups[conv2.group].prunable_units(), 0);
  EXPECT_THAT(conv2.blocked_reason, HasSubstr("constant shape entry 128 (use torch.flatten(x, 1))"));
  EXPECT_THAT(dg.unhandled_ops, ElementsAre(HasSubstr("aten::view")));
  // conv1 is unaffected.
  EXPECT_EQ(dg.groups[Space(dg, "conv1").group].prunable_units(), 6);
  EXPECT_THAT(FormatDependencyGroups(dg), HasSubstr("ops that keep channels:"));
}

TEST(DependencyGraphTest, AChannelShuffleWithConstantSizesKeepsItsChannelsAndSaysWhy) {
  ASSERT_OK_AND_ASSIGN(Model m, Model::Load("graph/testdata/const_shuffle_traced.pt"));
  ASSERT_OK_AND_ASSIGN(DependencyGraph dg, BuildDependencyGraph(m, {RandomInput({1, 16, 16}, 2)}));
  const ChannelSpace& conv1 = Space(dg, "conv1");
  EXPECT_EQ(dg.groups[conv1.group].prunable_units(), 0);
  EXPECT_THAT(conv1.blocked_reason, HasSubstr("splits the channel axis into constant sizes"));
  EXPECT_THAT(dg.unhandled_ops, ElementsAre(HasSubstr("aten::view")));
  EXPECT_EQ(dg.groups[Space(dg, "conv2").group].prunable_units(), 8);
}

TEST(DependencyGraphTest, InstanceNormPReLUCropsAndSqueeze) {
  ASSERT_OK_AND_ASSIGN(DependencyGraph dg, Build("everyday_traced"));
  EXPECT_TRUE(dg.unhandled_ops.empty()) << FormatDependencyGroups(dg);
  // conv1 → instance norm → PReLU → crop (x[:, :, 1:-1, 1:-1]) → conv2: all
  // 12 channels prunable; the SE gate (mean → se1 → se2 → unsqueeze twice →
  // mul) couples se2 with conv2; pooling and squeeze(-1) twice feed fc.
  EXPECT_EQ(Groups(dg), (std::set<std::set<std::string>>{{"conv1"}, {"conv2", "se2"}, {"se1"}, {"fc"}}));
  EXPECT_EQ(dg.groups[Space(dg, "conv1").group].prunable_units(), 12);
  EXPECT_EQ(dg.groups[Space(dg, "conv2").group].prunable_units(), 16);
  std::map<std::string, SlotRole> conv1_slots;
  for (const TensorSlot& slot : dg.slots) {
    if (slot.channels.size() == 12 && slot.channels[0].space == Space(dg, "conv1").id) {
      conv1_slots[slot.tensor] = slot.role;
    }
  }
  EXPECT_EQ(conv1_slots, (std::map<std::string, SlotRole>{{"conv1.weight", SlotRole::kProducerWeight},
                                                           {"conv1.bias", SlotRole::kProducerBias},
                                                           {"norm1.weight", SlotRole::kNormWeight},
                                                           {"norm1.bias", SlotRole::kNormBias},
                                                           {"act1.weight", SlotRole::kPerChannel},
                                                           {"conv2.weight", SlotRole::kConsumerWeight}}));
  // Scripted, nn.InstanceNorm2d's forward returns early on input.dim() and
  // raises when input.size(1) != self.num_features (an attribute pruning
  // does not change): its channels stay, with the reason.
  ASSERT_OK_AND_ASSIGN(DependencyGraph scripted, Build("everyday_scripted"));
  const ChannelSpace& conv1 = Space(scripted, "conv1");
  EXPECT_EQ(scripted.groups[conv1.group].prunable_units(), 0);
  EXPECT_THAT(conv1.blocked_reason, HasSubstr("used inside prim::If (aten::instance_norm)"));
  EXPECT_EQ(scripted.groups[Space(scripted, "conv2").group].prunable_units(), 16);
}

}  // namespace
}  // namespace slimfit
