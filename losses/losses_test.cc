#include <ATen/ATen.h>
#include <google/protobuf/descriptor.h>
#include <torch/csrc/jit/api/module.h>

#include <cmath>

#include "common/field_error.h"
#include "common/status_matchers.h"
#include "common/text_proto.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "losses/loss_function.h"
#include "model/test_models.h"
#include "model/zoo/zoo.h"

namespace slimfit {
namespace {

using ::slimfit::testing::StatusIs;
using ::testing::DoubleNear;
using ::testing::HasSubstr;

// forward(x) = x: the batch's first element is the "prediction".
Model Identity() { return testing::IdentityModel(); }

// forward(x) = (x * 0, x): a tuple; output_index 1 selects x.
Model Pair() {
  return testing::ScriptedTestModel(
      "Pair", "def forward(self, x: Tensor) -> Tuple[Tensor, Tensor]:\n    return (x * 0.0, x)\n");
}

std::unique_ptr<LossFunction> Loss(const std::string& text, Model* teacher = nullptr,
                                   const std::string& pattern = "(0, '_')") {
  LossConfig c;
  EXPECT_OK(ParseTextProto(text, "test", &c));
  auto fp = std::make_shared<ForwardPass>(InputPattern::Parse(pattern).value());
  auto loss = MakeLoss(c, LossContext{fp, teacher});
  EXPECT_OK(loss);
  return loss.ok() ? std::move(loss).value() : nullptr;
}

absl::Status LossError(const std::string& text, const std::string& pattern = "(0, '_')") {
  LossConfig c;
  EXPECT_OK(ParseTextProto(text, "test", &c));
  auto fp = std::make_shared<ForwardPass>(InputPattern::Parse(pattern).value());
  // Rooted as BuildComponents roots them (trainer/components.cc).
  return WithContext(MakeLoss(c, LossContext{fp, nullptr}).status(), AtField("loss"));
}

double Value(LossFunction& loss, Model& model, const Batch& batch) {
  auto terms = loss(model, batch);
  EXPECT_OK(terms);
  return terms.ok() ? terms->Total().item<double>() : -1;
}

const Batch kLogits{at::tensor({2.0f, 0.0f, 0.0f, 1.0f}).view({2, 2}), at::tensor({0L, 1L})};

TEST(LossesTest, EveryConfigChoiceIsRegistered) {
  const auto* oneof = LossConfig::descriptor()->FindOneofByName("loss");
  for (int i = 0; i < oneof->field_count(); ++i) {
    EXPECT_TRUE(LossRegistry().Contains(oneof->field(i)->name())) << oneof->field(i)->name();
  }
  EXPECT_EQ(LossRegistry().Names().size(), static_cast<size_t>(oneof->field_count()));
}

TEST(LossesTest, CrossEntropyMatchesItsFormula) {
  Model m = Identity();
  // Sample 0: logits (2, 0), label 0; sample 1: logits (0, 1), label 1.
  // -log p(label) = log(1 + e^-margin).
  const double ce0 = std::log1p(std::exp(-2.0)), ce1 = std::log1p(std::exp(-1.0));
  EXPECT_THAT(Value(*Loss("cross_entropy {}"), m, kLogits), DoubleNear((ce0 + ce1) / 2, 1e-6));
  // (1 - 0.2) * CE + 0.2 * mean_k(-log p_k) per sample, averaged; the
  // other class's -log p is its own margin's log(1 + e^margin).
  const double eps = 0.2;
  const double uniform0 = (ce0 + std::log1p(std::exp(2.0))) / 2, uniform1 = (ce1 + std::log1p(std::exp(1.0))) / 2;
  EXPECT_THAT(Value(*Loss("cross_entropy { label_smoothing: 0.2 }"), m, kLogits),
              DoubleNear(((1 - eps) * ce0 + eps * uniform0 + (1 - eps) * ce1 + eps * uniform1) / 2, 1e-6));
}

TEST(LossesTest, RegressionAndBinaryLossesMatchTheirFormulas) {
  Model m = Identity();
  const Batch b{at::tensor({1.0f, 2.0f, 3.0f}), at::tensor({1.0f, 1.0f, 1.0f})};
  EXPECT_THAT(Value(*Loss("mse {}"), m, b), DoubleNear(5.0 / 3, 1e-6));
  EXPECT_THAT(Value(*Loss("l1 {}"), m, b), DoubleNear(1.0, 1e-6));
  EXPECT_THAT(Value(*Loss("smooth_l1 {}"), m, b), DoubleNear(2.0 / 3, 1e-6));
  const Batch logits{at::tensor({0.0f, 2.0f}), at::tensor({1L, 0L})};
  EXPECT_THAT(Value(*Loss("bce_with_logits {}"), m, logits), DoubleNear((std::log(2.0) + std::log1p(std::exp(2.0))) / 2, 1e-6));
  const Batch logp{at::log(at::tensor({0.25f, 0.75f})).view({1, 2}), at::tensor({1L})};
  EXPECT_THAT(Value(*Loss("nll {}"), m, logp), DoubleNear(-std::log(0.75), 1e-6));
}

TEST(LossesTest, TargetAndOutputIndices) {
  Model pair = Pair();
  const Batch b{at::tensor({1.0f, 1.0f}), at::tensor({3.0f, 3.0f}), at::tensor({1.0f, 2.0f})};
  // pattern (0, '_', '_'): default target is position 1.
  EXPECT_THAT(Value(*Loss("mse { } output_index: 1", nullptr, "(0, '_', '_')"), pair, b), DoubleNear(4.0, 1e-6));
  EXPECT_THAT(Value(*Loss("mse { } output_index: 1 target_index: 2", nullptr, "(0, '_', '_')"), pair, b),
              DoubleNear(0.5, 1e-6));
  EXPECT_THAT(Value(*Loss("mse { }", nullptr, "(0, '_', '_')"), pair, b), DoubleNear(9.0, 1e-6));
  auto bad = (*Loss("mse { } output_index: 5", nullptr, "(0, '_', '_')"))(pair, b);
  EXPECT_THAT(bad, StatusIs(absl::StatusCode::kInvalidArgument,
                            "output_index: not a tensor among the model's 2 outputs, got 5; valid: [0, 2)"));
  auto bad_target = (*Loss("mse { } target_index: 7", nullptr, "(0, '_', '_')"))(pair, b);
  EXPECT_THAT(bad_target, StatusIs(absl::StatusCode::kInvalidArgument,
                                   "target_index: not a tensor in the batch of 3 elements, got 7; valid: [0, 3)"));
}

TEST(LossesTest, BadConfigsNameTheField) {
  const auto invalid = [](const std::string& message) { return StatusIs(absl::StatusCode::kInvalidArgument, message); };
  EXPECT_THAT(
      LossError(""),
      invalid("loss: no loss set; valid: bce_with_logits, cross_entropy, distillation, l1, mse, nll, smooth_l1"));
  EXPECT_THAT(LossError("cross_entropy { label_smoothing: 1.5 }"),
              invalid("loss.cross_entropy.label_smoothing: out of range, got 1.5; valid: [0, 1)"));
  EXPECT_THAT(LossError("smooth_l1 { beta: -1 }"),
              invalid("loss.smooth_l1.beta: negative, got -1; valid: > 0 (0 = 1.0)"));
  EXPECT_THAT(LossError("mse {}", "(0, 1)"),
              invalid("loss.target_index: required: the input pattern (0, 1) sends every batch element to the "
                      "model, so no element is the target; valid: the index of the batch element that holds the "
                      "targets"));
  EXPECT_THAT(LossError("mse {} target_index: -2"), invalid("loss.target_index: negative, got -2; valid: >= 0"));
  EXPECT_THAT(LossError("mse {} output_index: -1"), invalid("loss.output_index: negative, got -1; valid: >= 0"));
  EXPECT_THAT(LossError("distillation {}"),
              invalid("loss.distillation.teacher_path: required when the engine supplies no teacher model, got "
                      "\"\"; valid: a TorchScript file"));
  EXPECT_THAT(LossError("distillation { temperature: -1 }"),
              invalid("loss.distillation.temperature: negative, got -1; valid: > 0 (0 = 4.0)"));
  EXPECT_THAT(LossError("distillation { alpha: 2 }"),
              invalid("loss.distillation.alpha: out of range, got 2; valid: [0, 1]"));
  EXPECT_THAT(LossError("distillation { teacher_path: '/no/teacher.pt' }"),
              StatusIs(absl::StatusCode::kNotFound,
                       HasSubstr("loss.distillation.teacher_path: cannot stat \"/no/teacher.pt\"")));
}

TEST(LossesTest, DistillationAgainstItselfLeavesOnlyTheHardTerm) {
  ASSERT_OK_AND_ASSIGN(Model student, CreateZooModel("lenet5"));
  ASSERT_OK_AND_ASSIGN(Model teacher, student.Clone());
  student.Eval();
  auto loss = Loss("distillation { temperature: 2 alpha: 0.75 }", &teacher);
  const Batch b{at::randn({4, 1, 28, 28}), at::tensor({0L, 1L, 2L, 3L})};
  ASSERT_OK_AND_ASSIGN(LossTerms t, (*loss)(student, b));
  ASSERT_EQ(t.terms.size(), 2u);
  EXPECT_EQ(t.terms[0].first, "distill_kl");
  EXPECT_NEAR(t.terms[0].second.item<double>(), 0.0, 1e-6);
  auto ce = Loss("cross_entropy {}");
  ASSERT_OK_AND_ASSIGN(LossTerms plain, (*ce)(student, b));
  EXPECT_NEAR(t.terms[1].second.item<double>(), 0.25 * plain.Total().item<double>(), 1e-5);
  // A different teacher: positive KL, and gradients reach the student.
  ASSERT_OK_AND_ASSIGN(Model other, CreateZooModel("lenet5", ZooOptions{.seed = 3}));
  auto loss2 = Loss("distillation {}", &other);
  student.Train();
  ASSERT_OK_AND_ASSIGN(LossTerms t2, (*loss2)(student, b));
  EXPECT_GT(t2.terms[0].second.item<double>(), 0.0);
  t2.Total().backward();
  EXPECT_TRUE(student.NamedParameters()[0].second.grad().defined());
}

TEST(LossesTest, PatchedCriterionAddsNamedTerms) {
  ASSERT_OK_AND_ASSIGN(Model m, CreateZooModel("resnet_small"));
  auto fp = std::make_shared<ForwardPass>();
  LossConfig c;
  c.mutable_cross_entropy();
  ASSERT_OK_AND_ASSIGN(auto base, MakeLoss(c, LossContext{fp}));
  auto patched = PatchCriterion(std::move(base), "bn_l1", BatchNormL1Term(0.01));
  patched = PatchCriterion(std::move(patched), "group_lasso", GroupLassoTerm(0.001));
  const Batch b{at::randn({2, 1, 28, 28}), at::tensor({0L, 1L})};
  ASSERT_OK_AND_ASSIGN(LossTerms t, (*patched)(m, b));
  ASSERT_EQ(t.terms.size(), 3u);
  EXPECT_EQ(t.terms[1].first, "bn_l1");
  int64_t bn_channels = 0;
  for (const auto& [name, p] : m.NamedParameters()) {
    if (name.find("bn") != std::string::npos && name.size() > 7 &&
        name.compare(name.size() - 7, 7, ".weight") == 0) {
      bn_channels += p.numel();
    }
  }
  EXPECT_NEAR(t.terms[1].second.item<double>(), 0.01 * bn_channels, 1e-4);  // γ starts at 1
  EXPECT_EQ(t.terms[2].first, "group_lasso");
  EXPECT_GT(t.terms[2].second.item<double>(), 0.0);
  t.Total().backward();
  ASSERT_OK_AND_ASSIGN(LossTerms pure, patched->FromOutput(m.module().forward({b[0]}), b));
  EXPECT_EQ(pure.terms.size(), 1u) << "FromOutput is the pure criterion";
  ASSERT_OK_AND_ASSIGN(Model no_bn, CreateZooModel("lenet5"));
  auto fails = PatchCriterion(Loss("cross_entropy {}"), "bn_l1", BatchNormL1Term(0.1));
  EXPECT_THAT((*fails)(no_bn, b), StatusIs(absl::StatusCode::kFailedPrecondition,
                                           HasSubstr("bn_l1: the model has no batch-norm layers")));
}

}  // namespace
}  // namespace slimfit
