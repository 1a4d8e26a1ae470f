// image_codec against PIL and torchvision.io on the same files
// (testdata/images, goldens by testdata/make_image_goldens.py), and on bad
// bytes.
#include "data/image_codec.h"

#include <ATen/ATen.h>

#include <cstring>
#include <string>
#include <vector>

#include "common/files.h"
#include "common/status_matchers.h"
#include "data/readers/tensor_file.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace slimfit {
namespace {

using ::slimfit::testing::StatusIs;
using ::testing::HasSubstr;

constexpr char kDir[] = "data/testdata/images/";

// The order of GOLDENS in make_image_goldens.py.
enum Golden {
  kPngRgb,
  kJpegRgbTorchvision,
  kJpegRgbPil,
  kPngRgbAsGrayPil,
  kJpegRgbAsGrayTorchvision,
  kPngRgbaPil,
  kPngPalettePil,
  kPngGrayAsRgbPil,
};

at::Tensor Golden(int i) {
  static const std::vector<at::Tensor>* goldens =
      new std::vector<at::Tensor>(ReadTensorFile(std::string(kDir) + "goldens.pt").value());
  return goldens->at(i);
}

std::string Bytes(const std::string& name) { return ReadFileToString(kDir + name).value(); }

at::Tensor Decode(const std::string& name, ColorMode mode) {
  absl::StatusOr<Image> img = DecodeImage(Bytes(name), mode);
  EXPECT_OK(img.status());
  if (!img.ok()) return at::Tensor();
  at::Tensor hwc = at::empty({img->height, img->width, img->channels}, at::kByte);
  std::memcpy(hwc.data_ptr<uint8_t>(), img->pixels.data(), img->pixels.size());
  return hwc.permute({2, 0, 1}).contiguous();
}

void ExpectEqual(const at::Tensor& got, const at::Tensor& want) {
  ASSERT_TRUE(got.defined());
  ASSERT_EQ(got.sizes(), want.sizes());
  EXPECT_TRUE(at::equal(got, want)) << "max |diff| " << (got.to(at::kInt) - want.to(at::kInt)).abs().max().item<int>();
}

int MaxDiff(const at::Tensor& a, const at::Tensor& b) {
  return (a.to(at::kInt) - b.to(at::kInt)).abs().max().item<int>();
}

TEST(ImageCodecTest, PngMatchesPil) {
  ExpectEqual(Decode("rgb.png", ColorMode::kRgb), Golden(kPngRgb));
  ExpectEqual(Decode("rgba.png", ColorMode::kRgb), Golden(kPngRgbaPil));
  ExpectEqual(Decode("palette.png", ColorMode::kRgb), Golden(kPngPalettePil));
  ExpectEqual(Decode("gray.png", ColorMode::kRgb), Golden(kPngGrayAsRgbPil));
  ExpectEqual(Decode("rgb.png", ColorMode::kGray), Golden(kPngRgbAsGrayPil));
}

TEST(ImageCodecTest, JpegMatchesTorchvisionExactlyAndPilClosely) {
  ExpectEqual(Decode("rgb.jpg", ColorMode::kRgb), Golden(kJpegRgbTorchvision));
  ExpectEqual(Decode("rgb.jpg", ColorMode::kGray), Golden(kJpegRgbAsGrayTorchvision));
  // PIL bundles its own libjpeg-turbo; the same IDCT gives the same pixels
  // (measured: identical with the pinned PIL); allow 1 level for another
  // libjpeg-turbo's upsampling rounding.
  EXPECT_LE(MaxDiff(Decode("rgb.jpg", ColorMode::kRgb), Golden(kJpegRgbPil)), 1);
}

TEST(ImageCodecTest, ConvertChannelsIsTheDecodersConversion) {
  ASSERT_OK_AND_ASSIGN(Image img, DecodeImage(Bytes("rgb.png"), ColorMode::kRgb));
  ConvertChannels(img, ColorMode::kGray);
  ASSERT_EQ(img.channels, 1);
  at::Tensor gray = at::from_blob(img.pixels.data(), {1, img.height, img.width}, at::kByte).clone();
  ExpectEqual(gray, Golden(kPngRgbAsGrayPil));
  ConvertChannels(img, ColorMode::kRgb);
  ASSERT_EQ(img.channels, 3);
  at::Tensor rgb = at::from_blob(img.pixels.data(), {img.height, img.width, 3}, at::kByte).permute({2, 0, 1});
  ExpectEqual(rgb.contiguous(), Golden(kPngRgbAsGrayPil).expand({3, img.height, img.width}).contiguous());
}

TEST(ImageCodecTest, SniffsTheFormatFromTheBytesNotTheName) {
  EXPECT_EQ(SniffImageFormat(Bytes("rgb.jpg")), ImageFormat::kJpeg);
  EXPECT_EQ(SniffImageFormat(Bytes("rgb.png")), ImageFormat::kPng);
  EXPECT_EQ(SniffImageFormat("GIF89a"), ImageFormat::kUnknown);
}

TEST(ImageCodecTest, PngRoundTripIsExact) {
  for (const char* name : {"rgb.png", "gray.png"}) {
    ASSERT_OK_AND_ASSIGN(
        Image img, DecodeImage(Bytes(name), std::string(name) == "gray.png" ? ColorMode::kGray : ColorMode::kRgb));
    ASSERT_OK_AND_ASSIGN(std::string png, EncodePng(img));
    ASSERT_OK_AND_ASSIGN(Image back, DecodeImage(png, img.channels == 1 ? ColorMode::kGray : ColorMode::kRgb));
    EXPECT_EQ(back.height, img.height);
    EXPECT_EQ(back.width, img.width);
    EXPECT_EQ(back.pixels, img.pixels) << name;
  }
}

TEST(ImageCodecTest, JpegRoundTripIsClose) {
  ASSERT_OK_AND_ASSIGN(Image img, DecodeImage(Bytes("rgb.png"), ColorMode::kRgb));
  double previous_error = 1e9;
  for (int quality : {50, 95}) {
    ASSERT_OK_AND_ASSIGN(std::string jpg, EncodeJpeg(img, quality));
    EXPECT_EQ(SniffImageFormat(jpg), ImageFormat::kJpeg);
    ASSERT_OK_AND_ASSIGN(Image back, DecodeImage(jpg, ColorMode::kRgb));
    ASSERT_EQ(back.pixels.size(), img.pixels.size());
    double error = 0;
    for (size_t i = 0; i < img.pixels.size(); ++i) error += std::abs(int(back.pixels[i]) - int(img.pixels[i]));
    error /= static_cast<double>(img.pixels.size());
    // A higher quality loses less; neither is far off for an 8-bit image.
    EXPECT_LT(error, previous_error) << "quality " << quality;
    EXPECT_LT(error, 12.0) << "quality " << quality;
    previous_error = error;
  }
}

TEST(ImageCodecTest, BadBytesAreErrorsNamingWhatWasWrong) {
  EXPECT_THAT(DecodeImage("", ColorMode::kRgb),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("neither JPEG nor PNG")));
  EXPECT_THAT(DecodeImage("hello, world", ColorMode::kRgb),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("first: 68 65 6c")));
  const std::string jpg = Bytes("rgb.jpg"), png = Bytes("rgb.png");
  EXPECT_THAT(DecodeImage(jpg.substr(0, jpg.size() / 2), ColorMode::kRgb),
              StatusIs(absl::StatusCode::kDataLoss, HasSubstr("JPEG")));
  EXPECT_THAT(DecodeImage(png.substr(0, png.size() / 2), ColorMode::kRgb),
              StatusIs(absl::StatusCode::kDataLoss, HasSubstr("PNG")));
  EXPECT_THAT(DecodeImage(jpg.substr(0, 3), ColorMode::kRgb), StatusIs(absl::StatusCode::kDataLoss, HasSubstr("JPEG")));
  std::string flipped = png;
  flipped[40] ^= 0x55;  // inside IHDR/first chunk: its CRC no longer matches
  EXPECT_THAT(DecodeImage(flipped, ColorMode::kRgb), StatusIs(absl::StatusCode::kDataLoss, HasSubstr("PNG")));
  EXPECT_THAT(DecodeImage(Bytes("gray16.png"), ColorMode::kGray),
              StatusIs(absl::StatusCode::kUnimplemented, HasSubstr("16-bit PNG")));
}

TEST(ImageCodecTest, EncodersRejectMalformedImages) {
  Image bad;
  bad.height = 2;
  bad.width = 2;
  bad.channels = 4;
  bad.pixels.resize(16);
  EXPECT_THAT(EncodePng(bad), StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("1 or 3 channels")));
  bad.channels = 3;
  EXPECT_THAT(EncodeJpeg(bad, 90), StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("H*W*C")));
  bad.pixels.resize(12);
  EXPECT_THAT(EncodeJpeg(bad, 0), StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("quality")));
}

}  // namespace
}  // namespace slimfit
