// File: distributed/process_group.h
//
// ProcessGroup: a Collective over processes on one or more machines, built on
// LibTorch's own c10d — a TCPStore for the rendezvous (rank 0 serves it on
// MASTER_ADDR:MASTER_PORT), ProcessGroupGloo for CPU tensors, and for a
// tensor on another device the backend registered for it
// (distributed/device_backends.h: NCCL for CUDA when //distributed:nccl is
// linked, as `--config=cuda` does for the tools), else a CPU copy over Gloo.
// No networking of our own.
//
// Rendezvous comes from torchrun's environment (RANK, WORLD_SIZE,
// MASTER_ADDR, MASTER_PORT, LOCAL_RANK) or from explicit options (tools take
// --rank --world_size --master_addr --master_port; flags win over the
// environment). GLOO_SOCKET_IFNAME picks the network interface as in PyTorch;
// without it a loopback MASTER_ADDR binds to 127.0.0.1 and any other to this
// host's address.
//
//   ASSIGN_OR_RETURN(std::optional<DistributedOptions> env, DistributedOptionsFromEnvironment());
//   if (env) ASSIGN_OR_RETURN(auto group, ProcessGroup::Connect(*env));
//
// Failures: a rank that does not arrive within `timeout_seconds` fails the
// others' Connect (DeadlineExceeded naming who is missing); a rank that dies
// mid-run makes the others' next collective fail with Unavailable at once
// (its sockets close) or DeadlineExceeded after timeout_seconds (a hung
// rank). No exception escapes.
#ifndef SLIMFIT_DISTRIBUTED_PROCESS_GROUP_H_
#define SLIMFIT_DISTRIBUTED_PROCESS_GROUP_H_

#include <c10/core/Device.h>

#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "distributed/collective.h"

namespace c10d {
class Backend;
class Work;
}  // namespace c10d

namespace slimfit {

struct DistributedOptions {
  int rank = 0;
  int world_size = 1;
  std::string master_addr = "127.0.0.1";
  int master_port = 29500;
  int local_rank = 0;
  // Every collective: how long a rank waits for the others (PyTorch's
  // default). A rank that dies is noticed at once (its sockets close); this
  // bounds a rank that hangs, and must exceed the longest work one rank does
  // while another waits. Gloo 1.13 applies it to every send and receive, so
  // a per-call timeout cannot lengthen it.
  double timeout_seconds = 1800;
  // Rendezvous (all ranks started and connected); 0: timeout_seconds.
  double rendezvous_timeout_seconds = 0;
};

// From RANK / WORLD_SIZE / MASTER_ADDR / MASTER_PORT / LOCAL_RANK; nullopt
// when WORLD_SIZE is unset. InvalidArgument naming the variable, its value
// and what is valid (e.g. "RANK=3 must be in [0, WORLD_SIZE=2)").
absl::StatusOr<std::optional<DistributedOptions>> DistributedOptionsFromEnvironment();

// InvalidArgument naming the field (`what` prefixes it: "--rank", "RANK").
absl::Status ValidateDistributedOptions(const DistributedOptions& options);

class ProcessGroup : public Collective {
 public:
  // Rendezvous with the other world_size - 1 ranks.
  static absl::StatusOr<std::unique_ptr<ProcessGroup>> Connect(const DistributedOptions& options);
  ~ProcessGroup() override;

  int rank() const override { return options_.rank; }
  int world_size() const override { return options_.world_size; }
  absl::Status AllReduceSum(std::vector<at::Tensor>& tensors) override;
  absl::Status AllReduceMax(std::vector<at::Tensor>& tensors) override;
  absl::Status Broadcast(std::vector<at::Tensor>& tensors, int root) override;
  absl::StatusOr<std::vector<std::string>> AllGather(const std::string& bytes) override;
  absl::Status Barrier() override;

  const DistributedOptions& options() const { return options_; }

  // The backend tensors on a device of `type` go through: "gloo" for the
  // CPU, a registered one's name ("nccl"), or "gloo (through a CPU copy)".
  std::string BackendFor(c10::DeviceType type) const;

 private:
  struct Impl;
  using Issue = std::function<c10::intrusive_ptr<c10d::Work>(c10d::Backend&, std::vector<at::Tensor>&)>;
  ProcessGroup(DistributedOptions options, std::unique_ptr<Impl> impl);
  absl::Status AllReduce(std::vector<at::Tensor>& tensors, bool max);
  absl::Status IssueEach(const char* op, std::vector<at::Tensor>& tensors, const Issue& issue);
  c10d::Backend* BackendOn(const c10::Device& device);

  DistributedOptions options_;
  std::unique_ptr<Impl> impl_;
};

}  // namespace slimfit

#endif  // SLIMFIT_DISTRIBUTED_PROCESS_GROUP_H_
