// launch: starts this machine's ranks of a distributed slimfit run, the way
// torchrun does (RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR, MASTER_PORT set
// for each), and waits for them. A rank that fails ends the run in bounded
// time (the others stop at their next collective, or get SIGTERM after
// --grace_seconds); Ctrl-C reaches every rank. Exits with the first failed
// rank's code, 0 when all succeed.
//
// One machine, 2 processes:
//   bazel build //tools:launch //tools:train
//   bazel-bin/tools/launch --nproc_per_node=2 -- bazel-bin/tools/train --model=lenet5
// Two machines (run on each, node_rank 0 on the machine at --master_addr):
//   bazel-bin/tools/launch --nnodes=2 --node_rank=0 --nproc_per_node=1
//       --master_addr=10.0.0.1 --master_port=29500 -- bazel-bin/tools/train --model=resnet_small
//   (the same line with --node_rank=1 on the other machine)
// torchrun itself works too: `torchrun --nproc_per_node=2 bazel-bin/tools/train ...`.
#include "distributed/launch.h"

#include <cstdio>
#include <string>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/flags/usage.h"
#include "common/field_error.h"

ABSL_FLAG(int, nproc_per_node, 2, "processes to start on this machine");
ABSL_FLAG(int, nnodes, 1, "machines taking part");
ABSL_FLAG(int, node_rank, 0, "this machine's index in [0, nnodes); 0 serves the rendezvous");
ABSL_FLAG(std::string, master_addr, "127.0.0.1", "the address of node 0, reachable from every machine");
ABSL_FLAG(int, master_port, 0, "rendezvous port (0: a free one; required with nnodes > 1)");
ABSL_FLAG(double, grace_seconds, 30, "after a rank fails, seconds before the others get SIGTERM");

int main(int argc, char** argv) {
  absl::SetProgramUsageMessage(
      "Starts N ranks of a distributed run with torchrun's environment.\n"
      "  bazel-bin/tools/launch --nproc_per_node=2 -- bazel-bin/tools/train --model=lenet5");
  std::vector<char*> rest = absl::ParseCommandLine(argc, argv);
  std::vector<std::string> command(rest.begin() + 1, rest.end());
  if (command.empty()) {
    std::fprintf(stderr, "launch: no command; usage: launch [flags] -- COMMAND [ARGS...]\n");
    return 2;
  }
  slimfit::LaunchOptions o;
  o.nproc_per_node = absl::GetFlag(FLAGS_nproc_per_node);
  o.nnodes = absl::GetFlag(FLAGS_nnodes);
  o.node_rank = absl::GetFlag(FLAGS_node_rank);
  o.master_addr = absl::GetFlag(FLAGS_master_addr);
  o.master_port = absl::GetFlag(FLAGS_master_port);
  o.grace_seconds = absl::GetFlag(FLAGS_grace_seconds);
  auto exits = slimfit::LaunchLocal(command, o);
  if (!exits.ok()) {
    // LaunchOptions' fields are named as the flags that set them.
    const absl::Status s = slimfit::AsFlagError(exits.status());
    std::fprintf(stderr, "launch: %s\n", slimfit::ErrorText(s).c_str());
    return 2;
  }
  int code = 0;
  for (const slimfit::RankExit& e : *exits) {
    if (e.exit_code != 0) {
      std::fprintf(stderr, "launch: rank %d exited with %d\n", e.rank, e.exit_code);
      if (code == 0) code = e.exit_code;
    }
  }
  return code;
}
