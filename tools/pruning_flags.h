// File: tools/pruning_flags.h
//
// What //tools:prune and //tools:inspect share: the pruning config from a
// text file (a PruningConfig, pruners/pruner.proto) with the common fields
// overridable by flags, and a forward pass for a model without data.
//
// Flags (each overrides the file's field when given):
//   --pruner=fpgm --ratio=0.5 --global --max_ratio=0.9 --min_channels=1
//   --round_to=8 --exclude=REGEX (repeatable, comma-separated)
//   --finetune_epochs=N --input_shape=3,224,224 (per sample; for models
//   without slimfit metadata when no data is given)
#ifndef SLIMFIT_TOOLS_PRUNING_FLAGS_H_
#define SLIMFIT_TOOLS_PRUNING_FLAGS_H_

#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "forward_pass/forward_pass.h"
#include "model/model.h"
#include "pruners/pruner.pb.h"

namespace slimfit {

// `path` empty: flags only (default pruner l1_filter, ratio 0.5).
absl::StatusOr<PruningConfig> PruningConfigFromFlags(const std::string& path);

// A forward pass whose random inputs fit `model`: from --input_shape, else
// the model's metadata; records the shape in the metadata (so the saved
// model carries it). InvalidArgument naming --input_shape when neither exists.
absl::StatusOr<std::shared_ptr<ForwardPass>> ForwardPassForModel(Model& model);

}  // namespace slimfit

#endif  // SLIMFIT_TOOLS_PRUNING_FLAGS_H_
