// Depth pruning in the search (compression.remove_blocks): on resnet_small
// (four blocks with an identity shortcut) every block's drop is measured,
// candidates remove blocks once the tolerance allows and say so, level 2
// quantizes a model without blocks; the written model loads with plain
// LibTorch, scores what its record says, and its trainable twin lacks the
// removed layers. With remove_blocks off no block is touched.
#include <torch/csrc/jit/serialization/import.h>

#include <map>
#include <set>
#include <string>

#include "absl/strings/match.h"
#include "common/status_matchers.h"
#include "gmock/gmock.h"
#include "graph/layer_table.h"
#include "gtest/gtest.h"
#include "search/engine.h"
#include "search/engine_testing.h"

namespace slimfit {
namespace {

using ::slimfit::testing::BuildEngine;
using ::slimfit::testing::MetricOfFile;
using ::slimfit::testing::ZooSlice;

// resnet_small's blocks whose shortcut is the identity (graph/depth_test.cc).
const std::set<std::string> kBlocks = {"layer1.b0", "layer1.b1", "layer2.b1", "layer3.b1"};

std::set<std::string> RemovedBlocks(const CandidateRecord& r) {
  std::set<std::string> out;
  for (const auto& [path, ratio] : r.ratios()) {
    if (absl::StartsWith(path, "depth:") && ratio >= 1) out.insert(path.substr(6));
  }
  return out;
}

TEST(EngineDepthTest, BlocksAreMeasuredRemovedAndTheResultHoldsUp) {
  // A delta this wide lets the bisection reach the largest reductions, where
  // the allocation removes blocks.
  auto b = BuildEngine(ZooSlice("resnet_small", "depth",
                                "delta: 30 level: 2 objective: MACS candidate_epochs: 1 final_epochs: 1 "
                                "tune_lr: false tuning { probes: 3 }"));
  ASSERT_NE(b->engine, nullptr);
  ASSERT_OK_AND_ASSIGN(EngineResult r, b->engine->Run());
  std::set<std::string> measured;
  int with_blocks = 0;
  for (const CandidateRecord& c : r.candidates) {
    if (c.phase() == "sensitivity" && absl::StartsWith(c.description(), "residual block ")) {
      ASSERT_EQ(c.ratios().size(), 1u);
      measured.insert(c.ratios().begin()->first.substr(6));
    }
    if (c.phase() != "candidate" || RemovedBlocks(c).empty()) continue;
    ++with_blocks;
    EXPECT_THAT(c.description(),
                ::testing::HasSubstr(absl::StrCat(RemovedBlocks(c).size(), " residual block(s) removed")));
    for (const std::string& block : RemovedBlocks(c)) EXPECT_TRUE(kBlocks.count(block)) << block;
  }
  EXPECT_EQ(measured, kBlocks);
  EXPECT_GE(with_blocks, 1);
  // Level 2 quantized a model without blocks (int8 works on the inlined,
  // shallower forward).
  int int8_without_blocks = 0;
  for (const CandidateRecord& c : r.candidates) {
    int8_without_blocks += c.phase() == "int8" && !RemovedBlocks(c).empty();
  }
  EXPECT_GE(int8_without_blocks, 1);
  // The result is compressed, within delta re-measured from the file, and
  // the blocks its record removes are gone from it.
  ASSERT_FALSE(r.returned_reference) << r.why;
  EXPECT_LT(r.chosen.macs(), r.reference.macs());
  const std::string model_pt = r.run_dir + "/model.pt";
  EXPECT_NEAR(MetricOfFile(b->experiment, model_pt), r.chosen.eval_metric(), 1e-6);
  // model.pt is frozen (no module paths left): the layers are read from its
  // trainable twin.
  ASSERT_OK_AND_ASSIGN(Model written, Model::Load(r.run_dir + "/model_trainable.pt"));
  ASSERT_OK_AND_ASSIGN(LayerTable table, BuildLayerTable(written));
  std::set<std::string> layers;
  for (const Layer& l : table.layers) layers.insert(l.module_path);
  for (const std::string& block : RemovedBlocks(r.chosen)) {
    EXPECT_FALSE(layers.count(block + ".conv1")) << block;
    EXPECT_FALSE(layers.count(block + ".conv2")) << block;
  }
  EXPECT_TRUE(layers.count("conv1"));
}

TEST(EngineDepthTest, RemoveBlocksOffTouchesNoBlock) {
  auto b = BuildEngine(ZooSlice("resnet_small", "depth_off",
                                "delta: 30 level: 1 objective: MACS candidate_epochs: 1 final_epochs: 0 "
                                "remove_blocks: false tune_lr: false tuning { probes: 1 }"));
  ASSERT_NE(b->engine, nullptr);
  ASSERT_OK_AND_ASSIGN(EngineResult r, b->engine->Run());
  int candidates = 0;
  for (const CandidateRecord& c : r.candidates) {
    for (const auto& [path, ratio] : c.ratios()) EXPECT_FALSE(absl::StartsWith(path, "depth:")) << c.key();
    candidates += c.phase() == "candidate";
  }
  EXPECT_GE(candidates, 1);
}

}  // namespace
}  // namespace slimfit
