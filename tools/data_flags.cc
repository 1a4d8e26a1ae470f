#include "tools/data_flags.h"

#include "absl/flags/flag.h"
#include "absl/strings/str_cat.h"
#include "common/field_error.h"
#include "common/status_macros.h"
#include "tools/cli.h"
#include "tools/job.h"

ABSL_FLAG(std::string, data, "",
          "fashion_mnist, mnist, cifar10, cifar100, image_folder (--data_dir: its root), synthetic, a DataConfig "
          ".pbtxt, or none; empty: the tool's default (fashion_mnist; prune: none)");
ABSL_FLAG(std::string, data_dir, "", "the dataset's directory (default for fashion_mnist: Debian's)");

namespace slimfit {

std::string DataFlag(const std::string& tool_default) {
  const std::string d = absl::GetFlag(FLAGS_data);
  return d.empty() ? tool_default : d;
}

std::string DataDirFlag() { return ResolveUserPath(absl::GetFlag(FLAGS_data_dir)); }

absl::StatusOr<std::optional<DataConfig>> DataFromFlags(const std::string& tool_default, bool augment) {
  const std::string name = DataFlag(tool_default);
  if (name == kNoData) return std::optional<DataConfig>();
  ASSIGN_OR_RETURN(DataConfig c, PresetData(name, DataDirFlag(), augment));
  return std::optional<DataConfig>(std::move(c));
}

absl::StatusOr<DataConfig> RequiredDataFromFlags(const std::string& tool, const std::string& tool_default,
                                                 bool augment) {
  ASSIGN_OR_RETURN(std::optional<DataConfig> c, DataFromFlags(tool_default, augment));
  if (!c) {
    return FieldError("--data", absl::StrCat(tool, " needs a dataset"), Quoted(kNoData),
                      "a preset or a DataConfig .pbtxt file");
  }
  return *std::move(c);
}

}  // namespace slimfit
