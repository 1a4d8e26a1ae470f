// WithTeacher against the registered `distillation` loss (the same formula,
// implemented separately and checked against PyTorch in losses_test) and
// against the formula written out with ATen ops here.
#include "losses/teacher_distillation.h"

#include <ATen/ATen.h>

#include "common/status_matchers.h"
#include "common/text_proto.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "model/zoo/zoo.h"
#include <torch/csrc/jit/api/module.h>

namespace slimfit {
namespace {

using ::slimfit::testing::StatusIs;
using ::testing::HasSubstr;

std::shared_ptr<ForwardPass> Fp() { return std::make_shared<ForwardPass>(InputPattern::Parse("(0, '_')").value()); }

// Counts the model calls made through it.
class CountingForwardPass : public ForwardPass {
 public:
  CountingForwardPass() : ForwardPass(InputPattern::Parse("(0, '_')").value()) {}
  absl::StatusOr<c10::IValue> ModelCall(Model& model, const ModelInputs& inputs, c10::Device device) override {
    ++calls;
    return ForwardPass::ModelCall(model, inputs, device);
  }
  int calls = 0;
};

std::unique_ptr<LossFunction> Make(const std::string& text, Model* teacher = nullptr,
                                   std::shared_ptr<ForwardPass> fp = Fp()) {
  LossConfig c;
  EXPECT_OK(ParseTextProto(text, "test", &c));
  auto loss = MakeLoss(c, LossContext{fp, teacher});
  EXPECT_OK(loss);
  return std::move(loss).value();
}

Batch RandomBatch() {
  at::manual_seed(3);
  return Batch{at::randn({8, 1, 28, 28}), at::randint(0, 10, {8}, at::kLong)};
}

TEST(TeacherDistillationTest, CrossEntropyBaseEqualsTheDistillationLoss) {
  ASSERT_OK_AND_ASSIGN(Model student, CreateZooModel("lenet5", ZooOptions{.seed = 1}));
  ASSERT_OK_AND_ASSIGN(Model teacher, CreateZooModel("lenet5", ZooOptions{.seed = 2}));
  const Batch batch = RandomBatch();
  auto fp = std::make_shared<CountingForwardPass>();
  auto ce = Make("cross_entropy {}", nullptr, fp);
  auto wrapped = WithTeacher(ce.get(), &teacher, fp, {.alpha = 0.7, .temperature = 3.0});
  auto reference = Make("distillation { temperature: 3.0 alpha: 0.7 }", &teacher);
  student.Eval();
  ASSERT_OK_AND_ASSIGN(LossTerms got, (*wrapped)(student, batch));
  EXPECT_EQ(fp->calls, 2) << "the student once (its output observed), the teacher once";
  ASSERT_OK_AND_ASSIGN(LossTerms want, (*reference)(student, batch));
  EXPECT_NEAR(got.Total().item<double>(), want.Total().item<double>(), 1e-5);

  // The formula, written out: (1 - a) CE + a T^2 KL(p_t || p_s).
  at::NoGradGuard no_grad;
  const at::Tensor s = student.module().forward({batch[0]}).toTensor();
  const at::Tensor t = teacher.module().forward({batch[0]}).toTensor();
  const at::Tensor pt = at::softmax(t / 3.0, 1);
  const double kl = (pt * (at::log(pt) - at::log_softmax(s / 3.0, 1))).sum(1).mean().item<double>();
  const double ce_value = at::cross_entropy_loss(s, batch[1].toTensor()).item<double>();
  EXPECT_NEAR(got.Total().item<double>(), 0.3 * ce_value + 0.7 * 9.0 * kl, 1e-4);
  ASSERT_EQ(got.terms.size(), 2u);
  EXPECT_EQ(got.terms[1].first, "distill_kl");
}

TEST(TeacherDistillationTest, ABatchSeenBeforeCostsNoTeacherForwardAndTheSameLoss) {
  ASSERT_OK_AND_ASSIGN(Model student, CreateZooModel("lenet5", ZooOptions{.seed = 1}));
  ASSERT_OK_AND_ASSIGN(Model teacher, CreateZooModel("lenet5", ZooOptions{.seed = 2}));
  student.Eval();
  const Batch batch = RandomBatch();
  auto fp = std::make_shared<CountingForwardPass>();
  auto ce = Make("cross_entropy {}", nullptr, fp);
  auto cached = WithTeacher(ce.get(), &teacher, fp, {.alpha = 0.5, .temperature = 4.0});
  auto plain_fp = Fp();  // the uncached loss runs through its own (uncounted) forward pass
  auto plain_ce = Make("cross_entropy {}", nullptr, plain_fp);
  auto uncached =
      WithTeacher(plain_ce.get(), &teacher, plain_fp, {.alpha = 0.5, .temperature = 4.0, .cache_teacher_outputs = false});
  ASSERT_OK_AND_ASSIGN(LossTerms first, (*cached)(student, batch));
  EXPECT_EQ(fp->calls, 2);
  // The same content in new tensors: a lookup, the student alone runs.
  const Batch same{batch[0].toTensor().clone(), batch[1].toTensor().clone()};
  ASSERT_OK_AND_ASSIGN(LossTerms again, (*cached)(student, same));
  EXPECT_EQ(fp->calls, 3);
  ASSERT_OK_AND_ASSIGN(LossTerms want, (*uncached)(student, batch));
  EXPECT_EQ(again.Total().item<double>(), want.Total().item<double>());
  EXPECT_EQ(first.Total().item<double>(), want.Total().item<double>());
  // One value changed, in the input or in the labels: the teacher runs again.
  at::Tensor x = batch[0].toTensor().clone();
  x.view({-1})[5] += 1;
  ASSERT_OK_AND_ASSIGN(LossTerms other, (*cached)(student, Batch{x, batch[1]}));
  EXPECT_EQ(fp->calls, 5);
  ASSERT_OK_AND_ASSIGN(LossTerms other_want, (*uncached)(student, Batch{x, batch[1]}));
  EXPECT_EQ(other.Total().item<double>(), other_want.Total().item<double>());
  at::Tensor y = batch[1].toTensor().clone();
  y[0] = (y[0].item<int64_t>() + 1) % 10;
  ASSERT_OK_AND_ASSIGN(LossTerms relabelled, (*cached)(student, Batch{batch[0], y}));
  EXPECT_EQ(fp->calls, 7);
  ASSERT_OK_AND_ASSIGN(LossTerms relabelled_want, (*uncached)(student, Batch{batch[0], y}));
  EXPECT_EQ(relabelled.Total().item<double>(), relabelled_want.Total().item<double>());
  // The first batch is still cached.
  ASSERT_OK_AND_ASSIGN(LossTerms back, (*cached)(student, batch));
  EXPECT_EQ(fp->calls, 8);
  EXPECT_EQ(back.Total().item<double>(), want.Total().item<double>());
}

TEST(TeacherDistillationTest, StatsCountTeacherRunsCachedOrNotAndLookups) {
  ASSERT_OK_AND_ASSIGN(Model student, CreateZooModel("lenet5", ZooOptions{.seed = 1}));
  ASSERT_OK_AND_ASSIGN(Model teacher, CreateZooModel("lenet5", ZooOptions{.seed = 2}));
  const Batch batch = RandomBatch();
  at::Tensor x = batch[0].toTensor().clone();
  x.view({-1})[0] += 1;
  const Batch other{x, batch[1]};
  auto fp = std::make_shared<CountingForwardPass>();
  auto ce = Make("cross_entropy {}", nullptr, fp);
  TeacherStats stats;
  auto cached = WithTeacher(ce.get(), &teacher, fp, {.stats = &stats});
  for (const Batch* b : {&batch, &batch, &other, &batch, &other}) ASSERT_OK((*cached)(student, *b).status());
  // Two distinct batches: the teacher ran twice (the student five times),
  // every later call was a lookup, and every run's prediction was kept.
  EXPECT_EQ(fp->calls, 5 + 2);
  EXPECT_EQ(stats.forwards, 2);
  EXPECT_EQ(stats.cache_hits, 3);
  EXPECT_GT(stats.forward_seconds, 0);
  EXPECT_EQ(stats.cached_forward_seconds, stats.forward_seconds);

  // Without the cache every call runs the teacher, and none of it is
  // seconds a later call saves.
  auto plain_fp = Fp();
  auto plain_ce = Make("cross_entropy {}", nullptr, plain_fp);
  TeacherStats plain;
  auto uncached = WithTeacher(plain_ce.get(), &teacher, plain_fp, {.cache_teacher_outputs = false, .stats = &plain});
  for (int i = 0; i < 3; ++i) ASSERT_OK((*uncached)(student, batch).status());
  EXPECT_EQ(plain.forwards, 3);
  EXPECT_EQ(plain.cache_hits, 0);
  EXPECT_GT(plain.forward_seconds, 0);
  EXPECT_EQ(plain.cached_forward_seconds, 0);
}

TEST(TeacherDistillationTest, ASelfTeacherAddsNothingAndOnlyTheStudentGetsGradients) {
  ASSERT_OK_AND_ASSIGN(Model student, CreateZooModel("lenet5", ZooOptions{.seed = 1}));
  ASSERT_OK_AND_ASSIGN(Model teacher, student.Clone());
  const Batch batch = RandomBatch();
  auto fp = Fp();
  auto ce = Make("cross_entropy {}", nullptr, fp);
  auto wrapped = WithTeacher(ce.get(), &teacher, fp, {.alpha = 0.5, .temperature = 4.0});
  student.Eval();
  ASSERT_OK_AND_ASSIGN(LossTerms terms, (*wrapped)(student, batch));
  EXPECT_NEAR(terms.terms.back().second.item<double>(), 0.0, 1e-6);
  ASSERT_OK_AND_ASSIGN(LossTerms plain, (*ce)(student, batch));
  EXPECT_NEAR(terms.Total().item<double>(), 0.5 * plain.Total().item<double>(), 1e-5);
  terms.Total().backward();
  int with_grad = 0;
  for (const auto& [name, p] : student.NamedParameters()) with_grad += p.grad().defined();
  EXPECT_EQ(with_grad, static_cast<int>(student.NamedParameters().size()));
  for (const auto& [name, p] : teacher.NamedParameters()) EXPECT_FALSE(p.grad().defined()) << name;
  // FromOutput (evaluation) is the base loss alone.
  at::NoGradGuard no_grad;
  const c10::IValue out = student.module().forward({batch[0]});
  ASSERT_OK_AND_ASSIGN(LossTerms eval, wrapped->FromOutput(out, batch));
  EXPECT_NEAR(eval.Total().item<double>(), plain.Total().item<double>(), 1e-6);
}

// A wrapped loss that adds its own terms in operator() (PatchCriterion)
// keeps them, scaled like every base term.
TEST(TeacherDistillationTest, KeepsTheTermsAPatchedCriterionAdds) {
  ASSERT_OK_AND_ASSIGN(Model student, CreateZooModel("lenet5", ZooOptions{.seed = 1}));
  ASSERT_OK_AND_ASSIGN(Model teacher, student.Clone());
  const Batch batch = RandomBatch();
  auto fp = Fp();
  auto patched = PatchCriterion(Make("cross_entropy {}", nullptr, fp), "lasso", GroupLassoTerm(0.01));
  auto wrapped = WithTeacher(patched.get(), &teacher, fp, {.alpha = 0.25, .temperature = 2.0});
  student.Eval();
  ASSERT_OK_AND_ASSIGN(LossTerms plain, (*patched)(student, batch));
  ASSERT_OK_AND_ASSIGN(LossTerms got, (*wrapped)(student, batch));
  ASSERT_EQ(got.terms.size(), 3u);
  EXPECT_EQ(got.terms[1].first, "lasso");
  EXPECT_NEAR(got.terms[1].second.item<double>(), 0.75 * plain.terms[1].second.item<double>(), 1e-6);
  EXPECT_EQ(got.terms[2].first, "distill_kl");
}

TEST(TeacherDistillationTest, RefusesOutputsThatAreNotLogits) {
  EXPECT_OK(CanDistill(c10::IValue(at::zeros({4, 10})), 0));
  EXPECT_THAT(CanDistill(c10::IValue(at::zeros({4, 1})), 0),
              StatusIs(absl::StatusCode::kFailedPrecondition, HasSubstr("prediction is [4, 1] Float")));
  EXPECT_THAT(CanDistill(c10::IValue(at::zeros({4, 3, 8, 8})), 0),
              StatusIs(absl::StatusCode::kFailedPrecondition, HasSubstr("[batch, classes >= 2]")));
}

}  // namespace
}  // namespace slimfit
