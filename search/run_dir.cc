#include "search/run_dir.h"

#include <ATen/core/Tensor.h>

#include <map>
#include <string>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "common/field_error.h"
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
  // Latencies measured on another device are not comparable ("" is cpu).
  auto deploy = [](const Experiment& e) { return e.deploy_device().empty() ? "cpu" : e.deploy_device(); };
  if (deploy(old) != deploy(now)) changed.push_back("deploy_device");
  if (auto old_fp = ReadFileToString(run_dir + "/state/model.fingerprint");
      old_fp.ok() && std::string(absl::StripAsciiWhitespace(*old_fp)) != fingerprint) {
    changed.push_back("the model's weights");
  }
  if (changed.empty()) return absl::OkStatus();
  return FieldErrorWithCode(
      absl::StatusCode::kFailedPrecondition, "output_dir",
      absl::StrCat("holds a run of a different experiment (changed: ", absl::StrJoin(changed, ", "),
                   "), whose records would not be valid for this one"),
      Quoted(run_dir), absl::StrCat("another output_dir (--output_dir), or this one deleted to start over"));
}

absl::StatusOr<RunTimes> AddRunTimes(const std::string& run_dir,
                                     const std::vector<std::pair<std::string, double>>& phases, double seconds) {
  const std::string path = run_dir + "/state/time.txt";
  std::map<std::string, double> total;
  std::vector<std::string> order;
  auto add = [&](const std::string& name, double v) {
    if (!total.count(name)) order.push_back(name);
    total[name] += v;
  };
  if (absl::StatusOr<std::string> text = ReadFileToString(path); text.ok()) {
    for (absl::string_view line : absl::StrSplit(*text, '\n', absl::SkipEmpty())) {
      std::vector<std::string> f = absl::StrSplit(line, ' ');
      double v = 0;
      if (f.size() == 2 && absl::SimpleAtod(f[1], &v)) add(f[0], v);
    }
  }
  for (const auto& [name, v] : phases) add(name, v);
  add("invocations", 1);
  add("total", seconds);
  RunTimes out;
  std::string text;
  for (const std::string& name : order) {
    absl::StrAppendFormat(&text, "%s %.3f\n", name, total[name]);
    if (name != "total" && name != "invocations") out.phases.emplace_back(name, total[name]);
  }
  RETURN_IF_ERROR(WriteFileAtomically(path, text));
  out.seconds = total["total"];
  out.invocations = static_cast<int>(total["invocations"]);
  return out;
}

}  // namespace slimfit
