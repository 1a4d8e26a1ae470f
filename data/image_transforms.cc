#include "data/image_transforms.h"

#include <ATen/ATen.h>

#include <algorithm>
#include <cmath>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "common/field_error.h"
#include "common/status_macros.h"
#include "common/torch_status.h"

namespace slimfit {
namespace {

// Python's int(round(x)): halves to even, as std::nearbyint in the default mode.
int64_t RoundHalfEven(double x) { return static_cast<int64_t>(std::nearbyint(x)); }

class Resize : public SampleTransform {
 public:
  explicit Resize(int64_t size) : size_(size) {}
  absl::StatusOr<at::Tensor> Apply(const at::Tensor& image, std::mt19937_64&) const override {
    return TorchCallOr("resize", [&] { return ResizeShorterSide(image, size_); });
  }
  std::string name() const override { return absl::StrCat("resize(", size_, ")"); }

 private:
  int64_t size_;
};

class CenterCrop : public SampleTransform {
 public:
  explicit CenterCrop(int64_t size) : size_(size) {}
  absl::StatusOr<at::Tensor> Apply(const at::Tensor& image, std::mt19937_64&) const override {
    return TorchCallOr("center_crop", [&] { return CenterCropImage(image, size_, size_); });
  }
  std::string name() const override { return absl::StrCat("center_crop(", size_, ")"); }

 private:
  int64_t size_;
};

class RandomResizedCrop : public SampleTransform {
 public:
  RandomResizedCrop(int64_t size, double min_scale, double max_scale, double min_ratio, double max_ratio)
      : size_(size), min_scale_(min_scale), max_scale_(max_scale), min_ratio_(min_ratio), max_ratio_(max_ratio) {}
  absl::StatusOr<at::Tensor> Apply(const at::Tensor& image, std::mt19937_64& rng) const override {
    const CropBox box =
        RandomResizedCropBox(image.size(1), image.size(2), min_scale_, max_scale_, min_ratio_, max_ratio_, rng);
    return TorchCallOr("random_resized_crop", [&] { return ResizedCrop(image, box, size_); });
  }
  std::string name() const override { return absl::StrCat("random_resized_crop(", size_, ")"); }

 private:
  int64_t size_;
  double min_scale_, max_scale_, min_ratio_, max_ratio_;
};

absl::Status CheckSize(int64_t size, const std::string& field) {
  if (size < 1) return FieldError(field + ".size", "required", size, ">= 1");
  return absl::OkStatus();
}

absl::StatusOr<std::unique_ptr<SampleTransform>> MakeOne(const SampleTransformConfig& c, const std::string& field) {
  switch (c.transform_case()) {
    case SampleTransformConfig::kResize:
      RETURN_IF_ERROR(CheckSize(c.resize().size(), field + ".resize"));
      return std::make_unique<Resize>(c.resize().size());
    case SampleTransformConfig::kCenterCrop:
      RETURN_IF_ERROR(CheckSize(c.center_crop().size(), field + ".center_crop"));
      return std::make_unique<CenterCrop>(c.center_crop().size());
    case SampleTransformConfig::kRandomResizedCrop: {
      const auto& r = c.random_resized_crop();
      const std::string f = field + ".random_resized_crop";
      RETURN_IF_ERROR(CheckSize(r.size(), f));
      const double min_scale = r.min_scale() == 0 ? 0.08 : r.min_scale();
      const double max_scale = r.max_scale() == 0 ? 1.0 : r.max_scale();
      const double min_ratio = r.min_ratio() == 0 ? 3.0 / 4.0 : r.min_ratio();
      const double max_ratio = r.max_ratio() == 0 ? 4.0 / 3.0 : r.max_ratio();
      if (!(min_scale > 0 && min_scale <= max_scale && max_scale <= 1)) {
        const bool min_bad = !(min_scale > 0 && min_scale <= max_scale);
        return FieldError(f + (min_bad ? ".min_scale" : ".max_scale"), "out of range", min_bad ? min_scale : max_scale,
                          min_bad ? absl::StrCat("(0, max_scale = ", max_scale, "]")
                                  : absl::StrCat("[min_scale = ", min_scale, ", 1]"));
      }
      if (!(min_ratio > 0 && min_ratio <= max_ratio)) {
        const bool min_bad = !(min_ratio > 0);
        return FieldError(f + (min_bad ? ".min_ratio" : ".max_ratio"), min_bad ? "not positive" : "below min_ratio",
                          min_bad ? min_ratio : max_ratio,
                          min_bad ? "> 0" : absl::StrCat(">= min_ratio = ", min_ratio));
      }
      return std::make_unique<RandomResizedCrop>(r.size(), min_scale, max_scale, min_ratio, max_ratio);
    }
    case SampleTransformConfig::TRANSFORM_NOT_SET:
      break;
  }
  return FieldError(field, "no transform set", "", "resize, center_crop, random_resized_crop");
}

}  // namespace

at::Tensor ImageToTensor(const Image& image) {
  at::Tensor hwc = at::empty({image.height, image.width, image.channels}, at::kByte);
  std::memcpy(hwc.data_ptr<uint8_t>(), image.pixels.data(), image.pixels.size());
  // A [C, H, W] view of the interleaved pixels: channels-last, the layout
  // the uint8 antialiased resize is fastest on (no copy until the stack).
  return hwc.permute({2, 0, 1});
}

Image TensorToImage(const at::Tensor& chw) {
  at::Tensor hwc = chw.to(at::kByte).permute({1, 2, 0}).contiguous();
  Image out;
  out.channels = static_cast<int>(hwc.size(2));
  out.height = static_cast<int>(hwc.size(0));
  out.width = static_cast<int>(hwc.size(1));
  out.pixels.assign(hwc.data_ptr<uint8_t>(), hwc.data_ptr<uint8_t>() + hwc.numel());
  return out;
}

at::Tensor ResizeImage(const at::Tensor& image, int64_t height, int64_t width) {
  if (image.size(1) == height && image.size(2) == width) return image;
  return at::_upsample_bilinear2d_aa(image.unsqueeze(0), {height, width}, /*align_corners=*/false).squeeze(0);
}

at::Tensor ResizeShorterSide(const at::Tensor& image, int64_t size) {
  const int64_t h = image.size(1), w = image.size(2);
  // torchvision: new_long = int(size * long / short), a truncation.
  if (h <= w) return ResizeImage(image, size, static_cast<int64_t>(static_cast<double>(size) * w / h));
  return ResizeImage(image, static_cast<int64_t>(static_cast<double>(size) * h / w), size);
}

at::Tensor CenterCropImage(const at::Tensor& image, int64_t height, int64_t width) {
  at::Tensor img = image;
  int64_t h = img.size(1), w = img.size(2);
  if (height > h || width > w) {
    const int64_t left = width > w ? (width - w) / 2 : 0, top = height > h ? (height - h) / 2 : 0;
    const int64_t right = width > w ? (width - w + 1) / 2 : 0, bottom = height > h ? (height - h + 1) / 2 : 0;
    img = at::constant_pad_nd(img, {left, right, top, bottom}, 0);
    h = img.size(1);
    w = img.size(2);
    if (h == height && w == width) return img;
  }
  const int64_t top = RoundHalfEven((h - height) / 2.0), left = RoundHalfEven((w - width) / 2.0);
  return img.narrow(1, top, height).narrow(2, left, width);
}

CropBox RandomResizedCropBox(int64_t height, int64_t width, double min_scale, double max_scale, double min_ratio,
                             double max_ratio, std::mt19937_64& rng) {
  const double area = static_cast<double>(height) * width;
  std::uniform_real_distribution<double> scale(min_scale, max_scale);
  std::uniform_real_distribution<double> log_ratio(std::log(min_ratio), std::log(max_ratio));
  for (int attempt = 0; attempt < 10; ++attempt) {
    const double target = area * scale(rng);
    const double aspect = std::exp(log_ratio(rng));
    const int64_t w = RoundHalfEven(std::sqrt(target * aspect));
    const int64_t h = RoundHalfEven(std::sqrt(target / aspect));
    if (0 < w && w <= width && 0 < h && h <= height) {
      const int64_t top = std::uniform_int_distribution<int64_t>(0, height - h)(rng);
      const int64_t left = std::uniform_int_distribution<int64_t>(0, width - w)(rng);
      return {top, left, h, w};
    }
  }
  // torchvision's fallback: the largest central window within the ratios.
  const double in_ratio = static_cast<double>(width) / height;
  int64_t w = width, h = height;
  if (in_ratio < min_ratio) {
    h = RoundHalfEven(w / min_ratio);
  } else if (in_ratio > max_ratio) {
    w = RoundHalfEven(h * max_ratio);
  }
  return {(height - h) / 2, (width - w) / 2, h, w};
}

at::Tensor ResizedCrop(const at::Tensor& image, const CropBox& box, int64_t size) {
  return ResizeImage(image.narrow(1, box.top, box.height).narrow(2, box.left, box.width), size, size);
}

absl::StatusOr<std::vector<std::shared_ptr<const SampleTransform>>> MakeSampleTransforms(
    const google::protobuf::RepeatedPtrField<SampleTransformConfig>& configs, const std::string& context) {
  std::vector<std::shared_ptr<const SampleTransform>> out;
  for (int i = 0; i < configs.size(); ++i) {
    ASSIGN_OR_RETURN(auto t, MakeOne(configs.Get(i), IndexedField(context, i)));

    out.push_back(std::move(t));
  }
  return out;
}

}  // namespace slimfit
