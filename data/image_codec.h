// File: data/image_codec.h
//
// JPEG and PNG, decoded and encoded in memory with Debian's libjpeg-turbo and
// libpng. No LibTorch here: pixels are 8-bit, interleaved (HWC), row-major.
//
//   ASSIGN_OR_RETURN(std::string bytes, ReadFileToString(path));
//   ASSIGN_OR_RETURN(Image img, DecodeImage(bytes, ColorMode::kRgb));
//
// Decoding follows torchvision's image folder loader (PIL's convert("RGB")):
//   - the format is told by the first bytes, not the file name;
//   - kRgb: gray images are replicated to three channels; kGray: RGB PNGs are
//     reduced with ITU-R 601-2 luma, PIL's integer formula
//     (R*19595 + G*38470 + B*7471 + 0x8000) >> 16; color JPEGs give their
//     luma (Y) plane, as libjpeg and torchvision.io.decode_jpeg do;
//   - alpha is dropped (not composited), palettes and 1/2/4-bit gray expand
//     to 8 bits; PNG gamma chunks are ignored, as PIL ignores them.
// Errors (never a crash, never an exception):
//   InvalidArgument  neither JPEG nor PNG (the message shows the first bytes);
//   DataLoss         truncated or corrupt data (libjpeg's / libpng's message);
//   Unimplemented    16-bit PNG, CMYK / YCCK JPEG (convert them first);
//   ResourceExhausted more than kMaxImagePixels pixels (PIL's bomb limit).
#ifndef SLIMFIT_DATA_IMAGE_CODEC_H_
#define SLIMFIT_DATA_IMAGE_CODEC_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace slimfit {

enum class ColorMode { kRgb, kGray };

struct Image {
  int height = 0;
  int width = 0;
  int channels = 0;             // 1 or 3
  std::vector<uint8_t> pixels;  // height * width * channels, HWC
};

// PIL's decompression-bomb error threshold (2 * Image.MAX_IMAGE_PIXELS).
inline constexpr int64_t kMaxImagePixels = 178956970;

enum class ImageFormat { kUnknown, kJpeg, kPng };
// By magic bytes: FF D8 FF (JPEG), 89 'P' 'N' 'G' \r \n 1A \n (PNG).
ImageFormat SniffImageFormat(absl::string_view bytes);

absl::StatusOr<Image> DecodeImage(absl::string_view bytes, ColorMode mode);

// A 1- or 3-channel image converted to `mode` in place, as DecodeImage
// converts: gray replicated to RGB, RGB to luma with PIL's formula.
void ConvertChannels(Image& image, ColorMode mode);

// Encoders, for tools and tests that write image folders. `image` must have
// 1 or 3 channels and pixels.size() == height * width * channels.
absl::StatusOr<std::string> EncodePng(const Image& image);
// quality in [1, 100]; 4:2:0 chroma subsampling (libjpeg's default, PIL's too).
absl::StatusOr<std::string> EncodeJpeg(const Image& image, int quality);

}  // namespace slimfit

#endif  // SLIMFIT_DATA_IMAGE_CODEC_H_
