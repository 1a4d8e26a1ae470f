// NCCL for CUDA tensors (distributed/device_backends.h): linking this target
// (alwayslink) registers it, and from then on every ProcessGroup sends
// tensors on a CUDA device through NCCL instead of a CPU copy over Gloo.
// Each rank must use its own GPU (NCCL refuses two ranks on one device):
// tools map `cuda` to cuda:LOCAL_RANK in a distributed run
// (SetDefaultCudaIndex, model/device.h).
#include <torch/csrc/distributed/c10d/ProcessGroupNCCL.hpp>

#include "distributed/device_backends.h"

namespace slimfit {
namespace {

const bool kNcclRegistered = RegisterDeviceBackend(c10::kCUDA, "nccl", [](const DeviceBackendArgs& a) {
  auto options = c10d::ProcessGroupNCCL::Options::create();
  options->timeout = a.timeout;
  return c10::intrusive_ptr<c10d::Backend>(
      c10::make_intrusive<c10d::ProcessGroupNCCL>(a.store, a.rank, a.world_size, options));
});

}  // namespace
}  // namespace slimfit
