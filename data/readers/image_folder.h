// File: data/readers/image_folder.h
//
// The "image_folder" dataset source: JPEG / PNG files in torchvision's
// ImageFolder layout (data.proto's ImageFolderDatasetConfig,
// data/image_folder_index.h), decoded only when a batch asks for them.
//
//   data { image_folder { root: "/data/pets"
//                         train_sample_transforms { random_resized_crop { size: 224 } }
//                         eval_sample_transforms { resize { size: 256 } }
//                         eval_sample_transforms { center_crop { size: 224 } } } }
//
// GetSeededBatch decodes its rows in turn, each row's random transforms
// drawn from MixSeeds(batch seed, row); loaders make several batches at once
// on DataConfig.workers threads (data/prefetch_loader.h), so results do not
// depend on the number of threads. Memory: the dataset holds the file list;
// a batch holds its decoded samples until stacked; the loader bounds how
// many batches exist at once.
#ifndef SLIMFIT_DATA_READERS_IMAGE_FOLDER_H_
#define SLIMFIT_DATA_READERS_IMAGE_FOLDER_H_

#include <ATen/core/Tensor.h>

#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <vector>

#include "data/data.pb.h"
#include "data/dataset.h"
#include "data/image_codec.h"
#include "data/image_transforms.h"

namespace slimfit {

class ImageFolderDataset : public Dataset {
 public:
  struct Options {
    ColorMode mode = ColorMode::kRgb;
    bool skip_bad = false;
    std::vector<std::shared_ptr<const SampleTransform>> transforms;
  };
  // `files` are absolute paths; `labels` their class positions.
  ImageFolderDataset(std::vector<std::string> files, std::vector<int64_t> labels, Options options, std::string name);

  int64_t size() const override { return static_cast<int64_t>(files_.size()); }
  int64_t num_fields() const override { return 2; }
  absl::StatusOr<Batch> GetBatch(const at::Tensor& indices) const override { return GetSeededBatch(indices, 0); }
  // DataLoss naming the file for a bad image (ERROR); with SKIP the row is
  // left out (the batch is shorter), counted, and named once on stderr.
  // FailedPrecondition if the samples end different sizes, or every row of
  // the batch was skipped.
  absl::StatusOr<Batch> GetSeededBatch(const at::Tensor& indices, uint64_t seed) const override;
  const std::string& name() const override { return name_; }
  bool lazy() const override { return true; }
  std::optional<at::Tensor> Labels() const override { return labels_; }

  const std::string& file(int64_t i) const { return files_[i]; }
  // Distinct files skipped so far (SKIP).
  int64_t skipped() const;

 private:
  absl::StatusOr<at::Tensor> LoadSample(int64_t index, uint64_t seed) const;

  std::vector<std::string> files_;
  at::Tensor labels_;
  Options options_;
  std::string name_;
  mutable std::mutex skipped_mu_;
  mutable std::set<int64_t> skipped_;
};

}  // namespace slimfit

#endif  // SLIMFIT_DATA_READERS_IMAGE_FOLDER_H_
