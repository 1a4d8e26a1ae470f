// File: tools/distributed_flags.h
//
// The distributed flags every tool that can run on several processes takes:
// --rank --world_size --master_addr --master_port --dist_timeout_seconds.
// They override torchrun's environment (RANK, WORLD_SIZE, MASTER_ADDR,
// MASTER_PORT), which `//tools:launch` and torchrun set.
//
//   ASSIGN_OR_RETURN(std::unique_ptr<ProcessGroup> group, ConnectIfDistributed());
//   if (group) ...   // null: one process
#ifndef SLIMFIT_TOOLS_DISTRIBUTED_FLAGS_H_
#define SLIMFIT_TOOLS_DISTRIBUTED_FLAGS_H_

#include <memory>

#include "absl/status/statusor.h"
#include "distributed/process_group.h"

namespace slimfit {

// Null when neither the flags nor the environment ask for more than one
// process; otherwise the connected group. Errors name the flag or variable.
absl::StatusOr<std::unique_ptr<ProcessGroup>> ConnectIfDistributed();

// Rank 0 speaks for a run: on the other ranks stdout goes to /dev/null
// (errors still reach stderr). A no-op for one process (null group).
absl::Status QuietUnlessRoot(const ProcessGroup* group);

}  // namespace slimfit

#endif  // SLIMFIT_TOOLS_DISTRIBUTED_FLAGS_H_
