// The engine end to end on a slice of real Fashion-MNIST (Debian's files):
// a lenet5 reference trained briefly, then the search at levels 1 and 2,
// the run directory, the never-outside-delta rule checked by re-measuring
// the written model with plain LibTorch, the reference returned when nothing
// qualifies and the time budget. Broken parts and inputs, divergence and
// SIGINT: engine_bad_input_test.cc.
#include "search/engine.h"

#include <google/protobuf/struct.pb.h>
#include <google/protobuf/util/json_util.h>
#include <signal.h>
#include <torch/csrc/jit/serialization/import.h>

#include <algorithm>
#include <cmath>
#include <map>
#include <set>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "common/files.h"
#include "common/interrupt.h"
#include "common/status_matchers.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "search/decision.h"
#include "search/engine_testing.h"
#include "search/experiment.h"
#include "search/setup.h"

namespace slimfit {
namespace {

using ::testing::AllOf;
using ::testing::HasSubstr;
using ::slimfit::testing::StatusIs;

using ::slimfit::testing::BuildEngine;
using ::slimfit::testing::MetricOfFile;

Experiment Slice(const std::string& name, const std::string& compression) {
  return ::slimfit::testing::LenetSlice(name, compression);
}

TEST(EngineTest, Level2EndToEndStaysWithinDeltaAndWritesTheRunDirectory) {
  // Objective SIZE: sizes are exact (latency under a sanitizer or a busy
  // machine is not), and int8 wins on it when it stays within delta.
  auto b = BuildEngine(Slice("level2", "delta: 2.0 level: 2 objective: SIZE candidate_epochs: 1 final_epochs: 2"));
  ASSERT_NE(b->engine, nullptr);
  ASSERT_OK_AND_ASSIGN(EngineResult r, b->engine->Run());
  const std::string dir = b->experiment.output_dir();
  for (const char* f : {"model.pt", "reference.pt", "report.json", "report.md", "report.html", "metrics.jsonl",
                        "state/experiment.pbtxt"}) {
    EXPECT_OK(RegularFileSize(dir + "/" + f)) << f;
  }
  // Searched: a sensitivity pass, candidates with several pruners, a final fine-tune.
  std::set<std::string> phases, pruners;
  for (const CandidateRecord& c : r.candidates) {
    phases.insert(c.phase());
    if (c.phase() == "candidate") pruners.insert(c.pruner());
  }
  EXPECT_TRUE(phases.count("sensitivity"));
  EXPECT_TRUE(phases.count("candidate"));
  EXPECT_EQ(pruners.size(), 3u);  // l1_filter, fpgm, taylor at the first probe
  // Level 2 for SIZE: int8 and 4-bit weights of the same model; the result is
  // no larger than the smaller of them that stays within delta.
  const CandidateRecord *int8 = nullptr, *w4 = nullptr;
  for (const CandidateRecord& c : r.candidates) {
    if (c.phase() == "int8" && absl::StartsWith(c.key(), "int8|")) int8 = &c;
    if (c.phase() == "weights4") w4 = &c;
  }
  ASSERT_NE(int8, nullptr);
  ASSERT_NE(w4, nullptr);
  EXPECT_EQ(w4->key(), absl::StrCat("w4|", int8->key().substr(5)));  // same base
  EXPECT_LT(w4->serialized_bytes(), int8->serialized_bytes());
  int64_t smallest_qualifying = r.reference.serialized_bytes();
  for (const CandidateRecord* q : {int8, w4}) {
    const bool within = q->eval_metric() >= r.reference.eval_metric() - 2.0;
    smallest_qualifying = std::min(smallest_qualifying, within ? q->serialized_bytes() : smallest_qualifying);
  }
  EXPECT_LE(r.chosen.serialized_bytes(), smallest_qualifying);

  // The written model, re-measured with plain LibTorch, is within delta.
  const double measured = MetricOfFile(b->experiment, dir + "/model.pt");
  EXPECT_NEAR(measured, r.chosen.eval_metric(), 1e-6);
  EXPECT_GE(measured, r.reference.eval_metric() - 2.0);
  EXPECT_DOUBLE_EQ(r.target, r.reference.eval_metric() - 2.0);
  // LeNet-5 on this slice compresses within delta 2: a model came back, and
  // it is smaller on every count.
  ASSERT_FALSE(r.returned_reference) << r.why << "\n" << absl::StrJoin(b->lines, "\n");
  EXPECT_LT(r.chosen.macs(), r.reference.macs());
  EXPECT_LT(r.chosen.params(), r.reference.params());
  EXPECT_LT(r.chosen.serialized_bytes(), r.reference.serialized_bytes());
  EXPECT_FALSE(r.why.empty());
  EXPECT_OK(RegularFileSize(dir + "/model_trainable.pt"));
  // The held-out test split: the reference and the result scored there, the
  // result's figure re-measured from model.pt with plain LibTorch.
  ASSERT_TRUE(r.reference.has_test_metric());
  ASSERT_TRUE(r.chosen.has_test_metric());
  EXPECT_NEAR(MetricOfFile(b->experiment, dir + "/model.pt", /*on_test=*/true), r.chosen.test_metric(), 1e-6);
  // The fine-tuning lr was tried at every default factor on the first probe
  // and every fine-tune used the winner; fine-tunes learnt from the reference.
  std::set<double> tried;
  int candidates = 0;
  for (const CandidateRecord& c : r.candidates) {
    if (c.phase() == "lr_trial") tried.insert(c.lr_factor());
    if (c.phase() == "candidate") {
      ++candidates;
      EXPECT_DOUBLE_EQ(c.lr_factor(), r.lr_factor) << c.key();
      EXPECT_THAT(c.key(), HasSubstr("|kd0.5,t4")) << "distilled from the reference";
      // Its fine-tuning epoch was timed (a final's epochs are estimated from it).
      EXPECT_GT(c.epoch_seconds(), 0) << c.key();
      EXPECT_LT(c.epoch_seconds(), c.seconds()) << c.key();
    }
  }
  EXPECT_EQ(tried, (std::set<double>{1.0, 0.3, 0.1}));
  EXPECT_TRUE(tried.count(r.lr_factor));
  EXPECT_GE(candidates, 3);
  // Reports: report.json parses as JSON and names the chosen record; the
  // plot is in the HTML; every metrics.jsonl line parses, the last is the
  // result with its test figure.
  ASSERT_OK_AND_ASSIGN(std::string json, ReadFileToString(dir + "/report.json"));
  google::protobuf::Struct report;
  ASSERT_TRUE(google::protobuf::util::JsonStringToMessage(json, &report).ok()) << json;
  EXPECT_EQ(report.fields().at("result").struct_value().fields().at("key").string_value(), r.chosen.key());
  // (JSON numbers are written with 6 significant digits: common/json.h.)
  EXPECT_NEAR(report.fields().at("result").struct_value().fields().at("test").number_value(), r.chosen.test_metric(),
              1e-4);
  // Latency: the reference and the result were timed side by side at the
  // end (search/in_turns.h); the report's figures are those, and the
  // records in state/ keep the timings they were made with.
  EXPECT_THAT(absl::StrJoin(b->lines, "\n"), HasSubstr("side by side: in turns, each its fastest of 3 rounds"));
  const auto& ref_json = report.fields().at("reference").struct_value().fields();
  EXPECT_NEAR(ref_json.at("latency_b1_ms").number_value(), r.reference.latency_b1_ms(),
              1e-5 * r.reference.latency_b1_ms());
  EXPECT_NEAR(report.fields().at("result").struct_value().fields().at("latency_bn_ms").number_value(),
              r.chosen.latency_bn_ms(), 1e-5 * r.chosen.latency_bn_ms());
  const CandidateRecord* stored_reference = nullptr;
  const CandidateRecord* stored_chosen = nullptr;
  for (const CandidateRecord& c : r.candidates) {
    if (c.key() == "reference") stored_reference = &c;
    if (c.key() == r.chosen.key()) stored_chosen = &c;
  }
  ASSERT_NE(stored_reference, nullptr);
  ASSERT_NE(stored_chosen, nullptr);
  EXPECT_GT(r.reference.latency_b1_ms(), 0);
  EXPECT_GT(r.chosen.latency_bn_ms(), 0);
  // Timed again, not copied (two timings of a model agreeing to the last bit
  // would be a coincidence of 1e-15).
  EXPECT_NE(r.reference.latency_bn_ms(), stored_reference->latency_bn_ms());
  EXPECT_NE(r.chosen.latency_bn_ms(), stored_chosen->latency_bn_ms());
  ASSERT_OK_AND_ASSIGN(std::string html, ReadFileToString(dir + "/report.html"));
  EXPECT_THAT(html, HasSubstr("<svg"));
  ASSERT_OK_AND_ASSIGN(std::string lines, ReadFileToString(dir + "/metrics.jsonl"));
  std::vector<std::string> split = absl::StrSplit(lines, '\n', absl::SkipEmpty());
  ASSERT_GE(split.size(), 5u);
  google::protobuf::Struct line;
  for (const std::string& l : split) EXPECT_TRUE(google::protobuf::util::JsonStringToMessage(l, &line).ok()) << l;
  ASSERT_TRUE(google::protobuf::util::JsonStringToMessage(split.back(), &line).ok());
  EXPECT_EQ(line.fields().at("event").string_value(), "result");
  EXPECT_NEAR(line.fields().at("test").number_value(), r.chosen.test_metric(), 1e-4);
  EXPECT_THAT(absl::StrJoin(b->lines, "\n"), HasSubstr("on test (reported beside val"));
  EXPECT_THAT(absl::StrJoin(b->lines, "\n"), HasSubstr("target accuracy >="));

  // The same call again: everything comes from state/, nothing is recomputed.
  auto again = BuildEngine(Slice("level2", "delta: 2.0 level: 2 objective: SIZE candidate_epochs: 1 final_epochs: 2"));
  ASSERT_OK_AND_ASSIGN(EngineResult r2, again->engine->Run());
  EXPECT_EQ(r2.chosen.key(), r.chosen.key());
  EXPECT_EQ(r2.candidates.size(), r.candidates.size());
  EXPECT_GT(r2.reused, 0);
}

// A user's evaluation function: "score" is the parameter count, so every
// pruned model is worse and, with delta 0, nothing qualifies.
class ParamsEvaluator : public EvaluationFunction {
 public:
  absl::StatusOr<Metrics> Apply(Model& model, DataLoader&) override {
    double n = 0;
    for (const auto& [name, p] : model.NamedParameters()) n += p.numel();
    if (n == 0) n = 61706;  // frozen (no parameters left): as the reference
    Metrics m;
    m.Set("score", n, /*higher_is_better=*/true);
    return m;
  }
};

TEST(EngineTest, ReturnsTheReferenceWhenNothingQualifies) {
  Experiment e = Slice("nothing", "delta: 0 level: 1 candidate_epochs: 1 final_epochs: 1");
  e.mutable_evaluation()->set_eval_key("score");
  e = WithDefaults(e);
  auto in = BuildEngineInputs(Slice("nothing", ""), {::testing::TempDir() + "/references"});
  ASSERT_OK(in);
  Engine engine(std::move(in->data), std::move(*in->model), e, in->forward_pass, std::make_unique<ParamsEvaluator>(),
                std::move(in->loss));
  engine.set_progress([](const std::string&) {});
  ASSERT_OK_AND_ASSIGN(EngineResult r, engine.Run());
  EXPECT_TRUE(r.returned_reference);
  EXPECT_EQ(r.chosen.key(), "reference");
  EXPECT_THAT(r.why, HasSubstr("no candidate stayed within delta 0"));
  ASSERT_OK_AND_ASSIGN(Model written, Model::Load(e.output_dir() + "/model.pt"));
  EXPECT_EQ(written.NamedParameters().size(), 10u);  // lenet5 as given: 5 layers, weight + bias
}

// A user's evaluation function that scores 95 on the first loader it is
// given (eval_split: the reference is measured there first) and 80 on any
// other: a reference that "memorised" its scoring split.
class MemorisedEvaluator : public EvaluationFunction {
 public:
  absl::StatusOr<Metrics> Apply(Model&, DataLoader& loader) override {
    if (first_ == nullptr) first_ = &loader;
    Metrics m;
    m.Set("accuracy", &loader == first_ ? 95.0 : 80.0, /*higher_is_better=*/true);
    return m;
  }

 private:
  const DataLoader* first_ = nullptr;
};

TEST(EngineTest, WarnsWhenTheReferenceScoresMuchHigherOnEvalSplitThanOnTest) {
  Experiment e = WithDefaults(Slice("memorised", "delta: 1.0 time_budget_minutes: 0.001"));
  auto in = BuildEngineInputs(e, {::testing::TempDir() + "/references"});
  ASSERT_OK(in);
  ASSERT_NE(in->data.test, nullptr) << "Fashion-MNIST has a test split";
  Engine engine(std::move(in->data), std::move(*in->model), e, in->forward_pass,
                std::make_unique<MemorisedEvaluator>(), std::move(in->loss));
  std::vector<std::string> lines;
  engine.set_progress([&](const std::string& l) { lines.push_back(l); });
  ASSERT_OK_AND_ASSIGN(EngineResult r, engine.Run());
  EXPECT_DOUBLE_EQ(r.reference.eval_metric(), 95.0);
  EXPECT_DOUBLE_EQ(r.reference.test_metric(), 80.0);
  EXPECT_THAT(r.warning, AllOf(HasSubstr("scores 95 on val but 80 on test"),
                               HasSubstr("evaluation.eval_split: \"test\"")));
  EXPECT_THAT(absl::StrJoin(lines, "\n"), HasSubstr("warning: the reference scores 95"));
  ASSERT_OK_AND_ASSIGN(std::string md, ReadFileToString(e.output_dir() + "/report.md"));
  EXPECT_THAT(md, HasSubstr("**Warning:** the reference scores 95"));
}

// Scores 90 for a model with parameters (fp32, trainable, QAT) and 0 for
// one without (int8 TorchScript keeps its weights in packed params): every
// int8 form misses any target.
class Int8MissesEvaluator : public EvaluationFunction {
 public:
  absl::StatusOr<Metrics> Apply(Model& model, DataLoader&) override {
    Metrics m;
    m.Set("accuracy", model.NamedParameters().empty() ? 0.0 : 90.0, /*higher_is_better=*/true);
    return m;
  }
};

// Every int8 model misses: PTQ, then one epoch of QAT, then (objective
// SIZE: int8 of a larger model can still be smaller than the chosen fp32
// one) int8 of the models decision.h's Int8Fallbacks names, in its order.
TEST(EngineTest, WhenPostTrainingInt8MissesQuantizationAwareTrainingAndOtherModelsAreTried) {
  // Objective SIZE: the decision must not hang on timings. Mixed precision
  // off: every layer int8, so int8 shrinks a model (with every layer kept
  // fp32 it would not, and nothing larger could win).
  Experiment e = WithDefaults(Slice("qat",
                                    "delta: 1.0 level: 2 objective: SIZE candidate_epochs: 1 final_epochs: 1 "
                                    "quantization { mixed_precision { max_drop: 0 } }"));
  auto in = BuildEngineInputs(e, {::testing::TempDir() + "/references"});
  ASSERT_OK(in);
  Engine engine(std::move(in->data), std::move(*in->model), e, in->forward_pass,
                std::make_unique<Int8MissesEvaluator>(), std::move(in->loss));
  std::vector<std::string> lines;
  engine.set_progress([&](const std::string& l) { lines.push_back(l); });
  ASSERT_OK_AND_ASSIGN(EngineResult r, engine.Run());
  std::vector<std::string> int8_keys;
  for (const CandidateRecord& c : r.candidates) {
    if (c.phase() == "int8") int8_keys.push_back(c.key());
  }
  ASSERT_GE(int8_keys.size(), 2u) << absl::StrJoin(lines, "\n");
  ASSERT_TRUE(absl::StartsWith(int8_keys[0], "int8|")) << int8_keys[0];
  EXPECT_TRUE(absl::StartsWith(int8_keys[1], "int8_qat1|kd0.5,t4|")) << int8_keys[1];
  EXPECT_THAT(absl::StrJoin(lines, "\n"), HasSubstr("1 epoch of quantization-aware training"));
  // The fallbacks: derived from the records the engine had when PTQ missed.
  const std::string chosen_key = int8_keys[0].substr(std::string("int8|").size());
  const CandidateRecord *chosen = nullptr, *missed = nullptr;
  std::vector<CandidateRecord> before;  // what was stored before the fallbacks
  for (const CandidateRecord& c : r.candidates) {
    if (c.key() == chosen_key) chosen = &c;
    if (c.key() == int8_keys[0]) missed = &c;
    if (c.phase() != "int8" && c.phase() != "weights4") before.push_back(c);
  }
  ASSERT_NE(chosen, nullptr);
  ASSERT_NE(missed, nullptr);
  const Int8FallbackInputs fallback{&r.reference, chosen, missed, 1.0, true, CompressionConfig::SIZE, 2};
  std::vector<std::string> expected;
  for (const CandidateRecord& f : Int8Fallbacks(fallback, before)) expected.push_back(absl::StrCat("int8|", f.key()));
  EXPECT_FALSE(expected.empty()) << "every fp32 model scores 90, and a larger one's int8 is still smaller";
  EXPECT_EQ(std::vector<std::string>(int8_keys.begin() + 2, int8_keys.end()), expected);
  EXPECT_THAT(absl::StrJoin(lines, "\n"), HasSubstr("int8 of another qualifying model instead"));
  EXPECT_FALSE(r.returned_reference);
  EXPECT_NE(r.chosen.phase(), "int8") << "neither int8 form qualifies";
}

// The sensitivity records' points timed for the latency-aware allocation:
// group path → how many.
std::map<std::string, int> TimedPoints(const EngineResult& r, int* analysed_groups) {
  std::map<std::string, int> timed;
  std::set<std::string> analysed;
  for (const CandidateRecord& c : r.candidates) {
    if (c.phase() != "sensitivity") continue;
    EXPECT_EQ(c.ratios_size(), 1) << c.key();
    if (c.ratios_size() != 1) continue;
    const auto& [path, ratio] = *c.ratios().begin();
    analysed.insert(path);
    const bool is_timed = absl::EndsWith(c.key(), "|timed");
    EXPECT_EQ(is_timed, c.latency_vs_reference() > 0) << c.key();
    timed[path] += is_timed;
    // The largest default ratio up to 0.8 (LeNet-5 has no residual block);
    // timed beside the reference, a cut is not 10x slower.
    if (is_timed) {
      EXPECT_DOUBLE_EQ(ratio, 0.75) << c.key();
    }
    EXPECT_LT(c.latency_vs_reference(), 10) << c.key();
  }
  *analysed_groups = static_cast<int>(analysed.size());
  return timed;
}

// The sensitivity pass goes coarse to fine: every group's first point (its
// largest ratio up to 0.8, the timed one) before any group's second, so a
// pass cut short leaves every group a curve. Interrupted as the second round
// starts, each analysed group has exactly that one point, and they are all
// of LeNet-5's groups (group by group, only the first groups had points).
TEST(EngineTest, SensitivityScoresEveryGroupsFirstPointBeforeAnyOther) {
  auto b = BuildEngine(Slice("coarse_first",
                             "delta: 2.0 level: 1 objective: LATENCY candidate_epochs: 1 "
                             "final_epochs: 0 tuning { probes: 1 }"));
  ASSERT_NE(b->engine, nullptr);
  int first_round_lines = 0, announced = -1;
  b->engine->set_progress([&](const std::string& l) {
    // "[sensitivity] N prunable groups x 3 ratios, ..."
    if (absl::StartsWith(l, "[sensitivity] ")) {
      const std::vector<std::string> words = absl::StrSplit(l, ' ');
      EXPECT_TRUE(words.size() > 1 && absl::SimpleAtoi(words[1], &announced)) << l;
    }
    if (absl::StrContains(l, "first round: each group at its largest ratio")) ++first_round_lines;
    if (absl::StrContains(l, "the other ratios, a round each")) SetInterruptForTesting(SIGINT);
  });
  absl::StatusOr<EngineResult> r = b->engine->Run();
  SetInterruptForTesting(0);
  ASSERT_OK(r);
  EXPECT_TRUE(r->interrupted) << "the second round never started";
  EXPECT_EQ(first_round_lines, 1);
  int analysed = 0;
  const std::map<std::string, int> timed = TimedPoints(*r, &analysed);
  std::map<std::string, int> points;
  for (const CandidateRecord& c : r->candidates) {
    if (c.phase() != "sensitivity") continue;
    ASSERT_EQ(c.ratios_size(), 1) << c.key();
    EXPECT_DOUBLE_EQ(c.ratios().begin()->second, 0.75) << c.key();
    ++points[c.ratios().begin()->first];
  }
  EXPECT_GE(announced, 2);
  EXPECT_EQ(static_cast<int>(points.size()), announced) << "every group announced has its first point";
  for (const auto& [path, n] : points) EXPECT_EQ(n, 1) << path;
  EXPECT_EQ(static_cast<int>(timed.size()), analysed);
}

// A group within delta at its largest default ratio (0.75) gets one more
// sensitivity point at 0.9, and only such a group: checked at delta 2 (the
// rule, whichever groups it picks) and at delta 100 (every group picked, so
// the check above is not vacuous).
TEST(EngineTest, GroupsWithinDeltaAtTheirLargestRatioGetAPointAt09) {
  std::map<double, std::pair<size_t, size_t>> picked;  // delta -> (groups at 0.9, groups)
  for (const double delta : {2.0, 100.0}) {
    SCOPED_TRACE(delta);
    auto b = BuildEngine(Slice(absl::StrCat("flat_", delta),
                               absl::StrCat("delta: ", delta,
                                            " level: 1 objective: MACS candidate_epochs: 1 final_epochs: 0 "
                                            "tuning { probes: 1 }")));
    ASSERT_NE(b->engine, nullptr);
    ASSERT_OK_AND_ASSIGN(EngineResult r, b->engine->Run());
    // The sensitivity points' reference: the sample's, else the whole split's.
    double reference = r.reference.eval_metric();
    for (const CandidateRecord& c : r.candidates) {
      if (c.phase() == "sensitivity_samples") reference = c.eval_metric();
    }
    std::map<std::string, double> drop_at_075;
    std::set<std::string> at_09;
    for (const CandidateRecord& c : r.candidates) {
      if (c.phase() != "sensitivity") continue;
      ASSERT_EQ(c.ratios_size(), 1) << c.key();
      const auto& [path, ratio] = *c.ratios().begin();
      if (std::abs(ratio - 0.75) < 1e-9) drop_at_075[path] = reference - c.eval_metric();
      if (std::abs(ratio - 0.9) < 1e-9) at_09.insert(path);
    }
    ASSERT_GE(drop_at_075.size(), 2u);
    for (const auto& [path, drop] : drop_at_075) {
      EXPECT_EQ(at_09.count(path), drop <= delta ? 1u : 0u) << path << " lost " << drop << " at 0.75";
    }
    picked[delta] = {at_09.size(), drop_at_075.size()};
  }
  // No accuracy drops more than 100 points: every group is picked.
  EXPECT_EQ(picked[100.0].first, picked[100.0].second);
}

// Objective LATENCY: every allocation's widths are measured once (a
// "widths" record with the variants' latency) and each candidate trains
// exactly the widths that record chose; round_to 1 and objective SIZE
// never round. The latency-aware allocation's table: under LATENCY every
// analysed group has exactly one timed sensitivity point; under SIZE none.
TEST(EngineTest, CandidatesTrainTheWidthsMeasuredForTheirAllocation) {
  // Multiples 3 and 7: LeNet-5's cut counts are not all multiples of both.
  auto b = BuildEngine(Slice("widths", "delta: 2.0 level: 1 objective: LATENCY candidate_epochs: 1 final_epochs: 0 "
                                       "tuning { probes: 2 round_to: 3 round_to: 7 }"));
  ASSERT_NE(b->engine, nullptr);
  ASSERT_OK_AND_ASSIGN(EngineResult r, b->engine->Run());
  std::vector<std::map<std::string, double>> chosen;
  int measured = 0;
  for (const CandidateRecord& c : r.candidates) {
    if (c.phase() != "widths") continue;
    chosen.emplace_back(c.ratios().begin(), c.ratios().end());
    const bool already = absl::StrContains(c.description(), "already multiples");
    // Either nothing to round, or every variant timed and named.
    EXPECT_EQ(already, c.latency_b1_ms() == 0) << c.description();
    if (!already) {
      ++measured;
      EXPECT_THAT(c.description(), AllOf(HasSubstr("as allocated "), HasSubstr("x3 "), HasSubstr("x7 ")));
    }
  }
  EXPECT_GE(measured, 1);
  int candidates = 0;
  for (const CandidateRecord& c : r.candidates) {
    if (c.phase() != "candidate") continue;
    ++candidates;
    const std::map<std::string, double> trained(c.ratios().begin(), c.ratios().end());
    EXPECT_NE(std::find(chosen.begin(), chosen.end(), trained), chosen.end())
        << c.key() << ": trained widths no widths record chose";
  }
  EXPECT_GE(candidates, 2);
  EXPECT_GE(chosen.size(), 2u);  // one per allocation (probes: 2)
  int analysed = 0;
  const std::map<std::string, int> timed = TimedPoints(r, &analysed);
  EXPECT_GE(analysed, 2);
  EXPECT_EQ(static_cast<int>(timed.size()), analysed);
  for (const auto& [path, n] : timed) EXPECT_EQ(n, 1) << path;
  const std::vector<std::pair<std::string, std::string>> never = {
      {"widths_off", "delta: 2.0 level: 1 objective: LATENCY candidate_epochs: 1 final_epochs: 0 "
                     "tuning { probes: 1 round_to: 1 }"},
      {"widths_size", "delta: 2.0 level: 1 objective: SIZE candidate_epochs: 1 final_epochs: 0 tuning { probes: 1 }"}};
  for (const auto& [name, compression] : never) {
    auto n = BuildEngine(Slice(name, compression));
    ASSERT_NE(n->engine, nullptr);
    ASSERT_OK_AND_ASSIGN(EngineResult nr, n->engine->Run());
    int made = 0;
    for (const CandidateRecord& c : nr.candidates) {
      EXPECT_NE(c.phase(), "widths") << name;
      made += c.phase() == "candidate";
    }
    EXPECT_GE(made, 1) << name;
    int groups = 0, timed_points = 0;
    for (const auto& [path, n] : TimedPoints(nr, &groups)) timed_points += n;
    EXPECT_GE(groups, 2) << name;
    EXPECT_EQ(timed_points, absl::StrContains(compression, "LATENCY") ? groups : 0) << name;
  }
}

// tuning.sensitivity_samples: the sensitivity pass scores on a seeded
// sample of eval_split, against the reference's metric on the same rows
// (re-measured here with plain LibTorch), and the decision is a record a
// resumed run reuses. Candidates are still scored on the whole split.
// Objective MACS: a latency objective could, on a busy machine, time the
// pruned LeNet-5 slower than the reference and return it.
TEST(EngineTest, SensitivityScoresOnASampleOfTheEvalSplitWhenAsked) {
  const Experiment e = WithDefaults(Slice("sampled",
                                          "delta: 2.0 level: 1 objective: MACS candidate_epochs: 1 final_epochs: 0 "
                                          "tuning { probes: 1 sensitivity_samples: 200 }"));
  auto b = BuildEngine(e);
  ASSERT_NE(b->engine, nullptr);
  ASSERT_OK_AND_ASSIGN(EngineResult r, b->engine->Run());
  const CandidateRecord* decision = nullptr;
  int points = 0;
  for (const CandidateRecord& c : r.candidates) {
    if (c.phase() == "sensitivity_samples") decision = &c;
    if (c.phase() != "sensitivity") continue;
    ++points;
    EXPECT_EQ(c.eval_samples(), 200) << c.key();
    EXPECT_TRUE(absl::EndsWith(c.key(), "|n=200")) << c.key();
  }
  EXPECT_GE(points, 3);
  ASSERT_NE(decision, nullptr);
  EXPECT_EQ(decision->eval_samples(), 200);
  EXPECT_THAT(decision->description(), HasSubstr("sample of 200 of 600 eval samples"));
  EXPECT_THAT(absl::StrJoin(b->lines, "\n"), HasSubstr("sample of 200 of 600"));
  {
    ASSERT_OK_AND_ASSIGN(EngineInputs in, BuildEngineInputs(e, {::testing::TempDir() + "/references"}));
    ASSERT_OK_AND_ASSIGN(std::unique_ptr<DataLoader> sample, in.data.eval_sample(200, e.seed()));
    EXPECT_EQ(sample->num_samples(), 200);
    Model plain(torch::jit::load(e.output_dir() + "/reference.pt"));
    ASSERT_OK_AND_ASSIGN(Metrics m, in.evaluator->Apply(plain, *sample));
    ASSERT_OK_AND_ASSIGN(Metric acc, m.Get(e.evaluation().eval_key()));
    EXPECT_NEAR(decision->eval_metric(), acc.value, 1e-6);
  }
  // Candidates and the result are scored on the whole split.
  ASSERT_FALSE(r.returned_reference) << r.why;
  EXPECT_EQ(r.chosen.eval_samples(), 0);
  EXPECT_LT(r.chosen.macs(), r.reference.macs());
  EXPECT_GE(MetricOfFile(e, e.output_dir() + "/model.pt"), r.reference.eval_metric() - 2.0 - 1e-6);
  // Resumed: the decision and every point are reused, nothing re-scored.
  auto again = BuildEngine(e);
  ASSERT_NE(again->engine, nullptr);
  ASSERT_OK_AND_ASSIGN(EngineResult r2, again->engine->Run());
  EXPECT_EQ(r2.candidates.size(), r.candidates.size());
  EXPECT_GE(r2.reused, points + 1);
}

TEST(EngineTest, TimeBudgetStopsTheSearch) {
  auto b = BuildEngine(Slice("budget", "delta: 2.0 time_budget_minutes: 0.001 final_epochs: 3"));
  ASSERT_NE(b->engine, nullptr);
  ASSERT_OK_AND_ASSIGN(EngineResult r, b->engine->Run());
  EXPECT_THAT(absl::StrJoin(b->lines, "\n"), HasSubstr("time budget"));
  for (const CandidateRecord& c : r.candidates) EXPECT_NE(c.phase(), "final") << c.key();
  EXPECT_OK(RegularFileSize(b->experiment.output_dir() + "/model.pt"));
}

}  // namespace
}  // namespace slimfit
