// File: distributed/process_group.h
//
// ProcessGroup: a Collective over processes on one or more machines, built on
// LibTorch's own c10d — a TCPStore for the rendezvous (rank 0 serves it on
// MASTER_ADDR:MASTER_PORT) and ProcessGroupGloo for the collectives. No
// networking of our own.
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

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "distributed/collective.h"

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

 private:
  struct Impl;
  ProcessGroup(DistributedOptions options, std::unique_ptr<Impl> impl);
  absl::Status AllReduce(std::vector<at::Tensor>& tensors, bool max);

  DistributedOptions options_;
  std::unique_ptr<Impl> impl_;
};

}  // namespace slimfit

#endif  // SLIMFIT_DISTRIBUTED_PROCESS_GROUP_H_
