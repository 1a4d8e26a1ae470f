// File: data/image_export.h
//
// Writes a dataset split as an image folder, root/<split>/<class>/<index>.png
// or .jpg (torchvision's ImageFolder layout): what //tools:export_images and
// the image-folder benchmark use to make folders of real files.
//
// Class folders are named by label, zero-padded so that they sort in label
// order ("0".."9"; "00".."99"). Field 0 must be uint8 images [N, C, H, W]
// (or [N, H, W]); field 1 int64 labels.
#ifndef SLIMFIT_DATA_IMAGE_EXPORT_H_
#define SLIMFIT_DATA_IMAGE_EXPORT_H_

#include <cstdint>
#include <string>

#include "absl/status/statusor.h"
#include "data/dataset.h"

namespace slimfit {

struct ImageExportOptions {
  int64_t max_samples = 0;  // 0 = all
  int size = 0;             // resize to size x size (bilinear, antialiased); 0 = keep
  int channels = 0;         // 1 (luma) or 3 (gray replicated); 0 = keep
  bool jpeg = false;        // else PNG
  int quality = 90;         // JPEG quality
};

struct ImageExportResult {
  int64_t images = 0;
  int64_t classes = 0;
  int64_t bytes = 0;
};

// Writes samples [0, n) of `dataset` under `root`/`split`/.
absl::StatusOr<ImageExportResult> ExportImageFolder(const Dataset& dataset, const std::string& root,
                                                    const std::string& split, const ImageExportOptions& options);

}  // namespace slimfit

#endif  // SLIMFIT_DATA_IMAGE_EXPORT_H_
