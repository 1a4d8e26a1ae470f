// File: tools/data_flags.h
//
// The one --data / --data_dir pair of flags every tool that reads a dataset
// takes (train, evaluate, prune, quantize, export_images), defined once so
// they mean the same everywhere:
//   --data      a preset (tools/job.h's PresetData: fashion_mnist, mnist,
//               cifar10, cifar100, image_folder, synthetic), a DataConfig
//               .pbtxt, or `none`; left empty, the tool's own default
//               (fashion_mnist, or none for prune, whose data is optional);
//   --data_dir  the dataset's directory (fashion_mnist: Debian's by
//               default; image_folder: the root), relative to where the
//               user ran the tool.
//
//   ASSIGN_OR_RETURN(std::optional<DataConfig> data, DataFromFlags(kNoData, false));
#ifndef SLIMFIT_TOOLS_DATA_FLAGS_H_
#define SLIMFIT_TOOLS_DATA_FLAGS_H_

#include <optional>
#include <string>

#include "absl/flags/declare.h"
#include "absl/status/statusor.h"
#include "data/data.pb.h"

ABSL_DECLARE_FLAG(std::string, data);
ABSL_DECLARE_FLAG(std::string, data_dir);

namespace slimfit {

inline constexpr char kNoData[] = "none";

// --data, or `tool_default` when it was left empty.
std::string DataFlag(const std::string& tool_default);

// --data_dir, resolved against the directory the user ran the tool from.
std::string DataDirFlag();

// The DataConfig --data names (PresetData; `augment`: the preset's training
// augmentation), or nullopt for `none`. Errors name --data.
absl::StatusOr<std::optional<DataConfig>> DataFromFlags(const std::string& tool_default, bool augment);

// As DataFromFlags, for tools that cannot run without data: `none` is an
// error naming `tool`.
absl::StatusOr<DataConfig> RequiredDataFromFlags(const std::string& tool, const std::string& tool_default,
                                                 bool augment);

}  // namespace slimfit

#endif  // SLIMFIT_TOOLS_DATA_FLAGS_H_
