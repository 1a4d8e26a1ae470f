// File: distributed/launch.h
//
// LaunchLocal: starts this node's ranks of a distributed run, the way
// torchrun does — N copies of a command, each with RANK, WORLD_SIZE,
// LOCAL_RANK, LOCAL_WORLD_SIZE, MASTER_ADDR and MASTER_PORT set — and waits
// for them. `bazel run //tools:launch` is its command line; tests use it to
// run 2 processes on 127.0.0.1.
//
//   ASSIGN_OR_RETURN(std::vector<RankExit> exits,
//                    LaunchLocal({"bazel-bin/tools/compress", "--experiment=e.pbtxt"}, {.nproc_per_node = 2}));
//
// Failure handling: when a rank exits non-zero or is killed, the others
// normally fail on their own at their next collective (their peer's sockets
// closed); any still running after `grace_seconds` get SIGTERM (they stop at
// their next safe point and write their state), and SIGKILL 10 s later. So a
// failed rank ends the whole run in bounded time; running the same command
// again resumes. SIGINT / SIGTERM to the launcher are passed to every rank.
#ifndef SLIMFIT_DISTRIBUTED_LAUNCH_H_
#define SLIMFIT_DISTRIBUTED_LAUNCH_H_

#include <map>
#include <string>
#include <vector>

#include "absl/status/statusor.h"

namespace slimfit {

struct LaunchOptions {
  int nproc_per_node = 2;
  int nnodes = 1;
  int node_rank = 0;
  std::string master_addr = "127.0.0.1";
  int master_port = 0;        // 0: a free local port (one node only)
  double grace_seconds = 30;  // after a rank fails, before the others get SIGTERM
  std::map<std::string, std::string> env;  // more variables for every rank
};

struct RankExit {
  int rank = 0;
  int exit_code = 0;  // 128 + signal when killed by one
};

// InvalidArgument naming the field for bad options; Internal when a process
// cannot be started. Otherwise every rank's exit, by rank.
absl::StatusOr<std::vector<RankExit>> LaunchLocal(const std::vector<std::string>& argv, const LaunchOptions& options);

// A TCP port on 127.0.0.1 that was free a moment ago.
absl::StatusOr<int> FindFreePort();

}  // namespace slimfit

#endif  // SLIMFIT_DISTRIBUTED_LAUNCH_H_
