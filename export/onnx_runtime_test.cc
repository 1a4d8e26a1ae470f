// Every exported model run in the real runtime: ONNX Runtime (PyPI, in the
// venv bootstrap.sh made) against LibTorch on the same inputs, through
// export/verify_onnx.py. The zoo models are trained for one epoch on a
// Fashion-MNIST slice and quantized (PTQ) here, then compared on the whole
// Fashion-MNIST test set: fp32 within 1e-4 relative, int8 argmax agreement
// >= 99% and accuracy within 0.3 points (against LibTorch's int8 kernels and
// against its float simulation of them). graph/testdata's models (traced and
// scripted in Python: residual adds, grouped and depthwise convs, concats,
// chunk + channel shuffle, instance norm, PReLU, crops, flatten -> linear)
// are compared on seeded random inputs.
#include <ATen/ATen.h>

#include <cstdlib>
#include <iostream>
#include <map>
#include <memory>
#include <set>
#include <sstream>
#include <string>
#include <utility>

#include "absl/strings/str_cat.h"
#include "common/files.h"
#include "common/status_macros.h"
#include "common/status_matchers.h"
#include "common/text_proto.h"
#include "data/splits.h"
#include "export/onnx.h"
#include "graph/pruning_test_util.h"
#include "gtest/gtest.h"
#include "model/test_models.h"
#include "model/zoo/zoo.h"
#include "quantizers/int8.h"
#include "trainer/trainer.h"

namespace slimfit {
namespace {

using ::slimfit::testing::PruningTestModels;
using ::slimfit::testing::RandomInput;
using ::slimfit::testing::TempPath;

constexpr char kFashion[] = "/usr/share/datasets/fashion-mnist/";

constexpr char kData[] = R"pb(
  mnist {}
  train_batch_size: 64
  max_train_samples: 12000
  seed: 1
  train_transforms { normalize { mean: 0.2860 std: 0.3530 } }
  eval_transforms { normalize { mean: 0.2860 std: 0.3530 } }
)pb";

// BUILD sets both: the venv's Python (whose torch is this LibTorch, with
// onnxruntime beside it) and the script's runfiles path.
std::string Env(const char* name) {
  const char* v = std::getenv(name);
  return v != nullptr ? v : absl::StrCat(name, "-is-not-set");
}

using Figures = std::map<std::string, double>;

// Runs verify_onnx.py on `pt` and `onnx` with `args`; the figures it wrote.
absl::StatusOr<Figures> Verify(const std::string& pt, const std::string& onnx, const std::string& kind,
                               const std::string& args) {
  const std::string figures = onnx + ".figures", log = onnx + ".log";
  const std::string command =
      absl::StrCat(Env("SLIMFIT_PYTHON"), " ", Env("VERIFY_ONNX"), " --model ", pt, " --onnx ", onnx, " --kind ", kind,
                   " --figures ", figures, " ", args, " > ", log, " 2>&1");
  const int rc = std::system(command.c_str());
  ASSIGN_OR_RETURN(std::string printed, ReadFileToString(log));
  std::cout << printed;
  ASSIGN_OR_RETURN(std::string text, ReadFileToString(figures), absl::StrCat("verify_onnx.py exited ", rc));
  Figures out;
  std::istringstream lines(text);
  std::string name;
  double value;
  while (lines >> name >> value) out[name] = value;
  if (out.count("argmax_agreement") == 0 || out.count("max_rel") == 0) {
    return absl::InternalError(absl::StrCat("verify_onnx.py wrote no figures: ", printed));
  }
  return out;
}

std::vector<int64_t> Batched(const std::vector<int64_t>& sample) {
  std::vector<int64_t> shape = {1};
  shape.insert(shape.end(), sample.begin(), sample.end());
  return shape;
}

// One zoo model per test (the suite is sharded: each trains and compares one).
class ZooOnnxRuntime : public ::testing::TestWithParam<std::string> {};

TEST(OnnxRuntime, EveryZooModelIsCompared) { EXPECT_GE(ZooModelNames().size(), 4u); }

TEST_P(ZooOnnxRuntime, TrainedModelAgreesOnTheFashionMnistTestSet) {
  // bootstrap.sh installs the data set: its absence is a failure, not a skip.
  ASSERT_OK(RegularFileSize(absl::StrCat(kFashion, "t10k-images-idx3-ubyte.gz")).status());
  DataConfig data;
  ASSERT_OK(ParseTextProto(kData, "data", &data));
  ASSERT_OK_AND_ASSIGN(Splits splits, LoadSplits(data));
  ASSERT_OK_AND_ASSIGN(std::unique_ptr<DataLoader> train, MakeLoader(data, splits, "train"));
  auto forward_pass = std::make_shared<ForwardPass>();
  LossConfig lc;
  lc.mutable_cross_entropy();
  ASSERT_OK_AND_ASSIGN(std::unique_ptr<LossFunction> loss, MakeLoss(lc, LossContext{forward_pass}));
  TrainerConfig trainer;
  ASSERT_OK(ParseTextProto(
      "epochs: 2 optimizer { sgd { momentum: 0.9 } lr: 0.05 } scheduler { cosine { t_max: 340 } interval: ITERATION } "
      "progress: NONE seed: 1",
      "trainer", &trainer));
  const std::string test_set = absl::StrCat("--images ", kFashion, "t10k-images-idx3-ubyte.gz --labels ", kFashion,
                                            "t10k-labels-idx1-ubyte.gz --mean 0.2860 --std 0.3530");
  const std::string name = GetParam();
  {
    ZooOptions options;
    options.seed = 1;
    ASSERT_OK_AND_ASSIGN(Model model, CreateZooModel(name, options));
    TrainerDeps deps;
    deps.loss = loss.get();
    deps.train = train.get();
    ASSERT_OK_AND_ASSIGN(auto t, Trainer::Create(trainer, deps));
    ASSERT_OK(t->Train(model).status());
    model.Eval();
    const std::string fp32 = TempPath(name + "_fp32");
    ASSERT_OK(model.Save(fp32 + ".pt"));
    ASSERT_OK(WriteOnnx(model, fp32 + ".onnx", OnnxExportOptions()).status());
    ASSERT_OK_AND_ASSIGN(Figures f, Verify(fp32 + ".pt", fp32 + ".onnx", "fp32", test_set));
    EXPECT_EQ(f["samples"], 10000);
    EXPECT_LE(f["max_rel"], 1e-4);
    EXPECT_GE(f["libtorch_accuracy"], 60);  // trained: agreement on a model that guesses would say little
    EXPECT_LE(std::abs(f["libtorch_accuracy"] - f["onnxruntime_accuracy"]), 0.05);

    // ONNX Runtime against LibTorch's simulation of the int8 arithmetic
    // (quantize → dequantize in float: the model's arithmetic, which the
    // export must carry; the issue's 99 %) and against LibTorch's int8
    // kernels under onednn, the engine slimfit quantizes under. On CPUs
    // without VNNI those kernels round differently from the arithmetic (an
    // AMD EPYC: one mobilenetv2's kernels and its simulation disagreed on
    // 0.84 % of the test set, while x86, fbgemm and ONNX Runtime gave
    // identical outputs; docs/export.md), so against them: 98.5 %; accuracy
    // within 0.3 points of both.
    QuantizationConfig config;
    config.mutable_activation()->mutable_minmax();
    ASSERT_OK_AND_ASSIGN(auto q, Int8Quantizer::Create(model, config));
    ASSERT_OK_AND_ASSIGN(int batches, q->Calibrate(*train, *forward_pass, 16));
    ASSERT_EQ(batches, 16);
    ASSERT_OK_AND_ASSIGN(Model int8, q->Convert());
    ASSERT_OK_AND_ASSIGN(Model simulated, q->Simulate());
    const std::string q8 = TempPath(name + "_int8");
    ASSERT_OK(int8.Save(q8 + ".pt"));
    ASSERT_OK(simulated.Save(q8 + "_simulated.pt"));
    ASSERT_OK_AND_ASSIGN(OnnxExportSummary summary, WriteOnnx(int8, q8 + ".onnx", OnnxExportOptions()));
    EXPECT_TRUE(summary.quantized);
    for (const auto& [against, agreement] : {std::pair{q8 + "_simulated.pt", 0.99}, std::pair{q8 + ".pt", 0.985}}) {
      SCOPED_TRACE(against);
      ASSERT_OK_AND_ASSIGN(
          Figures g, Verify(against, q8 + ".onnx", "int8", absl::StrCat(test_set, " --min_agreement ", agreement)));
      EXPECT_EQ(g["samples"], 10000);
      EXPECT_GE(g["argmax_agreement"], agreement);
      EXPECT_LE(std::abs(g["libtorch_accuracy"] - g["onnxruntime_accuracy"]), 0.3);
    }
  }
}

INSTANTIATE_TEST_SUITE_P(Zoo, ZooOnnxRuntime, ::testing::ValuesIn(ZooModelNames()),
                         [](const ::testing::TestParamInfo<std::string>& info) { return info.param; });

TEST(OnnxRuntime, GraphTestModelsAgreeOnRandomInputs) {
  ASSERT_OK_AND_ASSIGN(auto models, PruningTestModels());
  std::set<std::string> zoo;
  for (const std::string& n : ZooModelNames()) zoo.insert(n);
  int compared = 0;
  for (auto& tm : models) {
    if (zoo.count(tm.name)) continue;  // the zoo's are compared on real data above
    SCOPED_TRACE(tm.name);
    OnnxExportOptions options;
    options.input_shapes = {Batched(tm.input_shape)};
    const std::string fp32 = TempPath(tm.name + "_fp32");
    ASSERT_OK(tm.model.Save(fp32 + ".pt"));
    ASSERT_OK(WriteOnnx(tm.model, fp32 + ".onnx", options).status());
    ASSERT_OK_AND_ASSIGN(Figures f, Verify(fp32 + ".pt", fp32 + ".onnx", "fp32", "--random 256"));
    EXPECT_EQ(f["samples"], 256);
    EXPECT_LE(f["max_rel"], 1e-4);

    QuantizationConfig config;
    config.mutable_activation()->mutable_minmax();
    ASSERT_OK_AND_ASSIGN(auto q, Int8Quantizer::Create(tm.model, config));
    for (int b = 0; b < 4; ++b) ASSERT_OK(q->Observe({RandomInput(tm.input_shape, 32, 10 + b)}));
    ASSERT_OK_AND_ASSIGN(Model int8, q->Convert());
    ASSERT_OK_AND_ASSIGN(Model simulated, q->Simulate());
    const std::string q8 = TempPath(tm.name + "_int8");
    ASSERT_OK(int8.Save(q8 + ".pt"));
    ASSERT_OK(simulated.Save(q8 + "_simulated.pt"));
    ASSERT_OK(WriteOnnx(int8, q8 + ".onnx", options).status());
    // Against the int8 arithmetic as defined (LibTorch's quantize → dequantize
    // simulation): the issue's 99 %. Against LibTorch's int8 kernels: within a
    // few output steps (rounding; kernels that saturated were off by up to
    // 0.18 of the range) and 97 %: these random-weight models' logits bunch
    // within a step or two of each other, so a kernel's rounding flips more
    // argmaxes than on trained models (3 of 256 in one model on an AVX2
    // machine before biases were put on the int32 grid).
    ASSERT_OK_AND_ASSIGN(Figures g, Verify(q8 + "_simulated.pt", q8 + ".onnx", "int8", "--random 256"));
    EXPECT_GE(g["argmax_agreement"], 0.99);
    ASSERT_OK_AND_ASSIGN(Figures k, Verify(q8 + ".pt", q8 + ".onnx", "int8", "--random 256 --min_agreement 0.97"));
    EXPECT_LE(k["max_rel"], 0.05);
    EXPECT_GE(k["argmax_agreement"], 0.97);
    ++compared;
  }
  EXPECT_GE(compared, 9);
}

// Ops the zoo and graph/testdata do not use, each in one scripted model:
// pools with ceil mode and padding, adaptive pooling to sizes that do not
// divide the input, a transposed convolution, layer norm, the activations
// composed of several ONNX ops (gelu both ways, silu), scalars on either
// side, reductions, permutes and a tuple output with a None in it.
TEST(OnnxRuntime, OpsBeyondTheTestModelsMatch) {
  Model m = testing::ScriptedTestModel(
      "Ops",
      "def forward(self, x: Tensor) -> Tuple[Tensor, Optional[Tensor], Tensor]:\n"
      "    a = torch.adaptive_avg_pool2d(x, [4, 5])\n"
      "    b = torch.avg_pool2d(x, [3, 3], [2, 2], [1, 1], True, False)\n"
      "    c = torch.max_pool2d(x, [3, 3], [2, 2], [1, 1], [1, 1], True)\n"
      "    d = torch.conv_transpose2d(x, self.wt, self.bt, [2, 2], [1, 1], [1, 1])\n"
      "    e = torch.layer_norm(x, [9], self.g, self.h, 1e-5)\n"
      "    f = torch.gelu(e, approximate='tanh') + torch.gelu(e) - torch.silu(e) * 0.5\n"
      "    g = torch.hardsigmoid(f) + torch.leaky_relu(f, 0.2) + torch.clamp(f, -0.5, 0.5)\n"
      "    h = torch.softmax(g.permute(0, 2, 3, 1), -1) + torch.log_softmax(g.transpose(1, 3), 1).transpose(1, "
      "3).permute(0, 2, 3, 1)\n"
      "    i = torch.matmul(h, self.p) / 3.0 - 1.0\n"
      "    j = torch.mean(i, [1, 2], True) + torch.sum(i, [1, 2], True)\n"
      "    k = torch.cat([a.flatten(1), b.flatten(1), c.flatten(1), d.flatten(1), j.flatten(1)], 1)\n"
      "    return (torch.tanh(k * 0.001), None, torch.sigmoid(2.0 * k.unsqueeze(1)).squeeze(1))\n",
      {{"wt", at::randn({4, 3, 3, 3})},
       {"bt", at::randn({3})},
       {"g", at::randn({9})},
       {"h", at::randn({9})},
       {"p", at::randn({4, 6})}});
  OnnxExportOptions options;
  options.input_shapes = {{1, 4, 9, 9}};
  const std::string path = TempPath("ops");
  ASSERT_OK(m.Save(path + ".pt"));
  ASSERT_OK_AND_ASSIGN(OnnxExportSummary summary, WriteOnnx(m, path + ".onnx", options));
  for (const char* op :
       {"MatMul", "AveragePool", "MaxPool", "ConvTranspose", "LayerNormalization", "Erf", "Tanh", "HardSigmoid",
        "LeakyRelu", "Clip", "Softmax", "LogSoftmax", "Transpose", "ReduceMean", "ReduceSum", "Concat"}) {
    EXPECT_GT(summary.op_counts[op], 0) << op;
  }
  ASSERT_OK_AND_ASSIGN(Figures f, Verify(path + ".pt", path + ".onnx", "fp32", "--random 64 --min_agreement 0"));
  EXPECT_EQ(f["samples"], 64);
  EXPECT_LE(f["max_rel"], 1e-4);  // both tensors of the returned tuple (saturated: argmax means nothing)
}

// A layer whose input never varies (a ReLU that is always off) gets an input
// scale so small that its bias does not fit int32: it stays float, added
// after the layer (ONNX Runtime's fused kernel was off by 158 output steps on
// such a layer of GoogLeNet), and the export still matches LibTorch.
TEST(OnnxRuntime, ALayerWithAConstantInputKeepsItsBiasExact) {
  Model m = testing::ScriptedTestModel(
      "DeadInput",
      "def forward(self, x: Tensor) -> Tensor:\n"
      "    h = torch.relu(torch.linear(x, self.w1, self.b1))\n"
      "    dead = torch.relu(h - 1000.0)\n"
      "    return torch.linear(dead, self.w2, self.b2) + torch.linear(h, self.w3, self.b3)\n",
      {{"w1", at::randn({16, 8})},
       {"b1", at::randn({16})},
       {"w2", at::randn({4, 16})},
       {"b2", at::randn({4})},
       {"w3", at::randn({4, 16})},
       {"b3", at::randn({4})}});
  QuantizationConfig config;
  config.mutable_activation()->mutable_minmax();
  ASSERT_OK_AND_ASSIGN(auto q, Int8Quantizer::Create(m, config));
  for (int b = 0; b < 4; ++b) ASSERT_OK(q->Observe({RandomInput({8}, 32, 20 + b)}));
  ASSERT_OK_AND_ASSIGN(Model int8, q->Convert());
  OnnxExportOptions options;
  options.input_shapes = {{1, 8}};
  const std::string path = TempPath("dead_input_int8");
  ASSERT_OK(int8.Save(path + ".pt"));
  ASSERT_OK_AND_ASSIGN(OnnxExportSummary summary, WriteOnnx(int8, path + ".onnx", options));
  EXPECT_TRUE(summary.quantized);
  EXPECT_EQ(summary.op_counts["Gemm"], 3);
  EXPECT_GE(summary.op_counts["Add"], 2);  // the float bias after the dead layer, and the sum
  ASSERT_OK_AND_ASSIGN(Figures f, Verify(path + ".pt", path + ".onnx", "int8", "--random 256"));
  EXPECT_GE(f["argmax_agreement"], 0.99);
  EXPECT_LE(f["max_rel"], 0.05);
}

}  // namespace
}  // namespace slimfit
