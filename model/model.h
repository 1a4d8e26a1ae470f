// File: model/model.h
//
// Model: the one type every slimfit library passes around. It owns a
// TorchScript module (`torch::jit::Module`) plus ModelMetadata (input shapes,
// class count) that travels inside the saved file.
//
//   ASSIGN_OR_RETURN(Model m, Model::Load("resnet.pt"));
//   ASSIGN_OR_RETURN(Model variant, m.Clone());     // deep copy
//   variant.Train();  ...  variant.Eval();
//   RETURN_IF_ERROR(variant.Save("runs/x/model.pt"));  // atomic
//
// Contract:
// - Load never throws or crashes on bad files: a missing file is NotFound; an
//   empty, truncated or non-zip file, a zip that is not TorchScript (a
//   state_dict from torch.save, say) or an archive with unsafe entry names
//   ("..", absolute) is InvalidArgument naming the file and what is wrong.
// - Save writes a temporary file beside the target and renames it into place:
//   a run killed mid-save leaves the previous file intact. The file loads with
//   `torch.jit.load` in Python and in plain LibTorch with no slimfit code.
// - Clone() copies every parameter and buffer: changing the clone never
//   changes the original.
// - Model is move-only; copies are explicit (Clone).
#ifndef SLIMFIT_MODEL_MODEL_H_
#define SLIMFIT_MODEL_MODEL_H_

#include <ATen/core/Tensor.h>
#include <ATen/core/ivalue.h>
#include <c10/core/Device.h>

#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "model/model_metadata.pb.h"

namespace torch::jit {
struct Module;
}  // namespace torch::jit

namespace slimfit {

// The name of the archive entry (under extra/) that holds ModelMetadata.
inline constexpr char kMetadataFileName[] = "slimfit_metadata.json";

class Model {
 public:
  // Wraps `module` (taken by value; TorchScript modules are handles, so pass
  // a clone if the caller keeps using the original).
  explicit Model(torch::jit::Module module, ModelMetadata metadata = {});
  ~Model();
  Model(Model&&) noexcept;
  Model& operator=(Model&&) noexcept;
  Model(const Model&) = delete;
  Model& operator=(const Model&) = delete;

  // Loads a TorchScript archive onto `device` (CPU by default).
  static absl::StatusOr<Model> Load(const std::string& path,
                                    c10::Device device = c10::kCPU);

  // Saves atomically, with metadata.
  absl::Status Save(const std::string& path) const;

  // The archive Save writes, in memory, and back (for sending a model to
  // another process of the same run; FromBytes does not run Load's archive
  // pre-check: use Load for files from elsewhere).
  absl::StatusOr<std::string> ToBytes() const;
  static absl::StatusOr<Model> FromBytes(const std::string& bytes, c10::Device device = c10::kCPU);

  // Deep copy: parameters, buffers and attributes.
  absl::StatusOr<Model> Clone() const;
  // A copy made by saving and loading through memory: new class types and
  // method graphs that share nothing with this model, so graph passes may
  // edit them (LibTorch caches compiled executors per method: a graph edited
  // after its first run is ignored). Training mode is kept.
  absl::StatusOr<Model> Reloaded() const;

  void Train(bool on = true);
  void Eval() { Train(false); }
  bool is_training() const;
  absl::Status To(c10::Device device);
  // Where the parameters are (the first one's device; CPU for a model
  // without parameters).
  c10::Device device() const;

  // Dotted paths ("layer1.b0.conv1.weight") in module order.
  std::vector<std::pair<std::string, at::Tensor>> NamedParameters() const;
  std::vector<std::pair<std::string, at::Tensor>> NamedBuffers() const;
  // Total number of parameter elements.
  int64_t NumParameters() const;

  torch::jit::Module& module() { return *module_; }
  const torch::jit::Module& module() const { return *module_; }
  const ModelMetadata& metadata() const { return metadata_; }
  ModelMetadata& mutable_metadata() { return metadata_; }

 private:
  std::unique_ptr<torch::jit::Module> module_;
  ModelMetadata metadata_;
};

// Shapes of the first input recorded in `metadata`, or an empty vector.
std::vector<int64_t> FirstInputShape(const ModelMetadata& metadata);

// Zero tensors of the shapes and dtypes `metadata` records (batch as
// recorded), for one run that needs only shapes; nullopt when it records no
// inputs or a dtype other than float32/float64/int64/int32/uint8/bool.
std::optional<std::vector<c10::IValue>> ZeroInputs(const ModelMetadata& metadata);

// Where `metadata` records no inputs and every one of `inputs` (one batch's
// forward() arguments) is a tensor of a dtype ZeroInputs knows, records
// their shapes with the batch axis set to 1. Returns whether it recorded.
bool RecordInputsIfUnknown(const std::vector<c10::IValue>& inputs, ModelMetadata& metadata);

}  // namespace slimfit

#endif  // SLIMFIT_MODEL_MODEL_H_
