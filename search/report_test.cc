#include "search/report.h"

#include <google/protobuf/struct.pb.h>
#include <google/protobuf/util/json_util.h>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace slimfit {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;

CandidateRecord Record(const std::string& key, const std::string& phase, double metric, int64_t macs, double b1,
                       double bn, int64_t bytes) {
  CandidateRecord r;
  r.set_key(key);
  r.set_phase(phase);
  r.set_description(key + " <with \"quotes\">");
  r.set_eval_metric(metric);
  r.set_macs(macs);
  r.set_params(macs / 100);
  r.set_latency_b1_ms(b1);
  r.set_latency_bn_ms(bn);
  r.set_serialized_bytes(bytes);
  return r;
}

RunReport Example() {
  RunReport r;
  r.name = "demo";
  r.eval_key = "accuracy";
  r.eval_split = "val";
  r.delta = 1;
  r.target = 93.2;
  r.objective = "LATENCY";
  r.reference = Record("reference", "reference", 94.2, 8000000, 1.0, 20.0, 800000);
  r.candidates = {r.reference, Record("c1", "candidate", 93.5, 2000000, 0.4, 6.0, 200000),
                  Record("f1", "final", 93.9, 2000000, 0.4, 5.0, 200000)};
  r.chosen = r.candidates[2];
  r.why = "the pruned model within delta that is best on the objective";
  r.layers = {{"conv1", "Conv2d", 16, 8, 100000, 50000, "fp32"}};
  r.phase_seconds = {{"reference", 2}, {"search", 100}};
  r.seconds = 102;
  r.files = {{"model.pt", 204800, "the result (TorchScript)"},
             {"model.onnx", 0, "not written: aten::cumsum <has no \"mapping\">"}};
  r.runtimes = {{"int8: model.pt / model.onnx", "LibTorch 2.11.0", 0.8054, 3.621},
                {"int8: model.pt / model.onnx", "ONNX Runtime 1.32.0", 0.0951, 4.689}};
  r.runtimes_note = "timed in turns <one thread>";
  return r;
}

TEST(ReportTest, SummaryShowsRatiosAgainstTheReference) {
  const std::string s = SummaryTable(Example());
  EXPECT_THAT(s, HasSubstr("4.00x fewer"));     // MACs 8M -> 2M
  EXPECT_THAT(s, HasSubstr("2.50x faster"));    // b1 1.0 -> 0.4
  EXPECT_THAT(s, HasSubstr("4.00x smaller"));   // 800000 -> 200000 bytes
  EXPECT_THAT(s, HasSubstr("-0.3 (target >= 93.2)"));
}

TEST(ReportTest, JsonEscapesAndCarriesEveryCandidate) {
  const std::string j = ReportJson(Example());
  EXPECT_THAT(j, HasSubstr("\"key\": \"c1\""));
  EXPECT_THAT(j, HasSubstr("c1 <with \\\"quotes\\\">"));
  EXPECT_THAT(j, HasSubstr("\"macs\": 4,"));
  // It parses as JSON (protobuf's parser into a Struct), every candidate is
  // there with its key, and the escaped description comes back unescaped.
  google::protobuf::Struct parsed;
  ASSERT_TRUE(google::protobuf::util::JsonStringToMessage(j, &parsed).ok()) << j;
  const auto& candidates = parsed.fields().at("candidates").list_value().values();
  const RunReport example = Example();
  ASSERT_EQ(candidates.size(), example.candidates.size());
  for (int i = 0; i < candidates.size(); ++i) {
    const auto& fields = candidates[i].struct_value().fields();
    EXPECT_EQ(fields.at("key").string_value(), example.candidates[i].key());
    EXPECT_EQ(fields.at("description").string_value(), example.candidates[i].description());
  }
  // The files, with their sizes and notes, as written.
  const auto& files = parsed.fields().at("files").list_value().values();
  ASSERT_EQ(files.size(), example.files.size());
  for (int i = 0; i < files.size(); ++i) {
    const auto& fields = files[i].struct_value().fields();
    EXPECT_EQ(fields.at("name").string_value(), example.files[i].name);
    EXPECT_EQ(fields.at("bytes").number_value(), example.files[i].bytes);
    EXPECT_EQ(fields.at("note").string_value(), example.files[i].note);
  }
  // The runtimes, as timed.
  const auto& runtimes = parsed.fields().at("runtimes").list_value().values();
  ASSERT_EQ(runtimes.size(), example.runtimes.size());
  for (int i = 0; i < runtimes.size(); ++i) {
    const auto& fields = runtimes[i].struct_value().fields();
    EXPECT_EQ(fields.at("model").string_value(), example.runtimes[i].model);
    EXPECT_EQ(fields.at("runtime").string_value(), example.runtimes[i].runtime);
    EXPECT_DOUBLE_EQ(fields.at("batch1_ms").number_value(), example.runtimes[i].batch1_ms);
    EXPECT_DOUBLE_EQ(fields.at("batch64_ms").number_value(), example.runtimes[i].batch64_ms);
  }
  EXPECT_EQ(parsed.fields().at("runtimes_note").string_value(), example.runtimes_note);
}

TEST(ReportTest, RuntimesSectionOnlyWhenThereIsSomethingToSay) {
  RunReport r = Example();
  const std::string m = ReportMarkdown(r);
  EXPECT_THAT(m, HasSubstr("## Runtimes"));
  EXPECT_THAT(m, HasSubstr("| int8: model.pt / model.onnx | LibTorch 2.11.0 | 0.805 | 3.62 |"));
  EXPECT_THAT(m, HasSubstr("| int8: model.pt / model.onnx | ONNX Runtime 1.32.0 | 0.095 | 4.69 |"));
  EXPECT_THAT(ReportHtml(r), HasSubstr("<p>timed in turns &lt;one thread&gt;</p>"));
  // Not timed: the note says why, no table.
  r.runtimes.clear();
  r.runtimes_note = "ONNX Runtime: not timed (--python not set)";
  EXPECT_THAT(ReportMarkdown(r), HasSubstr("## Runtimes\n\nONNX Runtime: not timed (--python not set)\n"));
  // No ONNX asked for: no section.
  r.runtimes_note.clear();
  EXPECT_THAT(ReportMarkdown(r), Not(HasSubstr("## Runtimes")));
  EXPECT_THAT(ReportHtml(r), Not(HasSubstr("<h2>Runtimes</h2>")));
}

TEST(ReportTest, HtmlIsSelfContainedWithAPlotMarkingTheChosenModel) {
  const std::string h = ReportHtml(Example());
  EXPECT_THAT(h, HasSubstr("<svg"));
  EXPECT_THAT(h, HasSubstr(">chosen</text>"));
  EXPECT_THAT(h, HasSubstr("target 93.2"));
  EXPECT_THAT(h, HasSubstr("f1 &lt;with &quot;quotes&quot;&gt;"));
  EXPECT_THAT(h, Not(HasSubstr("<with")));
  EXPECT_THAT(h, Not(HasSubstr("src=")));  // nothing fetched
}

TEST(ReportTest, MarkdownHasTheLayerTable) {
  const std::string m = ReportMarkdown(Example());
  EXPECT_THAT(m, HasSubstr("| model.pt | 200.0 | the result (TorchScript) |"));
  EXPECT_THAT(m, HasSubstr("| model.onnx | - | not written:"));
  EXPECT_THAT(m, HasSubstr("| conv1 | Conv2d | 16 | 8 |"));
  EXPECT_THAT(m, HasSubstr("reference 2 s, search 100 s"));
}

}  // namespace
}  // namespace slimfit
