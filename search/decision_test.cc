// Decide's rules by table: each row is a situation a search can end in and
// the model it must return. Expected kinds follow from the rules in
// decision.h; the numbers are chosen so that exactly one rule decides.
#include "search/decision.h"

#include <optional>
#include <string>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace slimfit {
namespace {

using ::testing::HasSubstr;
using Kind = Decision::Kind;

CandidateRecord Rec(const std::string& key, double metric, int64_t bytes, int64_t macs, double b1, double bn,
                    bool qualifies_flag = true) {
  CandidateRecord r;
  r.set_key(key);
  r.set_eval_metric(metric);
  r.set_serialized_bytes(bytes);
  r.set_macs(macs);
  r.set_latency_b1_ms(b1);
  r.set_latency_bn_ms(bn);
  r.set_qualifies(qualifies_flag);
  return r;
}

const CandidateRecord kRef = Rec("reference", 90.0, 1000, 1000, 1.0, 10.0);

CandidateRecord W4(CandidateRecord r) {
  r.set_phase("weights4");
  return r;
}

struct Row {
  std::string name;
  std::optional<CandidateRecord> fp32, int8;
  double delta;
  CompressionConfig::Objective objective;
  Kind want;
  std::string why_has;
};

TEST(DecideTest, Table) {
  const std::vector<Row> rows = {
      {"nothing scored", std::nullopt, std::nullopt, 1.0, CompressionConfig::LATENCY, Kind::kReference,
       "no candidate stayed within delta 1"},
      {"fp32 within delta and faster", Rec("p", 89.5, 400, 300, 0.5, 4.0), std::nullopt, 1.0,
       CompressionConfig::LATENCY, Kind::kFp32, "best on the objective"},
      {"fp32 exactly at the target counts", Rec("p", 89.0, 400, 300, 0.5, 4.0), std::nullopt, 1.0,
       CompressionConfig::LATENCY, Kind::kFp32, "best on the objective"},
      {"fp32 just outside delta", Rec("p", 88.99, 400, 300, 0.5, 4.0), std::nullopt, 1.0,
       CompressionConfig::LATENCY, Kind::kReference, "no candidate stayed within delta"},
      {"a record's qualifies flag is not trusted", Rec("p", 80.0, 400, 300, 0.5, 4.0, /*flag=*/true),
       std::nullopt, 1.0, CompressionConfig::LATENCY, Kind::kReference, "no candidate stayed within delta"},
      {"fp32 within delta but slower than the reference", Rec("p", 90.0, 400, 300, 1.2, 11.0), std::nullopt, 1.0,
       CompressionConfig::LATENCY, Kind::kReference, "beat the reference on the objective"},
      {"same latency as the reference is not better", Rec("p", 90.0, 400, 300, 1.0, 10.0), std::nullopt, 1.0,
       CompressionConfig::LATENCY, Kind::kReference, "beat the reference on the objective"},
      {"int8 better than fp32", Rec("p", 89.5, 400, 300, 0.5, 4.0), Rec("q", 89.4, 100, 300, 0.2, 2.0), 1.0,
       CompressionConfig::LATENCY, Kind::kInt8, "int8 on the pruned model"},
      {"int8 misses, fp32 kept", Rec("p", 89.5, 400, 300, 0.5, 4.0), Rec("q", 88.0, 100, 300, 0.2, 2.0), 1.0,
       CompressionConfig::LATENCY, Kind::kFp32, "missed the target"},
      {"int8 slower than fp32, fp32 kept", Rec("p", 89.5, 400, 300, 0.5, 4.0), Rec("q", 89.5, 100, 300, 0.6, 5.0),
       1.0, CompressionConfig::LATENCY, Kind::kFp32, "no better on the objective"},
      {"int8 slower but smaller wins on SIZE", Rec("p", 89.5, 400, 300, 0.5, 4.0),
       Rec("q", 89.5, 100, 300, 0.6, 5.0), 1.0, CompressionConfig::SIZE, Kind::kInt8, "int8 on the pruned model"},
      {"4-bit weights (phase weights4) say so", Rec("p", 89.5, 400, 300, 0.5, 4.0), W4(Rec("q", 89.3, 60, 300, 0.6, 5.0)),
       1.0, CompressionConfig::SIZE, Kind::kInt8, "4-bit weights on the pruned model"},
      {"int8 of the reference when no pruned model", std::nullopt, Rec("q", 89.8, 250, 1000, 0.3, 3.0), 1.0,
       CompressionConfig::SIZE, Kind::kInt8, "int8 of the reference"},
      {"int8 counts though its fp32 base does not", Rec("p", 88.5, 400, 300, 0.5, 4.0),
       Rec("q", 89.2, 100, 300, 0.2, 2.0), 1.0, CompressionConfig::MACS, Kind::kInt8, "does not count on its own"},
      {"MACS objective: the same MACs as the reference is no gain", Rec("p", 90.0, 400, 1000, 0.5, 4.0),
       std::nullopt, 1.0, CompressionConfig::MACS, Kind::kReference, "beat the reference"},
      {"delta 0 keeps only models at least as good", Rec("p", 90.0, 400, 300, 0.5, 4.0), std::nullopt, 0.0,
       CompressionConfig::LATENCY, Kind::kFp32, "best on the objective"},
  };
  for (const Row& row : rows) {
    SCOPED_TRACE(row.name);
    DecisionInputs in;
    in.reference = &kRef;
    in.fp32 = row.fp32 ? &*row.fp32 : nullptr;
    in.int8 = row.int8 ? &*row.int8 : nullptr;
    in.delta = row.delta;
    in.objective = row.objective;
    const Decision d = Decide(in);
    EXPECT_EQ(d.kind, row.want);
    EXPECT_THAT(d.why, HasSubstr(row.why_has));
    const std::string want_key = row.want == Kind::kReference ? "reference" : row.want == Kind::kFp32 ? "p" : "q";
    EXPECT_EQ(d.chosen.key(), want_key);
  }
}

// Lower-is-better metrics (a loss, an error rate): the drop is the rise.
TEST(DecideTest, LowerIsBetterMetric) {
  const CandidateRecord ref = Rec("reference", 0.30, 1000, 1000, 1.0, 10.0);
  const CandidateRecord ok = Rec("p", 0.39, 400, 300, 0.5, 4.0);
  const CandidateRecord bad = Rec("p", 0.41, 400, 300, 0.5, 4.0);
  DecisionInputs in{&ref, &ok, nullptr, 0.1, /*higher_is_better=*/false, CompressionConfig::MACS};
  EXPECT_EQ(Decide(in).kind, Kind::kFp32);
  in.fp32 = &bad;
  const Decision d = Decide(in);
  EXPECT_EQ(d.kind, Kind::kReference);
  EXPECT_THAT(d.why, HasSubstr("target 0.4)"));
}

TEST(DecideTest, OnlyTheDefaultAndLatencyAreLatencyObjectives) {
  EXPECT_TRUE(IsLatencyObjective(CompressionConfig::LATENCY));
  EXPECT_TRUE(IsLatencyObjective(CompressionConfig::OBJECTIVE_DEFAULT));
  EXPECT_FALSE(IsLatencyObjective(CompressionConfig::SIZE));
  EXPECT_FALSE(IsLatencyObjective(CompressionConfig::MACS));
}

TEST(DecideTest, ObjectiveValues) {
  const CandidateRecord r = Rec("p", 0, 400, 300, 0.5, 2.5);
  EXPECT_DOUBLE_EQ(ObjectiveValue(CompressionConfig::SIZE, kRef, r), 400);
  EXPECT_DOUBLE_EQ(ObjectiveValue(CompressionConfig::MACS, kRef, r), 300);
  // (0.5 / 1.0 + 2.5 / 10.0) / 2
  EXPECT_DOUBLE_EQ(ObjectiveValue(CompressionConfig::LATENCY, kRef, r), 0.375);
  EXPECT_DOUBLE_EQ(ObjectiveValue(CompressionConfig::LATENCY, kRef, kRef), 1.0);
  EXPECT_DOUBLE_EQ(MetricDrop(90, 89, true), 1);
  EXPECT_DOUBLE_EQ(MetricDrop(0.3, 0.4, false), 0.4 - 0.3);
}

CandidateRecord Stored(CandidateRecord r, const std::string& phase) {
  r.set_phase(phase);
  r.set_model_file(r.key() + ".pt");
  return r;
}

std::vector<std::string> Keys(const std::vector<CandidateRecord>& records) {
  std::vector<std::string> keys;
  for (const CandidateRecord& r : records) keys.push_back(r.key());
  return keys;
}

// Level 2's fallbacks when int8 of the chosen model missed delta. The chosen
// model: 89.4 (drop 0.6), 300 bytes; its int8 took it to 90 bytes (0.3x).
TEST(ChooseLrFactorTest, TheLargestLrWithinTheTieOfTheBest) {
  // The evening default run's trials against its 93.12 reference
  // (docs/results/compress_default_gradual_15min_evening_2026-12-03.log):
  // lr x1 at 90.65, x0.3 at 92.00, x0.1 at 92.05.
  const std::vector<LrTrial> evening = {{1.0, 2.47, false}, {0.3, 1.12, false}, {0.1, 1.07, false}};
  EXPECT_DOUBLE_EQ(ChooseLrFactor(evening, 0.25), 0.3);
  EXPECT_DOUBLE_EQ(ChooseLrFactor(evening, 0), 0.1);    // no tie: the best alone
  EXPECT_DOUBLE_EQ(ChooseLrFactor(evening, 2.0), 1.0);  // all tied: the largest
  // A clear winner stays the winner, wherever it is in the list.
  EXPECT_DOUBLE_EQ(ChooseLrFactor({{1.0, 0.9, false}, {0.3, 0.2, false}, {0.1, 0.8, false}}, 0.25), 0.3);
  EXPECT_DOUBLE_EQ(ChooseLrFactor({{0.1, 0.2, false}, {0.3, 0.9, false}, {1.0, 0.6, false}}, 0.25), 0.1);
  // Lower-is-better metrics give negative drops when better: the same rule.
  EXPECT_DOUBLE_EQ(ChooseLrFactor({{1.0, -0.4, false}, {0.3, -0.5, false}}, 0.25), 1.0);
}

TEST(ChooseLrFactorTest, DivergedTrialsNeverCount) {
  // A diverged trial's drop is whatever the engine stored; it must not win
  // nor widen the tie even when its stored drop looks good.
  EXPECT_DOUBLE_EQ(ChooseLrFactor({{1.0, -100, true}, {0.3, 0.7, false}, {0.1, 0.6, false}}, 0.25), 0.3);
  EXPECT_DOUBLE_EQ(ChooseLrFactor({{1.0, 0.6, true}, {0.3, 0.7, true}, {0.1, 0.6, true}}, 0.25), 0.1);
  EXPECT_DOUBLE_EQ(ChooseLrFactor({}, 0.25), 1.0);
}

TEST(Int8FallbacksTest, MoreRoomAndAPredictedWinBestFirst) {
  const CandidateRecord chosen = Stored(Rec("chosen", 89.4, 300, 200, 0.3, 3.0), "final");
  const CandidateRecord int8 = Rec("int8|chosen", 85.0, 90, 200, 0.2, 2.0);
  const std::vector<CandidateRecord> records = {
      chosen,
      // 0.3 x 600 = 180 < 300: a predicted win, room 0.2.
      Stored(Rec("a", 89.8, 600, 400, 0.5, 5.0), "final"),
      // 0.3 x 500 = 150: the best prediction, room 0.5.
      Stored(Rec("b", 89.5, 500, 350, 0.5, 5.0), "candidate"),
      // Less room than the chosen (drop 0.8): int8 already failed with more.
      Stored(Rec("less_room", 89.2, 400, 300, 0.4, 4.0), "final"),
      // Outside delta.
      Stored(Rec("outside", 88.0, 350, 250, 0.3, 3.0), "candidate"),
      // 0.3 x 1100 > 300: even its int8 would be larger than the chosen fp32.
      Stored(Rec("too_big", 90.0, 1100, 900, 1.0, 10.0), "final"),
      // No stored model; a quantized record; a sensitivity point.
      Rec("no_file", 90.0, 500, 350, 0.5, 5.0),
      Stored(Rec("int8|a", 90.0, 150, 400, 0.2, 2.0), "int8"),
      Stored(Rec("sensitivity|x", 90.0, 500, 350, 0.5, 5.0), "sensitivity"),
  };
  Int8FallbackInputs in{&kRef, &chosen, &int8, 1.0, true, CompressionConfig::SIZE, 5};
  // The reference (1000 bytes x 0.3 = 300) does not beat 300.
  EXPECT_THAT(Keys(Int8Fallbacks(in, records)), ::testing::ElementsAre("b", "a"));
  in.max = 1;
  EXPECT_THAT(Keys(Int8Fallbacks(in, records)), ::testing::ElementsAre("b"));
  in.max = 0;
  EXPECT_TRUE(Int8Fallbacks(in, records).empty());
}

TEST(Int8FallbacksTest, TheReferenceAndOneModelPerShape) {
  const CandidateRecord chosen = Stored(Rec("chosen", 89.4, 300, 200, 0.8, 8.0), "final");
  // Latency: int8 made the chosen model 4x faster (0.8 -> 0.2 of the reference).
  const CandidateRecord int8 = Rec("int8|chosen", 85.0, 90, 200, 0.2, 2.0);
  const CandidateRecord candidate = Stored(Rec("cand", 89.6, 310, 210, 0.9, 9.0), "candidate");
  const CandidateRecord final_of_it = Stored(Rec("final", 89.9, 310, 210, 0.9, 9.0), "final");
  Int8FallbackInputs in{&kRef, &chosen, &int8, 1.0, true, CompressionConfig::LATENCY, 5};
  // The same shape (MACs and parameters) once, with the most room; then the
  // reference (1.0 x 0.25 = 0.25 < 0.8).
  EXPECT_THAT(Keys(Int8Fallbacks(in, {candidate, final_of_it, chosen})), ::testing::ElementsAre("final", "reference"));
  // MACS: int8 leaves MACs as they are, so nothing less pruned can win.
  in.objective = CompressionConfig::MACS;
  EXPECT_TRUE(Int8Fallbacks(in, {candidate, final_of_it, chosen}).empty());
  // Lower-is-better: a drop is a rise.
  const CandidateRecord ref = Rec("reference", 0.30, 1000, 1000, 1.0, 10.0);
  const CandidateRecord loss_chosen = Stored(Rec("chosen", 0.36, 300, 200, 0.8, 8.0), "final");
  const CandidateRecord loss_int8 = Rec("int8|chosen", 0.5, 90, 200, 0.2, 2.0);
  Int8FallbackInputs lower{&ref, &loss_chosen, &loss_int8, 0.1, false, CompressionConfig::SIZE, 5};
  const std::vector<CandidateRecord> loss_records = {Stored(Rec("more_room", 0.33, 600, 400, 0.5, 5.0), "final"),
                                                     Stored(Rec("less_room", 0.38, 500, 300, 0.5, 5.0), "final")};
  EXPECT_THAT(Keys(Int8Fallbacks(lower, loss_records)), ::testing::ElementsAre("more_room"));
}

}  // namespace
}  // namespace slimfit
