#include "model/zoo/zoo.h"

#include "absl/strings/str_cat.h"
#include "common/field_error.h"
#include "common/status_macros.h"
#include "common/torch_status.h"

namespace slimfit {
namespace {

absl::Status Validate(const ZooOptions& o) {
  auto positive = [](const char* field, int64_t v, int64_t max) -> absl::Status {
    if (v < 1 || v > max) {
      return FieldError(absl::StrCat("zoo.", field), "out of range", v, absl::StrCat("[1, ", max, "]"));
    }
    return absl::OkStatus();
  };
  RETURN_IF_ERROR(positive("in_channels", o.in_channels, 1024));
  RETURN_IF_ERROR(positive("height", o.height, 4096));
  RETURN_IF_ERROR(positive("width", o.width, 4096));
  RETURN_IF_ERROR(positive("num_classes", o.num_classes, 1 << 20));
  if (!(o.width_multiplier > 0.0 && o.width_multiplier <= 16.0)) {
    return FieldError("zoo.width_multiplier", "out of range", o.width_multiplier, "(0, 16]");
  }
  return absl::OkStatus();
}

}  // namespace

Registry<ZooFactory>& ZooRegistry() {
  static auto* registry = new Registry<ZooFactory>("zoo model");
  return *registry;
}

absl::StatusOr<Model> CreateZooModel(absl::string_view name,
                                     const ZooOptions& options) {
  ASSIGN_OR_RETURN(ZooFactory factory, ZooRegistry().Get(name));
  RETURN_IF_ERROR(Validate(options), absl::StrCat("zoo model \"", name, "\""));
  const std::string context = absl::StrCat("building zoo model \"", name, "\"");
  ASSIGN_OR_RETURN(Model model, TorchCallOr(context, [&] { return factory(options); }));
  ModelMetadata& md = model.mutable_metadata();
  md.set_format_version(1);
  md.set_name(std::string(name));
  md.set_num_classes(options.num_classes);
  md.set_created_by("slimfit zoo");
  md.clear_inputs();
  TensorSpec* in = md.add_inputs();
  for (int64_t d : {int64_t{1}, options.in_channels, options.height, options.width}) {
    in->add_shape(d);
  }
  in->set_dtype("float32");
  return model;
}

std::vector<std::string> ZooModelNames() { return ZooRegistry().Names(); }

ZooOptions ZooShapeFromBatch(const std::vector<c10::IValue>& samples) {
  ZooOptions zoo;
  if (!samples.empty() && samples[0].isTensor() && samples[0].toTensor().dim() == 4) {
    const at::Tensor x = samples[0].toTensor();
    zoo.in_channels = x.size(1);
    zoo.height = x.size(2);
    zoo.width = x.size(3);
  }
  if (samples.size() > 1 && samples[1].isTensor() && samples[1].toTensor().scalar_type() == at::kLong &&
      samples[1].toTensor().numel() > 0) {
    zoo.num_classes = samples[1].toTensor().max().item<int64_t>() + 1;
  }
  return zoo;
}

}  // namespace slimfit
