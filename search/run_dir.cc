#include "search/run_dir.h"

#include <ATen/core/Tensor.h>

#include <string>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "common/files.h"
#include "common/hash.h"
#include "common/status_macros.h"
#include "common/text_proto.h"

namespace slimfit {

std::string ModelFingerprint(const Model& model) {
  uint64_t h = kFnv1aOffset;
  auto add = [&](const std::string& name, const at::Tensor& t) {
    h = Fnv1a(name.data(), name.size(), h);
    const at::Tensor c = t.detach().contiguous();
    h = Fnv1a(c.data_ptr(), c.numel() * c.element_size(), h);
  };
  for (const auto& [name, t] : model.NamedParameters()) add(name, t);
  for (const auto& [name, t] : model.NamedBuffers()) add(name, t);
  return absl::StrFormat("%016x", h);
}

absl::Status CheckSameWork(const std::string& run_dir, const Experiment& now, const std::string& fingerprint) {
  const std::string old_path = run_dir + "/state/experiment.pbtxt";
  if (!ReadFileToString(old_path).ok()) return absl::OkStatus();  // a new run directory
  Experiment old;
  RETURN_IF_ERROR(ParseTextProtoFile(old_path, &old));
  std::vector<std::string> changed;
  auto same = [&](absl::string_view field, const google::protobuf::Message& a, const google::protobuf::Message& b) {
    if (ToTextProto(a) != ToTextProto(b)) changed.push_back(std::string(field));
  };
  same("model", old.model(), now.model());
  same("data", old.data(), now.data());
  same("forward_pass", old.forward_pass(), now.forward_pass());
  same("loss", old.loss(), now.loss());
  same("evaluation", old.evaluation(), now.evaluation());
  same("full_trainer", old.full_trainer(), now.full_trainer());
  // A level-1 run has no quantization block and no int8 records.
  if (old.compression().has_quantization() && now.compression().has_quantization()) {
    same("compression.quantization", old.compression().quantization(), now.compression().quantization());
  }
  if (old.seed() != now.seed()) changed.push_back("seed");
  if (auto old_fp = ReadFileToString(run_dir + "/state/model.fingerprint");
      old_fp.ok() && std::string(absl::StripAsciiWhitespace(*old_fp)) != fingerprint) {
    changed.push_back("the model's weights");
  }
  if (changed.empty()) return absl::OkStatus();
  return absl::FailedPreconditionError(absl::StrCat(
      "output_dir ", run_dir, " holds a run of a different experiment (changed: ", absl::StrJoin(changed, ", "),
      "); its records would not be valid for this one. Use another --output_dir, or delete ", run_dir,
      " to start over"));
}

}  // namespace slimfit
