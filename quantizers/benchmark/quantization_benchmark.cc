// Int8 quantization of trained models on Fashion-MNIST, side by side in one
// run: fp32 vs slimfit post-training (PTQ) vs slimfit quantization-aware
// training (QAT) vs PyTorch's own PTQ (quantize_jit, same engine, written by
// quantizers/pytorch/ptq_reference.py and loaded here) — test accuracy,
// serialized size, and latency at batch 1 and 64 on one thread, each as a
// ratio to the fp32 model timed again right beside it.
//
//   # the trained models (once):
//   bazel run //tools:train -- --config=experiments/train/resnet_small_fashion.pbtxt
//   bazel run //tools:train -- --model=vgg_small --epochs=6 --augment --lr=0.05 --batch_size=128
//       --out=runs/train/vgg_small_fashion
//   bazel run //quantizers/benchmark:quantization_benchmark
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_split.h"
#include "common/files.h"
#include "common/status_macros.h"
#include "common/threads.h"
#include "quantizers/int8.h"
#include "quantizers/quantize.h"
#include "tools/cli.h"
#include "tools/python_flag.h"
#include "tools/compare.h"
#include "tools/job.h"

ABSL_FLAG(std::string, models,
          "resnet_small=runs/train/resnet_small_fashion/model.pt,vgg_small=runs/train/vgg_small_fashion/model.pt",
          "name=trained model file, comma-separated (see the header)");
ABSL_FLAG(int, qat_epochs, 1, "QAT epochs (0: skip QAT)");
ABSL_FLAG(bool, lsq, true, "also run QAT with learned step sizes");
ABSL_FLAG(double, qat_lr, 0.001, "QAT learning rate (SGD momentum 0.9, cosine)");
ABSL_FLAG(std::string, engine, "onednn", "quantized engine: onednn, x86, fbgemm or qnnpack");
ABSL_FLAG(int, calibration_batches, 32, "calibration batches (64 images each)");
ABSL_FLAG(int, latency_runs, 50, "timed runs per latency figure");
ABSL_FLAG(bool, pytorch, true, "also quantize with PyTorch (--python)");
ABSL_FLAG(std::string, out_dir, "runs/quantization_benchmark", "where the quantized models are written");

namespace slimfit {
namespace {

struct Row {
  std::string name;
  double accuracy = 0;
  int64_t bytes = 0;
  double b1 = 0, b64 = 0;              // ms
  double base_b1 = 0, base_b64 = 0;    // fp32, timed beside it
};

absl::StatusOr<Row> Measure(const std::string& name, Model& m, Model& fp32, Job& job, const TrainJob& tj) {
  const int runs = absl::GetFlag(FLAGS_latency_runs);
  ASSIGN_OR_RETURN(Measured q, MeasureModel(m, *job.forward_pass, &job, tj.data(), 1, runs));
  ASSIGN_OR_RETURN(Measured base, MeasureModel(fp32, *job.forward_pass, nullptr, tj.data(), 1, runs));
  Row r;
  r.name = name;
  r.accuracy = q.accuracy;
  r.bytes = q.cost.serialized_bytes;
  r.b1 = q.cost.latency[0].median_ms;
  r.b64 = q.cost.latency[1].median_ms;
  r.base_b1 = base.cost.latency[0].median_ms;
  r.base_b64 = base.cost.latency[1].median_ms;
  return r;
}

absl::Status RunModel(const std::string& name, const std::string& path) {
  TrainJob tj;
  ASSIGN_OR_RETURN(Job job, BuildToolJob(path, "fashion_mnist", "", 64, /*seed=*/0, &tj),
                   absl::StrCat("loading ", path, " (see the benchmark's header)"));
  Model& fp32 = *job.model;
  fp32.Eval();
  const std::string dir = absl::StrCat(absl::GetFlag(FLAGS_out_dir), "/", name);
  RETURN_IF_ERROR(CreateDirectories(dir));

  QuantizationConfig config;
  config.set_calibration_batches(absl::GetFlag(FLAGS_calibration_batches));
  ASSIGN_OR_RETURN(const QuantizationConfig::Engine engine,
                   QuantizedEngineFromName("--engine", absl::GetFlag(FLAGS_engine)));
  config.set_engine(engine);
  TrainerConfig trainer = FineTuneConfig(absl::GetFlag(FLAGS_qat_lr), 1, job.train->num_batches(), /*seed=*/0);
  trainer.set_progress(TrainerConfig::NONE);
  QuantizeDeps deps;
  deps.forward_pass = job.forward_pass.get();
  deps.calibration = job.train.get();
  deps.evaluator = job.evaluator.get();
  deps.eval = job.eval.get();
  deps.loss = job.loss.get();
  deps.train = job.train.get();
  deps.trainer = &trainer;

  std::vector<Row> rows;
  {
    Row r;
    ASSIGN_OR_RETURN(r, Measure("fp32", fp32, fp32, job, tj));
    rows.push_back(r);
  }
  auto slimfit_row = [&](const std::string& label, const QuantizationConfig& c) -> absl::Status {
    ASSIGN_OR_RETURN(QuantizeResult q, Quantize(fp32, c, deps));
    for (const std::string& line : q.log) std::printf("  [%s %s] %s\n", name.c_str(), label.c_str(), line.c_str());
    std::fflush(stdout);
    RETURN_IF_ERROR(q.model.Save(absl::StrCat(dir, "/", label, ".pt")));
    ASSIGN_OR_RETURN(Row r, Measure(label, q.model, fp32, job, tj));
    rows.push_back(r);
    return absl::OkStatus();
  };
  RETURN_IF_ERROR(slimfit_row("slimfit PTQ", config));
  if (absl::GetFlag(FLAGS_qat_epochs) > 0) {
    QuantizationConfig qat = config;
    qat.mutable_qat()->set_epochs(absl::GetFlag(FLAGS_qat_epochs));
    RETURN_IF_ERROR(slimfit_row("slimfit QAT", qat));
    if (absl::GetFlag(FLAGS_lsq)) {
      qat.mutable_qat()->set_lsq(true);
      RETURN_IF_ERROR(slimfit_row("slimfit QAT LSQ", qat));
    }
  }
  if (absl::GetFlag(FLAGS_pytorch)) {
    const std::string out = absl::StrCat(dir, "/pytorch_ptq.pt");
    ASSIGN_OR_RETURN(const std::string python, TorchPython());
    const std::string cmd = absl::StrCat("OMP_NUM_THREADS=1 ", python, " quantizers/pytorch/ptq_reference.py --model ",
                                         path, " --engine ", absl::GetFlag(FLAGS_engine), " --out ", out, " --calibration_batches ",
                                         absl::GetFlag(FLAGS_calibration_batches), " 2>/dev/null");
    std::printf("  [%s PyTorch PTQ] %s\n", name.c_str(), cmd.c_str());
    std::fflush(stdout);
    if (std::system(cmd.c_str()) != 0) return absl::InternalError(absl::StrCat("failed: ", cmd));
    ASSIGN_OR_RETURN(Model torch_int8, Model::Load(out));
    ASSIGN_OR_RETURN(Row r, Measure("PyTorch PTQ", torch_int8, fp32, job, tj));
    rows.push_back(r);
  }

  std::printf("\n%s on Fashion-MNIST (test 10000), %s, 1 thread; ratios to fp32 timed beside each row\n",
              name.c_str(), absl::GetFlag(FLAGS_engine).c_str());
  std::printf("%-16s %9s %7s %9s %7s %9s %8s %9s %8s\n", "", "accuracy", "drop", "size KiB", "size x", "b1 ms",
              "b1 x", "b64 ms", "b64 x");
  const Row& f = rows.front();
  for (const Row& r : rows) {
    std::printf("%-16s %8.2f%% %+7.2f %9.1f %7.3f %9.3f %8.3f %9.3f %8.3f\n", r.name.c_str(), r.accuracy,
                r.accuracy - f.accuracy, r.bytes / 1024.0, static_cast<double>(r.bytes) / f.bytes, r.b1,
                r.b1 / r.base_b1, r.b64, r.b64 / r.base_b64);
  }
  std::printf("\n");
  std::fflush(stdout);
  return absl::OkStatus();
}

absl::Status Run() {
  ConfigureThreads(1);
  for (absl::string_view spec : absl::StrSplit(absl::GetFlag(FLAGS_models), ',', absl::SkipEmpty())) {
    std::vector<std::string> parts = absl::StrSplit(spec, '=');
    if (parts.size() != 2) return absl::InvalidArgumentError(absl::StrCat("--models: '", spec, "' is not name=path"));
    RETURN_IF_ERROR(RunModel(parts[0], parts[1]));
  }
  return absl::OkStatus();
}

}  // namespace
}  // namespace slimfit

int main(int argc, char** argv) {
  return slimfit::RunFromWorkspace(argc, argv, "quantization_benchmark", &slimfit::Run);
}
