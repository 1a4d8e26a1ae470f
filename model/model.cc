#include "model/model.h"

#include <ATen/core/grad_mode.h>
#include <ATen/ops/zeros.h>
#include <fcntl.h>
#include <google/protobuf/util/json_util.h>
#include <torch/csrc/jit/api/module.h>
#include <torch/csrc/jit/serialization/export.h>
#include <torch/csrc/jit/serialization/import.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <sstream>

#include "absl/strings/str_cat.h"
#include "common/files.h"
#include "common/status_macros.h"
#include "common/torch_status.h"
#include "model/archive.h"

namespace slimfit {
namespace {

// The dtype names TensorSpec uses, and their torch types.
constexpr std::pair<const char*, at::ScalarType> kDtypes[] = {
    {"float32", at::kFloat}, {"float64", at::kDouble}, {"int64", at::kLong},
    {"int32", at::kInt},     {"uint8", at::kByte},     {"bool", at::kBool},
};

absl::StatusOr<std::string> MetadataToJson(const ModelMetadata& metadata) {
  ModelMetadata m = metadata;
  if (m.format_version() == 0) m.set_format_version(1);
  std::string json;
  google::protobuf::util::JsonPrintOptions options;
  options.add_whitespace = true;
  options.preserve_proto_field_names = true;
  auto s = google::protobuf::util::MessageToJsonString(m, &json, options);
  if (!s.ok()) return absl::InternalError(absl::StrCat("metadata to JSON: ", s.ToString()));
  return json;
}

// The metadata entry of an archive (empty: none); `what` names the archive.
absl::StatusOr<ModelMetadata> MetadataFromJson(const std::string& json, const std::string& what) {
  ModelMetadata metadata;
  if (json.empty()) return metadata;
  google::protobuf::util::JsonParseOptions options;
  options.ignore_unknown_fields = true;  // written by a newer slimfit
  auto s = google::protobuf::util::JsonStringToMessage(json, &metadata, options);
  if (!s.ok()) return absl::InvalidArgumentError(absl::StrCat(what, ": corrupt ", kMetadataFileName, ": ", s.ToString()));
  return metadata;
}

}  // namespace

Model::Model(torch::jit::Module module, ModelMetadata metadata)
    : module_(std::make_unique<torch::jit::Module>(std::move(module))),
      metadata_(std::move(metadata)) {}
Model::~Model() = default;
Model::Model(Model&&) noexcept = default;
Model& Model::operator=(Model&&) noexcept = default;

absl::StatusOr<Model> Model::Load(const std::string& path, c10::Device device) {
  RETURN_IF_ERROR(InspectTorchScriptArchive(path).status());
  torch::jit::ExtraFilesMap extra{{kMetadataFileName, ""}};
  ASSIGN_OR_RETURN(
      torch::jit::Module module,
      TorchCallOr(absl::StrCat("loading TorchScript model \"", path, "\""),
                  [&] { return torch::jit::load(path, device, extra); }));
  ASSIGN_OR_RETURN(ModelMetadata metadata, MetadataFromJson(extra[kMetadataFileName], absl::StrCat("\"", path, "\"")));
  return Model(std::move(module), std::move(metadata));
}

absl::Status Model::Save(const std::string& path) const {
  ASSIGN_OR_RETURN(std::string json, MetadataToJson(metadata_));
  torch::jit::ExtraFilesMap extra{{kMetadataFileName, json}};
  return ReplaceFileAtomically(path, [&](const std::string& tmp) -> absl::Status {
    const int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) return ErrnoStatus(errno, absl::StrCat("saving model to \"", path, "\": cannot create"), tmp);
    // LibTorch's zip writer must never see a short write: it then throws,
    // and throws again from its destructor (std::terminate). So the writer
    // function reports every byte taken, keeps the first write() error and
    // drops what follows; the error is returned once the archive is done.
    // Through a writer function the archive's folder is "archive" (as
    // torch.jit.save to a buffer writes it), not the temporary file's name.
    int write_errno = 0;
    auto writer = [&](const void* data, size_t n) -> size_t {
      if (write_errno == 0) write_errno = WriteFully(fd, data, n);
      return n;
    };
    absl::Status saved = TorchCall(absl::StrCat("saving model to \"", path, "\""),
                                   [&] { torch::jit::ExportModule(*module_, writer, extra); });
    if (::close(fd) != 0 && write_errno == 0) write_errno = errno;
    if (write_errno != 0) {
      return ErrnoStatus(write_errno, absl::StrCat("saving model to \"", path, "\": writing"), tmp);
    }
    return saved;
  });
}

absl::StatusOr<std::string> Model::ToBytes() const {
  ASSIGN_OR_RETURN(std::string json, MetadataToJson(metadata_));
  torch::jit::ExtraFilesMap extra{{kMetadataFileName, json}};
  std::string out;
  RETURN_IF_ERROR(TorchCall("serializing model", [&] {
    torch::jit::ExportModule(*module_, [&](const void* data, size_t n) -> size_t {
      out.append(static_cast<const char*>(data), n);
      return n;
    }, extra);
  }));
  return out;
}

absl::StatusOr<Model> Model::FromBytes(const std::string& bytes, c10::Device device) {
  torch::jit::ExtraFilesMap extra{{kMetadataFileName, ""}};
  ASSIGN_OR_RETURN(torch::jit::Module module, TorchCallOr("deserializing model", [&] {
                     std::istringstream in(bytes);
                     return torch::jit::load(in, device, extra);
                   }));
  ASSIGN_OR_RETURN(ModelMetadata metadata, MetadataFromJson(extra[kMetadataFileName], "deserializing model"));
  return Model(std::move(module), std::move(metadata));
}

absl::StatusOr<Model> Model::Clone() const {
  ASSIGN_OR_RETURN(torch::jit::Module copy, TorchCallOr("cloning model", [&] {
                     // deepcopy clones tensors; under grad mode a clone of a
                     // parameter is a non-leaf tensor no optimizer accepts.
                     torch::jit::Module m;
                     {
                       at::NoGradGuard no_grad;
                       m = module_->deepcopy();
                     }
                     auto src = module_->parameters(/*recurse=*/true).begin();
                     for (at::Tensor p : m.parameters(/*recurse=*/true)) {
                       p.requires_grad_((*src).requires_grad());
                       ++src;
                     }
                     return m;
                   }));
  return Model(std::move(copy), metadata_);
}

absl::StatusOr<Model> Model::Reloaded() const {
  ASSIGN_OR_RETURN(torch::jit::Module copy, TorchCallOr("copying model", [&] {
                     std::stringstream buffer;
                     module_->save(buffer);
                     torch::jit::Module m = torch::jit::load(buffer, device());
                     m.train(module_->is_training());
                     return m;
                   }));
  return Model(std::move(copy), metadata_);
}

void Model::Train(bool on) { module_->train(on); }

bool Model::is_training() const { return module_->is_training(); }

c10::Device Model::device() const {
  for (const at::Tensor& p : module_->parameters()) return p.device();
  for (const at::Tensor& b : module_->buffers()) return b.device();
  return c10::kCPU;
}

absl::Status Model::To(c10::Device device) {
  return TorchCall(absl::StrCat("moving model to ", device.str()),
                   [&] { module_->to(device); });
}

std::vector<std::pair<std::string, at::Tensor>> Model::NamedParameters() const {
  std::vector<std::pair<std::string, at::Tensor>> out;
  for (const auto& p : module_->named_parameters(/*recurse=*/true)) {
    out.emplace_back(p.name, p.value);
  }
  return out;
}

std::vector<std::pair<std::string, at::Tensor>> Model::NamedBuffers() const {
  std::vector<std::pair<std::string, at::Tensor>> out;
  for (const auto& b : module_->named_buffers(/*recurse=*/true)) {
    out.emplace_back(b.name, b.value);
  }
  return out;
}

int64_t Model::NumParameters() const {
  int64_t n = 0;
  for (const auto& p : module_->parameters(/*recurse=*/true)) n += p.numel();
  return n;
}

std::vector<int64_t> FirstInputShape(const ModelMetadata& metadata) {
  if (metadata.inputs_size() == 0) return {};
  const auto& shape = metadata.inputs(0).shape();
  return std::vector<int64_t>(shape.begin(), shape.end());
}

std::optional<std::vector<c10::IValue>> ZeroInputs(const ModelMetadata& metadata) {
  if (metadata.inputs_size() == 0) return std::nullopt;
  std::vector<c10::IValue> inputs;
  for (const TensorSpec& spec : metadata.inputs()) {
    const std::string& name = spec.dtype().empty() ? "float32" : spec.dtype();
    std::optional<at::ScalarType> dtype;
    for (const auto& [known, type] : kDtypes) {
      if (name == known) dtype = type;
    }
    if (!dtype || spec.shape_size() == 0) return std::nullopt;
    inputs.emplace_back(
        at::zeros(std::vector<int64_t>(spec.shape().begin(), spec.shape().end()), at::TensorOptions().dtype(*dtype)));
  }
  return inputs;
}

bool RecordInputsIfUnknown(const std::vector<c10::IValue>& inputs, ModelMetadata& metadata) {
  if (metadata.inputs_size() > 0 || inputs.empty()) return false;
  std::vector<TensorSpec> specs;
  for (const c10::IValue& v : inputs) {
    if (!v.isTensor() || v.toTensor().dim() == 0) return false;
    const at::Tensor& t = v.toTensor();
    TensorSpec spec;
    for (const auto& [name, type] : kDtypes) {
      if (t.scalar_type() == type) spec.set_dtype(name);
    }
    if (spec.dtype().empty()) return false;
    spec.add_shape(1);
    for (int64_t i = 1; i < t.dim(); ++i) spec.add_shape(t.size(i));
    specs.push_back(std::move(spec));
  }
  for (TensorSpec& spec : specs) *metadata.add_inputs() = std::move(spec);
  return true;
}

}  // namespace slimfit
