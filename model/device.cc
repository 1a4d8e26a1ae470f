#include "model/device.h"

#include <ATen/Context.h>
#include <c10/core/impl/DeviceGuardImplInterface.h>
#include <dlfcn.h>
#include <torch/csrc/jit/api/module.h>

#include <atomic>
#include <string>
#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "common/field_error.h"
#include "common/status_macros.h"
#include "common/torch_status.h"

namespace slimfit {
namespace {

constexpr char kValid[] = "cpu, cuda, cuda:<index>, auto";

// The directory of the LibTorch this process runs on: the one holding the
// library that defines at::globalContext (libtorch_cpu.so).
std::string TorchLibraryDir() {
  Dl_info info;
  if (dladdr(reinterpret_cast<void*>(&at::globalContext), &info) == 0 || info.dli_fname == nullptr) return "";
  const std::string file = info.dli_fname;
  const size_t slash = file.rfind('/');
  return slash == std::string::npos ? "" : file.substr(0, slash);
}

CudaAvailability FindCuda() {
  CudaAvailability cuda;
  const std::string dir = TorchLibraryDir();
  cuda.library = dir.empty() ? "libtorch_cuda.so" : dir + "/libtorch_cuda.so";
  // Its static initializers register the CUDA hooks, kernels and
  // TorchScript ops; RTLD_GLOBAL lets later libraries resolve against it.
  if (dlopen(cuda.library.c_str(), RTLD_NOW | RTLD_GLOBAL) == nullptr) {
    const char* why = dlerror();
    cuda.library_error = why == nullptr ? "not loadable" : why;
    return cuda;
  }
  cuda.library_loaded = true;
  absl::StatusOr<int> count = TorchCallOr("counting CUDA devices", [] { return static_cast<int>(at::getNumGPUs()); });
  cuda.device_count = count.ok() ? *count : 0;
  return cuda;
}

}  // namespace

const CudaAvailability& Cuda() {
  static const CudaAvailability* cuda = new CudaAvailability(FindCuda());
  return *cuda;
}

namespace {

constexpr int kAuto = -2, kDefaultCuda = -3;
std::atomic<int> default_cuda_index{0};

// The CUDA index `name` names, -1 for the CPU, kAuto, or kDefaultCuda
// ("cuda": default_cuda_index).
absl::StatusOr<int> ParseDeviceName(absl::string_view name) {
  const std::string n = absl::AsciiStrToLower(absl::StripAsciiWhitespace(name));
  if (n.empty() || n == "cpu") return -1;
  if (n == "auto") return kAuto;
  if (n == "cuda") return kDefaultCuda;
  const std::string digits = absl::StartsWith(n, "cuda:") ? n.substr(5) : "";
  int index = 0;
  if (digits.empty() || digits.find_first_not_of("0123456789") != std::string::npos ||
      !absl::SimpleAtoi(digits, &index)) {
    return FieldError("", "not a device", Quoted(name), kValid);
  }
  return index;
}

}  // namespace

absl::Status CheckDeviceName(absl::string_view name) { return ParseDeviceName(name).status(); }

void SetDefaultCudaIndex(int index) { default_cuda_index = index; }

absl::StatusOr<c10::Device> ResolveDevice(absl::string_view name) {
  ASSIGN_OR_RETURN(int index, ParseDeviceName(name));
  if (index == -1) return c10::Device(c10::kCPU);
  if (index == kAuto && Cuda().device_count == 0) return c10::Device(c10::kCPU);
  if (index == kAuto || index == kDefaultCuda) index = default_cuda_index;
  const CudaAvailability& cuda = Cuda();
  if (!cuda.library_loaded) {
    return FieldErrorWithCode(absl::StatusCode::kFailedPrecondition, "",
                              absl::StrCat("this LibTorch has no CUDA (", cuda.library, ": ", cuda.library_error, ")"),
                              Quoted(name), "cpu, auto");
  }
  if (cuda.device_count == 0) {
    return FieldErrorWithCode(absl::StatusCode::kFailedPrecondition, "",
                              "no CUDA device is visible to this process (no GPU or driver, or CUDA_VISIBLE_DEVICES "
                              "hides them)",
                              Quoted(name), "cpu, auto");
  }
  if (index >= cuda.device_count) {
    return FieldErrorWithCode(absl::StatusCode::kFailedPrecondition, "",
                              absl::StrCat("this process sees ", cuda.device_count, " CUDA device(s)"), Quoted(name),
                              absl::StrCat("cpu, auto, cuda:0 to cuda:", cuda.device_count - 1));
  }
  return c10::Device(c10::kCUDA, static_cast<c10::DeviceIndex>(index));
}

std::string DeviceName(c10::Device device) {
  if (device.is_cuda()) return absl::StrCat("cuda:", device.has_index() ? device.index() : 0);
  return device.str();
}

bool CpuOnly(const Model& model) {
  for (const auto& attribute : model.module().named_attributes(/*recurse=*/true)) {
    const c10::IValue& v = attribute.value;
    if (v.isTensor() && v.toTensor().defined() && v.toTensor().is_quantized()) return true;
    // LibTorch's packed weights are custom classes under torch.classes.quantized.
    if (v.isObject() && absl::StrContains(v.type()->str(), "classes.quantized.")) return true;
  }
  return false;
}

absl::Status SynchronizeDevice(c10::Device device) {
  if (device.is_cpu()) return absl::OkStatus();
  return TorchCall(absl::StrCat("synchronizing ", DeviceName(device)), [&] {
    c10::impl::getDeviceGuardImpl(device.type())->synchronizeDevice(device.has_index() ? device.index() : 0);
  });
}

absl::StatusOr<ModelOnDevice> ModelOnDevice::Enter(Model& model, c10::Device device) {
  const c10::Device home = model.device();
  if (!device.is_cpu() && CpuOnly(model)) device = c10::kCPU;
  if (home == device) return ModelOnDevice(nullptr, home, home);
  RETURN_IF_ERROR(model.To(device));
  return ModelOnDevice(&model, home, device);
}

ModelOnDevice::ModelOnDevice(ModelOnDevice&& other) noexcept
    : model_(std::exchange(other.model_, nullptr)), home_(other.home_), here_(other.here_) {}

ModelOnDevice::~ModelOnDevice() { (void)Leave(); }

absl::Status ModelOnDevice::Leave() {
  if (model_ == nullptr) return absl::OkStatus();
  Model* model = std::exchange(model_, nullptr);
  return model->To(home_);
}

}  // namespace slimfit
