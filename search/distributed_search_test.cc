// The compression search on 2 processes (//tools:compress under
// LaunchLocal, c10d/Gloo on 127.0.0.1) returns the same model as on one:
// the same chosen candidate, the same channels, the same scores for every
// candidate the single process scored, and weights equal to float rounding
// (the final fine-tune is data-parallel). Only rank 0 writes the run dir;
// the 2-rank run trains the zoo reference data-parallel and caches it.
#include <ATen/ATen.h>

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

void Compress(int nproc, const std::string& out) {
  std::vector<std::string> cmd = {Arg(1), absl::StrCat("--experiment=", Arg(2)), absl::StrCat("--output_dir=", out),
                                  absl::StrCat("--references_dir=", TempPath("references"))};
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

}  // namespace
}  // namespace slimfit
