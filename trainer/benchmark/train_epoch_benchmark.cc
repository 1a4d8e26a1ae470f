// One training epoch of resnet_small on Fashion-MNIST in C++ (slimfit's
// Trainer, BatchLoader, zoo model) and in Python (an eager nn.Module of the
// same architecture, and the same loop on slimfit's exported TorchScript),
// same samples, batch 128, same thread count, in one run; prints the times
// and the C++/Python ratios. Python runs twice: with glibc's malloc defaults
// (what a Python user gets) and with the settings slimfit's Trainer applies
// (common/allocator.h), so the ratio separates the allocator from the rest.
//
//   bazel run //trainer/benchmark:train_epoch_benchmark -- --samples=54000
#include <ATen/Parallel.h>

#include <array>
#include <chrono>
#include <cstdio>
#include <memory>
#include <regex>
#include <string>

#include <unistd.h>

#include "absl/flags/flag.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
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
ABSL_FLAG(std::string, python_script, "trainer/benchmark/train_epoch.py", "the Python half");
ABSL_FLAG(bool, cpp_default_malloc, false, "run the C++ side with glibc's malloc defaults");

namespace slimfit {
namespace {

absl::StatusOr<double> CppEpoch(Model& model) {
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
  tc.mutable_optimizer()->mutable_sgd()->set_momentum(0.9);
  tc.mutable_optimizer()->set_lr(0.05);
  ASSIGN_OR_RETURN(auto trainer, Trainer::Create(tc, {loss.get(), nullptr, train.get(), nullptr}));
  ASSIGN_OR_RETURN(TrainResult r, trainer->Train(model));
  return r.seconds;
}

struct PythonTimes {
  double eager = 0, scripted = 0;
};

absl::StatusOr<PythonTimes> PythonEpochs(const std::string& env, const std::string& ts, int threads) {
  ASSIGN_OR_RETURN(const std::string python, TorchPython());
  const std::string cmd = absl::StrFormat(
      "%s OMP_NUM_THREADS=%d OPENBLAS_NUM_THREADS=1 %s %s %s %d %d %d %s 2>/dev/null", env, threads,
      python, absl::GetFlag(FLAGS_python_script), kDefaultFashionMnistDir, absl::GetFlag(FLAGS_samples),
      absl::GetFlag(FLAGS_batch_size), threads, ts);
  std::unique_ptr<FILE, int (*)(FILE*)> pipe(popen(cmd.c_str(), "r"), pclose);
  if (!pipe) return absl::InternalError("cannot start python3");
  std::string out;
  std::array<char, 256> buf;
  while (fgets(buf.data(), buf.size(), pipe.get()) != nullptr) out += buf.data();
  std::smatch m;
  if (!std::regex_search(out, m, std::regex("eager_seconds=([0-9.]+) torchscript_seconds=([0-9.]+)"))) {
    return absl::InternalError(absl::StrCat("the Python half printed: ", out));
  }
  return PythonTimes{std::stod(m[1]), std::stod(m[2])};
}

absl::Status Run() {
  if (absl::GetFlag(FLAGS_cpp_default_malloc)) KeepDefaultAllocator();
  const int threads = ConfigureThreads(absl::GetFlag(FLAGS_threads));
  ASSIGN_OR_RETURN(Model model, CreateZooModel("resnet_small"));
  const std::string ts = "/tmp/slimfit_bench_resnet_small.pt";
  RETURN_IF_ERROR(model.Save(ts));
  ASSIGN_OR_RETURN(double cpp, CppEpoch(model));
  ASSIGN_OR_RETURN(PythonTimes py, PythonEpochs("", ts, threads));
  ASSIGN_OR_RETURN(PythonTimes tuned,
                   PythonEpochs("MALLOC_MMAP_THRESHOLD_=33554432 MALLOC_TRIM_THRESHOLD_=1073741824 "
                                "MALLOC_TOP_PAD_=67108864",
                                ts, threads));
  const int64_t n = absl::GetFlag(FLAGS_samples);
  auto line = [&](const char* what, double s) {
    std::printf("  %-54s %8.2f s  %7.0f samples/s  C++/this %.3f\n", what, s, n / s, cpp / s);
  };
  std::printf("resnet_small, one epoch of %lld Fashion-MNIST samples, batch %d, %d thread%s, one run\n",
              static_cast<long long>(n), absl::GetFlag(FLAGS_batch_size), threads, threads == 1 ? "" : "s");
  std::printf("  %-54s %8.2f s  %7.0f samples/s\n",
              absl::GetFlag(FLAGS_cpp_default_malloc) ? "C++ slimfit Trainer (glibc malloc defaults)"
                                                      : "C++ slimfit Trainer (slimfit malloc settings)",
              cpp, n / cpp);
  line("Python eager nn.Module (glibc defaults)", py.eager);
  line("Python, same TorchScript model (glibc defaults)", py.scripted);
  line("Python eager nn.Module (slimfit's malloc settings)", tuned.eager);
  line("Python, same TorchScript (slimfit's malloc settings)", tuned.scripted);
  return absl::OkStatus();
}

}  // namespace
}  // namespace slimfit

int main(int argc, char** argv) {
  return slimfit::RunFromWorkspace(argc, argv, "train_epoch_benchmark", &slimfit::Run);
}
