#include "tools/device_flag.h"

#include "absl/flags/flag.h"
#include "common/field_error.h"
#include "common/status_macros.h"
#include "model/device.h"

ABSL_FLAG(std::string, device, "",
          "where models train and are scored: cpu, cuda, cuda:<index> or auto (CUDA when present); empty: the "
          "configuration's device (default cpu)");

namespace slimfit {

absl::Status ApplyDeviceFlag(std::string* device) {
  const std::string flag = absl::GetFlag(FLAGS_device);
  if (flag.empty()) return absl::OkStatus();
  RETURN_IF_ERROR(ResolveDevice(flag).status(), AtField("--device"));
  *device = flag;
  return absl::OkStatus();
}

}  // namespace slimfit
