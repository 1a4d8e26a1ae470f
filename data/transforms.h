// File: data/transforms.h
//
// Batch transforms, applied to one field of a stacked batch (the images,
// field 0, unless told otherwise) with the loader's seeded generator, so a
// run is reproducible. All are vectorised over the batch.
//
//   to_float                 uint8 → float * scale (default 1/255)
//   normalize                per-channel (x - mean) / std
//   random_crop              zero-pad, then a random window per sample
//   random_horizontal_flip   flip each sample with probability p
//
// MakeTransform builds one from its TransformConfig; out-of-range settings are
// InvalidArgument naming the field ("normalize.std[1]: must be > 0, got 0").
#ifndef SLIMFIT_DATA_TRANSFORMS_H_
#define SLIMFIT_DATA_TRANSFORMS_H_

#include <ATen/core/Generator.h>

#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "data/data.pb.h"
#include "data/dataset.h"

namespace slimfit {

class Transform {
 public:
  virtual ~Transform() = default;
  // Transforms `batch` in place. FailedPrecondition if the field is missing
  // or has the wrong rank / dtype / channel count for this transform.
  virtual absl::Status Apply(Batch& batch, at::Generator& gen) const = 0;
  virtual std::string name() const = 0;
};

absl::StatusOr<std::unique_ptr<Transform>> MakeTransform(const TransformConfig& config,
                                                         int field = 0);

// The transforms of `configs`, in order, with to_float added when
// `scale_uint8` and none is listed: before the first normalize, or last
// (random_crop and random_horizontal_flip work on uint8 and float alike). A
// to_float directly followed by normalize runs as one fused transform.
// `context` prefixes errors ("data.train_transforms").
absl::StatusOr<std::vector<std::shared_ptr<const Transform>>> MakeTransforms(
    const google::protobuf::RepeatedPtrField<TransformConfig>& configs, bool scale_uint8,
    const std::string& context);

}  // namespace slimfit

#endif  // SLIMFIT_DATA_TRANSFORMS_H_
