// The conformance suite every registered pruner runs (tensorstore's
// driver_testutil idea), on every zoo model and on Python traced / scripted
// models with residual adds, concatenation, depthwise convs, a gate and
// flatten → linear; plus the planning rules.
#include <ATen/ATen.h>
#include <ATen/core/grad_mode.h>
#include <torch/csrc/jit/api/module.h>

#include <cmath>

#include "absl/strings/str_format.h"
#include "common/status_matchers.h"
#include "common/text_proto.h"
#include "data/splits.h"
#include "evaluators/evaluation_function.h"
#include "gmock/gmock.h"
#include "graph/pruning_test_util.h"
#include "graph/surgery.h"
#include "gtest/gtest.h"
#include "losses/loss_function.h"
#include "pruners/plan.h"
#include "pruners/prune.h"
#include "pruners/pruner.h"

namespace slimfit {
namespace {

using ::slimfit::testing::EvalForward;
using ::slimfit::testing::PruningTestModels;
using ::slimfit::testing::RandomInput;
using ::slimfit::testing::StatusIs;
using ::testing::HasSubstr;

struct Env {
  DataConfig data;
  Splits splits;
  std::unique_ptr<DataLoader> train;
  std::shared_ptr<ForwardPass> fp = std::make_shared<ForwardPass>();
  std::unique_ptr<LossFunction> loss;
  TrainerConfig finetune;
  Env() {
    EXPECT_OK(ParseTextProto("synthetic { train_samples: 64 test_samples: 16 shape: [1, 16, 16] "
                             "num_classes: 10 } train_batch_size: 16 seed: 1",
                             "t", &data));
    splits = LoadSplits(data).value();
    train = MakeLoader(data, splits, "train").value();
    LossConfig lc;
    lc.mutable_cross_entropy();
    loss = MakeLoss(lc, LossContext{fp}).value();
    EXPECT_OK(ParseTextProto("optimizer { sgd { momentum: 0.9 } lr: 0.01 } progress: NONE", "t", &finetune));
    Batch b;
    EXPECT_OK(train->Reset(0));
    EXPECT_TRUE(train->Next(&b).value());
    EXPECT_OK(fp->ExtractModelInputs(b).status());
  }
  PruneDeps Deps() {
    PruneDeps d;
    d.forward_pass = fp.get();
    d.loss = loss.get();
    d.train = train.get();
    d.finetune = &finetune;
    return d;
  }
};

PruningConfig Config(const std::string& pruner, const std::string& extra = "") {
  PruningConfig c;
  EXPECT_OK(ParseTextProto(absl::StrFormat("%s {} %s", pruner, extra), "t", &c));
  return c;
}

class PrunerConformanceTest : public ::testing::TestWithParam<std::string> {};

TEST_P(PrunerConformanceTest, PrunesEveryTestModelCorrectly) {
  Env env;
  ASSERT_OK_AND_ASSIGN(auto models, PruningTestModels());
  const bool structured = GetParam() != "level";
  for (auto& [name, model, shape] : models) {
    SCOPED_TRACE(name);
    if (GetParam() == "slim" && name == "lenet5") {
      EXPECT_THAT(Prune(model, Config(GetParam(), "ratio: 0.5"), env.Deps()).status(),
                  StatusIs(absl::StatusCode::kFailedPrecondition, HasSubstr("has no batch norm")));
      continue;
    }
    ASSERT_OK_AND_ASSIGN(PruneResult r, Prune(model, Config(GetParam(), "ratio: 0.5"), env.Deps()));
    // Pruned = masked (checked inside Prune, and reported).
    EXPECT_LE(r.max_masked_diff, 1e-4);
    EXPECT_TRUE(r.unhandled_ops.empty());
    if (structured) {
      EXPECT_LT(r.model.NumParameters(), model.NumParameters() * 0.7);
      // The ratio asked is the ratio got, within one channel, where nothing
      // blocks it; no layer loses every channel.
      for (const LayerPlan& l : r.layers) {
        EXPECT_GE(l.kept, 1) << l.module_path;
        if (l.selected && l.note.empty()) {
          EXPECT_NEAR(l.channels - l.kept, std::llround(0.5 * l.channels), 1) << l.module_path;
        }
      }
    } else {
      EXPECT_NEAR(r.sparsity, 0.5, 0.02);
      EXPECT_EQ(r.model.NumParameters(), model.NumParameters());
    }
    // It saves, reloads with plain LibTorch, and gives the same outputs.
    const at::Tensor x = RandomInput(shape, 3, 5);
    const std::string path = ::slimfit::testing::TempPath(name + "_" + GetParam() + ".pt");
    ASSERT_OK(r.model.Save(path));
    ASSERT_OK_AND_ASSIGN(Model reloaded, Model::Load(path));
    EXPECT_TRUE(at::allclose(EvalForward(reloaded, x), EvalForward(r.model, x), 1e-5, 1e-6));
  }
}

TEST_P(PrunerConformanceTest, NeverRemovesEveryChannel) {
  Env env;
  ASSERT_OK_AND_ASSIGN(auto models, PruningTestModels());
  ASSERT_OK_AND_ASSIGN(PruneResult r, Prune(models[1].model, Config(GetParam(), "ratio: 0.99 max_ratio: 0.999"),
                                            env.Deps()));
  for (const LayerPlan& l : r.layers) EXPECT_GE(l.kept, 1) << l.module_path;
}

// Pruned == masked, recomputed here rather than taken from the
// max_masked_diff Prune reports: the input model with the channels of the
// plan Prune returns zeroed (graph/surgery.h's ApplyMasks, on a graph this
// test analyses) gives the pruned model's outputs. One-shot, no batch-norm
// re-estimation and no fine-tuning, so the cut is all that changed; run for
// every structured pruner that cuts the input model's own weights (slim
// trains them for sparsity first; level is unstructured).
class PrunedEqualsMaskedTest : public ::testing::TestWithParam<std::string> {};

std::vector<std::string> PrunersThatCutTheInput() {
  std::vector<std::string> names;
  for (const std::string& n : PrunerRegistry().Names()) {
    if (n != "slim" && n != "level") names.push_back(n);
  }
  return names;
}

TEST(PrunedEqualsMaskedListTest, CoversTheStructuredPruners) {
  const std::vector<std::string> names = PrunersThatCutTheInput();
  EXPECT_EQ(names.size() + 2, PrunerRegistry().Names().size());
  EXPECT_THAT(names, ::testing::IsSupersetOf({"l1_filter", "fpgm", "taylor"}));
}

TEST_P(PrunedEqualsMaskedTest, OnEveryTestModel) {
  Env env;
  ASSERT_OK_AND_ASSIGN(auto models, PruningTestModels());
  ASSERT_GE(models.size(), 3u);
  for (auto& [name, model, shape] : models) {
    SCOPED_TRACE(name);
    ASSERT_OK_AND_ASSIGN(PruneResult r,
                         Prune(model, Config(GetParam(), "ratio: 0.5 bn_recalibration_batches: 0"), env.Deps()));
    int64_t removed = 0;
    for (const LayerPlan& l : r.layers) removed += l.channels - l.kept;
    ASSERT_GT(removed, 0) << "the cut removed nothing: the check below would compare a model with itself";
    ASSERT_OK_AND_ASSIGN(Model masked, model.Clone());
    ASSERT_OK_AND_ASSIGN(DependencyGraph graph, AnalyzeModel(masked, *env.fp));
    ASSERT_OK(ApplyMasks(masked, graph, r.plan));
    const at::Tensor x = RandomInput(shape, 4, 11);
    const at::Tensor want = EvalForward(masked, x), got = EvalForward(r.model, x);
    ASSERT_EQ(want.sizes(), got.sizes());
    EXPECT_TRUE(at::allclose(got, want, 1e-4, 1e-5)) << "max |diff| " << (got - want).abs().max().item<double>();
  }
}

INSTANTIATE_TEST_SUITE_P(CuttingPruners, PrunedEqualsMaskedTest, ::testing::ValuesIn(PrunersThatCutTheInput()),
                         [](const auto& info) { return info.param; });

INSTANTIATE_TEST_SUITE_P(AllPruners, PrunerConformanceTest,
                         ::testing::ValuesIn(PrunerRegistry().Names()),
                         [](const auto& info) { return info.param; });

TEST(PrunerRegistryTest, EveryOneofChoiceIsRegistered) {
  const auto* oneof = PruningConfig::descriptor()->FindOneofByName("pruner");
  ASSERT_NE(oneof, nullptr);
  for (int i = 0; i < oneof->field_count(); ++i) {
    EXPECT_TRUE(PrunerRegistry().Contains(oneof->field(i)->name())) << oneof->field(i)->name();
  }
  EXPECT_EQ(static_cast<int>(PrunerRegistry().Names().size()), oneof->field_count());
}

TEST(PruneTest, DataDrivenPrunerWithoutDataSaysSo) {
  Env env;
  ASSERT_OK_AND_ASSIGN(auto models, PruningTestModels());
  PruneDeps deps;
  deps.forward_pass = env.fp.get();
  EXPECT_THAT(Prune(models[0].model, Config("taylor", "ratio: 0.5"), deps).status(),
              StatusIs(absl::StatusCode::kFailedPrecondition,
                       HasSubstr("pruner \"taylor\" scores channels on training batches: give it data")));
}

TEST(PruneTest, UnknownOrMissingPrunerIsAClearError) {
  Env env;
  ASSERT_OK_AND_ASSIGN(auto models, PruningTestModels());
  EXPECT_THAT(
      Prune(models[0].model, PruningConfig(), env.Deps()).status(),
      StatusIs(
          absl::StatusCode::kInvalidArgument,
          "pruning: no pruner set; valid: activation_mean, apoz, fpgm, l1_filter, l2_filter, level, slim, taylor"));
}

TEST(PruneTest, IterativeAndAgpReachTheRatio) {
  Env env;
  ASSERT_OK_AND_ASSIGN(auto models, PruningTestModels());
  Model& resnet = models[2].model;
  for (const char* schedule : {"iterative { steps: 3 finetune_epochs: 1 }", "agp { epochs: 2 frequency: 2 }"}) {
    SCOPED_TRACE(schedule);
    ASSERT_OK_AND_ASSIGN(PruneResult r,
                         Prune(resnet, Config("l1_filter", absl::StrCat("ratio: 0.5 ", schedule)), env.Deps()));
    for (const LayerPlan& l : r.layers) {
      if (l.selected && l.note.empty()) {
        // Iterative compounds per-step rounding: within one channel per step.
        EXPECT_NEAR(l.channels - l.kept, std::llround(0.5 * l.channels), 3) << l.module_path;
      }
    }
    EXPECT_LE(r.max_masked_diff, 1e-4);
  }
}

TEST(PruneTest, SlimTrainsWithTheL1TermFirst) {
  Env env;
  ASSERT_OK_AND_ASSIGN(auto models, PruningTestModels());
  ASSERT_OK_AND_ASSIGN(PruneResult r, Prune(models[1].model, Config("slim", "ratio: 0.3"), env.Deps()));
  ASSERT_FALSE(r.log.empty());
  EXPECT_THAT(r.log[0], HasSubstr("sparsity training: 2 epochs"));
}

// ---- planning rules ----

absl::StatusOr<DependencyGraph> ResnetGraph(Model& m) {
  return BuildDependencyGraph(m, {RandomInput({1, 16, 16}, 2)});
}

TEST(PlanTest, RegexSelectionExcludeAndPerEntryRatio) {
  ASSERT_OK_AND_ASSIGN(auto models, PruningTestModels());
  ASSERT_OK_AND_ASSIGN(DependencyGraph dg, ResnetGraph(models[2].model));
  PruningConfig c = Config("l1_filter",
                           "ratio: 0.5 layers { module_regex: \".*conv1\" exclude: true } "
                           "layers { op_types: \"Conv2d\" module_regex: \"layer2.*\" ratio: 0.25 }");
  ASSERT_OK_AND_ASSIGN(PlanResult p, MakePlan(dg, c, nullptr));
  for (const LayerPlan& l : p.layers) {
    if (l.module_path.size() >= 5 && l.module_path.substr(l.module_path.size() - 5) == "conv1") {
      EXPECT_EQ(l.kept, l.channels) << l.module_path;
      EXPECT_EQ(l.note, "excluded");
    } else if (l.module_path.rfind("layer2", 0) == 0 && l.note.empty()) {
      EXPECT_NEAR(l.channels - l.kept, std::llround(0.25 * l.channels), 1) << l.module_path;
    }
  }
  EXPECT_THAT(FormatPlan(p), HasSubstr("excluded"));
}

TEST(PlanTest, GlobalBudgetRemovesTheRatioOfAllSelectedUnits) {
  ASSERT_OK_AND_ASSIGN(auto models, PruningTestModels());
  ASSERT_OK_AND_ASSIGN(DependencyGraph dg, ResnetGraph(models[2].model));
  ChannelScores scores = EmptyScores(dg);
  for (auto& s : scores) {
    for (size_t c = 0; c < s.size(); ++c) s[c] = 1.0 + static_cast<double>(c % 7);
  }
  ASSERT_OK_AND_ASSIGN(PlanResult p, MakePlan(dg, Config("l1_filter", "ratio: 0.4 global: true"), &scores));
  int64_t units = 0, removed_units = 0;
  for (const ChannelGroup& g : dg.groups) {
    if (g.prunable_units() == 0) continue;
    units += g.units.size();
    removed_units += p.plan.RemovedFrom(g.spaces[0]);
  }
  EXPECT_NEAR(removed_units, std::llround(0.4 * units), 1);
}

TEST(PlanTest, RoundToAndMinChannels) {
  ASSERT_OK_AND_ASSIGN(auto models, PruningTestModels());
  ASSERT_OK_AND_ASSIGN(DependencyGraph dg, ResnetGraph(models[2].model));
  ASSERT_OK_AND_ASSIGN(PlanResult p, MakePlan(dg, Config("l1_filter", "ratio: 0.3 round_to: 4"), nullptr));
  for (const LayerPlan& l : p.layers) {
    if (l.kept < l.channels) {
      EXPECT_EQ(l.kept % 4, 0) << l.module_path << " kept " << l.kept;
    }
  }
  ASSERT_OK_AND_ASSIGN(p, MakePlan(dg, Config("l1_filter", "ratio: 0.9 max_ratio: 0.99 min_channels: 3"), nullptr));
  for (const LayerPlan& l : p.layers) EXPECT_GE(l.kept, std::min<int64_t>(3, l.channels)) << l.module_path;
}

TEST(PlanTest, BadConfigsNameTheField) {
  EXPECT_THAT(ValidatePruningConfig(Config("fpgm", "ratio: 1.5")),
              StatusIs(absl::StatusCode::kInvalidArgument, "pruning.ratio: out of range, got 1.5; valid: [0, 1)"));
  EXPECT_THAT(ValidatePruningConfig(Config("fpgm", "layers { module_regex: \"(\" }")),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("pruning.layers[0].module_regex")));
  EXPECT_THAT(
      ValidatePruningConfig(Config("fpgm", "layers { ratio: -0.1 }")),
      StatusIs(absl::StatusCode::kInvalidArgument, "pruning.layers[0].ratio: out of range, got -0.1; valid: [0, 1)"));
  EXPECT_THAT(
      ValidatePruningConfig(Config("fpgm", "iterative { steps: 0 }")),
      StatusIs(absl::StatusCode::kInvalidArgument, "pruning.iterative.steps: out of range, got 0; valid: [1, 100]"));
  EXPECT_THAT(ValidatePruningConfig(Config("fpgm", "layers { exclude: true max_ratio: 0.5 }")),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       "pruning.layers[0].max_ratio: set on an exclude entry, got 0.5; valid: unset when exclude is "
                       "true"));
  EXPECT_THAT(ValidatePruningConfig(Config("fpgm", "round_to: -8")),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       "pruning.round_to: out of range, got -8; valid: [0, 1024] (0 or 1: no rounding)"));
}

}  // namespace
}  // namespace slimfit
