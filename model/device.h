// File: model/device.h
//
// Where models run: a device named in an experiment or by a flag, resolved
// to a c10::Device; LibTorch's CUDA half loaded when CUDA is asked for; and a
// model moved to a device for one run and back.
//
//   ASSIGN_OR_RETURN(c10::Device d, ResolveDevice(experiment.device()), AtField("device"));
//   ASSIGN_OR_RETURN(ModelOnDevice on, ModelOnDevice::Enter(model, d));
//   ...                      // model's weights and buffers are on d
//   RETURN_IF_ERROR(on.Leave());  // back where they were (also on destruction)
//
// Contract:
//   - "" and "cpu" name the CPU; "cuda" and "cuda:N" a CUDA device; "auto"
//     the first CUDA device when this process sees one, else the CPU;
//   - CUDA needs LibTorch's CUDA library (libtorch_cuda.so beside
//     libtorch_cpu.so, as in PyTorch's wheel). It is loaded the first time a
//     CUDA device or "auto" is resolved, never before: a CPU run does not pay
//     for it, and a CPU-only LibTorch builds and runs everything else;
//   - errors are field errors relative to the device field
//     (common/field_error.h; the caller roots them with AtField("device") or
//     names the flag): InvalidArgument for a name that is no device ("tpu",
//     "cuda:x"), FailedPrecondition for CUDA that this LibTorch or this
//     machine cannot give, saying which (no libtorch_cuda.so, no visible
//     device, an index past the last device);
//   - nothing here throws.
#ifndef SLIMFIT_MODEL_DEVICE_H_
#define SLIMFIT_MODEL_DEVICE_H_

#include <c10/core/Device.h>

#include <optional>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "model/model.h"

namespace slimfit {

// What this process has of CUDA, found once (loading libtorch_cuda.so on
// the first call).
struct CudaAvailability {
  bool library_loaded = false;
  std::string library;        // the file loaded, or the one looked for
  std::string library_error;  // why it did not load (empty when it did)
  int device_count = 0;       // visible CUDA devices (0 without a driver)
};
const CudaAvailability& Cuda();

// The device `name` names (see the contract); the value names valid forms.
absl::StatusOr<c10::Device> ResolveDevice(absl::string_view name);
// Which CUDA device "cuda" and "auto" name (0 until set): a distributed run
// sets it to the process's LOCAL_RANK (tools/distributed_flags.h), so that
// each rank on a machine takes its own GPU, as torch.cuda.set_device does.
// "cuda:N" is unaffected. Set it before resolving devices.
void SetDefaultCudaIndex(int index);

// Whether `name` is one of the forms above, without looking for CUDA (for
// validating a configuration before any work): ResolveDevice's
// InvalidArgument errors, never its FailedPrecondition ones.
absl::Status CheckDeviceName(absl::string_view name);

// The device as an experiment or flag would name it ("cpu", "cuda:0").
std::string DeviceName(c10::Device device);

// Waits until `device` has finished the work queued on it (for timing);
// nothing to wait for on the CPU.
absl::Status SynchronizeDevice(c10::Device device);

// Whether the model can only run on the CPU: it holds quantized tensors or
// LibTorch's packed quantized weights (int8 models: LibTorch's quantized
// kernels are CPU-only).
bool CpuOnly(const Model& model);

// A model moved to a device for one run, moved back where it was by Leave()
// or the destructor (whose failure, which a host with the memory the model
// came from cannot have, is ignored). Moving is in place: parameters and
// buffers keep their identity, so their names and hooks stay valid. A
// CpuOnly model stays on the CPU: device() says where the model is, and so
// where its inputs go.
class ModelOnDevice {
 public:
  static absl::StatusOr<ModelOnDevice> Enter(Model& model, c10::Device device);
  c10::Device device() const { return here_; }
  ModelOnDevice(ModelOnDevice&& other) noexcept;
  ModelOnDevice& operator=(ModelOnDevice&&) = delete;
  ModelOnDevice(const ModelOnDevice&) = delete;
  ModelOnDevice& operator=(const ModelOnDevice&) = delete;
  ~ModelOnDevice();

  absl::Status Leave();

 private:
  ModelOnDevice(Model* model, c10::Device home, c10::Device here) : model_(model), home_(home), here_(here) {}
  Model* model_;  // null when nothing is to be moved back
  c10::Device home_;
  c10::Device here_;
};

}  // namespace slimfit

#endif  // SLIMFIT_MODEL_DEVICE_H_
