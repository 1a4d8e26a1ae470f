// File: model/zoo/zoo.h
//
// Models built in C++ as TorchScript (no Python), selectable by name. Each is
// a small classic architecture chosen for what it exercises in pruning and
// quantization:
//   lenet5            conv → pool → flatten → linear (the flatten→linear case)
//   vgg_small         3 stages of conv-bn-relu pairs + max pool, flatten →
//                     linear → linear
//   resnet_small      ResNet with BasicBlocks (residual adds) in 3 stages
//                     (16/32/64 channels), 1x1 conv+bn downsample shortcuts
//   mobilenetv2_small inverted residuals: 1x1 expand, 3x3 depthwise, 1x1
//                     linear projection, residual adds where shapes match
//
//   ZooOptions opts;                       // 1x28x28 in, 10 classes
//   opts.in_channels = 3; opts.height = opts.width = 32;   // CIFAR
//   ASSIGN_OR_RETURN(Model m, CreateZooModel("resnet_small", opts));
//
// The model's metadata records its name, input shape (batch 1) and class
// count. Weights are freshly initialised from `seed` (same seed, same model).
// Unknown names are NotFound listing the zoo; bad sizes are InvalidArgument
// naming the option.
#ifndef SLIMFIT_MODEL_ZOO_ZOO_H_
#define SLIMFIT_MODEL_ZOO_ZOO_H_

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include <ATen/core/ivalue.h>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "common/registry.h"
#include "model/model.h"

namespace slimfit {

struct ZooOptions {
  int64_t in_channels = 1;
  int64_t height = 28;
  int64_t width = 28;
  int64_t num_classes = 10;
  double width_multiplier = 1.0;  // scales every hidden width; (0, 16]
  uint64_t seed = 0;
};

using ZooFactory = std::function<absl::StatusOr<Model>(const ZooOptions&)>;
Registry<ZooFactory>& ZooRegistry();

absl::StatusOr<Model> CreateZooModel(absl::string_view name,
                                     const ZooOptions& options = {});

std::vector<std::string> ZooModelNames();

// The shape a zoo model takes from data: `samples` is a batch of the whole
// training set (or a representative part): [N, C, H, W] images first set
// in_channels / height / width, integer labels second set num_classes
// (max + 1); other fields keep their defaults.
ZooOptions ZooShapeFromBatch(const std::vector<c10::IValue>& samples);

}  // namespace slimfit

#endif  // SLIMFIT_MODEL_ZOO_ZOO_H_
