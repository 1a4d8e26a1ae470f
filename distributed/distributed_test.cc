// 2 processes on 127.0.0.1 (LaunchLocal + testdata/dp_worker): c10d/Gloo
// collectives, data-parallel training equal to one process on the combined
// batch, and a killed rank stopping the other in bounded time.
#include <stdlib.h>

#include <ATen/ATen.h>

#include "common/files.h"
#include "common/status_matchers.h"
#include "distributed/data_parallel.h"
#include "distributed/launch.h"
#include "distributed/process_group.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "model/model.h"

namespace slimfit {
namespace {

using ::slimfit::testing::StatusIs;
using ::slimfit::testing::TempPath;
using ::testing::HasSubstr;

std::string Worker() {
  const auto& argv = ::testing::internal::GetArgvs();
  EXPECT_GE(argv.size(), 2u) << "the BUILD target passes the worker's path";
  return argv.size() >= 2 ? argv[1] : "";
}

std::string Dir(const std::string& name) {
  const std::string d = TempPath(name);
  EXPECT_OK(CreateDirectories(d));
  return d;
}

std::vector<RankExit> Launch(std::vector<std::string> args, int nproc) {
  args.insert(args.begin(), Worker());
  auto exits = LaunchLocal(args, LaunchOptions{.nproc_per_node = nproc, .grace_seconds = 20});
  EXPECT_OK(exits.status());
  return exits.ok() ? *exits : std::vector<RankExit>{};
}

void ExpectAllExitedZero(const std::vector<RankExit>& exits, int n) {
  ASSERT_EQ(exits.size(), static_cast<size_t>(n));
  for (const RankExit& e : exits) EXPECT_EQ(e.exit_code, 0) << "rank " << e.rank;
}

TEST(DistributedTest, CollectivesOverTwoProcesses) {
  const std::string out = Dir("collectives");
  ExpectAllExitedZero(Launch({"collectives", out}, 2), 2);
  for (int r : {0, 1}) {
    EXPECT_THAT(ReadFileToString(absl::StrCat(out, "/rank", r, ".txt")),
                ::slimfit::testing::IsOkAndHolds("sum 3 1\nmax 10\nbroadcast 7\ngather aa bbb\n"));
  }
}

// Two ranks, each on half of every batch of 24, take the same SGD steps (with
// momentum and weight decay) as one process on the whole batch; the last
// batch of the train split splits between them as evenly as it can. Rank 1's different initial weights
// are replaced by rank 0's. Metrics are reduced over the two halves of the
// eval split and equal one process's.
TEST(DistributedTest, DataParallelTrainingEqualsOneProcessOnTheCombinedBatch) {
  const std::string one = Dir("one"), two = Dir("two");
  ExpectAllExitedZero(Launch({"train", "lenet5", one}, 1), 1);
  ExpectAllExitedZero(Launch({"train", "lenet5", two}, 2), 2);
  ASSERT_OK_AND_ASSIGN(Model a, Model::Load(one + "/model.pt"));
  ASSERT_OK_AND_ASSIGN(Model b, Model::Load(two + "/model.pt"));
  auto pa = a.NamedParameters(), pb = b.NamedParameters();
  ASSERT_EQ(pa.size(), pb.size());
  double worst = 0, scale = 0;
  for (size_t i = 0; i < pa.size(); ++i) {
    worst = std::max(worst, (pa[i].second - pb[i].second).abs().max().item<double>());
    scale = std::max(scale, pa[i].second.abs().max().item<double>());
  }
  std::printf("largest weight difference, 2 ranks vs 1 process: %.3g (largest weight %.3g)\n", worst, scale);
  EXPECT_LT(worst, 1e-4 * std::max(1.0, scale)) << "largest weight difference";
  EXPECT_GT(scale, 0);
  ASSERT_OK_AND_ASSIGN(std::string r0, ReadFileToString(two + "/rank0.txt"));
  ASSERT_OK_AND_ASSIGN(std::string r1, ReadFileToString(two + "/rank1.txt"));
  ASSERT_OK_AND_ASSIGN(std::string single, ReadFileToString(one + "/rank0.txt"));
  EXPECT_EQ(r0, r1) << "every rank reports the same reduced metrics";
  const std::string steps = single.substr(single.find("steps "), single.find("syncs ") - single.find("steps "));
  EXPECT_THAT(r0, HasSubstr(steps)) << "the same number of steps as one process";
  EXPECT_THAT(r0, HasSubstr(absl::StrCat("syncs ", steps.substr(6))));
  // The same accuracy (counts) and loss (to float rounding) as one process.
  EXPECT_EQ(r0.substr(0, r0.find('\n')), single.substr(0, single.find('\n')));
  ASSERT_OK_AND_ASSIGN(std::string log, ReadFileToString(two + "/metrics.jsonl"));
  EXPECT_EQ(std::count(log.begin(), log.end(), '\n'), 2) << "only rank 0 writes metrics (2 epochs)";
}

// With batch norm each rank normalises with its own half-batch statistics,
// but the running statistics are averaged every step: both ranks end with
// identical weights and buffers (the trainer checks after every epoch).
TEST(DistributedTest, BatchNormStatisticsStayIdentical) {
  const std::string two = Dir("bn");
  ExpectAllExitedZero(Launch({"train", "resnet_small", two}, 2), 2);
  ASSERT_OK_AND_ASSIGN(std::string r0, ReadFileToString(two + "/rank0.txt"));
  ASSERT_OK_AND_ASSIGN(std::string r1, ReadFileToString(two + "/rank1.txt"));
  EXPECT_EQ(r0, r1);
}

TEST(DistributedTest, AKilledRankStopsTheOtherInBoundedTime) {
  const std::string out = Dir("die");
  std::vector<RankExit> exits = Launch({"die", out}, 2);
  ASSERT_EQ(exits.size(), 2u);
  EXPECT_EQ(exits[0].exit_code, 0) << "rank 0 saw the failure as an error, not a hang or a crash";
  EXPECT_EQ(exits[1].exit_code, 3);
  ASSERT_OK_AND_ASSIGN(std::string text, ReadFileToString(out + "/error.txt"));
  EXPECT_THAT(text, HasSubstr("UNAVAILABLE: all-reduce failed on rank 0 of 2: another rank stopped"));
  EXPECT_THAT(text, HasSubstr("run the same command again to resume"));
  const double seconds = std::stod(text.substr(text.find('\n') + 1));
  std::printf("rank 0 stopped %.3f s after its peer died\n", seconds);
  EXPECT_LT(seconds, 10) << "the other rank stops at once, not after the 60 s timeout";
}

// A rank that hangs (alive, sockets open) is bounded by the group's timeout.
TEST(DistributedTest, AHungRankIsBoundedByTheTimeout) {
  const std::string out = Dir("slow");
  ExpectAllExitedZero(Launch({"slow", out}, 2), 2);
  ASSERT_OK_AND_ASSIGN(std::string text, ReadFileToString(out + "/slow.txt"));
  EXPECT_THAT(text, HasSubstr("DEADLINE_EXCEEDED: all-gather failed on rank 0 of 2: no answer from another rank "
                              "within 2s"));
  const double seconds = std::stod(text.substr(text.find('\n') + 1));
  EXPECT_GE(seconds, 1.9);
  EXPECT_LT(seconds, 4.5) << "before the hung rank woke up (5 s)";
}

TEST(DistributedOptionsTest, FromTheTorchrunEnvironment) {
  ::unsetenv("WORLD_SIZE");
  ASSERT_OK_AND_ASSIGN(auto none, DistributedOptionsFromEnvironment());
  EXPECT_FALSE(none.has_value());
  ::setenv("WORLD_SIZE", "4", 1);
  ::setenv("RANK", "3", 1);
  ::setenv("MASTER_ADDR", "node7", 1);
  ::setenv("MASTER_PORT", "29511", 1);
  ::setenv("LOCAL_RANK", "1", 1);
  ASSERT_OK_AND_ASSIGN(auto got, DistributedOptionsFromEnvironment());
  ASSERT_TRUE(got.has_value());
  EXPECT_EQ(got->rank, 3);
  EXPECT_EQ(got->world_size, 4);
  EXPECT_EQ(got->master_addr, "node7");
  EXPECT_EQ(got->master_port, 29511);
  EXPECT_EQ(got->local_rank, 1);
  ::setenv("RANK", "4", 1);
  EXPECT_THAT(DistributedOptionsFromEnvironment(),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       "environment variable RANK: not a rank of the world, got 4; valid: [0, world_size = 4)"));
  ::setenv("RANK", "one", 1);
  EXPECT_THAT(DistributedOptionsFromEnvironment(),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       "environment variable RANK: not an integer, got \"one\"; valid: an integer"));
  ::unsetenv("RANK");
  EXPECT_THAT(DistributedOptionsFromEnvironment(),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("environment variable RANK: unset while WORLD_SIZE is set")));
  ::setenv("RANK", "0", 1);
  ::setenv("MASTER_PORT", "70000", 1);
  EXPECT_THAT(DistributedOptionsFromEnvironment(),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       "environment variable MASTER_PORT: out of range, got 70000; valid: [1, 65535]"));
  for (const char* v : {"WORLD_SIZE", "RANK", "MASTER_ADDR", "MASTER_PORT", "LOCAL_RANK"}) ::unsetenv(v);
}

TEST(DistributedOptionsTest, RendezvousWithAMissingRankTimesOut) {
  ASSERT_OK_AND_ASSIGN(int port, FindFreePort());
  DistributedOptions o{.rank = 0, .world_size = 2, .master_port = port, .timeout_seconds = 1.5};
  EXPECT_THAT(ProcessGroup::Connect(o),
              StatusIs(absl::StatusCode::kDeadlineExceeded, HasSubstr("rendezvous at 127.0.0.1")));
}

TEST(ProcessGroupTest, WithoutNcclLinkedCudaTensorsGoThroughACpuCopy) {
  ASSERT_OK_AND_ASSIGN(int port, FindFreePort());
  ASSERT_OK_AND_ASSIGN(std::unique_ptr<ProcessGroup> group,
                       ProcessGroup::Connect({.rank = 0, .world_size = 1, .master_port = port, .timeout_seconds = 30}));
  EXPECT_EQ(group->BackendFor(c10::kCPU), "gloo");
  EXPECT_EQ(group->BackendFor(c10::kCUDA), "gloo (through a CPU copy)");
}

TEST(LaunchTest, RejectsBadOptions) {
  EXPECT_THAT(LaunchLocal({}, {}), StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("no command")));
  EXPECT_THAT(LaunchLocal({"true"}, {.nproc_per_node = 0}),
              StatusIs(absl::StatusCode::kInvalidArgument, "nproc_per_node: below 1, got 0; valid: >= 1"));
  EXPECT_THAT(LaunchLocal({"true"}, {.nnodes = 2, .node_rank = 0}),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("master_port: required with nnodes > 1")));
  ASSERT_OK_AND_ASSIGN(auto exits, LaunchLocal({"/bin/sh", "-c", "exit $RANK"}, {.nproc_per_node = 3}));
  ASSERT_EQ(exits.size(), 3u);
  for (int r = 0; r < 3; ++r) EXPECT_EQ(exits[r].exit_code, r);
  ASSERT_OK_AND_ASSIGN(auto missing, LaunchLocal({"/nonexistent/slimfit_binary"}, {.nproc_per_node = 1}));
  EXPECT_EQ(missing[0].exit_code, 127);
  ASSERT_OK_AND_ASSIGN(auto env, LaunchLocal({"/bin/sh", "-c", "test \"$RANK/$WORLD_SIZE/$LOCAL_RANK/$MASTER_ADDR/$X\" = 1/2/1/127.0.0.1/y"},
                                             {.nproc_per_node = 2, .env = {{"X", "y"}}}));
  EXPECT_EQ(env[1].exit_code, 0) << "rank 1 sees torchrun's variables and the extra ones";
}

}  // namespace
}  // namespace slimfit
