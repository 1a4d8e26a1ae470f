#include "tools/pruning_flags.h"

#include <vector>

#include "absl/flags/flag.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "common/field_error.h"
#include "common/status_macros.h"
#include "common/text_proto.h"
#include "tools/cli.h"

ABSL_FLAG(std::string, pruner, "l1_filter",
          "a pruner registered in pruners/ (PruningConfig's `pruner` oneof; an unknown name's error lists them)");
ABSL_FLAG(double, ratio, 0.5, "fraction of each selected layer's channels to remove, in [0, 1)");
ABSL_FLAG(bool, global, false, "rank channels across layers (ratio of all selected channels)");
ABSL_FLAG(double, max_ratio, 0.9, "per-layer cap on the removed fraction");
ABSL_FLAG(int, min_channels, 1, "channels every layer keeps at least");
ABSL_FLAG(int, round_to, 0, "round kept channel counts to a multiple of this (e.g. 8)");
ABSL_FLAG(std::vector<std::string>, exclude, {}, "module-path regexes (RE2) to keep unpruned");
ABSL_FLAG(int, finetune_epochs, 0, "fine-tuning epochs after pruning (needs --data)");
ABSL_FLAG(std::string, input_shape, "", "per-sample input shape, e.g. 3,224,224 (models without metadata)");

namespace slimfit {

absl::StatusOr<PruningConfig> PruningConfigFromFlags(const std::string& path) {
  PruningConfig c;
  const bool from_file = !path.empty();
  if (from_file) RETURN_IF_ERROR(ParseTextProtoFile(ResolveUserPath(path), &c));
  if (!from_file || FlagGiven("pruner")) {
    const std::string name = absl::GetFlag(FLAGS_pruner);
    if (!SelectOneofField(&c, "pruner", name)) {
      return FieldError("--pruner", "not a pruner", Quoted(name), absl::StrJoin(OneofFieldNames(c, "pruner"), ", "));
    }
  }
  if (!from_file || FlagGiven("ratio")) c.set_ratio(absl::GetFlag(FLAGS_ratio));
  if (FlagGiven("global")) c.set_global(absl::GetFlag(FLAGS_global));
  if (FlagGiven("max_ratio")) c.set_max_ratio(absl::GetFlag(FLAGS_max_ratio));
  if (FlagGiven("min_channels")) c.set_min_channels(absl::GetFlag(FLAGS_min_channels));
  if (FlagGiven("round_to")) c.set_round_to(absl::GetFlag(FLAGS_round_to));
  if (FlagGiven("finetune_epochs")) c.set_finetune_epochs(absl::GetFlag(FLAGS_finetune_epochs));
  for (const std::string& re : absl::GetFlag(FLAGS_exclude)) {
    LayerSelection* l = c.add_layers();
    l->set_module_regex(re);
    l->set_exclude(true);
  }
  // Exclude entries alone would select nothing: keep the default selection.
  bool only_excludes = c.layers_size() > 0;
  for (const LayerSelection& l : c.layers()) only_excludes = only_excludes && l.exclude();
  if (only_excludes) c.add_layers();  // an empty entry matches every layer
  return c;
}

absl::StatusOr<std::shared_ptr<ForwardPass>> ForwardPassForModel(Model& model) {
  const std::string flag = absl::GetFlag(FLAGS_input_shape);
  if (!flag.empty()) {
    ASSIGN_OR_RETURN(TensorSpec spec, InputShapeFlag(flag));
    model.mutable_metadata().clear_inputs();
    *model.mutable_metadata().add_inputs() = spec;
  }
  if (model.metadata().inputs_size() == 0) {
    return FieldError("--input_shape", "required for a model without slimfit metadata", "\"\"",
                      "comma-separated sizes >= 1, e.g. 3,224,224");
  }
  auto fp = std::make_shared<ForwardPass>();
  RETURN_IF_ERROR(fp->InferFromMetadata(model.metadata()));
  return fp;
}

}  // namespace slimfit
