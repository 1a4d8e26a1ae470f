// The compression search on 2 processes (//tools:compress under
// LaunchLocal, c10d/Gloo on 127.0.0.1) returns the same model as on one:
// the same chosen candidate, the same channels, the same scores for every
// candidate the single process scored, and weights equal to float rounding
// (the final fine-tune is data-parallel). Only rank 0 writes the run dir;
// the 2-rank run trains the zoo reference data-parallel and caches it.
#include <ATen/ATen.h>
#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <thread>

#include <google/protobuf/text_format.h>

#include "absl/strings/str_cat.h"
#include "common/files.h"
#include "common/status_matchers.h"
#include "distributed/launch.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "model/model.h"
#include "search/candidate_store.h"

namespace slimfit {
namespace {

using ::slimfit::testing::TempPath;

std::string Arg(size_t i) {
  const auto& argv = ::testing::internal::GetArgvs();
  return argv.size() > i ? argv[i] : "";
}

std::vector<std::string> CompressCommand(const std::string& experiment, const std::string& out) {
  return {Arg(1), absl::StrCat("--experiment=", experiment), absl::StrCat("--output_dir=", out),
          absl::StrCat("--references_dir=", TempPath("references"))};
}

void Compress(int nproc, const std::string& out, const std::string& experiment = Arg(2)) {
  std::vector<std::string> cmd = CompressCommand(experiment, out);
  ASSERT_OK_AND_ASSIGN(std::vector<RankExit> exits,
                       LaunchLocal(cmd, LaunchOptions{.nproc_per_node = nproc, .grace_seconds = 20}));
  for (const RankExit& e : exits) ASSERT_EQ(e.exit_code, 0) << "rank " << e.rank << " of " << nproc;
}

std::map<std::string, CandidateRecord> Records(const std::string& run) {
  auto store = CandidateStore::Open(run + "/state/candidates");
  EXPECT_OK(store.status());
  std::map<std::string, CandidateRecord> out;
  if (store.ok()) {
    for (const CandidateRecord& r : (*store)->All()) out[r.key()] = r;
  }
  return out;
}

// The chosen record's key and score, from the run's last metrics.jsonl line.
std::string Chosen(const std::string& run) {
  auto lines = ReadFileToString(run + "/metrics.jsonl");
  EXPECT_OK(lines.status());
  const size_t at = lines.ok() ? lines->rfind("{\"event\": \"result\"") : std::string::npos;
  if (at == std::string::npos) return "";
  const std::string line = lines->substr(at, lines->find('\n', at) - at);
  return line.substr(0, line.find(", \"seconds\""));
}

TEST(DistributedSearchTest, TwoProcessesChooseWhatOneProcessChooses) {
  const std::string one = TempPath("one"), two = TempPath("two");
  Compress(2, two);  // trains the zoo reference data-parallel and caches it (rank 0)
  Compress(1, one);  // reads that cache: both searches start from one reference
  std::map<std::string, CandidateRecord> a = Records(one), b = Records(two);
  int candidates = 0;
  for (const auto& [key, r] : a) {
    if (r.phase() != "candidate" && r.phase() != "sensitivity") continue;
    ++candidates;
    ASSERT_TRUE(b.count(key)) << "the 2-rank search did not score " << key;
    EXPECT_EQ(b[key].eval_metric(), r.eval_metric()) << key;
    EXPECT_EQ(b[key].macs(), r.macs()) << key;
  }
  EXPECT_GT(candidates, 4);
  EXPECT_GT(b.size(), a.size()) << "the second rank scored speculative probes beside the single process's path";
  const std::string chosen = Chosen(one);
  ASSERT_FALSE(chosen.empty());
  EXPECT_EQ(Chosen(two), chosen);
  std::printf("chosen: %s\nrecords: %zu on 1 process, %zu on 2 (speculative probes included)\n", chosen.c_str(),
              a.size(), b.size());
  ASSERT_OK_AND_ASSIGN(int64_t size, RegularFileSize(two + "/model.pt"));
  EXPECT_GT(size, 0);
  if (RegularFileSize(one + "/model_trainable.pt").ok()) {
    ASSERT_OK_AND_ASSIGN(Model ma, Model::Load(one + "/model_trainable.pt"));
    ASSERT_OK_AND_ASSIGN(Model mb, Model::Load(two + "/model_trainable.pt"));
    auto pa = ma.NamedParameters(), pb = mb.NamedParameters();
    ASSERT_EQ(pa.size(), pb.size());
    double worst = 0;
    for (size_t i = 0; i < pa.size(); ++i) {
      ASSERT_EQ(pa[i].second.sizes(), pb[i].second.sizes()) << pa[i].first << ": the same channels";
      worst = std::max(worst, (pa[i].second - pb[i].second).abs().max().item<double>());
    }
    std::printf("largest weight difference of the chosen model: %.3g\n", worst);
    EXPECT_LT(worst, 1e-3);
  }
  // The same command again resumes: rank 0 sends its records to rank 1,
  // nothing is recomputed, the choice stands.
  Compress(2, two);
  std::map<std::string, CandidateRecord> again = Records(two);
  EXPECT_EQ(again.size(), b.size());
  for (const auto& [key, r] : b) EXPECT_EQ(again[key].sequence(), r.sequence()) << key << " was recomputed";
  EXPECT_EQ(Chosen(two), chosen);
}

// One rank of a 2-rank run started by hand (so the test holds its pid),
// stderr to `err`.
pid_t StartRank(const std::vector<std::string>& cmd, int rank, int port, const std::string& err) {
  std::vector<std::string> env = {absl::StrCat("RANK=", rank), "WORLD_SIZE=2", "MASTER_ADDR=127.0.0.1",
                                  absl::StrCat("MASTER_PORT=", port), "OPENBLAS_NUM_THREADS=1"};
  std::vector<char*> envp, argv;
  for (std::string& e : env) envp.push_back(e.data());
  envp.push_back(nullptr);
  for (const std::string& a : cmd) argv.push_back(const_cast<char*>(a.c_str()));
  argv.push_back(nullptr);
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_addopen(&actions, 2, err.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
  posix_spawn_file_actions_addopen(&actions, 1, "/dev/null", O_WRONLY, 0);
  pid_t pid = -1;
  EXPECT_EQ(posix_spawn(&pid, argv[0], &actions, nullptr, argv.data(), envp.data()), 0);
  posix_spawn_file_actions_destroy(&actions);
  return pid;
}

// Rank 1 is killed (SIGKILL) once the search is under way: rank 0 stops with
// a clear error at once instead of hanging, keeps what was finished, and the
// same command on 2 ranks resumes and chooses what one process chooses.
TEST(DistributedSearchTest, AKilledRankStopsTheRunAndTheSameCommandResumes) {
  // More data than the other test: candidates take long enough to kill a
  // rank in the middle of the search.
  ASSERT_OK_AND_ASSIGN(std::string text, ReadFileToString(Arg(2)));
  const std::string from = "train_samples: 1200", to = "train_samples: 12000";
  ASSERT_NE(text.find(from), std::string::npos);
  text.replace(text.find(from), from.size(), to);
  const std::string experiment = TempPath("bigger.pbtxt");
  ASSERT_OK(WriteFileAtomically(experiment, text));
  const std::string one = TempPath("kill_one"), two = TempPath("kill_two");
  Compress(1, one, experiment);

  ASSERT_OK_AND_ASSIGN(int port, FindFreePort());
  const std::vector<std::string> cmd = CompressCommand(experiment, two);
  const pid_t rank0 = StartRank(cmd, 0, port, TempPath("rank0.err"));
  const pid_t rank1 = StartRank(cmd, 1, port, TempPath("rank1.err"));
  // Wait for the search phase (the first candidate scored), then kill rank 1.
  bool searching = false;
  for (int i = 0; i < 12000 && !searching; ++i) {
    auto lines = ReadFileToString(two + "/metrics.jsonl");
    searching = lines.ok() && lines->find("\"event\": \"candidate\"") != std::string::npos;
    if (!searching) std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  ASSERT_TRUE(searching) << "the search never reached its candidates";
  ASSERT_EQ(kill(rank1, SIGKILL), 0);
  const auto killed_at = std::chrono::steady_clock::now();
  int status = 0;
  ASSERT_EQ(waitpid(rank0, &status, 0), rank0);
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - killed_at).count();
  waitpid(rank1, nullptr, 0);
  std::printf("rank 0 stopped %.2f s after rank 1 was killed\n", seconds);
  ASSERT_TRUE(WIFEXITED(status));
  EXPECT_NE(WEXITSTATUS(status), 0) << "the run cannot finish without rank 1";
  EXPECT_LT(seconds, 30) << "rank 0 did not wait out a timeout";
  ASSERT_OK_AND_ASSIGN(std::string err, ReadFileToString(TempPath("rank0.err")));
  std::printf("rank 0 said: %s", err.substr(err.rfind("compress:")).c_str());
  EXPECT_THAT(err, ::testing::HasSubstr("another rank stopped or the connection failed"));
  EXPECT_THAT(err, ::testing::HasSubstr("run the same command again to resume"));
  const size_t kept = Records(two).size();
  EXPECT_GT(kept, 0u) << "what was finished before the kill is kept";

  Compress(2, two, experiment);
  EXPECT_GE(Records(two).size(), kept);
  EXPECT_EQ(Chosen(two), Chosen(one));
  ASSERT_FALSE(Chosen(one).empty());
}

}  // namespace
}  // namespace slimfit
