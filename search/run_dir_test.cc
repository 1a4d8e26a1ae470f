#include "search/run_dir.h"

#include "common/files.h"
#include "common/status_matchers.h"
#include "common/text_proto.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "model/zoo/zoo.h"
#include "search/experiment.h"

namespace slimfit {
namespace {

using ::slimfit::testing::StatusIs;
using ::testing::AllOf;
using ::testing::HasSubstr;

// Writes what a run leaves in state/ for `e` and `fingerprint`.
void Leave(const std::string& dir, const Experiment& e, const std::string& fingerprint) {
  ASSERT_OK(CreateDirectories(dir + "/state"));
  ASSERT_OK(WriteFileAtomically(dir + "/state/experiment.pbtxt", ToTextProto(e)));
  ASSERT_OK(WriteFileAtomically(dir + "/state/model.fingerprint", fingerprint + "\n"));
}

TEST(RunDirTest, FingerprintsFollowTheWeights) {
  ASSERT_OK_AND_ASSIGN(Model a, CreateZooModel("lenet5", ZooOptions{.seed = 1}));
  ASSERT_OK_AND_ASSIGN(Model b, a.Clone());
  ASSERT_OK_AND_ASSIGN(Model c, CreateZooModel("lenet5", ZooOptions{.seed = 2}));
  EXPECT_EQ(ModelFingerprint(a), ModelFingerprint(b));
  EXPECT_NE(ModelFingerprint(a), ModelFingerprint(c));
  EXPECT_EQ(ModelFingerprint(a).size(), 16u);
}

TEST(RunDirTest, RefusesAnotherExperimentsDirectoryAndKeepsItsOwn) {
  const std::string dir = ::testing::TempDir() + "/run_dir_test";
  const Experiment e = WithDefaults(DefaultExperiment());
  EXPECT_OK(CheckSameWork(dir + "_new", e, "0123456789abcdef"));  // nothing there yet
  Leave(dir, e, "0123456789abcdef");
  EXPECT_OK(CheckSameWork(dir, e, "0123456789abcdef"));
  // What may change between runs: records are keyed apart or stay valid.
  Experiment searched = e;
  searched.mutable_compression()->set_delta(2);
  searched.mutable_compression()->set_strategy("gradual");
  searched.mutable_compression()->mutable_tuning()->set_probes(9);
  EXPECT_OK(CheckSameWork(dir, searched, "0123456789abcdef"));
  // What may not.
  Experiment lr = e;
  lr.mutable_full_trainer()->mutable_optimizer()->set_lr(0.5);
  lr.set_seed(7);
  EXPECT_THAT(
      CheckSameWork(dir, lr, "0123456789abcdef"),
      StatusIs(absl::StatusCode::kFailedPrecondition,
               AllOf(HasSubstr("changed: full_trainer, seed"),
                     HasSubstr("valid: another output_dir (--output_dir), or this one deleted to start over"))));
  Experiment deployed = e;
  deployed.set_deploy_device("cuda");
  EXPECT_THAT(CheckSameWork(dir, deployed, "0123456789abcdef"),
              StatusIs(absl::StatusCode::kFailedPrecondition, HasSubstr("changed: deploy_device")));
  Experiment trained_elsewhere = e;
  trained_elsewhere.set_device("cuda");  // records stay valid: fine-tunes on another device
  EXPECT_OK(CheckSameWork(dir, trained_elsewhere, "0123456789abcdef"));
  EXPECT_THAT(CheckSameWork(dir, e, "fedcba9876543210"),
              StatusIs(absl::StatusCode::kFailedPrecondition, HasSubstr("changed: the model's weights")));
}

TEST(RunDirTest, RunTimesAddUpOverInvocations) {
  const std::string dir = ::testing::TempDir() + "/run_times_test";
  ASSERT_OK(CreateDirectories(dir + "/state"));
  ASSERT_OK_AND_ASSIGN(RunTimes first, AddRunTimes(dir, {{"reference", 2.5}, {"search", 10}}, 13));
  EXPECT_EQ(first.invocations, 1);
  EXPECT_DOUBLE_EQ(first.seconds, 13);
  ASSERT_EQ(first.phases.size(), 2u);
  // A resumed run: a phase seen before adds up, a new one comes after.
  ASSERT_OK_AND_ASSIGN(RunTimes second, AddRunTimes(dir, {{"search", 4.25}, {"quantize", 1}}, 6));
  EXPECT_EQ(second.invocations, 2);
  EXPECT_DOUBLE_EQ(second.seconds, 13 + 6);
  using Phase = std::pair<std::string, double>;
  EXPECT_EQ(second.phases, (std::vector<Phase>{{"reference", 2.5}, {"search", 14.25}, {"quantize", 1}}));
  // Lines that do not read are skipped, the rest still add up.
  ASSERT_OK(WriteFileAtomically(dir + "/state/time.txt", "search 1.5\ngarbage\ntotal x\n"));
  ASSERT_OK_AND_ASSIGN(RunTimes third, AddRunTimes(dir, {{"search", 1}}, 2));
  EXPECT_EQ(third.phases, (std::vector<Phase>{{"search", 2.5}}));
  EXPECT_EQ(third.invocations, 1);
  EXPECT_DOUBLE_EQ(third.seconds, 2);
}

}  // namespace
}  // namespace slimfit
