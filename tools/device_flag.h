// File: tools/device_flag.h
//
// The one --device flag every tool that trains or scores a model takes
// (train, evaluate, prune, quantize, compare, compress), defined once:
//   --device  cpu, cuda, cuda:<index> or auto (model/device.h); left empty,
//             the configuration's device stands (a TrainJob's or an
//             experiment's `device`, CPU when unset).
//
//   RETURN_IF_ERROR(ApplyDeviceFlag(experiment.mutable_device()));
#ifndef SLIMFIT_TOOLS_DEVICE_FLAG_H_
#define SLIMFIT_TOOLS_DEVICE_FLAG_H_

#include <string>

#include "absl/flags/declare.h"
#include "absl/status/status.h"

ABSL_DECLARE_FLAG(std::string, device);

namespace slimfit {

// When --device is given: checks that this process has it (errors name
// --device: "--device: no CUDA device is visible to this process, got
// \"cuda\"; valid: cpu, auto") and writes it into `device`. Not given: OK,
// `device` untouched.
absl::Status ApplyDeviceFlag(std::string* device);

}  // namespace slimfit

#endif  // SLIMFIT_TOOLS_DEVICE_FLAG_H_
