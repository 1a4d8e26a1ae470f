#include "distributed/device_backends.h"

#include <map>
#include <mutex>
#include <utility>

namespace slimfit {
namespace {

struct Registry {
  std::mutex mu;
  std::map<c10::DeviceType, DeviceBackend> backends;
};

Registry& Backends() {
  static Registry* r = new Registry;  // never destroyed: registered from static initialisers
  return *r;
}

}  // namespace

bool RegisterDeviceBackend(c10::DeviceType type, std::string name, DeviceBackendFactory make) {
  Registry& r = Backends();
  std::lock_guard<std::mutex> lock(r.mu);
  r.backends[type] = DeviceBackend{std::move(name), std::move(make)};
  return true;
}

const DeviceBackend* FindDeviceBackend(c10::DeviceType type) {
  Registry& r = Backends();
  std::lock_guard<std::mutex> lock(r.mu);
  auto it = r.backends.find(type);
  return it == r.backends.end() ? nullptr : &it->second;
}

}  // namespace slimfit
