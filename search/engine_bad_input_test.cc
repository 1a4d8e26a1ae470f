// The engine given broken parts or inputs, and the faults it must survive,
// on the LeNet-5 slice of Fashion-MNIST (search/engine_testing.h): a missing
// part or an out-of-range field is named, a model that does not take the data
// is refused before any work, a run directory holding another experiment is
// refused, a candidate whose fine-tune diverges is skipped and reported, and
// SIGINT writes the best model so far. The bad-input suite
// (`--config=bad_input`, tag `bad_input`) runs these under the sanitizers;
// the rest of the engine's end-to-end tests are in engine_test.cc.
#include <ATen/ATen.h>
#include <signal.h>

#include <memory>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_join.h"
#include "common/files.h"
#include "common/interrupt.h"
#include "common/status_matchers.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "model/zoo/zoo.h"
#include "search/engine.h"
#include "search/engine_testing.h"
#include "search/experiment.h"
#include "search/setup.h"

namespace slimfit {
namespace {

using ::slimfit::testing::BuildEngine;
using ::slimfit::testing::LenetSlice;
using ::slimfit::testing::StatusIs;
using ::testing::AllOf;
using ::testing::HasSubstr;

TEST(EngineBadInputTest, AMissingPartIsNamed) {
  ASSERT_OK_AND_ASSIGN(Model m, CreateZooModel("lenet5"));
  Engine engine(EngineData{}, std::move(m), LenetSlice("missing", "delta: 1.0"), std::make_shared<ForwardPass>(),
                nullptr, nullptr);
  EXPECT_THAT(engine.Run(), StatusIs(absl::StatusCode::kInvalidArgument,
                                     "Engine: evaluator is null; forward_pass, evaluator and loss are required"));
}

// A loss that diverges on every pruned model (fewer parameters than
// LeNet-5's 61,706): each candidate's fine-tune gives up (NaN beyond the
// trainer's recoveries).
class DivergesWhenPruned : public LossFunction {
 public:
  explicit DivergesWhenPruned(std::unique_ptr<LossFunction> base) : LossFunction(nullptr), base_(std::move(base)) {}
  absl::StatusOr<LossTerms> operator()(Model& m, const Batch& b) override {
    ASSIGN_OR_RETURN(LossTerms t, (*base_)(m, b));
    int64_t n = 0;
    for (const auto& [name, p] : m.NamedParameters()) n += p.numel();
    if (n < 61706) t.terms.emplace_back("poison", at::full({}, NAN));
    return t;
  }
  absl::StatusOr<LossTerms> FromOutput(const c10::IValue& o, const Batch& b) override {
    return base_->FromOutput(o, b);
  }

 private:
  std::unique_ptr<LossFunction> base_;
};

TEST(EngineBadInputTest, ADivergingCandidateIsSkippedAndTheSearchGoesOn) {
  Experiment e = WithDefaults(LenetSlice("diverges", "delta: 2.0 level: 1 candidate_epochs: 1 final_epochs: 1"));
  auto in = BuildEngineInputs(e, {::testing::TempDir() + "/references"});
  ASSERT_OK(in);
  Engine engine(std::move(in->data), std::move(*in->model), e, in->forward_pass, std::move(in->evaluator),
                std::make_unique<DivergesWhenPruned>(std::move(in->loss)));
  std::vector<std::string> lines;
  engine.set_progress([&](const std::string& l) { lines.push_back(l); });
  ASSERT_OK_AND_ASSIGN(EngineResult r, engine.Run());
  EXPECT_TRUE(r.returned_reference) << r.why;
  ASSERT_GE(r.failures.size(), 2u) << "every candidate failed, and each was reported";
  EXPECT_THAT(r.failures[0], HasSubstr("giving up after"));
  EXPECT_THAT(absl::StrJoin(lines, "\n"), HasSubstr("failed, the search goes on"));
  ASSERT_OK_AND_ASSIGN(std::string jsonl, ReadFileToString(e.output_dir() + "/metrics.jsonl"));
  EXPECT_THAT(jsonl, HasSubstr("\"event\": \"failed\""));
  EXPECT_OK(RegularFileSize(e.output_dir() + "/model.pt"));
}

TEST(EngineBadInputTest, InterruptWritesTheBestSoFarAndSaysHowToResume) {
  Experiment e = WithDefaults(LenetSlice("interrupted", "delta: 2.0 level: 2 candidate_epochs: 1 final_epochs: 1"));
  auto in = BuildEngineInputs(e, {::testing::TempDir() + "/references"});
  ASSERT_OK(in);
  Engine engine(std::move(in->data), std::move(*in->model), e, in->forward_pass, std::move(in->evaluator),
                std::move(in->loss));
  // Ctrl-C as the search starts (after the sensitivity pass).
  engine.set_progress([](const std::string& l) {
    if (absl::StartsWith(l, "[search]")) SetInterruptForTesting(SIGINT);
  });
  absl::StatusOr<EngineResult> r = engine.Run();
  SetInterruptForTesting(0);
  ASSERT_OK(r);
  EXPECT_TRUE(r->interrupted);
  EXPECT_THAT(r->why, HasSubstr("interrupted by SIGINT; run the same command again to resume"));
  for (const CandidateRecord& c : r->candidates) {
    EXPECT_NE(c.phase(), "candidate") << "no candidate after the interrupt";
    EXPECT_NE(c.phase(), "int8") << "no quantization after the interrupt";
  }
  EXPECT_OK(RegularFileSize(e.output_dir() + "/model.pt"));
  EXPECT_OK(RegularFileSize(e.output_dir() + "/report.html"));
}

TEST(EngineBadInputTest, RefusesARunDirectoryHoldingAnotherExperiment) {
  const std::string compression = "delta: 2.0 time_budget_minutes: 0.001";
  {
    auto b = BuildEngine(LenetSlice("refuse", compression));
    ASSERT_NE(b->engine, nullptr);
    ASSERT_OK(b->engine->Run());
  }
  // Same experiment, another level: resumed.
  {
    auto b = BuildEngine(LenetSlice("refuse", "delta: 1.0 level: 2 time_budget_minutes: 0.001"));
    ASSERT_NE(b->engine, nullptr);
    ASSERT_OK_AND_ASSIGN(EngineResult r, b->engine->Run());
    EXPECT_GT(r.reused, 0);
  }
  // Another learning rate: the records would be wrong, so the directory is refused.
  Experiment lr = LenetSlice("refuse", compression);
  lr.mutable_full_trainer()->mutable_optimizer()->set_lr(0.01);
  {
    auto b = BuildEngine(lr);
    ASSERT_NE(b->engine, nullptr);
    EXPECT_THAT(b->engine->Run(), StatusIs(absl::StatusCode::kFailedPrecondition,
                                           AllOf(HasSubstr("changed: full_trainer"),
                                                 HasSubstr("valid: another output_dir (--output_dir)"))));
  }
  // Same experiment text, other weights (a library user's own model).
  {
    Experiment same = WithDefaults(LenetSlice("refuse", compression));
    auto in = BuildEngineInputs(same, {::testing::TempDir() + "/references"});
    ASSERT_OK(in);
    ASSERT_OK_AND_ASSIGN(Model fresh, CreateZooModel("lenet5"));
    Engine engine(std::move(in->data), std::move(fresh), same, in->forward_pass, std::move(in->evaluator),
                  std::move(in->loss));
    engine.set_progress([](const std::string&) {});
    EXPECT_THAT(engine.Run(), StatusIs(absl::StatusCode::kFailedPrecondition, HasSubstr("the model's weights")));
  }
}

TEST(EngineBadInputTest, ErrorsNameTheField) {
  auto in = BuildEngineInputs(LenetSlice("errors", ""), {::testing::TempDir() + "/references"});
  ASSERT_OK(in);
  Experiment bad = LenetSlice("errors", "delta: -1");
  Engine engine(std::move(in->data), std::move(*in->model), bad, in->forward_pass, std::move(in->evaluator),
                std::move(in->loss));
  EXPECT_THAT(engine.Run(), StatusIs(absl::StatusCode::kInvalidArgument,
                                     HasSubstr("compression.delta: not a finite number >= 0, got -1")));

  // A model for 3-channel 32x32 images given Fashion-MNIST: refused before any work.
  {
    auto data = BuildEngineInputs(LenetSlice("errors", ""), {::testing::TempDir() + "/references"});
    ASSERT_OK(data);
    ASSERT_OK_AND_ASSIGN(Model rgb, CreateZooModel("lenet5", ZooOptions{.in_channels = 3, .height = 32, .width = 32}));
    Engine wrong(std::move(data->data), std::move(rgb), LenetSlice("wrong_shape", ""), data->forward_pass,
                 std::move(data->evaluator), std::move(data->loss));
    EXPECT_THAT(wrong.Run(), StatusIs(absl::StatusCode::kInvalidArgument,
                                      AllOf(HasSubstr("the model does not accept the data"),
                                            HasSubstr("model inputs: [256, 1, 28, 28] Float"),
                                            HasSubstr("expected input[256, 1, 28, 28] to have 3 channels"))));
    EXPECT_FALSE(RegularFileSize(::testing::TempDir() + "/runs/wrong_shape/state/experiment.pbtxt").ok())
        << "nothing written for a refused model";
  }

  ASSERT_OK_AND_ASSIGN(Model m, CreateZooModel("lenet5"));
  Engine no_data(EngineData{}, std::move(m), LenetSlice("errors2", ""), nullptr, nullptr, nullptr);
  EXPECT_THAT(no_data.Run(), StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("required")));
}

}  // namespace
}  // namespace slimfit
