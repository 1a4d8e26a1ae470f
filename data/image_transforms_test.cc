// The per-sample transforms against torchvision.transforms.v2 on the same
// uint8 tensor (goldens by testdata/make_image_goldens.py), and the random
// window's contract.
#include "data/image_transforms.h"

#include <ATen/ATen.h>

#include <cmath>
#include <string>
#include <vector>

#include "common/files.h"
#include "common/status_matchers.h"
#include "common/text_proto.h"
#include "data/readers/tensor_file.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace slimfit {
namespace {

using ::slimfit::testing::StatusIs;
using ::testing::HasSubstr;

// The order of GOLDENS in make_image_goldens.py.
enum Golden {
  kPngRgb = 0,
  kResize24 = 8,
  kResize80 = 9,
  kCenterCrop20 = 10,
  kCenterCrop48x60 = 11,
  kResizedCrop = 12,
  kResize24Pil = 13,
};

at::Tensor Golden(int i) {
  static const std::vector<at::Tensor>* goldens =
      new std::vector<at::Tensor>(ReadTensorFile("data/testdata/images/goldens.pt").value());
  return goldens->at(i);
}

void ExpectEqual(const at::Tensor& got, const at::Tensor& want) {
  ASSERT_EQ(got.sizes(), want.sizes());
  ASSERT_EQ(got.scalar_type(), at::kByte);
  EXPECT_TRUE(at::equal(got, want)) << "max |diff| " << (got.to(at::kInt) - want.to(at::kInt)).abs().max().item<int>();
}

TEST(ImageTransformsTest, TheDecodedFileIsTheGoldensInput) {
  ASSERT_OK_AND_ASSIGN(std::string png, ReadFileToString("data/testdata/images/rgb.png"));
  ASSERT_OK_AND_ASSIGN(Image img, DecodeImage(png, ColorMode::kRgb));
  ExpectEqual(ImageToTensor(img), Golden(kPngRgb));
  ExpectEqual(ImageToTensor(TensorToImage(Golden(kPngRgb))), Golden(kPngRgb));
}

TEST(ImageTransformsTest, MatchesTorchvisionOnTheSameTensor) {
  const at::Tensor image = Golden(kPngRgb);  // 3 x 37 x 53
  ExpectEqual(ResizeShorterSide(image, 24), Golden(kResize24));
  ExpectEqual(ResizeShorterSide(image, 80), Golden(kResize80));
  ExpectEqual(CenterCropImage(image, 20, 20), Golden(kCenterCrop20));
  ExpectEqual(CenterCropImage(image, 48, 60), Golden(kCenterCrop48x60));
  ExpectEqual(ResizedCrop(image, CropBox{3, 5, 20, 30}, 16), Golden(kResizedCrop));
}

TEST(ImageTransformsTest, TensorResizeIsCloseToThePilPath) {
  // torchvision's classic ImageFolder resizes PIL images; PIL's antialiased
  // bilinear filter rounds in fixed point differently. Measured on this
  // image: at most 1 level, 0.005 on average.
  const at::Tensor diff =
      (ResizeShorterSide(Golden(kPngRgb), 24).to(at::kInt) - Golden(kResize24Pil).to(at::kInt)).abs();
  EXPECT_LE(diff.max().item<int>(), 1);
  EXPECT_LT(diff.to(at::kFloat).mean().item<float>(), 0.05f);
}

TEST(ImageTransformsTest, RandomResizedCropStaysInsideItsBounds) {
  std::mt19937_64 rng(11);
  const int64_t h = 37, w = 53;
  std::vector<int64_t> tops;
  for (int i = 0; i < 500; ++i) {
    const CropBox b = RandomResizedCropBox(h, w, 0.08, 1.0, 3.0 / 4.0, 4.0 / 3.0, rng);
    ASSERT_GE(b.top, 0);
    ASSERT_GE(b.left, 0);
    ASSERT_GE(b.height, 1);
    ASSERT_GE(b.width, 1);
    ASSERT_LE(b.top + b.height, h);
    ASSERT_LE(b.left + b.width, w);
    // Rounding each side to whole pixels moves the area by under a pixel
    // per side: fractions stay within [0.08, 1] up to that.
    const double fraction = static_cast<double>(b.height * b.width) / (h * w);
    EXPECT_GE(fraction, 0.08 - (b.height + b.width + 1.0) / (h * w));
    EXPECT_LE(fraction, 1.0);
    tops.push_back(b.top);
  }
  // Random, and the same stream repeats.
  EXPECT_GT(*std::max_element(tops.begin(), tops.end()), *std::min_element(tops.begin(), tops.end()));
  std::mt19937_64 a(5), b(5);
  const CropBox x = RandomResizedCropBox(h, w, 0.08, 1.0, 0.75, 4.0 / 3.0, a);
  const CropBox y = RandomResizedCropBox(h, w, 0.08, 1.0, 0.75, 4.0 / 3.0, b);
  EXPECT_EQ(std::vector<int64_t>({x.top, x.left, x.height, x.width}),
            std::vector<int64_t>({y.top, y.left, y.height, y.width}));
}

TEST(ImageTransformsTest, RandomResizedCropFallsBackToTheCentralWindow) {
  // A 10 x 1000 strip: no window of >= 90 % of the area has a ratio in
  // [3/4, 4/3], so torchvision takes the full height and width = round(10 * 4/3).
  std::mt19937_64 rng(3);
  const CropBox b = RandomResizedCropBox(10, 1000, 0.9, 1.0, 3.0 / 4.0, 4.0 / 3.0, rng);
  const int64_t want_w = static_cast<int64_t>(std::nearbyint(10 * 4.0 / 3.0));
  EXPECT_EQ(b.height, 10);
  EXPECT_EQ(b.width, want_w);
  EXPECT_EQ(b.top, 0);
  EXPECT_EQ(b.left, (1000 - want_w) / 2);
}

TEST(ImageTransformsTest, ConfiguredPipelineGivesTheConfiguredSizes) {
  DataConfig c;
  ASSERT_OK(ParseTextProto(R"pb(
                             image_folder {
                               eval_sample_transforms { resize { size: 24 } }
                               eval_sample_transforms { center_crop { size: 20 } }
                               train_sample_transforms { random_resized_crop { size: 16 } }
                             }
                           )pb",
                           "test", &c));
  ASSERT_OK_AND_ASSIGN(auto eval, MakeSampleTransforms(c.image_folder().eval_sample_transforms(), "eval"));
  ASSERT_OK_AND_ASSIGN(auto train, MakeSampleTransforms(c.image_folder().train_sample_transforms(), "train"));
  std::mt19937_64 rng(1);
  at::Tensor x = Golden(kPngRgb);
  for (const auto& t : eval) {
    ASSERT_OK_AND_ASSIGN(x, t->Apply(x, rng));
  }
  // resize(24) then center_crop(20) is torchvision's center crop of its resize.
  ExpectEqual(x, CenterCropImage(Golden(kResize24), 20, 20));
  ASSERT_OK_AND_ASSIGN(at::Tensor y, train[0]->Apply(Golden(kPngRgb), rng));
  EXPECT_EQ(y.sizes(), at::IntArrayRef({3, 16, 16}));
}

TEST(ImageTransformsTest, BadSettingsNameTheField) {
  DataConfig c;
  ASSERT_OK(ParseTextProto(R"pb(
                             image_folder {
                               train_sample_transforms { resize { size: 8 } }
                               train_sample_transforms { random_resized_crop { size: 8 min_scale: 0.5 max_scale: 0.2 } }
                             }
                           )pb",
                           "test", &c));
  EXPECT_THAT(
      MakeSampleTransforms(c.image_folder().train_sample_transforms(), "data.image_folder.train_sample_transforms"),
      StatusIs(absl::StatusCode::kInvalidArgument,
               "data.image_folder.train_sample_transforms[1].random_resized_crop.min_scale: out of range, got 0.5; "
               "valid: (0, max_scale = 0.2]"));
  c.mutable_image_folder()->mutable_train_sample_transforms(1)->Clear();
  EXPECT_THAT(MakeSampleTransforms(c.image_folder().train_sample_transforms(), "t"),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("t[1]: no transform set")));
  c.mutable_image_folder()->mutable_train_sample_transforms(0)->mutable_resize()->set_size(0);
  EXPECT_THAT(MakeSampleTransforms(c.image_folder().train_sample_transforms(), "t"),
              StatusIs(absl::StatusCode::kInvalidArgument, "t[0].resize.size: required, got 0; valid: >= 1"));
}

}  // namespace
}  // namespace slimfit
