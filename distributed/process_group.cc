#include "distributed/process_group.h"

#include <ATen/ATen.h>

#include <chrono>
#include <cstdlib>
#include <exception>
#include <map>
#include <torch/csrc/distributed/c10d/PrefixStore.hpp>
#include <torch/csrc/distributed/c10d/ProcessGroupGloo.hpp>
#include <torch/csrc/distributed/c10d/TCPStore.hpp>
#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "common/field_error.h"
#include "distributed/device_backends.h"

namespace slimfit {
namespace {

std::chrono::milliseconds Millis(double seconds) {
  return std::chrono::milliseconds(static_cast<int64_t>(seconds * 1000));
}

// The exception of a failed c10d / Gloo call as a Status: a timeout is
// DeadlineExceeded, anything else (a peer closed its sockets) Unavailable.
// An exception's message without the C++ backtrace c10 appends.
std::string FirstLine(const std::exception& e) {
  std::string what = e.what();
  if (const size_t nl = what.find('\n'); nl != std::string::npos) what.resize(nl);
  return what;
}

absl::Status CollectiveError(const std::string& op, const DistributedOptions& o, const std::exception& e) {
  const std::string what = FirstLine(e);
  const std::string lower = absl::AsciiStrToLower(what);
  const bool timeout = absl::StrContains(lower, "timed out") || absl::StrContains(lower, "timeout");
  const std::string msg = absl::StrFormat(
      "%s failed on rank %d of %d: %s (%s); every rank stops — run the same command again to resume", op, o.rank,
      o.world_size, timeout ? absl::StrFormat("no answer from another rank within %gs", o.timeout_seconds)
                            : std::string("another rank stopped or the connection failed"),
      what);
  return timeout ? absl::DeadlineExceededError(msg) : absl::UnavailableError(msg);
}

bool IsLoopback(const std::string& addr) {
  return addr == "localhost" || absl::StartsWith(addr, "127.") || addr == "::1";
}

absl::StatusOr<int> EnvInt(const char* name, bool* present) {
  const char* v = std::getenv(name);
  *present = v != nullptr && *v != '\0';
  if (!*present) return 0;
  int out = 0;
  if (!absl::SimpleAtoi(v, &out)) {
    return FieldError(absl::StrCat("environment variable ", name), "not an integer", Quoted(v), "an integer");
  }
  return out;
}

}  // namespace

struct ProcessGroup::Impl {
  c10::intrusive_ptr<c10d::Store> store;
  c10::intrusive_ptr<c10d::ProcessGroupGloo> gloo;
  // Made on first use, per device type (device_backends.h).
  std::map<c10::DeviceType, c10::intrusive_ptr<c10d::Backend>> on_device;
};

absl::StatusOr<std::optional<DistributedOptions>> DistributedOptionsFromEnvironment() {
  bool has_world = false, has_rank = false, has_port = false, has_local = false;
  DistributedOptions o;
  auto world = EnvInt("WORLD_SIZE", &has_world);
  if (!world.ok()) return world.status();
  if (!has_world) return std::optional<DistributedOptions>();
  o.world_size = *world;
  auto rank = EnvInt("RANK", &has_rank);
  if (!rank.ok()) return rank.status();
  if (!has_rank) {
    return FieldError("environment variable RANK", "unset while WORLD_SIZE is set", "\"\"",
                      "the process's rank (torchrun sets both)");
  }
  o.rank = *rank;
  auto port = EnvInt("MASTER_PORT", &has_port);
  if (!port.ok()) return port.status();
  if (has_port) o.master_port = *port;
  auto local = EnvInt("LOCAL_RANK", &has_local);
  if (!local.ok()) return local.status();
  o.local_rank = has_local ? *local : o.rank;
  if (const char* addr = std::getenv("MASTER_ADDR"); addr != nullptr && *addr != '\0') o.master_addr = addr;
  if (absl::Status s = ValidateDistributedOptions(o); !s.ok()) {
    // Named as the variables that set them.
    return RenameField(
        s, [](absl::string_view field) { return absl::StrCat("environment variable ", absl::AsciiStrToUpper(field)); });
  }
  return std::optional<DistributedOptions>(o);
}

absl::Status ValidateDistributedOptions(const DistributedOptions& o) {
  if (o.world_size < 1) {
    return FieldError("world_size", "below 1", o.world_size, ">= 1");
  }
  if (o.rank < 0 || o.rank >= o.world_size) {
    return FieldError("rank", "not a rank of the world", o.rank, absl::StrCat("[0, world_size = ", o.world_size, ")"));
  }
  if (o.master_port < 1 || o.master_port > 65535) {
    return FieldError("master_port", "out of range", o.master_port, "[1, 65535]");
  }
  if (o.master_addr.empty()) return FieldError("master_addr", "empty", "\"\"", "a host name or address");
  if (!(o.timeout_seconds > 0)) return FieldError("timeout_seconds", "not positive", o.timeout_seconds, "> 0");
  if (!(o.rendezvous_timeout_seconds >= 0)) {
    return FieldError("rendezvous_timeout_seconds", "negative", o.rendezvous_timeout_seconds, ">= 0");
  }

  return absl::OkStatus();
}

ProcessGroup::ProcessGroup(DistributedOptions options, std::unique_ptr<Impl> impl)
    : options_(std::move(options)), impl_(std::move(impl)) {}

ProcessGroup::~ProcessGroup() = default;

absl::StatusOr<std::unique_ptr<ProcessGroup>> ProcessGroup::Connect(const DistributedOptions& o) {
  if (absl::Status s = ValidateDistributedOptions(o); !s.ok()) return s;
  auto impl = std::make_unique<Impl>();
  try {
    c10d::TCPStoreOptions so;
    so.port = static_cast<uint16_t>(o.master_port);
    so.isServer = o.rank == 0;
    so.numWorkers = o.world_size;
    so.waitWorkers = true;
    const double rendezvous = o.rendezvous_timeout_seconds > 0 ? o.rendezvous_timeout_seconds : o.timeout_seconds;
    so.timeout = Millis(rendezvous);
    auto tcp = c10::make_intrusive<c10d::TCPStore>(o.master_addr, so);
    impl->store = c10::make_intrusive<c10d::PrefixStore>("slimfit", tcp);
    auto options = c10d::ProcessGroupGloo::Options::create(Millis(o.timeout_seconds));
    if (const char* ifname = std::getenv("GLOO_SOCKET_IFNAME"); ifname != nullptr && *ifname != '\0') {
      options->devices.push_back(c10d::ProcessGroupGloo::createDeviceForInterface(ifname));
    } else if (IsLoopback(o.master_addr)) {
      options->devices.push_back(c10d::ProcessGroupGloo::createDeviceForHostname("127.0.0.1"));
    } else {
      options->devices.push_back(c10d::ProcessGroupGloo::createDefaultDevice());
    }
    options->threads = 1;
    impl->gloo = c10::make_intrusive<c10d::ProcessGroupGloo>(impl->store, o.rank, o.world_size, options);
  } catch (const std::exception& e) {
    return absl::DeadlineExceededError(absl::StrFormat(
        "rendezvous at %s:%d failed for rank %d of %d within %gs: %s (every rank must start with the same "
        "MASTER_ADDR, MASTER_PORT and WORLD_SIZE; rank 0 serves the port)",
        o.master_addr, o.master_port, o.rank, o.world_size,
        o.rendezvous_timeout_seconds > 0 ? o.rendezvous_timeout_seconds : o.timeout_seconds, FirstLine(e)));
  }
  return std::unique_ptr<ProcessGroup>(new ProcessGroup(o, std::move(impl)));
}

std::string ProcessGroup::BackendFor(c10::DeviceType type) const {
  if (type == c10::kCPU) return "gloo";
  if (const DeviceBackend* b = FindDeviceBackend(type)) return b->name;
  return "gloo (through a CPU copy)";
}

// The backend for a tensor on `device`: Gloo for the CPU, the registered
// one for another device (made on first use), or null: no backend there,
// the tensor goes through a CPU copy over Gloo.
c10d::Backend* ProcessGroup::BackendOn(const c10::Device& device) {
  if (device.is_cpu()) return impl_->gloo.get();
  const DeviceBackend* registered = FindDeviceBackend(device.type());
  if (registered == nullptr) return nullptr;
  auto& backend = impl_->on_device[device.type()];
  if (!backend) {
    DeviceBackendArgs args;
    args.store = c10::make_intrusive<c10d::PrefixStore>(registered->name, impl_->store);
    args.rank = options_.rank;
    args.world_size = options_.world_size;
    args.timeout = Millis(options_.timeout_seconds);
    backend = registered->make(args);
  }
  return backend.get();
}

// One collective per tensor (`issue` starts it on a one-tensor list: a
// backend would reduce a longer list locally first), all issued, then all
// awaited. A tensor on a device without a backend of its own travels
// through a CPU copy over Gloo, written back in place afterwards.
absl::Status ProcessGroup::IssueEach(const char* op, std::vector<at::Tensor>& tensors, const Issue& issue) {
  try {
    std::vector<c10::intrusive_ptr<c10d::Work>> pending;
    std::vector<std::pair<at::Tensor, at::Tensor>> staged;  // (device tensor, its CPU copy)
    for (at::Tensor& t : tensors) {
      std::vector<at::Tensor> one{t};
      c10d::Backend* backend = BackendOn(t.device());
      if (backend == nullptr) {
        one[0] = t.to(at::kCPU);
        staged.emplace_back(t, one[0]);
        backend = impl_->gloo.get();
      }
      pending.push_back(issue(*backend, one));
    }
    for (auto& w : pending) w->wait();
    for (auto& [device_tensor, cpu] : staged) device_tensor.copy_(cpu);
  } catch (const std::exception& e) {
    return CollectiveError(op, options_, e);
  }
  return absl::OkStatus();
}

absl::Status ProcessGroup::AllReduce(std::vector<at::Tensor>& tensors, bool max) {
  c10d::AllreduceOptions ao;
  ao.reduceOp = max ? c10d::ReduceOp::MAX : c10d::ReduceOp::SUM;
  return IssueEach(max ? "all-reduce (max)" : "all-reduce", tensors,
                   [&](c10d::Backend& b, std::vector<at::Tensor>& one) { return b.allreduce(one, ao); });
}

absl::Status ProcessGroup::AllReduceSum(std::vector<at::Tensor>& tensors) { return AllReduce(tensors, false); }
absl::Status ProcessGroup::AllReduceMax(std::vector<at::Tensor>& tensors) { return AllReduce(tensors, true); }

absl::Status ProcessGroup::Broadcast(std::vector<at::Tensor>& tensors, int root) {
  if (root < 0 || root >= options_.world_size) {
    return absl::InvalidArgumentError(absl::StrCat("broadcast root ", root, " is not a rank"));
  }
  c10d::BroadcastOptions bo;
  bo.rootRank = root;
  return IssueEach("broadcast", tensors,
                   [&](c10d::Backend& b, std::vector<at::Tensor>& one) { return b.broadcast(one, bo); });
}

absl::StatusOr<std::vector<std::string>> ProcessGroup::AllGather(const std::string& bytes) {
  const int n = options_.world_size;
  std::vector<std::string> out(n);
  try {
    std::vector<at::Tensor> size_in{at::full({1}, static_cast<int64_t>(bytes.size()), at::kLong)};
    std::vector<std::vector<at::Tensor>> sizes(1);
    for (int r = 0; r < n; ++r) sizes[0].push_back(at::empty({1}, at::kLong));
    impl_->gloo->allgather(sizes, size_in)->wait();
    int64_t longest = 0;
    for (const at::Tensor& s : sizes[0]) longest = std::max(longest, s.item<int64_t>());
    std::vector<at::Tensor> data_in{at::zeros({std::max<int64_t>(1, longest)}, at::kByte)};
    std::copy(bytes.begin(), bytes.end(), data_in[0].data_ptr<uint8_t>());
    std::vector<std::vector<at::Tensor>> data(1);
    for (int r = 0; r < n; ++r) data[0].push_back(at::empty_like(data_in[0]));
    impl_->gloo->allgather(data, data_in)->wait();
    for (int r = 0; r < n; ++r) {
      const auto* p = reinterpret_cast<const char*>(data[0][r].data_ptr<uint8_t>());
      out[r].assign(p, p + sizes[0][r].item<int64_t>());
    }
  } catch (const std::exception& e) {
    return CollectiveError("all-gather", options_, e);
  }
  return out;
}

absl::Status ProcessGroup::Barrier() {
  try {
    impl_->gloo->barrier()->wait();
  } catch (const std::exception& e) {
    return CollectiveError("barrier", options_, e);
  }
  return absl::OkStatus();
}

}  // namespace slimfit
