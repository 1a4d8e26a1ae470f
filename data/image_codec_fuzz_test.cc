// Fuzz target: DecodeImage on arbitrary bytes, in both modes. Never crashes;
// a decoded image has the channels asked for, a size within the pixel
// limit, and exactly H * W * C bytes.
#include <cstdint>
#include <cstdlib>

#include "absl/strings/string_view.h"
#include "data/image_codec.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const absl::string_view bytes(reinterpret_cast<const char*>(data), size);
  for (slimfit::ColorMode mode : {slimfit::ColorMode::kRgb, slimfit::ColorMode::kGray}) {
    absl::StatusOr<slimfit::Image> img = slimfit::DecodeImage(bytes, mode);
    if (!img.ok()) continue;
    const int want = mode == slimfit::ColorMode::kRgb ? 3 : 1;
    if (img->channels != want || img->height < 1 || img->width < 1) std::abort();
    if (static_cast<int64_t>(img->height) * img->width > slimfit::kMaxImagePixels) std::abort();
    if (img->pixels.size() != static_cast<size_t>(img->height) * img->width * img->channels) std::abort();
  }
  return 0;
}
