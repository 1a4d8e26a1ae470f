// Int8Quantizer on every zoo model and on Python traced / scripted models
// (residual adds, concatenation, depthwise convs, a gate, flatten → linear):
// the converted model really runs int8 kernels, tracks its fake-quantized
// twin, reloads, and honours layer selection; plus config errors.
#include "quantizers/int8.h"

#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <ATen/core/grad_mode.h>
#include <ATen/native/quantized/PackedParams.h>
#include <torch/csrc/jit/api/module.h>
#include <torch/csrc/jit/ir/constants.h>
#include <torch/csrc/jit/ir/ir.h>
#include <torch/csrc/jit/serialization/import.h>

#include <sstream>

#include "common/status_matchers.h"
#include "common/text_proto.h"
#include "common/threads.h"
#include "gmock/gmock.h"
#include "graph/pruning_test_util.h"
#include "gtest/gtest.h"
#include "model/test_models.h"

namespace slimfit {
namespace {

using ::slimfit::testing::PruningTestModels;
using ::slimfit::testing::RandomInput;
using ::slimfit::testing::ScriptedTestModel;
using ::slimfit::testing::StatusIs;
using ::testing::HasSubstr;

int CountKind(const Model& m, const std::string& prefix) {
  int n = 0;
  for (const torch::jit::Node* node : m.module().get_method("forward").graph()->nodes()) {
    if (std::string(node->kind().toQualString()).rfind(prefix, 0) == 0) ++n;
  }
  return n;
}

at::Tensor Forward(Model& m, const at::Tensor& x) {
  at::NoGradGuard no_grad;
  return m.module().forward({x}).toTensor();
}

// Random activations far from the calibration's make a weak test; calibrate
// and evaluate on draws from the same distribution.
TEST(Int8Quantizer, EveryTestModelConvertsToInt8KernelsAndTracksItsSimulation) {
  ASSERT_OK_AND_ASSIGN(auto models, PruningTestModels());
  for (auto& tm : models) {
    SCOPED_TRACE(tm.name);
    QuantizationConfig config;
    config.mutable_activation()->mutable_minmax();
    ASSERT_OK_AND_ASSIGN(auto q, Int8Quantizer::Create(tm.model, config));
    int convs = 0, linears = 0;
    for (const QuantLayer& l : q->layers()) {
      EXPECT_TRUE(l.selected) << l.module_path;
      (l.op_type == "Linear" ? linears : convs) += 1;
    }
    EXPECT_GT(q->layers().size(), 1u);
    for (int b = 0; b < 4; ++b) ASSERT_OK(q->Observe({RandomInput(tm.input_shape, 8, 10 + b)}));
    ASSERT_OK_AND_ASSIGN(Model int8, q->Convert());
    ASSERT_OK_AND_ASSIGN(Model sim, q->Simulate());
    // Every layer runs a quantized kernel; no float conv / linear is left.
    EXPECT_EQ(CountKind(int8, "quantized::conv"), convs) << *int8.module().get_method("forward").graph();
    EXPECT_EQ(CountKind(int8, "quantized::linear"), linears);
    EXPECT_EQ(CountKind(int8, "aten::conv"), 0);
    EXPECT_EQ(CountKind(int8, "aten::linear"), 0);
    const at::Tensor x = RandomInput(tm.input_shape, 16, 99);
    tm.model.Eval();
    const at::Tensor ref = Forward(tm.model, x);
    const at::Tensor yq = Forward(int8, x);
    const at::Tensor ys = Forward(sim, x);
    ASSERT_EQ(yq.sizes(), ref.sizes());
    const double span = (ref.max() - ref.min()).item<double>();
    // int8 vs its simulation: the same arithmetic up to rounding of
    // intermediate requantization; vs fp32: within the quantization noise.
    EXPECT_LT((yq - ys).abs().max().item<double>(), 0.1 * span);
    EXPECT_LT((yq - ref).abs().max().item<double>(), 0.25 * span);
    // Saved and reloaded (a fresh process would set the engine first), same outputs.
    std::stringstream buffer;
    int8.module().save(buffer);
    torch::jit::Module back = torch::jit::load(buffer);
    at::NoGradGuard no_grad;
    EXPECT_TRUE(back.forward({x}).toTensor().equal(yq));
  }
}

// Every engine the config names (the proto's enum, all of which LibTorch 2.x
// has on x86): the model converts to its int8 kernels and stays within
// quantization noise of fp32; the name tools take round-trips.
TEST(Int8Quantizer, EveryEngineQuantizes) {
  const auto* engines = QuantizationConfig::Engine_descriptor();
  ASSERT_GE(engines->value_count(), 4);
  ASSERT_OK_AND_ASSIGN(auto models, PruningTestModels());
  auto& tm = models.front();
  tm.model.Eval();
  const at::Tensor x = RandomInput(tm.input_shape, 16, 99);
  const at::Tensor ref = Forward(tm.model, x);
  const double span = (ref.max() - ref.min()).item<double>();
  for (int i = 0; i < engines->value_count(); ++i) {
    const auto engine = static_cast<QuantizationConfig::Engine>(engines->value(i)->number());
    const std::string name = QuantizedEngineName(engine);
    SCOPED_TRACE(name);
    ASSERT_OK_AND_ASSIGN(QuantizationConfig::Engine parsed, QuantizedEngineFromName("engine", name));
    EXPECT_EQ(parsed, engine);
    QuantizationConfig config;
    config.set_engine(engine);
    config.mutable_activation()->mutable_minmax();
    ASSERT_OK_AND_ASSIGN(auto q, Int8Quantizer::Create(tm.model, config));
    for (int b = 0; b < 4; ++b) ASSERT_OK(q->Observe({RandomInput(tm.input_shape, 8, 10 + b)}));
    ASSERT_OK_AND_ASSIGN(Model int8, q->Convert());
    EXPECT_GT(CountKind(int8, "quantized::conv"), 0);
    EXPECT_EQ(CountKind(int8, "aten::conv"), 0);
    EXPECT_LT((Forward(int8, x) - ref).abs().max().item<double>(), 0.25 * span);
  }
  EXPECT_THAT(QuantizedEngineFromName("--engine", "tensorrt"),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       "--engine: not a quantized engine, got \"tensorrt\"; valid: onednn, qnnpack, x86, fbgemm"));
}

// A residual block's downsample, a 1x1 stride-2 convolution, gives the same
// int8 outputs on every thread count and every call (LibTorch 2.11's onednn
// kernel for it does not on CPUs without AVX-512, CI's AVX2 machines among
// them: wrong values, different on every call, on 2 or more threads; the
// quantizer slices its input and runs it with stride 1). Golden: the
// one-thread result.
TEST(Int8Quantizer, StridedPointwiseConvolutionsGiveOneAnswerOnEveryThreadCount) {
  at::manual_seed(3);
  Model m = ScriptedTestModel("Downsample",
                              "def forward(self, x: Tensor) -> Tensor:\n"
                              "    return torch.conv2d(x, self.w, self.b, [2, 2], [0, 0], [1, 1], 1)\n",
                              {{"w", at::randn({16, 8, 1, 1})}, {"b", at::randn({16})}});
  QuantizationConfig config;
  config.mutable_activation()->mutable_minmax();
  ASSERT_OK_AND_ASSIGN(auto q, Int8Quantizer::Create(m, config));
  ASSERT_EQ(q->layers().size(), 1u);
  for (int b = 0; b < 4; ++b) ASSERT_OK(q->Observe({at::rand({16, 8, 28, 28}) * 3}));
  ASSERT_OK_AND_ASSIGN(Model int8, q->Convert());
  ASSERT_EQ(CountKind(int8, "quantized::conv2d"), 1) << *int8.module().get_method("forward").graph();
  const at::Tensor x = at::rand({16, 8, 28, 28}) * 3;
  const ScopedThreads one_thread(1);
  const at::Tensor one = Forward(int8, x);
  // The sliced convolution computes what the strided one did: the
  // simulation (same graph, fake-quantized, fp32 kernels) tracks the model.
  ASSERT_OK_AND_ASSIGN(Model sim, q->Simulate());
  const at::Tensor ref = Forward(m, x);
  ASSERT_EQ(one.sizes(), ref.sizes());
  EXPECT_LT((Forward(sim, x) - ref).abs().max().item<double>(), 0.02 * (ref.max() - ref.min()).item<double>());
  for (int threads : {2, 4}) {
    at::set_num_threads(threads);
    for (int call = 0; call < 3; ++call) {
      SCOPED_TRACE(::testing::Message() << threads << " threads, call " << call);
      EXPECT_TRUE(Forward(int8, x).equal(one));
    }
  }
}

// The first node of `kind` in the forward graph; a test failure and null
// when there is none.
const torch::jit::Node* FirstNode(const Model& m, const std::string& kind) {
  for (const torch::jit::Node* node : m.module().get_method("forward").graph()->nodes()) {
    if (node->kind().toQualString() == kind) return node;
  }
  ADD_FAILURE() << "no " << kind << " in " << *m.module().get_method("forward").graph();
  return nullptr;
}

// The constant a node's input `i` holds (a quantize or quantized op's scale).
double ConstantInput(const Model& m, const std::string& kind, size_t i) {
  const torch::jit::Node* node = FirstNode(m, kind);
  return node == nullptr ? 0 : torch::jit::toIValue(node->input(i))->toDouble();
}

// int8.h: x86 CPUs without VNNI add pairs of uint8 x int8 products in int16,
// saturating at 32767. Activation codes are 7-bit by default, so a pair of
// in-range products (2 x 127 x 127 = 32258) fits; with 8-bit codes
// (2 x 255 x 127) it does not. A 1x1 convolution whose weights all quantize
// to 127, fed inputs at the top of the calibrated range, is the worst case:
// its int8 kernels must match the simulation (fp32 arithmetic on the same
// codes) to rounding on any CPU.
TEST(Int8Quantizer, ActivationsUseSevenBitCodesSoNoCpuSaturates) {
  Model m = ScriptedTestModel("Sum",
                              "def forward(self, x: Tensor) -> Tensor:\n"
                              "    return torch.conv2d(x, self.w, self.b, [1, 1], [0, 0], [1, 1], 1)\n",
                              {{"w", at::ones({4, 16, 1, 1})}, {"b", at::zeros({4})}});
  at::manual_seed(5);
  at::Tensor calibration = at::rand({8, 16, 8, 8});
  // Inputs in [0, 1] (minmax; 0 is always in the range), one pixel all 1:
  // the output's range is [0, 16].
  calibration.select(0, 0).select(1, 0).select(1, 0).fill_(1.0);
  for (int bits : {0, 8}) {
    SCOPED_TRACE(::testing::Message() << "activation.bits " << bits);
    QuantizationConfig config;
    config.mutable_activation()->mutable_minmax();
    config.mutable_activation()->set_bits(bits);
    ASSERT_OK_AND_ASSIGN(auto q, Int8Quantizer::Create(m, config));
    ASSERT_OK(q->Observe({calibration}));
    ASSERT_OK_AND_ASSIGN(Model int8, q->Convert());
    const double codes = bits == 0 ? 127 : 255;  // onednn, the default engine: 7 bits
    EXPECT_NEAR(ConstantInput(int8, "aten::quantize_per_tensor", 1), 1.0 / codes, 1e-6 / codes);
    if (bits != 0) continue;  // 8-bit codes saturate on some CPUs only: nothing to assert about the kernel
    ASSERT_OK_AND_ASSIGN(Model sim, q->Simulate());
    const at::Tensor x = 0.98 + 0.02 * at::rand({4, 16, 8, 8});  // codes 124..127
    const double step = ConstantInput(int8, "quantized::conv2d", 2);
    EXPECT_NEAR(step, 16.0 / codes, 0.01 * step);  // the output's range is [0, 16]
    EXPECT_LE((Forward(int8, x) - Forward(sim, x)).abs().max().item<double>(), 1.01 * step);
  }
}

// int8.cc: an int8 layer's bias is a whole number of input scale x weight
// scale steps (per output channel), the int32 grid ONNX QDQ and other int8
// runtimes store it on, so a model exported from the file computes what
// LibTorch computes (export/onnx_runtime_test).
TEST(Int8Quantizer, BiasesLieOnTheInt32Grid) {
  at::manual_seed(6);
  Model m = ScriptedTestModel("Conv",
                              "def forward(self, x: Tensor) -> Tensor:\n"
                              "    return torch.conv2d(x, self.w, self.b, [1, 1], [1, 1], [1, 1], 1)\n",
                              {{"w", at::randn({8, 4, 3, 3})}, {"b", at::randn({8})}});
  QuantizationConfig config;
  config.mutable_activation()->mutable_minmax();
  ASSERT_OK_AND_ASSIGN(auto q, Int8Quantizer::Create(m, config));
  ASSERT_OK(q->Observe({at::rand({8, 4, 10, 10}) * 2 - 0.5}));
  ASSERT_OK_AND_ASSIGN(Model int8, q->Convert());
  const double input_scale = ConstantInput(int8, "aten::quantize_per_tensor", 1);
  const torch::jit::Node* conv = FirstNode(int8, "quantized::conv2d");
  ASSERT_NE(conv, nullptr);
  ASSERT_EQ(conv->input(1)->node()->kind(), c10::prim::GetAttr);
  const auto packed =
      int8.module().attr(conv->input(1)->node()->s(c10::attr::name)).toCustomClass<ConvPackedParamsBase<2>>();
  auto [weight, bias] = packed->unpack();
  ASSERT_TRUE(bias.has_value());
  const at::Tensor steps = bias->to(at::kDouble) / (weight.q_per_channel_scales().to(at::kDouble) * input_scale);
  EXPECT_LT((steps - steps.round()).abs().max().item<double>(), 1e-3) << steps;
  EXPECT_GT(steps.abs().max().item<double>(), 10);  // a bias of some steps, not zero
}

TEST(Int8Quantizer, SelectionKeepsLayersInFloat) {
  ASSERT_OK_AND_ASSIGN(auto models, PruningTestModels());
  Model& m = models[2].model;  // resnet_small
  QuantizationConfig config;
  ASSERT_OK(ParseTextProto("keep_first: true keep_last: true exclude: 'layer2\\\\..*'", "test", &config));
  ASSERT_OK_AND_ASSIGN(auto q, Int8Quantizer::Create(m, config));
  int fp32 = 0;
  for (const QuantLayer& l : q->layers()) fp32 += !l.selected;
  EXPECT_FALSE(q->layers().front().selected);
  EXPECT_EQ(q->layers().front().reason, "keep_first");
  EXPECT_EQ(q->layers().back().reason, "keep_last");
  for (int b = 0; b < 2; ++b) ASSERT_OK(q->Observe({RandomInput(models[2].input_shape, 8, b)}));
  ASSERT_OK_AND_ASSIGN(Model int8, q->Convert());
  const int total = static_cast<int>(q->layers().size());
  EXPECT_EQ(CountKind(int8, "aten::conv2d") + CountKind(int8, "aten::linear"), fp32) << q->FormatLayers();
  EXPECT_EQ(CountKind(int8, "quantized::conv") + CountKind(int8, "quantized::linear"), total - fp32);
  // Mixed precision by index: layer 1 also fp32.
  ASSERT_OK_AND_ASSIGN(Model mixed, q->Convert({1}));
  EXPECT_EQ(CountKind(mixed, "aten::conv2d") + CountKind(mixed, "aten::linear"), fp32 + 1);
  EXPECT_THAT(q->Convert({total}).status(), StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("out of range")));
}

// Models that hit two LibTorch quantization-pass gaps, worked around after
// Finalize: a returned tuple holding the quantized output (LibTorch
// dequantizes the tuple as a whole) and a range so large that its float32
// scale is integral (printed without a decimal point, it reloaded as an int).
TEST(Int8Quantizer, TupleOutputsAndHugeRangesSaveAndReload) {
  const char* source = R"(
def forward(self, x: Tensor) -> Tuple[Tensor, Tensor]:
    y = torch.relu(torch.conv2d(x * self.gain, self.w, self.b))
    z = torch.linear(torch.flatten(y, 1), self.fw, self.fb)
    return (z, y)
)";
  for (double gain : {1.0, 1e12}) {
    SCOPED_TRACE(gain);
    Model m = testing::ScriptedTestModel(
        "TupleOut", source,
        {{"w", at::randn({4, 1, 3, 3})}, {"b", at::randn({4})}, {"fw", at::randn({3, 64})}, {"fb", at::randn({3})},
         {"gain", at::full({1}, gain)}});
    m.Eval();
    ASSERT_OK_AND_ASSIGN(auto q, Int8Quantizer::Create(m, QuantizationConfig()));
    ASSERT_OK(q->Observe({RandomInput({1, 6, 6}, 4, 1)}));
    ASSERT_OK_AND_ASSIGN(Model int8, q->Convert());
    std::stringstream buffer;
    int8.module().save(buffer);
    torch::jit::Module back = torch::jit::load(buffer);  // parses the saved code, as Python does
    at::NoGradGuard no_grad;
    auto out = back.forward({RandomInput({1, 6, 6}, 2, 2)}).toTuple();
    EXPECT_FALSE(out->elements()[0].toTensor().is_quantized());
    EXPECT_EQ(out->elements()[0].toTensor().sizes(), (std::vector<int64_t>{2, 3}));
    EXPECT_EQ(out->elements()[1].toTensor().sizes(), (std::vector<int64_t>{2, 4, 4, 4}));
  }
}

TEST(Int8Quantizer, ConvertBeforeCalibrationFails) {
  ASSERT_OK_AND_ASSIGN(auto models, PruningTestModels());
  ASSERT_OK_AND_ASSIGN(auto q, Int8Quantizer::Create(models[0].model, QuantizationConfig()));
  EXPECT_THAT(q->Convert().status(), StatusIs(absl::StatusCode::kFailedPrecondition, HasSubstr("saw no data")));
}

TEST(Int8Quantizer, ConfigErrorsNameTheField) {
  QuantizationConfig c;
  c.mutable_activation()->mutable_minmax();
  c.mutable_activation()->set_bits(4);
  EXPECT_THAT(
      ValidateQuantizationConfig(c),
      StatusIs(absl::StatusCode::kInvalidArgument,
               "activation.bits: int8 kernels take 8-bit activation codes, got 4; valid: 8, or 7 (codes 0..127: no "
               "saturation on x86 CPUs without VNNI); 0 = 7 on onednn, x86 and fbgemm, 8 on qnnpack"));
  c.Clear();
  c.add_op_types("Conv3d");
  EXPECT_THAT(
      ValidateQuantizationConfig(c),
      StatusIs(absl::StatusCode::kInvalidArgument,
               "op_types: not a quantizable op type, got \"Conv3d\"; valid: Conv1d, Conv2d, DepthwiseConv2d, Linear"));
  c.Clear();
  c.add_exclude("layer(");
  EXPECT_THAT(ValidateQuantizationConfig(c),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("exclude[0]: not an RE2 regex")));
  c.Clear();
  c.mutable_weight_only()->set_bits(3);
  EXPECT_THAT(ValidateQuantizationConfig(c),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       "weight_only.bits: not a supported width, got 3; valid: 8, 4 (0 = off)"));
}

}  // namespace
}  // namespace slimfit
