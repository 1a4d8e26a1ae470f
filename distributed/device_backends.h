// File: distributed/device_backends.h
//
// Collective backends for tensors that live on a device other than the CPU,
// registered by device type. ProcessGroup (distributed/process_group.h)
// sends CPU tensors, byte gathers and barriers through Gloo, and a tensor on
// another device through the backend registered for that device — NCCL for
// CUDA when //distributed:nccl is linked into the binary — or, when none is,
// through a CPU copy over Gloo.
//
//   // in a backend's .cc, at static initialisation (link it with alwayslink):
//   const bool kRegistered = RegisterDeviceBackend(c10::kCUDA, "nccl", [](const DeviceBackendArgs& a) {
//     return c10::make_intrusive<c10d::ProcessGroupNCCL>(a.store, a.rank, a.world_size, ...);
//   });
//
// A backend is made the first time a collective meets a tensor of its device
// type (every rank does so at the same call: the collectives' contract), on
// its own prefix of the group's store. A factory may throw (c10 does); the
// process group turns that into a Status.
#ifndef SLIMFIT_DISTRIBUTED_DEVICE_BACKENDS_H_
#define SLIMFIT_DISTRIBUTED_DEVICE_BACKENDS_H_

#include <c10/core/DeviceType.h>

#include <chrono>
#include <functional>
#include <string>
#include <torch/csrc/distributed/c10d/Backend.hpp>
#include <torch/csrc/distributed/c10d/Store.hpp>

namespace slimfit {

struct DeviceBackendArgs {
  c10::intrusive_ptr<c10d::Store> store;  // this backend's own prefix
  int rank = 0;
  int world_size = 1;
  std::chrono::milliseconds timeout{0};
};

using DeviceBackendFactory = std::function<c10::intrusive_ptr<c10d::Backend>(const DeviceBackendArgs&)>;

struct DeviceBackend {
  std::string name;  // "nccl"
  DeviceBackendFactory make;
};

// Registers `name` for tensors of `type`; a second registration for the same
// type replaces the first. Returns true (for a static initialiser).
bool RegisterDeviceBackend(c10::DeviceType type, std::string name, DeviceBackendFactory make);

// The backend registered for `type`, or null.
const DeviceBackend* FindDeviceBackend(c10::DeviceType type);

}  // namespace slimfit

#endif  // SLIMFIT_DISTRIBUTED_DEVICE_BACKENDS_H_
