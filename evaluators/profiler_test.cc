#include "evaluators/profiler.h"

#include <ATen/ATen.h>
#include <c10/core/GradMode.h>
#include <torch/csrc/jit/api/module.h>

#include "absl/strings/str_cat.h"
#include "common/status_matchers.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "model/zoo/zoo.h"

namespace slimfit {
namespace {

using ::slimfit::testing::StatusIs;
using ::testing::ElementsAre;
using ::testing::HasSubstr;

// A hand count: (out channels, out height, out width, MACs per output element).
struct Conv {
  int64_t c, h, w, per;
  int64_t Macs() const { return c * h * w * per; }
};
int64_t Sum(const std::vector<Conv>& convs, const std::vector<std::pair<int64_t, int64_t>>& linears) {
  int64_t s = 0;
  for (const auto& c : convs) s += c.Macs();
  for (const auto& [out, in] : linears) s += out * in;
  return s;
}

CostReport Profile(const std::string& name, ProfilerConfig config = {}) {
  auto m = CreateZooModel(name);
  EXPECT_OK(m);
  ForwardPass fp;
  EXPECT_OK(fp.InferFromMetadata(m->metadata()));
  config.set_skip_latency(true);
  auto r = ProfileModel(*m, fp, config);
  EXPECT_OK(r);
  return r.ok() ? *r : CostReport{};
}

// Hand counts at 28x28x1, 10 classes, written from the architectures'
// descriptions (model/zoo/*.cc headers), not from the zoo code.
TEST(ProfilerTest, LeNet5MacsMatchHandCount) {
  const int64_t expected = Sum({{6, 28, 28, 1 * 25}, {16, 10, 10, 6 * 25}}, {{120, 400}, {84, 120}, {10, 84}});
  CostReport r = Profile("lenet5");
  EXPECT_EQ(r.macs, expected);
  EXPECT_EQ(r.flops, 2 * expected);
  EXPECT_EQ(r.params, (1 * 6 * 25 + 6) + (6 * 16 * 25 + 16) + (400 * 120 + 120) + (120 * 84 + 84) + (84 * 10 + 10));
  EXPECT_EQ(r.uncounted_layers, 0);
  EXPECT_THAT(r.layers[0].output_shape, ElementsAre(1, 6, 28, 28));
  EXPECT_EQ(r.layers[0].macs, (Conv{6, 28, 28, 1 * 25}.Macs()));
}

TEST(ProfilerTest, VggSmallMacsMatchHandCount) {
  const int64_t expected = Sum({{32, 28, 28, 9}, {32, 28, 28, 32 * 9}, {64, 14, 14, 32 * 9},
                                {64, 14, 14, 64 * 9}, {128, 7, 7, 64 * 9}, {128, 7, 7, 128 * 9}},
                               {{256, 128 * 3 * 3}, {10, 256}});
  EXPECT_EQ(Profile("vgg_small").macs, expected);
}

TEST(ProfilerTest, ResNetSmallMacsMatchHandCount) {
  std::vector<Conv> convs = {{16, 28, 28, 9}};
  for (int i = 0; i < 4; ++i) convs.push_back({16, 28, 28, 16 * 9});  // layer1: 2 blocks x 2 convs
  convs.push_back({32, 14, 14, 16 * 9});                             // layer2.b0.conv1 (stride 2)
  convs.push_back({32, 14, 14, 32 * 9});                             // layer2.b0.conv2
  convs.push_back({32, 14, 14, 16});                                 // layer2.b0.downsample 1x1
  convs.push_back({32, 14, 14, 32 * 9});                             // layer2.b1
  convs.push_back({32, 14, 14, 32 * 9});
  convs.push_back({64, 7, 7, 32 * 9});                               // layer3.b0.conv1
  convs.push_back({64, 7, 7, 64 * 9});
  convs.push_back({64, 7, 7, 32});                                   // layer3.b0.downsample
  convs.push_back({64, 7, 7, 64 * 9});
  convs.push_back({64, 7, 7, 64 * 9});
  EXPECT_EQ(Profile("resnet_small").macs, Sum(convs, {{10, 64}}));
}

TEST(ProfilerTest, MobileNetV2SmallMacsMatchHandCount) {
  // Depthwise 3x3: 9 MACs per output element; 1x1: in channels.
  std::vector<Conv> convs = {
      {16, 28, 28, 9},                                           // stem
      {16, 28, 28, 9}, {16, 28, 28, 16},                         // block0: dw, project (t = 1)
      {64, 28, 28, 16}, {64, 14, 14, 9}, {24, 14, 14, 64},       // block1: expand, dw s2, project
      {96, 14, 14, 24}, {96, 14, 14, 9}, {24, 14, 14, 96},       // block2
      {96, 14, 14, 24}, {96, 7, 7, 9}, {32, 7, 7, 96},           // block3 (s2)
      {128, 7, 7, 32}, {128, 7, 7, 9}, {32, 7, 7, 128},          // block4
      {128, 7, 7, 32}, {128, 7, 7, 9}, {64, 7, 7, 128},          // block5 (s1)
      {256, 7, 7, 64}, {256, 7, 7, 9}, {64, 7, 7, 256},          // block6
      {256, 7, 7, 64},                                           // head
  };
  EXPECT_EQ(Profile("mobilenetv2_small").macs, Sum(convs, {{10, 256}}));
}

TEST(ProfilerTest, NonzeroParametersCountZeros) {
  ASSERT_OK_AND_ASSIGN(Model m, CreateZooModel("lenet5"));
  ForwardPass fp;
  ASSERT_OK(fp.InferFromMetadata(m.metadata()));
  ProfilerConfig c;
  c.set_skip_latency(true);
  ASSERT_OK_AND_ASSIGN(CostReport before, ProfileModel(m, fp, c));
  EXPECT_EQ(before.layers[0].nonzero_params, 150) << "conv1's 6 biases start at zero";
  {
    c10::NoGradGuard no_grad;
    m.NamedParameters()[0].second.narrow(0, 0, 3).zero_();  // 3 of conv1's 6 filters
  }
  ASSERT_OK_AND_ASSIGN(CostReport r, ProfileModel(m, fp, c));
  EXPECT_EQ(before.nonzero_params - r.nonzero_params, 3 * 25);
  EXPECT_EQ(r.layers[0].nonzero_params, 150 - 75);
}

TEST(ProfilerTest, PeakActivationsAndSizeArePlausible) {
  CostReport r = Profile("vgg_small");
  // The largest pair alive at once is at least conv1's input and output
  // (1x28x28 + 32x28x28 floats), and far below the sum of all activations.
  EXPECT_GE(r.peak_activation_bytes, (1 + 32) * 28 * 28 * 4);
  EXPECT_LT(r.peak_activation_bytes, 20 * 32 * 28 * 28 * 4);
  EXPECT_GT(r.serialized_bytes, r.params * 4);
  EXPECT_LT(r.serialized_bytes, r.params * 4 + 200000);
}

TEST(ProfilerTest, LatencyIsMeasuredAtBothBatchSizes) {
  ASSERT_OK_AND_ASSIGN(Model m, CreateZooModel("lenet5"));
  ForwardPass fp;
  ASSERT_OK(fp.InferFromMetadata(m.metadata()));
  ProfilerConfig c;
  c.set_batch_size(8);
  c.set_runs(5);
  c.set_warmup_runs(1);
  ASSERT_OK_AND_ASSIGN(CostReport r, ProfileModel(m, fp, c));
  ASSERT_EQ(r.latency.size(), 2u);
  EXPECT_EQ(r.latency[1].batch_size, 8);
  EXPECT_GT(r.latency[0].median_ms, 0);
  EXPECT_GE(r.latency[0].p90_ms, r.latency[0].median_ms);
  const std::string text = FormatCostReport(r);
  EXPECT_THAT(text, HasSubstr("latency batch 8"));
  // The count itself is checked against the architecture in LeNet5MacsMatchHandCount.
  EXPECT_THAT(text, HasSubstr(absl::StrCat(r.macs, " MACs")));
  EXPECT_THAT(CostReportToJson(r), HasSubstr(absl::StrCat("\"macs\": ", r.macs)));
  for (const LatencyStats& l : r.latency) EXPECT_EQ(l.device, "cpu");
  EXPECT_THAT(CostReportToJson(r), HasSubstr("\"runs\": 5, \"device\": \"cpu\"}"));
}

// Latency on a CUDA device this process does not see (CUDA_VISIBLE_DEVICES
// is empty before anything looks): the device field's error, before timing.
TEST(ProfilerTest, LatencyOnADeviceThisProcessLacksIsAnError) {
  setenv("CUDA_VISIBLE_DEVICES", "", 1);
  ASSERT_OK_AND_ASSIGN(Model m, CreateZooModel("lenet5"));
  ForwardPass fp;
  ASSERT_OK(fp.InferFromMetadata(m.metadata()));
  ProfilerConfig c;
  c.set_device("cuda");
  EXPECT_THAT(ProfileModel(m, fp, c),
              StatusIs(absl::StatusCode::kFailedPrecondition, HasSubstr(", got \"cuda\"; valid: cpu, auto")));
  EXPECT_THAT(ProfileModel(m, fp, c), StatusIs(absl::StatusCode::kFailedPrecondition, HasSubstr("device: ")));
  c.set_device("tpu");
  EXPECT_THAT(ProfileModel(m, fp, c),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       "device: not a device, got \"tpu\"; valid: cpu, cuda, cuda:<index>, auto"));
}

TEST(ProfilerTest, BadSettingsAreRejected) {
  ASSERT_OK_AND_ASSIGN(Model m, CreateZooModel("lenet5"));
  ForwardPass fp;
  ProfilerConfig c;
  c.set_runs(-1);
  ASSERT_OK(fp.InferFromMetadata(m.metadata()));
  EXPECT_THAT(ProfileModel(m, fp, c),
              StatusIs(absl::StatusCode::kInvalidArgument, "runs: negative, got -1; valid: >= 1 (0 = 50)"));
  ForwardPass fresh;
  EXPECT_THAT(ProfileModel(m, fresh, ProfilerConfig()),
              StatusIs(absl::StatusCode::kFailedPrecondition, HasSubstr("no batch seen yet")));
}

}  // namespace
}  // namespace slimfit
