// Training and scoring on a CUDA device, against the same on the CPU. Tagged
// `gpu`: the suite skips it (.bazelrc); a machine with a GPU runs it
// (`bazel test --test_tag_filters=gpu //...`, or tools/gpu/check.sh), and it
// fails, never skips, without one.
#include <ATen/ATen.h>

#include <map>
#include <string>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "common/status_matchers.h"
#include "common/text_proto.h"
#include "data/splits.h"
#include "evaluators/evaluation_function.h"
#include "evaluators/profiler.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "losses/loss_function.h"
#include "model/device.h"
#include "model/zoo/zoo.h"
#include "trainer/components.h"
#include "trainer/trainer.h"

namespace slimfit {
namespace {

using ::slimfit::testing::IsOkAndHolds;
using ::slimfit::testing::StatusIs;
using ::testing::HasSubstr;

struct Slice {
  std::shared_ptr<ForwardPass> fp = std::make_shared<ForwardPass>();
  DataConfig config;
  Splits splits;
  std::unique_ptr<DataLoader> train, val;
  Slice() {
    EXPECT_OK(
        ParseTextProto("synthetic { train_samples: 512 test_samples: 128 shape: [1, 12, 12] num_classes: 4 "
                       "noise: 1.5 } train_batch_size: 32 seed: 1",
                       "t", &config));
    splits = LoadSplits(config).value();
    train = MakeLoader(config, splits, "train").value();
    val = MakeLoader(config, splits, "val").value();
  }
};

c10::Device Gpu() {
  absl::StatusOr<c10::Device> d = ResolveDevice("cuda");
  EXPECT_OK(d.status());
  return d.ok() ? *d : c10::Device(c10::kCPU);
}

std::unique_ptr<EvaluationFunction> Evaluator(Slice& run, c10::Device device) {
  EvaluatorContext context{run.fp};
  context.device = device;
  return MakeEvaluator(EvaluationConfig(), context).value();
}

Model Lenet() { return CreateZooModel("lenet5", ZooOptions{.height = 12, .width = 12, .num_classes = 4}).value(); }

// `steps` SGD steps of cross-entropy on `device`; the weights after them.
std::map<std::string, at::Tensor> Trained(c10::Device device, int steps, double* accuracy) {
  Slice run;
  LossConfig lc;
  lc.mutable_cross_entropy();
  auto loss = MakeLoss(lc, LossContext{run.fp}).value();
  auto eval = Evaluator(run, device);
  TrainerConfig c;
  EXPECT_OK(ParseTextProto(absl::StrFormat("optimizer { sgd { momentum: 0.9 } lr: 0.05 } progress: NONE "
                                           "seed: 3 %s",
                                           steps > 0 ? absl::StrFormat("max_steps: %d", steps) : "epochs: 3"),
                           "t", &c));
  TrainerDeps deps{loss.get(), eval.get(), run.train.get(), run.val.get()};
  deps.device = device;
  Model m = Lenet();
  auto trainer = Trainer::Create(c, deps).value();
  absl::StatusOr<TrainResult> r = trainer->Train(m);
  EXPECT_OK(r.status());
  EXPECT_EQ(m.device(), c10::Device(c10::kCPU)) << "handed back where it came from";
  if (accuracy != nullptr && r.ok()) *accuracy = r->best.Get("accuracy")->value;
  std::map<std::string, at::Tensor> w;
  for (auto& [name, p] : m.NamedParameters()) w[name] = p.detach().clone();
  return w;
}

// "cuda" names the device a distributed run's LOCAL_RANK picked (as
// torch.cuda.set_device); "cuda:N" does not move.
TEST(DeviceGpuTest, CudaNamesTheDefaultIndex) {
  const int devices = Cuda().device_count;
  ASSERT_GE(devices, 1) << "this test needs a CUDA device (tag gpu)";
  SetDefaultCudaIndex(devices - 1);
  EXPECT_THAT(ResolveDevice("cuda"), IsOkAndHolds(c10::Device(c10::kCUDA, devices - 1)));
  EXPECT_THAT(ResolveDevice("cuda:0"), IsOkAndHolds(c10::Device(c10::kCUDA, 0)));
  SetDefaultCudaIndex(devices);
  EXPECT_THAT(ResolveDevice("cuda"), StatusIs(absl::StatusCode::kFailedPrecondition,
                                              HasSubstr(absl::StrCat("sees ", devices, " CUDA device"))));
  SetDefaultCudaIndex(0);
}

TEST(TrainerGpuTest, OneStepOnCudaMatchesTheCpu) {
  const auto cpu = Trained(c10::kCPU, 1, nullptr);
  const auto gpu = Trained(Gpu(), 1, nullptr);
  ASSERT_EQ(cpu.size(), gpu.size());
  for (const auto& [name, w] : cpu) {
    ASSERT_TRUE(gpu.at(name).device().is_cpu()) << name;
    EXPECT_TRUE(at::allclose(w, gpu.at(name), /*rtol=*/1e-4, /*atol=*/1e-5)) << name;
  }
}

TEST(TrainerGpuTest, LearnsOnCudaAsOnTheCpu) {
  double cpu = 0, gpu = 0;
  Trained(c10::kCPU, 0, &cpu);
  Trained(Gpu(), 0, &gpu);
  EXPECT_GT(gpu, 90.0);
  EXPECT_NEAR(gpu, cpu, 2.0);
}

TEST(TrainerGpuTest, EvaluatorOnCudaScoresAsTheCpuAndLeavesTheModel) {
  Slice run;
  Model m = Lenet();
  const double cpu = Evaluator(run, c10::kCPU)->Apply(m, *run.val).value().Get("accuracy")->value;
  const double gpu = Evaluator(run, Gpu())->Apply(m, *run.val).value().Get("accuracy")->value;
  EXPECT_NEAR(gpu, cpu, 1e-9);
  EXPECT_EQ(m.device(), c10::Device(c10::kCPU));
}

TEST(TrainerGpuTest, DistillationTeacherIsCopiedToTheStudentsDevice) {
  Slice run;
  Model teacher = Lenet();
  LossConfig lc;
  ASSERT_OK(ParseTextProto("distillation { temperature: 2 }", "t", &lc));
  LossContext context{run.fp};
  context.teacher = &teacher;
  auto loss = MakeLoss(lc, context).value();
  ASSERT_OK(loss->ToDevice(Gpu()));
  Model student = Lenet();
  ASSERT_OK(student.To(Gpu()));
  ASSERT_OK(run.train->Reset(0));
  Batch batch;
  ASSERT_TRUE(run.train->Next(&batch).value());
  ASSERT_OK_AND_ASSIGN(LossTerms terms, (*loss)(student, batch));
  EXPECT_TRUE(terms.Total().device().is_cuda());
  EXPECT_EQ(teacher.device(), c10::Device(c10::kCPU)) << "the caller's teacher stays where it is";
}

TEST(TrainerGpuTest, ALoaderForCudaPinsItsBatchesAhead) {
  Gpu();  // loads LibTorch's CUDA library
  Slice run;
  const DataConfig data = DataForDevice(run.config, Gpu());
  ASSERT_TRUE(data.pin_memory());
  ASSERT_OK_AND_ASSIGN(auto loader, MakeLoader(data, run.splits, "train"));
  ASSERT_OK(loader->Reset(0));
  Batch batch;
  ASSERT_TRUE(loader->Next(&batch).value());
  for (const c10::IValue& v : batch) EXPECT_TRUE(v.toTensor().is_pinned());
}

TEST(TrainerGpuTest, LatencyIsTimedOnTheDeviceAsked) {
  Model m = Lenet();
  ForwardPass fp;
  ASSERT_OK(fp.InferFromMetadata(m.metadata()));
  ProfilerConfig c;
  c.set_device("cuda");
  c.set_runs(5);
  ASSERT_OK_AND_ASSIGN(CostReport r, ProfileModel(m, fp, c));
  ASSERT_EQ(r.latency.size(), 2u);
  for (const LatencyStats& l : r.latency) {
    EXPECT_EQ(l.device, "cuda:0");
    EXPECT_GT(l.median_ms, 0);
  }
  EXPECT_EQ(m.device(), c10::Device(c10::kCPU)) << "timed on a copy";
}

}  // namespace
}  // namespace slimfit
