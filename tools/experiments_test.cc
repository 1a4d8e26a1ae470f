// Every checked-in training config parses strictly and builds (data, model,
// loss, evaluator, trainer) — on a 256-sample slice so the test stays fast.
// Configs naming a model file that does not exist get a zoo model instead.
// Every pruning config parses and validates.
#include <filesystem>
#include <string>

#include "common/status_matchers.h"
#include "common/text_proto.h"
#include "gtest/gtest.h"
#include "pruners/plan.h"
#include "quantizers/int8.h"
#include "tools/job.h"

namespace slimfit {
namespace {

TEST(ExperimentsTest, EveryTrainConfigParsesAndBuilds) {
  int seen = 0;
  for (const auto& entry : std::filesystem::directory_iterator("experiments/train")) {
    if (entry.path().extension() != ".pbtxt") continue;
    ++seen;
    SCOPED_TRACE(entry.path().string());
    TrainJob job;
    ASSERT_OK(ParseTextProtoFile(entry.path().string(), &job));
    if (!std::filesystem::exists(job.model()) && job.model().find('/') != std::string::npos) {
      job.set_model("lenet5");
    }
    job.mutable_data()->set_max_train_samples(256);
    job.mutable_data()->set_max_eval_samples(64);
    if (!std::filesystem::exists("/usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz")) {
      job.mutable_data()->mutable_synthetic();  // no dataset here: check the rest
    }
    ASSERT_OK_AND_ASSIGN(Job built, BuildJob(job, /*with_train_loader=*/true));
    ASSERT_OK(MakeJobTrainer(job, built).status());
  }
  EXPECT_GE(seen, 3);
}

TEST(ExperimentsTest, EveryPruneConfigParsesAndValidates) {
  int seen = 0;
  for (const auto& entry : std::filesystem::directory_iterator("experiments/prune")) {
    if (entry.path().extension() != ".pbtxt") continue;
    ++seen;
    SCOPED_TRACE(entry.path().string());
    PruningConfig config;
    ASSERT_OK(ParseTextProtoFile(entry.path().string(), &config));
    EXPECT_OK(ValidatePruningConfig(config));
  }
  EXPECT_GE(seen, 3);
}

TEST(ExperimentsTest, EveryQuantizeConfigParsesAndValidates) {
  int seen = 0;
  for (const auto& entry : std::filesystem::directory_iterator("experiments/quantize")) {
    if (entry.path().extension() != ".pbtxt") continue;
    ++seen;
    SCOPED_TRACE(entry.path().string());
    QuantizationConfig config;
    ASSERT_OK(ParseTextProtoFile(entry.path().string(), &config));
    EXPECT_OK(ValidateQuantizationConfig(config));
  }
  EXPECT_GE(seen, 4);
}

}  // namespace
}  // namespace slimfit
