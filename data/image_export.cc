#include "data/image_export.h"

#include <ATen/ATen.h>

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "common/field_error.h"
#include "common/files.h"
#include "common/status_macros.h"
#include "common/torch_status.h"
#include "data/image_codec.h"
#include "data/image_transforms.h"

namespace slimfit {

absl::StatusOr<ImageExportResult> ExportImageFolder(const Dataset& dataset, const std::string& root,
                                                    const std::string& split, const ImageExportOptions& options) {
  if (options.channels != 0 && options.channels != 1 && options.channels != 3) {
    return FieldError("channels", "not a channel count", options.channels, "1, 3 (0 = keep)");
  }
  if (options.size < 0) return FieldError("size", "negative", options.size, ">= 0 (0 = keep)");

  ImageExportResult result;
  result.images = dataset.size();
  if (options.max_samples > 0) result.images = std::min(result.images, options.max_samples);
  ASSIGN_OR_RETURN(Batch probe, ShapeProbe(dataset));
  if (probe.size() < 2 || !probe[1].isTensor() || probe[1].toTensor().scalar_type() != at::kLong) {
    return absl::FailedPreconditionError(absl::StrCat(dataset.name(), ": field 1 must be int64 labels"));
  }
  result.classes = probe[1].toTensor().numel() > 0 ? probe[1].toTensor().max().item<int64_t>() + 1 : 0;
  const int width = static_cast<int>(std::to_string(std::max<int64_t>(result.classes - 1, 0)).size());
  for (int64_t c = 0; c < result.classes; ++c) {
    RETURN_IF_ERROR(CreateDirectories(absl::StrFormat("%s/%s/%0*d", root, split, width, c)));
  }
  const char* ext = options.jpeg ? "jpg" : "png";
  for (int64_t start = 0; start < result.images; start += 512) {
    const int64_t take = std::min<int64_t>(512, result.images - start);
    ASSIGN_OR_RETURN(Batch b, dataset.GetBatch(at::arange(start, start + take, at::kLong)));
    at::Tensor images = b[0].toTensor(), labels = b[1].toTensor();
    if (images.dim() == 3) images = images.unsqueeze(1);
    if (images.scalar_type() != at::kByte || images.dim() != 4) {
      return absl::FailedPreconditionError(absl::StrCat(dataset.name(), ": images are ", images.scalar_type(), " of ",
                                                        images.dim(), " dimensions; only uint8 [N, C, H, W] images ",
                                                        "can be written as files"));
    }
    for (int64_t i = 0; i < take; ++i) {
      ASSIGN_OR_RETURN(at::Tensor x, TorchCallOr("resizing", [&] {
                         at::Tensor img = images[i];
                         if (options.size > 0) img = ResizeImage(img, options.size, options.size);
                         return img;
                       }));
      Image image = TensorToImage(x);
      // As the decoder converts (gray replicated; RGB to luma), so exported and decoded images agree.
      if (options.channels != 0) ConvertChannels(image, options.channels == 1 ? ColorMode::kGray : ColorMode::kRgb);
      ASSIGN_OR_RETURN(std::string file, options.jpeg ? EncodeJpeg(image, options.quality) : EncodePng(image));
      result.bytes += static_cast<int64_t>(file.size());
      RETURN_IF_ERROR(WriteFileAtomically(
          absl::StrFormat("%s/%s/%0*d/%06d.%s", root, split, width, labels[i].item<int64_t>(), start + i, ext), file));
    }
  }
  return result;
}

}  // namespace slimfit
