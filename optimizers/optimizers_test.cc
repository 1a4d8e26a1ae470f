#include <ATen/ATen.h>
#include <google/protobuf/descriptor.h>
#include <torch/csrc/jit/api/module.h>
#include <torch/optim/optimizer.h>

#include <cmath>

#include "common/field_error.h"
#include "common/status_matchers.h"
#include "common/text_proto.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "model/test_models.h"
#include "model/zoo/zoo.h"
#include "optimizers/factories.h"

namespace slimfit {
namespace {

using ::slimfit::testing::StatusIs;
using ::testing::HasSubstr;

struct OptimGolden {
  const char* config;
  std::vector<double> losses;
  std::vector<double> final_params;
};
struct SchedGolden {
  const char* config;
  std::vector<double> lrs;
  std::vector<double> metrics;
};
#include "optimizers/testdata/goldens.inc"

// The golden problem: forward(x) = x @ w + b with w = [0.1, 0.2, 0.3, 0.4]^T, b = 0.05 (float64).
Model LinearProblem() {
  return testing::ScriptedTestModel(
      "Linear", "def forward(self, x: Tensor) -> Tensor:\n    return torch.matmul(x, self.w) + self.b\n",
      {{"w", at::tensor({0.1, 0.2, 0.3, 0.4}, at::kDouble).view({4, 1})}, {"b", at::tensor({0.05}, at::kDouble)}});
}

at::Tensor X() {
  at::Tensor x = at::empty({16, 4}, at::kDouble);
  for (int i = 0; i < 16; ++i)
    for (int j = 0; j < 4; ++j) x[i][j] = std::sin(0.3 * i + 0.7 * j);
  return x;
}
at::Tensor Y() {
  at::Tensor y = at::empty({16, 1}, at::kDouble);
  for (int i = 0; i < 16; ++i) y[i][0] = std::cos(0.5 * i);
  return y;
}

TEST(OptimizersTest, TrajectoriesMatchPyTorch) {
  const at::Tensor x = X(), y = Y();
  for (const OptimGolden& g : kOptimGoldens) {
    SCOPED_TRACE(g.config);
    OptimizerConfig c;
    ASSERT_OK(ParseTextProto(g.config, "golden", &c));
    ASSERT_OK_AND_ASSIGN(auto factory, MakeOptimizerFactory(c));
    Model m = LinearProblem();
    ASSERT_OK_AND_ASSIGN(auto opt, factory->Make(m));
    for (size_t step = 0; step < g.losses.size(); ++step) {
      opt->zero_grad();
      at::Tensor loss = (m.module().forward({x}).toTensor() - y).pow(2).mean();
      ASSERT_NEAR(loss.item<double>(), g.losses[step], 1e-9 + 1e-9 * std::abs(g.losses[step]))
          << "step " << step;
      loss.backward();
      opt->step();
    }
    auto params = m.NamedParameters();
    at::Tensor final = at::cat({params[0].second.detach().flatten(), params[1].second.detach()});
    for (size_t i = 0; i < g.final_params.size(); ++i) {
      EXPECT_NEAR(final[i].item<double>(), g.final_params[i], 1e-9) << "param " << i;
    }
  }
}

TEST(SchedulersTest, LearningRatesMatchPyTorch) {
  for (const SchedGolden& g : kSchedGoldens) {
    SCOPED_TRACE(g.config);
    SchedulerConfig c;
    ASSERT_OK(ParseTextProto(g.config, "golden", &c));
    ASSERT_OK_AND_ASSIGN(auto sf, MakeSchedulerFactory(c));
    OptimizerConfig oc;
    ASSERT_OK(ParseTextProto("sgd {} lr: 0.1", "t", &oc));
    ASSERT_OK_AND_ASSIGN(auto of, MakeOptimizerFactory(oc));
    Model m = LinearProblem();
    ASSERT_OK_AND_ASSIGN(auto opt, of->Make(m));
    ASSERT_OK_AND_ASSIGN(auto sched, sf->Make(*opt));
    for (size_t s = 0; s < g.lrs.size(); ++s) {
      EXPECT_NEAR(sched->lr(), g.lrs[s], 1e-12) << "step " << s;
      if (g.metrics.empty()) {
        ASSERT_OK(sched->Step());
      } else {
        ASSERT_OK(sched->Step(g.metrics[s]));
      }
    }
  }
}

TEST(SchedulersTest, CosineWarmupRampsLinearlyThenAnneals) {
  SchedulerConfig c;
  ASSERT_OK(ParseTextProto("cosine { t_max: 10 warmup_steps: 4 warmup_start_factor: 0.2 }", "t", &c));
  ASSERT_OK_AND_ASSIGN(auto sf, MakeSchedulerFactory(c));
  OptimizerConfig oc;
  ASSERT_OK(ParseTextProto("sgd {} lr: 1.0", "t", &oc));
  Model m = LinearProblem();
  auto opt = MakeOptimizerFactory(oc).value()->Make(m).value();
  auto sched = sf->Make(*opt).value();
  std::vector<double> lrs;
  for (int i = 0; i <= 10; ++i) {
    lrs.push_back(sched->lr());
    ASSERT_OK(sched->Step());
  }
  EXPECT_NEAR(lrs[0], 0.2, 1e-12);
  EXPECT_NEAR(lrs[2], 0.6, 1e-12);
  EXPECT_NEAR(lrs[4], 1.0, 1e-12);
  EXPECT_NEAR(lrs[7], 0.5, 1e-12);
  EXPECT_NEAR(lrs[10], 0.0, 1e-12);
  EXPECT_EQ(sched->interval(), SchedulerConfig::EPOCH);
}

TEST(OptimizersTest, ParamGroupsSetPerGroupOptions) {
  ASSERT_OK_AND_ASSIGN(Model m, CreateZooModel("resnet_small"));
  OptimizerConfig c;
  ASSERT_OK(ParseTextProto(R"pb(
    sgd { momentum: 0.9 } lr: 0.1 weight_decay: 5e-4 no_weight_decay_on_bias_and_norm: true
    param_groups { name_regex: "fc\\..*" lr_scale: 0.1 }
  )pb", "t", &c));
  ASSERT_OK_AND_ASSIGN(auto factory, MakeOptimizerFactory(c));
  ASSERT_OK_AND_ASSIGN(auto opt, factory->Make(m));
  // Groups in order: biases (fc.bias and the 15 batch-norm biases; convs have
  // none), norm scales (15), fc weight (lr 0.01), the rest (convs).
  auto& groups = opt->param_groups();
  ASSERT_EQ(groups.size(), 4u);
  int64_t total = 0;
  for (auto& g : groups) total += static_cast<int64_t>(g.params().size());
  EXPECT_EQ(total, static_cast<int64_t>(m.NamedParameters().size()));
  EXPECT_EQ(groups[0].params().size(), 16u);
  EXPECT_EQ(groups[1].params().size(), 15u);
  EXPECT_EQ(groups[0].options().get_lr(), 0.1);
  EXPECT_NEAR(groups[2].options().get_lr(), 0.01, 1e-12);
  EXPECT_EQ(groups[2].params().size(), 1u);
  EXPECT_NEAR(groups[3].options().get_lr(), 0.1, 1e-12);
}

TEST(OptimizersTest, EveryConfigChoiceIsRegistered) {
  for (auto [desc, reg] : {std::make_pair(OptimizerConfig::descriptor()->FindOneofByName("optimizer"),
                                          OptimizerRegistry().Names()),
                           std::make_pair(SchedulerConfig::descriptor()->FindOneofByName("scheduler"),
                                          SchedulerRegistry().Names())}) {
    for (int i = 0; i < desc->field_count(); ++i) {
      EXPECT_THAT(reg, ::testing::Contains(desc->field(i)->name()));
    }
    EXPECT_EQ(reg.size(), static_cast<size_t>(desc->field_count()));
  }
}

// As the trainer calls them: the errors' paths rooted at full_trainer.
absl::Status OptError(const std::string& text) {
  OptimizerConfig c;
  EXPECT_OK(ParseTextProto(text, "t", &c));
  return WithContext(MakeOptimizerFactory(c).status(), AtField("full_trainer.optimizer"));
}
absl::Status SchedError(const std::string& text) {
  SchedulerConfig c;
  EXPECT_OK(ParseTextProto(text, "t", &c));
  return WithContext(MakeSchedulerFactory(c).status(), AtField("full_trainer.scheduler"));
}

TEST(OptimizersTest, BadConfigsNameTheField) {
  const auto invalid = [](const std::string& message) { return StatusIs(absl::StatusCode::kInvalidArgument, message); };
  EXPECT_THAT(OptError("lr: 0.1"),
              invalid("full_trainer.optimizer: no optimizer set; valid: adagrad, adam, adamw, rmsprop, sgd"));
  EXPECT_THAT(OptError("sgd {}"), invalid("full_trainer.optimizer.lr: required, and positive, got 0; valid: > 0"));
  EXPECT_THAT(OptError("sgd { momentum: 1.5 } lr: 0.1"),
              invalid("full_trainer.optimizer.sgd.momentum: out of range, got 1.5; valid: [0, 1)"));
  EXPECT_THAT(OptError("sgd { nesterov: true } lr: 0.1"),
              invalid("full_trainer.optimizer.sgd.nesterov: needs sgd.momentum > 0 and sgd.dampening 0, got "
                      "momentum 0, dampening 0; valid: nesterov: false, or momentum > 0 with dampening 0"));
  EXPECT_THAT(OptError("adam { beta2: 1 } lr: 0.1"),
              invalid("full_trainer.optimizer.adam.beta2: out of range, got 1; valid: [0, 1)"));
  EXPECT_THAT(OptError("adamw { eps: 0 } lr: 0.1"),
              invalid("full_trainer.optimizer.adamw.eps: not positive, got 0; valid: > 0"));
  EXPECT_THAT(OptError("sgd {} lr: 0.1 weight_decay: -1"),
              invalid("full_trainer.optimizer.weight_decay: negative, got -1; valid: >= 0"));
  EXPECT_THAT(OptError("sgd {} lr: 0.1 param_groups { name_regex: 'fc(' }"),
              invalid("full_trainer.optimizer.param_groups[0].name_regex: not an RE2 regex (missing ): fc(), "
                      "got \"fc(\""));
  EXPECT_THAT(OptError("sgd {} lr: 0.1 param_groups { lr_scale: 0 }"),
              invalid("full_trainer.optimizer.param_groups[0].lr_scale: not positive, got 0; valid: > 0"));
  EXPECT_THAT(OptError("rmsprop { alpha: 1 } lr: 0.1"),
              invalid("full_trainer.optimizer.rmsprop.alpha: out of range, got 1; valid: [0, 1)"));
  EXPECT_THAT(OptError("adagrad { lr_decay: -1 } lr: 0.1"),
              invalid("full_trainer.optimizer.adagrad.lr_decay: negative, got -1; valid: >= 0"));
}

TEST(SchedulersTest, BadConfigsNameTheField) {
  const auto invalid = [](const std::string& message) { return StatusIs(absl::StatusCode::kInvalidArgument, message); };
  EXPECT_THAT(SchedError("step { }"), invalid("full_trainer.scheduler.step.step_size: required, got 0; valid: >= 1"));
  EXPECT_THAT(SchedError("multistep { milestones: [3, 2] }"),
              invalid("full_trainer.scheduler.multistep.milestones[1]: not above the milestone before it, got [3, "
                      "2]; valid: increasing steps >= 1"));
  EXPECT_THAT(SchedError("exponential { }"),
              invalid("full_trainer.scheduler.exponential.gamma: not positive, got 0; valid: > 0"));
  EXPECT_THAT(SchedError("multiplicative { factor: -1 }"),
              invalid("full_trainer.scheduler.multiplicative.factor: not positive, got -1; valid: > 0"));
  EXPECT_THAT(SchedError("cosine { t_max: 3 warmup_steps: 3 }"),
              invalid("full_trainer.scheduler.cosine.t_max: required, and above cosine.warmup_steps, got 3; "
                      "valid: > 3"));
  EXPECT_THAT(SchedError("one_cycle { total_steps: 10 pct_start: 1 }"),
              invalid("full_trainer.scheduler.one_cycle.pct_start: out of range, got 1; valid: (0, 1)"));
  EXPECT_THAT(SchedError("one_cycle { }"),
              invalid("full_trainer.scheduler.one_cycle.total_steps: required, got 0; valid: >= 2"));
  EXPECT_THAT(SchedError("reduce_on_plateau { factor: 2 }"),
              invalid("full_trainer.scheduler.reduce_on_plateau.factor: out of range, got 2; valid: (0, 1)"));
  EXPECT_THAT(SchedError("reduce_on_plateau { min_lr: -1 }"),
              invalid("full_trainer.scheduler.reduce_on_plateau.min_lr: negative, got -1; valid: >= 0"));
  EXPECT_THAT(SchedError("reduce_on_plateau { } interval: EPOCH"),
              invalid("full_trainer.scheduler.interval: reduce_on_plateau is stepped with the eval metric, got "
                      "EPOCH; valid: EVAL"));
  EXPECT_THAT(SchedError("step { step_size: 1 } eval_based: true"),
              invalid("full_trainer.scheduler.eval_based: only reduce_on_plateau uses the eval metric, got true; "
                      "valid: false, or a reduce_on_plateau scheduler"));
}

TEST(SchedulersTest, PlateauNeedsTheMetricAndEmptyConfigIsConstant) {
  OptimizerConfig oc;
  ASSERT_OK(ParseTextProto("sgd {} lr: 0.1", "t", &oc));
  Model m = LinearProblem();
  auto opt = MakeOptimizerFactory(oc).value()->Make(m).value();
  SchedulerConfig c;
  ASSERT_OK(ParseTextProto("reduce_on_plateau {}", "t", &c));
  auto plateau = MakeSchedulerFactory(c).value()->Make(*opt).value();
  EXPECT_TRUE(plateau->eval_based());
  EXPECT_THAT(plateau->Step(),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("stepped without the eval metric")));
  auto constant = MakeSchedulerFactory(SchedulerConfig()).value()->Make(*opt).value();
  for (int i = 0; i < 5; ++i) ASSERT_OK(constant->Step());
  EXPECT_NEAR(constant->lr(), 0.1, 1e-12);
}

}  // namespace
}  // namespace slimfit
