// One training epoch of each model on Fashion-MNIST in C++ (slimfit's
// Trainer, BatchLoader, zoo model; with its default weight layout, AUTO =
// channels-last here, and with contiguous weights) and in Python (an eager
// nn.Module of the same architecture, the same with channels-last, and the
// same loop on slimfit's exported TorchScript), same samples, batch 128, same
// thread count, in one run; prints the times and the C++/Python ratios.
//
//   bazel run //trainer/benchmark:train_epoch_benchmark -- --samples=54000
#include <ATen/Parallel.h>

#include <array>
#include <chrono>
#include <cstdio>
#include <memory>
#include <regex>
#include <string>
#include <vector>

#include <unistd.h>

#include "absl/flags/flag.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_split.h"
#include "common/allocator.h"
#include "common/status_macros.h"
#include "common/threads.h"
#include "data/readers/idx.h"
#include "data/splits.h"
#include "evaluators/evaluation_function.h"
#include "losses/loss_function.h"
#include "model/zoo/zoo.h"
#include "tools/cli.h"
#include "tools/python_flag.h"
#include "trainer/trainer.h"

ABSL_FLAG(int64_t, samples, 10000, "training samples in the epoch (54000 = the whole train split)");
ABSL_FLAG(int, batch_size, 128, "batch size");
ABSL_FLAG(int, threads, 1, "intra-op threads on both sides");
ABSL_FLAG(std::string, models, "resnet_small,vgg_small", "zoo models, comma-separated (the Python half knows these two)");
ABSL_FLAG(std::string, python_script, "trainer/benchmark/train_epoch.py", "the Python half");
ABSL_FLAG(bool, cpp_default_malloc, false, "run the C++ side with glibc's malloc defaults");

namespace slimfit {
namespace {

absl::StatusOr<double> CppEpoch(Model& model, TrainerConfig::MemoryFormat format) {
  DataConfig data;
  data.mutable_mnist();
  data.set_train_batch_size(absl::GetFlag(FLAGS_batch_size));
  data.set_max_train_samples(absl::GetFlag(FLAGS_samples));
  auto* n = data.add_train_transforms()->mutable_normalize();
  n->add_mean(0.2860f);
  n->add_std(0.3530f);
  ASSIGN_OR_RETURN(Splits splits, LoadSplits(data));
  ASSIGN_OR_RETURN(auto train, MakeLoader(data, splits, "train"));
  auto fp = std::make_shared<ForwardPass>();
  LossConfig lc;
  lc.mutable_cross_entropy();
  ASSIGN_OR_RETURN(auto loss, MakeLoss(lc, LossContext{fp}));
  TrainerConfig tc;
  tc.set_epochs(1);
  tc.set_progress(TrainerConfig::NONE);
  tc.set_memory_format(format);
  tc.mutable_optimizer()->mutable_sgd()->set_momentum(0.9);
  tc.mutable_optimizer()->set_lr(0.05);
  ASSIGN_OR_RETURN(auto trainer, Trainer::Create(tc, {loss.get(), nullptr, train.get(), nullptr}));
  ASSIGN_OR_RETURN(TrainResult r, trainer->Train(model));
  return r.seconds;
}

struct PythonTimes {
  double eager = 0, eager_channels_last = 0, scripted = 0;
};

absl::StatusOr<PythonTimes> PythonEpochs(const std::string& model, const std::string& ts, int threads) {
  ASSIGN_OR_RETURN(const std::string out,
                   RunTorchPython(absl::StrFormat("OMP_NUM_THREADS=%d OPENBLAS_NUM_THREADS=1", threads),
                                  absl::StrFormat("%s %s %d %d %d %s %s", absl::GetFlag(FLAGS_python_script),
                                                  kDefaultFashionMnistDir, absl::GetFlag(FLAGS_samples),
                                                  absl::GetFlag(FLAGS_batch_size), threads, ts, model)));
  std::smatch m;
  if (!std::regex_search(out, m,
                         std::regex("eager_seconds=([0-9.]+) eager_channels_last_seconds=([0-9.]+) "
                                    "torchscript_seconds=([0-9.]+)"))) {
    return absl::InternalError(absl::StrCat("the Python half printed: ", out));
  }
  return PythonTimes{std::stod(m[1]), std::stod(m[2]), std::stod(m[3])};
}

absl::Status RunModel(const std::string& name, int threads) {
  ASSIGN_OR_RETURN(Model model, CreateZooModel(name));
  const std::string ts = absl::StrCat("/tmp/slimfit_bench_", name, ".pt");
  RETURN_IF_ERROR(model.Save(ts));
  // Each C++ epoch starts from the same initial weights (as each Python one does from its seed).
  ASSIGN_OR_RETURN(Model contiguous_model, model.Clone());
  ASSIGN_OR_RETURN(double cpp, CppEpoch(model, TrainerConfig::MEMORY_FORMAT_AUTO));
  ASSIGN_OR_RETURN(double cpp_contiguous, CppEpoch(contiguous_model, TrainerConfig::CONTIGUOUS));
  ASSIGN_OR_RETURN(PythonTimes py, PythonEpochs(name, ts, threads));
  const int64_t n = absl::GetFlag(FLAGS_samples);
  std::printf("%s, one epoch of %lld Fashion-MNIST samples, batch %d, %d thread%s, one run\n", name.c_str(),
              static_cast<long long>(n), absl::GetFlag(FLAGS_batch_size), threads, threads == 1 ? "" : "s");
  auto line = [&](const std::string& what, double s) {
    std::printf("  %-52s %8.2f s  %7.0f samples/s  C++/this %.3f\n", what.c_str(), s, n / s, cpp / s);
  };
  const char* malloc_note = absl::GetFlag(FLAGS_cpp_default_malloc) ? ", glibc malloc defaults" : "";
  std::printf("  %-52s %8.2f s  %7.0f samples/s\n",
              absl::StrCat("C++ slimfit Trainer (default: AUTO layout", malloc_note, ")").c_str(), cpp, n / cpp);
  line(absl::StrCat("C++ slimfit Trainer (contiguous weights", malloc_note, ")"), cpp_contiguous);
  line("Python eager nn.Module", py.eager);
  line("Python eager nn.Module, channels-last", py.eager_channels_last);
  line("Python, the same TorchScript model", py.scripted);
  std::printf("\n");
  return absl::OkStatus();
}

absl::Status Run() {
  if (absl::GetFlag(FLAGS_cpp_default_malloc)) KeepDefaultAllocator();
  const int threads = ConfigureThreads(absl::GetFlag(FLAGS_threads));
  const std::vector<std::string> models = absl::StrSplit(absl::GetFlag(FLAGS_models), ',', absl::SkipEmpty());
  for (const std::string& name : models) {
    RETURN_IF_ERROR(RunModel(name, threads), name);
  }
  return absl::OkStatus();
}

}  // namespace
}  // namespace slimfit

int main(int argc, char** argv) {
  return slimfit::RunFromWorkspace(argc, argv, "train_epoch_benchmark", &slimfit::Run);
}
