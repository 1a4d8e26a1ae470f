#include "data/transforms.h"

#include <ATen/ATen.h>
#include <ATen/CPUGeneratorImpl.h>

#include "common/status_matchers.h"
#include "common/text_proto.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace slimfit {
namespace {

using ::slimfit::testing::StatusIs;
using ::testing::ElementsAre;
using ::testing::HasSubstr;

std::unique_ptr<Transform> Make(const std::string& text) {
  TransformConfig c;
  EXPECT_OK(ParseTextProto(text, "test", &c));
  auto t = MakeTransform(c);
  EXPECT_OK(t);
  return std::move(t).value();
}

absl::Status MakeError(const std::string& text) {
  TransformConfig c;
  EXPECT_OK(ParseTextProto(text, "test", &c));
  return MakeTransform(c).status();
}

TEST(TransformsTest, ToFloatScalesBytes) {
  at::Generator gen = at::detail::createCPUGenerator(0);
  Batch b{at::tensor(std::vector<uint8_t>{0, 51, 255}, at::kByte)};
  ASSERT_OK(Make("to_float {}")->Apply(b, gen));
  EXPECT_TRUE(b[0].toTensor().allclose(at::tensor({0.0f, 0.2f, 1.0f})));
}

TEST(TransformsTest, NormalizeIsPerChannel) {
  at::Generator gen = at::detail::createCPUGenerator(0);
  at::Tensor x = at::ones({2, 2, 3, 3});
  Batch b{x};
  ASSERT_OK(Make("normalize { mean: [0.5, 1.0] std: [0.25, 2.0] }")->Apply(b, gen));
  at::Tensor y = b[0].toTensor();
  EXPECT_FLOAT_EQ(y[0][0][0][0].item<float>(), 2.0f);  // (1 - 0.5) / 0.25
  EXPECT_FLOAT_EQ(y[1][1][2][2].item<float>(), 0.0f);  // (1 - 1) / 2
}

TEST(TransformsTest, RandomCropTakesWindowsOfThePaddedImage) {
  at::Generator gen = at::detail::createCPUGenerator(3);
  at::Tensor x = at::arange(2 * 1 * 5 * 5, at::kFloat).view({2, 1, 5, 5}) + 1;
  Batch b{x};
  ASSERT_OK(Make("random_crop { size: 5 padding: 2 }")->Apply(b, gen));
  at::Tensor y = b[0].toTensor();
  ASSERT_THAT(y.sizes().vec(), ElementsAre(2, 1, 5, 5));
  at::Tensor padded = at::constant_pad_nd(x, {2, 2, 2, 2}, 0);
  for (int64_t n = 0; n < 2; ++n) {
    bool found = false;
    for (int64_t t = 0; t <= 4 && !found; ++t) {
      for (int64_t l = 0; l <= 4 && !found; ++l) {
        found = padded[n].narrow(1, t, 5).narrow(2, l, 5).equal(y[n]);
      }
    }
    EXPECT_TRUE(found) << "sample " << n << " is not a window of its padded image";
  }
}

TEST(TransformsTest, FullSizeCropWithoutPaddingIsIdentity) {
  at::Generator gen = at::detail::createCPUGenerator(0);
  at::Tensor x = at::randn({3, 2, 4, 4});
  Batch b{x};
  ASSERT_OK(Make("random_crop { size: 4 }")->Apply(b, gen));
  EXPECT_TRUE(b[0].toTensor().equal(x));
}

TEST(TransformsTest, FlipProbabilityOneFlipsEverySample) {
  at::Generator gen = at::detail::createCPUGenerator(0);
  at::Tensor x = at::randn({4, 1, 2, 3});
  Batch b{x};
  ASSERT_OK(Make("random_horizontal_flip { p: 1 }")->Apply(b, gen));
  EXPECT_TRUE(b[0].toTensor().equal(x.flip({3})));
}

TEST(TransformsTest, BadConfigsNameTheField) {
  EXPECT_THAT(MakeError("normalize { mean: [0.5, 0.5] std: [0.2, 0] }"),
              StatusIs(absl::StatusCode::kInvalidArgument, "normalize.std[1]: not positive, got 0; valid: > 0"));
  EXPECT_THAT(MakeError("normalize { mean: [0.5] }"),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       "normalize.std: not one value per normalize.mean value, got 0 values; valid: 1, as "
                       "normalize.mean"));
  EXPECT_THAT(MakeError("random_crop { padding: 2 }"),
              StatusIs(absl::StatusCode::kInvalidArgument, "random_crop.size: required, got 0; valid: >= 1"));
  EXPECT_THAT(MakeError("random_horizontal_flip { p: 1.5 }"),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       "random_horizontal_flip.p: out of range, got 1.5; valid: [0, 1] (0 = 0.5)"));
  EXPECT_THAT(MakeError(""),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       "no transform set; valid: to_float, normalize, random_crop, random_horizontal_flip"));
}

TEST(TransformsTest, WrongBatchShapesAreFailedPrecondition) {
  at::Generator gen = at::detail::createCPUGenerator(0);
  Batch flat{at::zeros({4, 10})};
  EXPECT_THAT(Make("random_horizontal_flip {}")->Apply(flat, gen),
              StatusIs(absl::StatusCode::kFailedPrecondition, HasSubstr("[N, C, H, W]")));
  Batch bytes{at::zeros({1, 1, 2, 2}, at::kByte)};
  EXPECT_THAT(Make("normalize { mean: 0 std: 1 }")->Apply(bytes, gen),
              StatusIs(absl::StatusCode::kFailedPrecondition, HasSubstr("to_float first")));
  Batch three{at::zeros({1, 3, 2, 2})};
  EXPECT_THAT(Make("normalize { mean: [0, 0] std: [1, 1] }")->Apply(three, gen),
              StatusIs(absl::StatusCode::kFailedPrecondition,
                       "normalize.mean: does not fit images with 3 channels, got 2 values; valid: 1 or 3 values"));

  Batch none{};
  EXPECT_THAT(Make("to_float {}")->Apply(none, gen),
              StatusIs(absl::StatusCode::kFailedPrecondition, HasSubstr("field 0")));
}

std::vector<std::string> Names(const std::vector<std::shared_ptr<const Transform>>& ts) {
  std::vector<std::string> out;
  for (const auto& t : ts) out.push_back(t->name());
  return out;
}

TEST(TransformsTest, MakeTransformsAddsToFloatForBytesWhereFloatIsFirstNeeded) {
  google::protobuf::RepeatedPtrField<TransformConfig> configs;
  ASSERT_OK(ParseTextProto("random_horizontal_flip { }", "t", configs.Add()));
  ASSERT_OK_AND_ASSIGN(auto ts, MakeTransforms(configs, /*scale_uint8=*/true, "ctx"));
  EXPECT_THAT(Names(ts), ElementsAre("random_horizontal_flip", "to_float"));
  ASSERT_OK(ParseTextProto("normalize { mean: 0.5 std: 0.5 }", "t", configs.Add()));
  ASSERT_OK_AND_ASSIGN(ts, MakeTransforms(configs, true, "ctx"));
  EXPECT_THAT(Names(ts), ElementsAre("random_horizontal_flip", "to_float+normalize"));
  ASSERT_OK_AND_ASSIGN(ts, MakeTransforms(configs, /*scale_uint8=*/false, "ctx"));
  EXPECT_THAT(Names(ts), ElementsAre("random_horizontal_flip", "normalize"));
  ASSERT_OK(ParseTextProto("to_float { scale: 1 }", "t", configs.Add()));
  ASSERT_OK_AND_ASSIGN(ts, MakeTransforms(configs, true, "ctx"));
  EXPECT_THAT(Names(ts), ElementsAre("random_horizontal_flip", "normalize", "to_float"))
      << "an explicit to_float is not doubled, nor moved";
  configs.Add();
  EXPECT_THAT(MakeTransforms(configs, true, "data.train_transforms"),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("data.train_transforms[3]")));
}

TEST(TransformsTest, ThePipelineOnBytesEqualsTheFloatArithmetic) {
  // flip, then (x / 255 - mean) / std per channel: on uint8 with the
  // implicit, fused to_float, and on float step by step.
  google::protobuf::RepeatedPtrField<TransformConfig> configs;
  ASSERT_OK(ParseTextProto("random_horizontal_flip { p: 0.5 }", "t", configs.Add()));
  ASSERT_OK(ParseTextProto("normalize { mean: [0.485, 0.456, 0.406] std: [0.229, 0.224, 0.225] }", "t", configs.Add()));
  at::Generator g0 = at::detail::createCPUGenerator(3);
  const at::Tensor bytes = at::randint(0, 256, {16, 3, 5, 7}, g0, at::kByte);
  ASSERT_OK_AND_ASSIGN(auto fused, MakeTransforms(configs, /*scale_uint8=*/true, "t"));
  Batch a{bytes};
  at::Generator ga = at::detail::createCPUGenerator(9);
  for (const auto& t : fused) ASSERT_OK(t->Apply(a, ga));
  // The reference: the same flip draws, then float arithmetic.
  at::Generator gb = at::detail::createCPUGenerator(9);
  at::Tensor u = at::empty({16}, at::kFloat).uniform_(0.0, 1.0, gb);
  at::Tensor flipped = at::where((u < 0.5).view({16, 1, 1, 1}), bytes.flip({3}), bytes).to(at::kFloat);
  at::Tensor mean = at::tensor({0.485f, 0.456f, 0.406f}).view({1, 3, 1, 1});
  at::Tensor std = at::tensor({0.229f, 0.224f, 0.225f}).view({1, 3, 1, 1});
  at::Tensor want = (flipped / 255.0 - mean) / std;
  const at::Tensor got = a[0].toTensor();
  ASSERT_EQ(got.scalar_type(), at::kFloat);
  EXPECT_LT((got - want).abs().max().item<float>(), 1e-5f);
  EXPECT_TRUE(at::any(u < 0.5).item<bool>() && at::any(u >= 0.5).item<bool>()) << "both branches drawn";
}

}  // namespace
}  // namespace slimfit
