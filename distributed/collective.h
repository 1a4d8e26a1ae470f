// File: distributed/collective.h
//
// Collective: what slimfit's libraries need from a group of processes that
// run the same program (one per rank) — sum tensors, broadcast them, gather
// bytes, wait for each other. The trainer (data-parallel fine-tuning), the
// evaluators (reduced metrics) and the search (candidates spread over ranks)
// talk to this interface; distributed/process_group.h implements it on
// LibTorch's c10d (Gloo; NCCL for CUDA tensors where linked), and
// LocalCollective is the one-process group.
//
//   Collective& group = ...;             // world_size() ranks
//   std::vector<at::Tensor> grads = ...;
//   RETURN_IF_ERROR(group.AllReduceSum(grads));   // every rank: the sum
//
// Contract: every rank calls the same collectives in the same order with
// tensors of the same shapes, dtypes and device types (contiguous); a call returns
// when every rank has made it. The group's timeout is how long a rank may
// wait for the others, so it must exceed the longest work one rank does
// while another waits (the search: a candidate's fine-tune). A rank that fails, exits or is killed makes
// the others' pending and later calls fail with Unavailable (or
// DeadlineExceeded after the group's timeout) naming the operation — never
// a hang past the timeout and never an exception.
#ifndef SLIMFIT_DISTRIBUTED_COLLECTIVE_H_
#define SLIMFIT_DISTRIBUTED_COLLECTIVE_H_

#include <ATen/core/Tensor.h>

#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace slimfit {

class Collective {
 public:
  virtual ~Collective() = default;
  virtual int rank() const = 0;
  virtual int world_size() const = 0;
  // Elementwise sum across ranks, in place. The tensors' collectives are
  // issued together and waited for together (one per tensor: a bucket each).
  virtual absl::Status AllReduceSum(std::vector<at::Tensor>& tensors) = 0;
  // Elementwise max across ranks, in place.
  virtual absl::Status AllReduceMax(std::vector<at::Tensor>& tensors) = 0;
  // Every rank ends with `root`'s values, in place.
  virtual absl::Status Broadcast(std::vector<at::Tensor>& tensors, int root) = 0;
  // Every rank's `bytes`, indexed by rank (any lengths).
  virtual absl::StatusOr<std::vector<std::string>> AllGather(const std::string& bytes) = 0;
  virtual absl::Status Barrier() = 0;

  bool is_root() const { return rank() == 0; }
};

// The group of one: every collective is the identity.
class LocalCollective : public Collective {
 public:
  int rank() const override { return 0; }
  int world_size() const override { return 1; }
  absl::Status AllReduceSum(std::vector<at::Tensor>&) override { return absl::OkStatus(); }
  absl::Status AllReduceMax(std::vector<at::Tensor>&) override { return absl::OkStatus(); }
  absl::Status Broadcast(std::vector<at::Tensor>&, int) override { return absl::OkStatus(); }
  absl::StatusOr<std::vector<std::string>> AllGather(const std::string& bytes) override {
    return std::vector<std::string>{bytes};
  }
  absl::Status Barrier() override { return absl::OkStatus(); }
};

// Whether `group` spans more than one process (null: no).
inline bool IsDistributed(const Collective* group) { return group != nullptr && group->world_size() > 1; }

}  // namespace slimfit

#endif  // SLIMFIT_DISTRIBUTED_COLLECTIVE_H_
