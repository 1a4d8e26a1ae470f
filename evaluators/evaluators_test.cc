#include <ATen/ATen.h>
#include <google/protobuf/descriptor.h>
#include <torch/csrc/jit/api/module.h>

#include "common/field_error.h"
#include "common/status_matchers.h"
#include "common/text_proto.h"
#include "data/splits.h"
#include "evaluators/evaluation_function.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "model/test_models.h"

namespace slimfit {
namespace {

using ::slimfit::testing::StatusIs;
using ::testing::DoubleNear;
using ::testing::HasSubstr;

Model Identity() { return testing::IdentityModel(); }

// Predictions (as the batch's first field) and labels, in batches of 2.
std::unique_ptr<DataLoader> Loader(const at::Tensor& preds, const at::Tensor& labels) {
  auto ds = TensorDataset::Create({preds, labels}, "fixed").value();
  return BatchLoader::Create(ds, {.batch_size = 2}).value();
}

absl::StatusOr<std::unique_ptr<EvaluationFunction>> Make(const std::string& text) {
  EvaluationConfig c;
  auto s = ParseTextProto(text, "test", &c);
  if (!s.ok()) return s;
  return MakeEvaluator(c, EvaluatorContext{std::make_shared<ForwardPass>()});
}

// Rooted as BuildComponents roots them (trainer/components.cc).
absl::Status MakeError(const std::string& text) { return WithContext(Make(text).status(), AtField("evaluation")); }

Metrics Evaluate(const std::string& text, const at::Tensor& preds, const at::Tensor& labels) {
  auto e = Make(text);
  EXPECT_OK(e);
  Model m = Identity();
  auto loader = Loader(preds, labels);
  auto r = (*e)->Apply(m, *loader);
  EXPECT_OK(r);
  return r.ok() ? *r : Metrics();
}

// Row i's classes in order of preference: row 0 prefers 2 then 1, etc.
const at::Tensor kPreds = at::tensor({0.1f, 0.3f, 0.6f,    //
                                      0.7f, 0.2f, 0.1f,    //
                                      0.2f, 0.5f, 0.3f,    //
                                      0.1f, 0.8f, 0.1f,    //
                                      0.1f, 0.3f, 0.6f})
                              .view({5, 3});
const at::Tensor kLabels = at::tensor({2L, 1L, 2L, 1L, 0L});

// Two processes' halves of the data, each metric's additive state summed,
// give exactly what one pass over the whole data gives.
TEST(EvaluatorsTest, ReducedStatesOfDisjointPartsEqualTheWholeData) {
  ASSERT_OK_AND_ASSIGN(auto e, Make("evaluators { accuracy { top_k: [1, 2] } } "
                                    "evaluators { classification_report { num_classes: 3 } } "
                                    "evaluators { mean_loss { loss { cross_entropy {} } } }"));
  auto* metrics = dynamic_cast<MetricsEvaluator*>(e.get());
  ASSERT_NE(metrics, nullptr);
  ASSERT_TRUE(metrics->Additive());
  Model m = Identity();
  const at::Tensor preds = kPreds, labels = kLabels;
  auto whole_loader = Loader(preds, labels);
  auto first = Loader(preds.narrow(0, 0, 3), labels.narrow(0, 0, 3));
  auto second = Loader(preds.narrow(0, 3, 2), labels.narrow(0, 3, 2));
  std::vector<double> other;
  ASSERT_OK(metrics->ApplyReduced(m, *second, [&](std::vector<double>& state) {
    other = state;
    return absl::OkStatus();
  }).status());
  ASSERT_OK_AND_ASSIGN(Metrics reduced, metrics->ApplyReduced(m, *first, [&](std::vector<double>& state) {
    if (state.size() != other.size()) return absl::InternalError("state sizes differ");
    for (size_t i = 0; i < state.size(); ++i) state[i] += other[i];
    return absl::OkStatus();
  }));
  ASSERT_OK_AND_ASSIGN(Metrics whole, metrics->Apply(m, *whole_loader));
  ASSERT_EQ(reduced.values().size(), whole.values().size());
  for (const auto& [name, metric] : whole.values()) {
    ASSERT_OK_AND_ASSIGN(Metric got, reduced.Get(name));
    // Counts exactly; losses to float32 rounding (the parts batch differently).
    EXPECT_THAT(got.value, DoubleNear(metric.value, 1e-6)) << name;
  }
  EXPECT_TRUE(reduced.tensors().at("confusion_matrix").equal(whole.tensors().at("confusion_matrix")));
}

TEST(EvaluatorsTest, EveryConfigChoiceIsRegistered) {
  const auto* oneof = EvaluatorConfig::descriptor()->FindOneofByName("evaluator");
  for (int i = 0; i < oneof->field_count(); ++i) {
    EXPECT_TRUE(EvaluatorRegistry().Contains(oneof->field(i)->name())) << oneof->field(i)->name();
  }
}

TEST(EvaluatorsTest, TopKAccuracy) {
  Metrics m = Evaluate("evaluators { accuracy { top_k: [1, 2] } }", kPreds, kLabels);
  // top-1 hits: rows 0, 3 → 2/5; top-2 adds rows 1 (1 is 2nd), 2 (2 is 2nd) → 4/5.
  EXPECT_THAT(m.Get("accuracy")->value, DoubleNear(40.0, 1e-9));
  EXPECT_THAT(m.Get("top2_accuracy")->value, DoubleNear(80.0, 1e-9));
  EXPECT_TRUE(m.Get("accuracy")->higher_is_better);
}

// Tied scores (int8 models' quantized logits tie often): top-1 is PyTorch's
// argmax, the first of the tied classes, computed here by at::argmax; the
// top-2 of a row whose three scores tie are its first two classes.
TEST(EvaluatorsTest, TiesRankTheLowerClassFirstAsArgmaxDoes) {
  const at::Tensor preds = at::tensor({0.5f, 0.5f, 0.1f,  //
                                       0.2f, 0.7f, 0.7f,  //
                                       0.3f, 0.3f, 0.3f,  //
                                       0.3f, 0.3f, 0.3f})
                               .view({4, 3});
  const at::Tensor labels = at::tensor({1L, 2L, 0L, 2L});
  const double argmax_hits = preds.argmax(1).eq(labels).sum().item<double>();
  ASSERT_EQ(argmax_hits, 1);  // row 2 only: rows 0 and 1 tie in favour of the label's lower neighbour
  for (int repeat = 0; repeat < 3; ++repeat) {
    Metrics m = Evaluate("evaluators { accuracy { top_k: [1, 2] } }", preds, labels);
    EXPECT_THAT(m.Get("accuracy")->value, DoubleNear(100.0 * argmax_hits / 4, 1e-9));
    // Top-2: rows 0, 1 (the label is the second of the tie), 2 (first two of
    // three); row 3's label 2 is the third of its tie.
    EXPECT_THAT(m.Get("top2_accuracy")->value, DoubleNear(75.0, 1e-9));
  }
}

TEST(EvaluatorsTest, DefaultIsAccuracy) {
  Metrics m = Evaluate("", kPreds, kLabels);
  EXPECT_THAT(m.Get("accuracy")->value, DoubleNear(40.0, 1e-9));
}

TEST(EvaluatorsTest, ClassificationReportConfusionMatrix) {
  Metrics m = Evaluate("evaluators { classification_report { num_classes: 3 } }", kPreds, kLabels);
  // true 0 → pred 2; true 1 → pred 0, 1; true 2 → pred 2, 1.
  at::Tensor expected = at::tensor({0L, 0L, 1L, 1L, 1L, 0L, 0L, 1L, 1L}).view({3, 3});
  EXPECT_TRUE(m.tensors().at("confusion_matrix").equal(expected)) << m.tensors().at("confusion_matrix");
  EXPECT_THAT(m.Get("class0_accuracy")->value, DoubleNear(0.0, 1e-9));
  EXPECT_THAT(m.Get("class1_accuracy")->value, DoubleNear(50.0, 1e-9));
  EXPECT_THAT(m.Get("balanced_accuracy")->value, DoubleNear(100.0 / 3, 1e-9));
}

TEST(EvaluatorsTest, MeanLossAndRegressionAreLowerIsBetter) {
  const at::Tensor pred = at::tensor({1.0f, 2.0f, 3.0f, 4.0f});
  const at::Tensor target = at::tensor({1.0f, 1.0f, 1.0f, 1.0f});
  Metrics m = Evaluate("evaluators { regression {} } evaluators { mean_loss { loss { l1 {} } } }", pred, target);
  EXPECT_THAT(m.Get("mse")->value, DoubleNear((0 + 1 + 4 + 9) / 4.0, 1e-9));
  EXPECT_THAT(m.Get("mae")->value, DoubleNear(1.5, 1e-9));
  EXPECT_THAT(m.Get("loss")->value, DoubleNear(1.5, 1e-6));
  EXPECT_THAT(m.Get("loss/l1")->value, DoubleNear(1.5, 1e-6));
  EXPECT_FALSE(m.Get("mse")->higher_is_better);
  EXPECT_FALSE(m.Get("loss")->higher_is_better);
}

TEST(EvaluatorsTest, DropIsMeasuredTheRightWayRound) {
  EXPECT_DOUBLE_EQ(Drop({92.0, true}, {91.0, true}), 1.0);
  EXPECT_DOUBLE_EQ(Drop({0.20, false}, {0.25, false}), 0.05);
  EXPECT_DOUBLE_EQ(Drop({0.20, false}, {0.10, false}), -0.10);
}

TEST(EvaluatorsTest, UnknownKeyListsWhatWasComputed) {
  Metrics m = Evaluate("", kPreds, kLabels);
  EXPECT_THAT(m.Get("acc"),
              StatusIs(absl::StatusCode::kNotFound, "not a computed metric, got \"acc\"; valid: accuracy"));
  EXPECT_EQ(m.ToJson(), "{\"accuracy\": 40}");
}

TEST(EvaluatorsTest, BadConfigsNameTheEntry) {
  const auto invalid = [](const std::string& message) { return StatusIs(absl::StatusCode::kInvalidArgument, message); };
  EXPECT_THAT(MakeError("evaluators { accuracy { top_k: [0] } }"),
              invalid("evaluation.evaluators[0].accuracy.top_k[0]: below 1, got 0; valid: >= 1"));
  EXPECT_THAT(MakeError("evaluators { accuracy {} } evaluators { classification_report {} }"),
              invalid("evaluation.evaluators[1].classification_report.num_classes: required, got 0; valid: >= 2"));
  EXPECT_THAT(MakeError("evaluators { mean_loss {} }"),
              invalid("evaluation.evaluators[0].mean_loss.loss: required; valid: a loss, as in the loss block"));
  EXPECT_THAT(MakeError("evaluators { mean_loss { loss { cross_entropy { label_smoothing: 2 } } } }"),
              invalid("evaluation.evaluators[0].mean_loss.loss.cross_entropy.label_smoothing: out of range, got 2; "
                      "valid: [0, 1)"));
  EXPECT_THAT(MakeError("evaluators { }"),
              invalid("evaluation.evaluators[0]: no evaluator set; valid: accuracy, classification_report, "
                      "mean_loss, regression"));
  EXPECT_THAT(MakeError("evaluators { accuracy {} output_index: -1 }"),
              invalid("evaluation.evaluators[0].output_index: negative, got -1; valid: >= 0"));
}

TEST(EvaluatorsTest, RuntimeMismatchesAreErrors) {
  auto e = Make("evaluators { accuracy { top_k: 5 } }");
  ASSERT_OK(e);
  Model m = Identity();
  auto loader = Loader(kPreds, kLabels);
  EXPECT_THAT((*e)->Apply(m, *loader), StatusIs(absl::StatusCode::kInvalidArgument,
                                                "accuracy.top_k: more than the model's 3 classes, got 5; valid: <= 3"));
  auto r = Make("evaluators { classification_report { num_classes: 4 } }");
  ASSERT_OK(r);
  EXPECT_THAT((*r)->Apply(m, *loader),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       "classification_report.num_classes: not the model's 3 classes, got 4; valid: 3"));
}

// A convolutional model is evaluated with channels-last weights (a model that
// insists on them evaluates) and handed back contiguous; one that views a
// convolution's output (NCHW strides only) is evaluated as it is. Accuracy is
// the one the plain model's forward gives (derived here).
TEST(EvaluatorsTest, ConvolutionalModelsRunChannelsLastAndComeBackContiguous) {
  const std::string convs =
      "    y = torch.relu(torch.conv2d(x, self.w1, None, [1, 1], [1, 1], [1, 1], 1))\n"
      "    y = torch.conv2d(y, self.w2, None, [1, 1], [1, 1], [1, 1], 1)\n";
  const std::string head = "def forward(self, x: Tensor) -> Tensor:\n";
  const std::string plain = head + convs + "    return torch.mean(y, [2, 3])\n";
  const std::string insists = head +
                              "    assert self.w2.stride(1) == 1, 'contiguous weights'  # NCHW: 9\n" +
                              convs + "    return torch.mean(y, [2, 3])\n";
  const std::string views = head + convs + "    return torch.mean(y.view(y.size(0), 8, 64), [2])\n";
  const std::vector<std::pair<std::string, at::Tensor>> weights = {{"w1", at::randn({8, 8, 3, 3})},
                                                                   {"w2", at::randn({8, 8, 3, 3})}};
  const at::Tensor x = at::randn({40, 8, 8, 8});
  const at::Tensor labels = at::randint(0, 8, {40}, at::kLong);
  Model reference = testing::ScriptedTestModel("Plain", plain, weights);
  reference.Eval();
  const at::Tensor logits = reference.module().forward({x}).toTensor();
  const double want = 100.0 * logits.argmax(1).eq(labels).sum().item<double>() / 40.0;
  for (const std::string& source : {plain, insists, views}) {
    Model m = testing::ScriptedTestModel("Convs", source, weights);
    ASSERT_OK_AND_ASSIGN(auto e, Make(""));
    auto loader = Loader(x, labels);
    ASSERT_OK_AND_ASSIGN(Metrics got, e->Apply(m, *loader));
    EXPECT_DOUBLE_EQ(got.Get("accuracy")->value, want) << source;
    for (auto& [name, t] : m.NamedParameters()) EXPECT_TRUE(t.is_contiguous()) << name << " after " << source;
  }
}

}  // namespace
}  // namespace slimfit
