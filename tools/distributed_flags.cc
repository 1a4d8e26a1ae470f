#include "tools/distributed_flags.h"

#include <cstdio>

#include "absl/flags/flag.h"
#include "absl/strings/str_cat.h"
#include "common/field_error.h"
#include "model/device.h"
#include "tools/cli.h"

ABSL_FLAG(int, rank, 0, "this process's rank (default: $RANK)");
ABSL_FLAG(int, world_size, 1, "how many processes (default: $WORLD_SIZE, else 1)");
ABSL_FLAG(std::string, master_addr, "127.0.0.1", "rank 0's host (default: $MASTER_ADDR)");
ABSL_FLAG(int, master_port, 29500, "rank 0's rendezvous port (default: $MASTER_PORT)");
ABSL_FLAG(double, dist_timeout_seconds, 1800,
          "how long a rank waits for the others at rendezvous and at each collective; must exceed the longest "
          "work one rank does while another waits (a candidate fine-tune)");

namespace slimfit {

absl::StatusOr<std::unique_ptr<ProcessGroup>> ConnectIfDistributed() {
  auto env = DistributedOptionsFromEnvironment();
  if (!env.ok()) return env.status();
  DistributedOptions o = env->value_or(DistributedOptions{});
  if (FlagGiven("rank")) {
    o.rank = absl::GetFlag(FLAGS_rank);
    if (!env->has_value()) o.local_rank = o.rank;  // one machine: ranks started by hand
  }
  if (FlagGiven("world_size")) o.world_size = absl::GetFlag(FLAGS_world_size);
  if (FlagGiven("master_addr")) o.master_addr = absl::GetFlag(FLAGS_master_addr);
  if (FlagGiven("master_port")) o.master_port = absl::GetFlag(FLAGS_master_port);
  o.timeout_seconds = absl::GetFlag(FLAGS_dist_timeout_seconds);
  if (absl::Status s = ValidateDistributedOptions(o); !s.ok()) {
    // Each option is named as the flag that sets it (or the torchrun
    // variable, for the ones no flag sets).
    return RenameField(s, [](absl::string_view field) -> std::string {
      if (field == "timeout_seconds") return "--dist_timeout_seconds";
      if (field == "rank" || field == "world_size" || field == "master_addr" || field == "master_port") {
        return absl::StrCat("--", field);
      }
      return std::string(field);
    });
  }

  if (o.world_size == 1) return std::unique_ptr<ProcessGroup>();
  // Each rank on a machine takes its own GPU when asked for "cuda".
  SetDefaultCudaIndex(o.local_rank);
  return ProcessGroup::Connect(o);
}

absl::Status QuietUnlessRoot(const ProcessGroup* group) {
  if (group == nullptr || group->is_root()) return absl::OkStatus();
  if (std::freopen("/dev/null", "w", stdout) == nullptr) {
    return absl::InternalError("rank output: cannot redirect stdout to /dev/null");
  }
  return absl::OkStatus();
}

}  // namespace slimfit
