// File: data/image_transforms.h
//
// Per-sample image transforms: torchvision.transforms.v2's geometry on one
// uint8 [C, H, W] tensor, run by the image folder on each decoded image
// before the batch is stacked (data.proto's SampleTransformConfig).
//
//   resize               shorter side to `size`, bilinear, antialiased
//   center_crop          the central window, zero-padded if the image is smaller
//   random_resized_crop  a random window (scale, ratio), resized to size x size
//
// Each matches torchvision's output on the same uint8 tensor exactly (the
// same ATen kernel, _upsample_bilinear2d_aa, and the same integer
// arithmetic): image_transforms_test compares against goldens made by
// data/testdata/make_image_goldens.py. The random draws come from the
// sample's own std::mt19937_64, so they do not depend on threads, but they
// are not Python's draws: a seed here gives other windows than
// torch.manual_seed does.
#ifndef SLIMFIT_DATA_IMAGE_TRANSFORMS_H_
#define SLIMFIT_DATA_IMAGE_TRANSFORMS_H_

#include <ATen/core/Tensor.h>

#include <memory>
#include <random>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "data/data.pb.h"
#include "data/image_codec.h"

namespace slimfit {

class SampleTransform {
 public:
  virtual ~SampleTransform() = default;
  // `image`: uint8 [C, H, W]. Returns the transformed image.
  virtual absl::StatusOr<at::Tensor> Apply(const at::Tensor& image, std::mt19937_64& rng) const = 0;
  virtual std::string name() const = 0;
};

// `context` prefixes errors ("data.image_folder.train_sample_transforms").
absl::StatusOr<std::vector<std::shared_ptr<const SampleTransform>>> MakeSampleTransforms(
    const google::protobuf::RepeatedPtrField<SampleTransformConfig>& configs, const std::string& context);

// A decoded image as uint8 [C, H, W] (a copy, laid out channels-last; the
// transforms below return views or channels-last results where they can:
// call .contiguous() for a plain layout).
at::Tensor ImageToTensor(const Image& image);
// uint8 [C, H, W] (C = 1 or 3) back to an Image.
Image TensorToImage(const at::Tensor& chw);

// The pieces, for tests and tools. All take and return uint8 [C, H, W].
// v2.functional.resize(image, [height, width], antialias=True).
at::Tensor ResizeImage(const at::Tensor& image, int64_t height, int64_t width);
// v2.functional.resize(image, size): the shorter side becomes `size`.
at::Tensor ResizeShorterSide(const at::Tensor& image, int64_t size);
// v2.functional.center_crop(image, [height, width]).
at::Tensor CenterCropImage(const at::Tensor& image, int64_t height, int64_t width);

struct CropBox {
  int64_t top = 0, left = 0, height = 0, width = 0;
};
// v2.RandomResizedCrop.make_params with draws from `rng`.
CropBox RandomResizedCropBox(int64_t height, int64_t width, double min_scale, double max_scale, double min_ratio,
                             double max_ratio, std::mt19937_64& rng);
// v2.functional.resized_crop(image, top, left, h, w, [size, size], antialias=True).
at::Tensor ResizedCrop(const at::Tensor& image, const CropBox& box, int64_t size);

}  // namespace slimfit

#endif  // SLIMFIT_DATA_IMAGE_TRANSFORMS_H_
