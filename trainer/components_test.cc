// BuildComponents: what it builds for a synthetic data set (the loaders it
// was asked for, a forward pass that learned its inputs, the default loss),
// and its errors, each naming the field.
#include "trainer/components.h"

#include <ATen/ATen.h>
#include <torch/csrc/jit/serialization/pickle.h>

#include "common/files.h"
#include "common/status_matchers.h"
#include "common/text_proto.h"
#include "data/splits.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace slimfit {
namespace {

using ::slimfit::testing::StatusIs;
using ::slimfit::testing::TempPath;
using ::testing::HasSubstr;

struct Configs {
  DataConfig data;
  ForwardPassConfig forward_pass;
  LossConfig loss;
  EvaluationConfig evaluation;
  ComponentsConfig Get() { return ComponentsConfig{&data, &forward_pass, &loss, &evaluation}; }
};

Configs Synthetic(const std::string& extra = "") {
  Configs c;
  EXPECT_OK(
      ParseTextProto("synthetic { train_samples: 100 test_samples: 30 shape: [1, 8, 8] num_classes: 4 } "
                     "train_batch_size: 16 eval_batch_size: 8 " +
                         extra,
                     "data", &c.data));
  EXPECT_OK(ParseTextProto("evaluators { accuracy { } } eval_key: \"accuracy\"", "evaluation", &c.evaluation));
  return c;
}

TEST(ComponentsTest, BuildsWhatWasAskedForFromTheConfigs) {
  Configs c = Synthetic();
  ComponentsConfig cc = c.Get();
  ASSERT_OK_AND_ASSIGN(Components parts, BuildComponents(cc));
  EXPECT_EQ(parts.eval_split, "val");  // the default
  EXPECT_EQ(parts.train, nullptr);
  EXPECT_EQ(parts.test, nullptr);
  ASSERT_NE(parts.eval, nullptr);
  // val: carved from the 100 train samples at the default 0.1.
  EXPECT_EQ(parts.eval->num_samples(), 10);
  ASSERT_NE(parts.forward_pass, nullptr);
  ASSERT_NE(parts.loss, nullptr);  // unset: cross-entropy
  ASSERT_NE(parts.evaluator, nullptr);
  // The forward pass learned the inputs from an eval batch: it can make
  // random inputs of the data's shape before any training.
  ASSERT_OK_AND_ASSIGN(ModelInputs inputs, parts.forward_pass->CreateRandomModelInputs(2));
  ASSERT_EQ(inputs.size(), 1u);
  EXPECT_EQ(inputs[0].toTensor().sizes(), (std::vector<int64_t>{2, 1, 8, 8}));

  cc.train_loader = true;
  cc.test_loader = true;
  ASSERT_OK_AND_ASSIGN(Components all, BuildComponents(cc));
  ASSERT_NE(all.train, nullptr);
  EXPECT_EQ(all.train->num_samples(), 90);
  ASSERT_NE(all.test, nullptr);
  EXPECT_EQ(all.test->num_samples(), 30);
  // eval_split test: no second test loader.
  c.evaluation.set_eval_split("test");
  ComponentsConfig on_test = c.Get();
  on_test.test_loader = true;
  ASSERT_OK_AND_ASSIGN(Components t, BuildComponents(on_test));
  EXPECT_EQ(t.eval->num_samples(), 30);
  EXPECT_EQ(t.test, nullptr);
}

TEST(ComponentsTest, ErrorsNameTheField) {
  {
    Configs c = Synthetic();
    c.evaluation.set_eval_split("holdout");
    EXPECT_THAT(BuildComponents(c.Get()).status(),
                StatusIs(absl::StatusCode::kNotFound,
                         "evaluation.eval_split: not a split, got \"holdout\"; valid: train, val, test"));
  }
  {
    // A val file with no samples (a carve never leaves one empty).
    const std::string train = TempPath("train.pt"), val = TempPath("val.pt");
    auto write = [](const std::string& path, int64_t n) {
      std::vector<char> bytes =
          torch::jit::pickle_save(c10::List<at::Tensor>({at::rand({n, 1, 4, 4}), at::zeros({n}, at::kLong)}));
      return WriteFileAtomically(path, std::string(bytes.begin(), bytes.end()));
    };
    ASSERT_OK(write(train, 8));
    ASSERT_OK(write(val, 0));
    Configs c = Synthetic();
    c.data.mutable_tensor_file()->set_train_path(train);
    c.data.mutable_tensor_file()->set_val_path(val);
    EXPECT_THAT(BuildComponents(c.Get()).status(),
                StatusIs(absl::StatusCode::kFailedPrecondition,
                         "evaluation.eval_split: split \"val\" has no samples; valid: a split with at least one"));
  }
  {
    Configs c = Synthetic("val_fraction: 2");
    EXPECT_THAT(BuildComponents(c.Get()).status(),
                StatusIs(absl::StatusCode::kInvalidArgument,
                         "data.val_fraction: out of range, got 2; valid: [0, 1) (0 = 0.1)"));
  }
  {
    Configs c = Synthetic();
    c.evaluation.add_evaluators();  // no evaluator chosen
    EXPECT_THAT(BuildComponents(c.Get()).status(),
                StatusIs(absl::StatusCode::kInvalidArgument,
                         HasSubstr("evaluation.evaluators[1]: no evaluator set; valid: accuracy, ")));
  }
  EXPECT_THAT(BuildComponents(ComponentsConfig{}).status(),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       "ComponentsConfig: data is null; data, forward_pass, loss and evaluation are required"));
}

}  // namespace
}  // namespace slimfit
