// Quantize end to end on real data: a LeNet-5 trained for two short epochs on
// Fashion-MNIST (Debian's files), then post-training int8, QAT (moving-
// average ranges and LSQ), mixed precision and weight-only storage; the int8
// model tracks its fake-quantized simulation, loads and runs in Python, and
// is no worse than PyTorch's own quantize_jit of the same model, image by
// image on the same batches, beyond max(0.3 points, 3 standard errors).
#include "quantizers/quantize.h"

#include <ATen/ATen.h>
#include <ATen/core/grad_mode.h>
#include <torch/csrc/jit/api/module.h>

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <sstream>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/files.h"
#include "common/status_macros.h"
#include "common/status_matchers.h"
#include "common/text_proto.h"
#include "data/splits.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "model/zoo/zoo.h"
#include "trainer/trainer.h"

namespace slimfit {
namespace {

using ::slimfit::testing::StatusIs;
using ::testing::HasSubstr;

// The venv's Python, whose torch is the LibTorch this test links: BUILD sets
// SLIMFIT_PYTHON to //third_party:python.
std::string Python() {
  const char* python = std::getenv("SLIMFIT_PYTHON");
  return python != nullptr ? python : "SLIMFIT_PYTHON-is-not-set";
}

constexpr char kData[] = R"pb(
  mnist {}
  train_batch_size: 64
  max_train_samples: 12000
  seed: 1
  train_transforms { normalize { mean: 0.2860 std: 0.3530 } }
  eval_transforms { normalize { mean: 0.2860 std: 0.3530 } }
)pb";

// One trained model shared by the tests (training costs a few seconds).
struct Env {
  DataConfig data;
  Splits splits;
  std::unique_ptr<DataLoader> train, val, test;
  std::shared_ptr<ForwardPass> fp = std::make_shared<ForwardPass>();
  std::unique_ptr<LossFunction> loss;
  std::unique_ptr<EvaluationFunction> evaluator;
  TrainerConfig trainer;
  std::unique_ptr<Model> model;
  double float_accuracy = 0;
  std::string dir;

  // Built once, by the first test that asks; an error is returned to every
  // test that asks (each fails with it) instead of a half-built Env.
  static absl::StatusOr<Env*> Get() {
    static const absl::StatusOr<Env*>* const env = [] {
      auto* e = new Env;
      const absl::Status s = e->Init();
      return new absl::StatusOr<Env*>(s.ok() ? absl::StatusOr<Env*>(e) : absl::StatusOr<Env*>(s));
    }();
    return *env;
  }

  absl::Status Init() {
    // bootstrap.sh installs the data set: its absence is a failure, not a skip.
    if (!RegularFileSize("/usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz").ok()) {
      return absl::FailedPreconditionError("dataset-fashion-mnist is not installed: run ./bootstrap.sh");
    }
    dir = absl::StrCat(getenv("TEST_TMPDIR") ? getenv("TEST_TMPDIR") : "/tmp", "/quantize_test");
    RETURN_IF_ERROR(CreateDirectories(dir));
    RETURN_IF_ERROR(ParseTextProto(kData, "data", &data));
    ASSIGN_OR_RETURN(splits, LoadSplits(data));
    ASSIGN_OR_RETURN(train, MakeLoader(data, splits, "train"));
    ASSIGN_OR_RETURN(val, MakeLoader(data, splits, "val"));
    ASSIGN_OR_RETURN(test, MakeLoader(data, splits, "test"));
    LossConfig lc;
    lc.mutable_cross_entropy();
    ASSIGN_OR_RETURN(loss, MakeLoss(lc, LossContext{fp}));
    EvaluationConfig ec;
    RETURN_IF_ERROR(ParseTextProto("evaluators { accuracy {} } eval_key: 'accuracy'", "eval", &ec));
    ASSIGN_OR_RETURN(evaluator, MakeEvaluator(ec, EvaluatorContext{fp}));
    RETURN_IF_ERROR(ParseTextProto("epochs: 2 optimizer { sgd { momentum: 0.9 } lr: 0.05 } progress: NONE seed: 1",
                                   "trainer", &trainer));
    ZooOptions zo;
    zo.seed = 1;
    ASSIGN_OR_RETURN(Model m, CreateZooModel("lenet5", zo));
    model = std::make_unique<Model>(std::move(m));
    TrainerDeps td;
    td.loss = loss.get();
    td.train = train.get();
    ASSIGN_OR_RETURN(auto t, Trainer::Create(trainer, td));
    RETURN_IF_ERROR(t->Train(*model).status());
    model->Eval();
    float_accuracy = Accuracy(*model);
    RETURN_IF_ERROR(model->Save(dir + "/float.pt"));
    // QAT fine-tunes at a lower rate.
    trainer.mutable_optimizer()->set_lr(0.002);
    return absl::OkStatus();
  }

  double Accuracy(Model& m) {
    auto metrics = evaluator->Apply(m, *test);
    EXPECT_OK(metrics.status());
    return metrics.ok() ? metrics->Get("accuracy")->value : -1;
  }

  QuantizeDeps Deps() {
    QuantizeDeps d;
    d.forward_pass = fp.get();
    d.calibration = train.get();
    d.evaluator = evaluator.get();
    d.eval = val.get();
    d.loss = loss.get();
    d.train = train.get();
    d.trainer = &trainer;
    return d;
  }
};

std::string ReadFile(const std::string& path) { return ReadFileToString(path).value_or(""); }

TEST(Quantize, PostTrainingInt8TracksSimulationAndMatchesPyTorch) {
  ASSERT_OK_AND_ASSIGN(Env* env_ptr, Env::Get());
  Env& env = *env_ptr;
  ASSERT_GT(env.float_accuracy, 80.0);  // two short epochs
  QuantizationConfig config;
  config.set_calibration_batches(16);
  ASSERT_OK_AND_ASSIGN(QuantizeResult r, Quantize(*env.model, config, env.Deps()));
  const double int8_accuracy = env.Accuracy(r.model);
  EXPECT_NEAR(int8_accuracy, env.float_accuracy, 1.0);

  // The int8 model vs its fake-quantized simulation, argmax on the test split.
  ASSERT_OK_AND_ASSIGN(auto q, Int8Quantizer::Create(*env.model, config));
  ASSERT_OK(q->Calibrate(*env.train, *env.fp, 16).status());
  ASSERT_OK_AND_ASSIGN(Model sim, q->Simulate());
  ASSERT_OK_AND_ASSIGN(Model int8, q->Convert());
  int64_t agree = 0, total = 0;
  ASSERT_OK(ForBatches(*env.test, 1 << 30, [&](const Batch& b) -> absl::Status {
              at::NoGradGuard no_grad;
              const at::Tensor x = b[0].toTensor();
              const at::Tensor a = int8.module().forward({x}).toTensor().argmax(1);
              const at::Tensor s = sim.module().forward({x}).toTensor().argmax(1);
              agree += a.eq(s).sum().item<int64_t>();
              total += x.size(0);
              return absl::OkStatus();
            }).status());
  EXPECT_EQ(total, 10000);
  EXPECT_GE(static_cast<double>(agree) / total, 0.99) << agree << " of " << total;

  // Python: the int8 file loads and runs (same predictions), and PyTorch's
  // own PTQ of the float model is no worse than slimfit's (below).
  const std::string int8_path = env.dir + "/int8.pt";
  ASSERT_OK(r.model.Save(int8_path));
  const std::string check = env.dir + "/check.py";
  {
    std::ofstream py(check);
    py << "import sys, torch\n"
          "torch.backends.quantized.engine = 'onednn'\n"
          "m = torch.jit.load(sys.argv[1])\n"
          "x = torch.randn(8, 1, 28, 28)\n"
          "assert m(x).shape == (8, 10), m(x).shape\n"
          "print('ok')\n";
  }
  const std::string out = env.dir + "/py.txt";
  ASSERT_EQ(std::system(absl::StrCat(Python(), " ", check, " ", int8_path, " > ", out, " 2>&1").c_str()), 0)
      << ReadFile(out);
  const std::string torch_out = env.dir + "/torch.json";
  ASSERT_EQ(std::system(absl::StrCat("OMP_NUM_THREADS=1 ", Python(), " quantizers/pytorch/ptq_reference.py --model ",
                                     env.dir, "/float.pt --out ", env.dir,
                                     "/torch_int8.pt --calibration_batches 16 > ", torch_out, " 2>/dev/null")
                            .c_str()),
            0)
      << ReadFile(torch_out);
  const std::string json = ReadFile(torch_out);
  const size_t at = json.find("\"accuracy\": ");
  ASSERT_NE(at, std::string::npos) << json;
  const double torch_accuracy = std::atof(json.c_str() + at + 12);
  // PyTorch's int8 model scored here on the same batches: what Python
  // printed, and the per-image difference to slimfit's. The two use
  // different activation ranges (mse vs PyTorch's histogram search), so
  // they differ image by image; slimfit's must not be worse than
  // PyTorch's by more than 0.3 points or three standard errors of the
  // paired difference (derived from the images they disagree on),
  // whichever is larger.
  ASSERT_OK_AND_ASSIGN(Model torch_int8, Model::Load(env.dir + "/torch_int8.pt"));
  double sum = 0, sum_sq = 0, theirs_correct = 0;
  int64_t n = 0;
  ASSERT_OK(ForBatches(*env.test, 1 << 30, [&](const Batch& b) -> absl::Status {
              at::NoGradGuard no_grad;
              const at::Tensor x = b[0].toTensor(), y = b[1].toTensor();
              const at::Tensor ours = r.model.module().forward({x}).toTensor().argmax(1).eq(y).to(at::kDouble);
              const at::Tensor theirs = torch_int8.module().forward({x}).toTensor().argmax(1).eq(y).to(at::kDouble);
              const at::Tensor d = ours - theirs;
              theirs_correct += theirs.sum().item<double>();
              sum += d.sum().item<double>();
              sum_sq += d.pow(2).sum().item<double>();
              n += x.size(0);
              return absl::OkStatus();
            }).status());
  ASSERT_EQ(n, 10000);
  const double mean = sum / n;  // slimfit minus PyTorch, a fraction
  const double se = std::sqrt(std::max(0.0, sum_sq / n - mean * mean) / n);
  const double torch_here = 100 * theirs_correct / n;
  EXPECT_GE(100 * mean, -std::max(0.3, 3 * 100 * se)) << json << " standard error " << 100 * se;
  std::printf(
      "float %.2f  slimfit int8 %.2f  PyTorch int8 %.2f here (%.2f in Python; paired difference %+.2f, "
      "se %.2f)  int8/simulation agreement %.4f\n",
      env.float_accuracy, int8_accuracy, torch_here, torch_accuracy, 100 * mean, 100 * se,
      static_cast<double>(agree) / total);
}

TEST(Quantize, QuantizationAwareTrainingKeepsAccuracy) {
  ASSERT_OK_AND_ASSIGN(Env* env_ptr, Env::Get());
  Env& env = *env_ptr;
  for (bool lsq : {false, true}) {
    SCOPED_TRACE(lsq ? "lsq" : "moving-average");
    QuantizationConfig config;
    config.set_calibration_batches(8);
    config.mutable_qat()->set_epochs(1);
    config.mutable_qat()->set_lsq(lsq);
    config.mutable_qat()->set_freeze_observers_step(40);
    ASSERT_OK_AND_ASSIGN(QuantizeResult r, Quantize(*env.model, config, env.Deps()));
    EXPECT_THAT(r.log.back(), HasSubstr(lsq ? "QAT (learned step sizes): 1 epochs" : "ranges frozen after step 40"));
    // A further epoch at a small rate with quantization in the loop: at least
    // as good as the float model give or take noise.
    EXPECT_GT(env.Accuracy(r.model), env.float_accuracy - 1.0);
  }
}

TEST(Quantize, QatModelTrainsWeightsAndStepSizes) {
  ASSERT_OK_AND_ASSIGN(Env* env_ptr, Env::Get());
  Env& env = *env_ptr;
  QuantizationConfig config;
  ASSERT_OK_AND_ASSIGN(auto q, Int8Quantizer::Create(*env.model, config));
  Batch b;
  ASSERT_OK(env.train->Reset(0));
  ASSERT_TRUE(env.train->Next(&b).value());
  ASSERT_OK(q->Observe({b[0]}));
  QatConfig qat;
  qat.set_lsq(true);
  ASSERT_OK_AND_ASSIGN(Model m, q->MakeQatModel(qat));
  at::Tensor out = m.module().forward({b[0]}).toTensor();
  at::cross_entropy_loss(out, b[1].toTensor()).backward();
  int scales_with_grad = 0, weights_with_grad = 0;
  for (const auto& p : m.module().named_parameters(/*recurse=*/true)) {
    if (!p.value.grad().defined() || p.value.grad().abs().sum().item<double>() == 0) continue;
    if (p.name.find("lsq_scale") != std::string::npos) ++scales_with_grad;
    if (p.name.rfind("quant_w_", 0) == 0) ++weights_with_grad;
  }
  EXPECT_EQ(weights_with_grad, static_cast<int>(q->layers().size()));
  EXPECT_GE(scales_with_grad, static_cast<int>(q->layers().size()));  // weight scales, plus activations
}

TEST(Quantize, MixedPrecisionKeepsTheMostSensitiveLayersInFloat) {
  ASSERT_OK_AND_ASSIGN(Env* env_ptr, Env::Get());
  Env& env = *env_ptr;
  QuantizationConfig config;
  config.set_calibration_batches(4);
  config.mutable_weight()->mutable_minmax();
  config.mutable_weight()->set_per_channel(true);
  config.mutable_weight()->set_bits(2);  // coarse enough to hurt every layer
  config.mutable_mixed_precision()->set_max_drop(1.0);
  config.mutable_mixed_precision()->set_eval_batches(16);
  ASSERT_OK_AND_ASSIGN(QuantizeResult r, Quantize(*env.model, config, env.Deps()));
  ASSERT_EQ(r.sensitivity.size(), 5u) << absl::StrJoin(r.log, "\n");  // 2 convs + 3 linears
  for (size_t i = 1; i < r.sensitivity.size(); ++i) EXPECT_GE(r.sensitivity[i - 1].drop, r.sensitivity[i].drop);
  ASSERT_FALSE(r.fp32_layers.empty());
  EXPECT_THAT(r.fp32_layers, ::testing::Contains(r.sensitivity[0].layer));
  EXPECT_LE(r.metric_float - r.metric_quantized, 1.0) << absl::StrJoin(r.log, "\n");
  for (int l : r.fp32_layers) EXPECT_EQ(r.layers[l].reason, "mixed precision");
}

TEST(Quantize, WeightOnlyShrinksTheFileAndStaysClose) {
  ASSERT_OK_AND_ASSIGN(Env* env_ptr, Env::Get());
  Env& env = *env_ptr;
  std::stringstream fb;
  env.model->module().save(fb);
  for (int bits : {8, 4}) {
    SCOPED_TRACE(bits);
    QuantizationConfig config;
    config.mutable_weight_only()->set_bits(bits);
    QuantizeDeps deps = env.Deps();
    deps.calibration = nullptr;  // needs no data
    ASSERT_OK_AND_ASSIGN(QuantizeResult r, Quantize(*env.model, config, deps));
    std::stringstream qb;
    r.model.module().save(qb);
    const double ratio = static_cast<double>(qb.str().size()) / fb.str().size();
    EXPECT_LT(ratio, bits == 8 ? 0.4 : 0.3);
    EXPECT_NEAR(env.Accuracy(r.model), env.float_accuracy, bits == 8 ? 0.3 : 3.0);
    const std::string path = absl::StrCat(env.dir, "/weight_only_", bits, ".pt");
    ASSERT_OK(r.model.Save(path));
    ASSERT_EQ(std::system(absl::StrCat(Python(), " -c \"import torch; m = torch.jit.load('", path,
                                       "'); assert m(torch.randn(2, 1, 28, 28)).shape == (2, 10)\"")
                              .c_str()),
              0);
  }
}

// The percentage of images on which a model predicts what the float model
// predicts (reported as "accuracy", the key mixed precision listens to).
// Any weight change that flips a prediction costs here, so 4-bit weights
// cost something on every model; real accuracy need not fall (on the
// 2-epoch LeNet-5 of these tests every layer at 4 bits once scored higher
// than float on the first 16 eval batches).
class AgreementWithFloat : public EvaluationFunction {
 public:
  explicit AgreementWithFloat(Model& reference) : reference_(reference) {}
  absl::StatusOr<Metrics> Apply(Model& model, DataLoader& loader) override {
    int64_t agree = 0, n = 0;
    RETURN_IF_ERROR(ForBatches(loader, 1 << 30, [&](const Batch& b) -> absl::Status {
                      at::NoGradGuard no_grad;
                      const at::Tensor x = b[0].toTensor();
                      const at::Tensor ours = model.module().forward({x}).toTensor().argmax(1);
                      const at::Tensor theirs = reference_.module().forward({x}).toTensor().argmax(1);
                      agree += ours.eq(theirs).sum().item<int64_t>();
                      n += x.size(0);
                      return absl::OkStatus();
                    }).status());
    Metrics m;
    m.Set("accuracy", n > 0 ? 100.0 * agree / n : 0.0, /*higher_is_better=*/true);
    return m;
  }

 private:
  Model& reference_;
};

TEST(Quantize, MixedWeightOnlyKeepsTheMostSensitiveLayersAtEightBits) {
  ASSERT_OK_AND_ASSIGN(Env* env_ptr, Env::Get());
  Env& env = *env_ptr;
  QuantizationConfig config;
  config.mutable_weight_only()->set_bits(4);
  config.mutable_mixed_precision()->set_max_drop(1e-9);  // every layer that costs anything goes back to 8 bits
  config.mutable_mixed_precision()->set_eval_batches(16);
  QuantizeDeps deps = env.Deps();
  deps.calibration = nullptr;
  AgreementWithFloat agreement(*env.model);
  deps.evaluator = &agreement;
  ASSERT_OK_AND_ASSIGN(QuantizeResult r, Quantize(*env.model, config, deps));
  ASSERT_EQ(r.sensitivity.size(), 5u) << absl::StrJoin(r.log, "\n");  // 2 convs + 3 linears
  for (size_t i = 1; i < r.sensitivity.size(); ++i) EXPECT_GE(r.sensitivity[i - 1].drop, r.sensitivity[i].drop);
  ASSERT_FALSE(r.eight_bit_layers.empty()) << absl::StrJoin(r.log, "\n");
  EXPECT_THAT(r.eight_bit_layers, ::testing::Contains(r.sensitivity[0].layer));
  EXPECT_TRUE(r.fp32_layers.empty());
  EXPECT_THAT(r.log.back(), HasSubstr(absl::StrCat("4-bit weights (", r.eight_bit_layers.size(), " layer(s) at 8 bits)")));
  // Between all-4-bit and all-8-bit in size; loads in Python.
  auto saved_size = [](const Model& m) {
    std::stringstream b;
    m.module().save(b);
    return b.str().size();
  };
  QuantizationConfig all4, all8;
  all4.mutable_weight_only()->set_bits(4);
  all8.mutable_weight_only()->set_bits(8);
  ASSERT_OK_AND_ASSIGN(QuantizeResult r4, Quantize(*env.model, all4, deps));
  ASSERT_OK_AND_ASSIGN(QuantizeResult r8, Quantize(*env.model, all8, deps));
  EXPECT_GT(saved_size(r.model), saved_size(r4.model));
  EXPECT_LE(saved_size(r.model), saved_size(r8.model));
  const std::string path = absl::StrCat(env.dir, "/weight_only_mixed.pt");
  ASSERT_OK(r.model.Save(path));
  ASSERT_EQ(std::system(absl::StrCat(Python(), " -c \"import torch; m = torch.jit.load('", path,
                                     "'); assert m(torch.randn(2, 1, 28, 28)).shape == (2, 10)\"")
                            .c_str()),
            0);
}

TEST(Quantize, MissingDataIsAnError) {
  ASSERT_OK_AND_ASSIGN(Env* env_ptr, Env::Get());
  Env& env = *env_ptr;
  QuantizeDeps deps = env.Deps();
  deps.calibration = nullptr;
  EXPECT_THAT(Quantize(*env.model, QuantizationConfig(), deps).status(),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("QuantizeDeps: calibration is null")));
  QuantizationConfig qat;
  qat.mutable_qat()->set_epochs(1);
  deps = env.Deps();
  deps.trainer = nullptr;
  EXPECT_THAT(Quantize(*env.model, qat, deps).status(),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       "qat.epochs: needs training data, a loss and a trainer config (QuantizeDeps.trainer is null), "
                       "got 1; valid: 0 without them"));
}

}  // namespace
}  // namespace slimfit
