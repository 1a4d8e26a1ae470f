// train: trains a zoo model (or fine-tunes a TorchScript file) on
// Fashion-MNIST (or any MNIST-format directory), then profiles it: test
// accuracy, parameters, file size and measured latency. The main job until
// //tools:compress lands.
//
//   bazel run //tools:train                       # lenet5, 5 epochs, Debian's Fashion-MNIST
//   bazel run //tools:train -- --model=resnet_small --epochs=1 --max_train_samples=10000
//
// The loop here is deliberately plain (SGD + momentum, cross-entropy); the
// configurable trainer with schedulers and hooks lives in trainer/ (issue 3).
#include <ATen/ATen.h>
#include <c10/core/GradMode.h>
#include <torch/csrc/jit/api/module.h>
#include <torch/optim/sgd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <string>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "common/files.h"
#include "common/status_macros.h"
#include "common/threads.h"
#include "common/torch_status.h"
#include "data/readers/idx.h"
#include "data/splits.h"
#include "graph/layer_table.h"
#include "tools/cli.h"

ABSL_FLAG(std::string, model, "lenet5", "zoo model name, or a TorchScript file to fine-tune");
ABSL_FLAG(std::string, data_dir, slimfit::kDefaultFashionMnistDir,
          "directory with MNIST-format IDX files (.gz or raw)");
ABSL_FLAG(int, epochs, 5, "training epochs");
ABSL_FLAG(int, batch_size, 64, "training batch size");
ABSL_FLAG(double, lr, 0.05, "SGD learning rate");
ABSL_FLAG(double, momentum, 0.9, "SGD momentum");
ABSL_FLAG(double, weight_decay, 5e-4, "SGD weight decay");
ABSL_FLAG(int64_t, max_train_samples, 0, "use only this many training samples (0 = all)");
ABSL_FLAG(int, threads, 1, "intra-op threads (1 is fastest on 2-core machines)");
ABSL_FLAG(uint64_t, seed, 0, "seed for weights, the val carve and shuffling");
ABSL_FLAG(std::string, out, "runs/train", "output directory (relative to where you typed bazel run)");
ABSL_FLAG(int, latency_runs, 50, "timed runs per latency figure");

namespace slimfit {
namespace {

using Clock = std::chrono::steady_clock;

double Seconds(Clock::time_point since) {
  return std::chrono::duration<double>(Clock::now() - since).count();
}

struct EvalResult {
  double accuracy = 0;
  double loss = 0;
};

absl::StatusOr<EvalResult> Evaluate(torch::jit::Module& module, DataLoader& loader) {
  RETURN_IF_ERROR(loader.Reset(0));
  module.eval();
  int64_t correct = 0, seen = 0;
  double loss_sum = 0;
  absl::Status loader_status;
  RETURN_IF_ERROR(TorchCall("evaluating", [&] {
    c10::NoGradGuard no_grad;
    Batch batch;
    while (true) {
      absl::StatusOr<bool> more = loader.Next(&batch);
      if (!more.ok()) loader_status = more.status();
      if (!more.ok() || !*more) return;
      at::Tensor x = batch[0].toTensor(), y = batch[1].toTensor();
      at::Tensor logits = module.forward({x}).toTensor();
      loss_sum += at::nll_loss(at::log_softmax(logits, 1), y, {}, at::Reduction::Sum).item<double>();
      correct += logits.argmax(1).eq(y).sum().item<int64_t>();
      seen += y.size(0);
    }
  }));
  RETURN_IF_ERROR(loader_status);
  return EvalResult{100.0 * correct / std::max<int64_t>(seen, 1), loss_sum / std::max<int64_t>(seen, 1)};
}

// Median and p90 of `runs` timed forward passes after warm-up, in ms.
std::pair<double, double> Latency(torch::jit::Module& module, const at::Tensor& x, int runs) {
  module.eval();
  c10::NoGradGuard no_grad;
  for (int i = 0; i < 5; ++i) module.forward({x});
  std::vector<double> ms;
  for (int i = 0; i < runs; ++i) {
    auto t = Clock::now();
    module.forward({x});
    ms.push_back(Seconds(t) * 1e3);
  }
  std::sort(ms.begin(), ms.end());
  return {ms[ms.size() / 2], ms[std::min(ms.size() - 1, ms.size() * 9 / 10)]};
}

absl::Status Run() {
  const int threads = ConfigureThreads(absl::GetFlag(FLAGS_threads));
  if (absl::GetFlag(FLAGS_epochs) < 0) {
    return absl::InvalidArgumentError(absl::StrCat("--epochs: must be >= 0, got ", absl::GetFlag(FLAGS_epochs)));
  }
  DataConfig data;
  data.mutable_mnist()->set_directory(ResolveUserPath(absl::GetFlag(FLAGS_data_dir)));
  data.set_seed(absl::GetFlag(FLAGS_seed));
  data.set_train_batch_size(absl::GetFlag(FLAGS_batch_size));
  data.set_max_train_samples(absl::GetFlag(FLAGS_max_train_samples));
  for (auto* transforms : {data.mutable_train_transforms(), data.mutable_eval_transforms()}) {
    auto* n = transforms->Add()->mutable_normalize();  // Fashion-MNIST statistics
    n->add_mean(0.2860f);
    n->add_std(0.3530f);
  }
  ASSIGN_OR_RETURN(Splits splits, LoadSplits(data), "--data_dir");
  ASSIGN_OR_RETURN(auto train, MakeLoader(data, splits, "train"));
  ASSIGN_OR_RETURN(auto val, MakeLoader(data, splits, "val"));
  ASSIGN_OR_RETURN(auto test, MakeLoader(data, splits, "test"));
  std::printf("data: %s  train %lld / val %lld / test %lld images\n",
              absl::GetFlag(FLAGS_data_dir).c_str(), static_cast<long long>(splits.train->size()),
              static_cast<long long>(splits.val->size()), static_cast<long long>(splits.test->size()));

  ZooOptions zoo;
  zoo.seed = absl::GetFlag(FLAGS_seed);
  ASSIGN_OR_RETURN(Model model, LoadModelOrZoo(absl::GetFlag(FLAGS_model), zoo));
  std::printf("model: %s  %lld parameters  threads %d\n", absl::GetFlag(FLAGS_model).c_str(),
              static_cast<long long>(model.NumParameters()), threads);

  torch::jit::Module& m = model.module();
  std::vector<at::Tensor> params;
  for (const auto& p : m.parameters()) params.push_back(p);
  ASSIGN_OR_RETURN(auto sgd, TorchCallOr("--lr/--momentum/--weight_decay", [&] {
                     return std::make_unique<torch::optim::SGD>(
                         params, torch::optim::SGDOptions(absl::GetFlag(FLAGS_lr))
                                     .momentum(absl::GetFlag(FLAGS_momentum))
                                     .weight_decay(absl::GetFlag(FLAGS_weight_decay)));
                   }));
  const int epochs = absl::GetFlag(FLAGS_epochs);
  for (int epoch = 0; epoch < epochs; ++epoch) {
    // Cosine decay per epoch.
    const double lr = absl::GetFlag(FLAGS_lr) * 0.5 * (1 + std::cos(M_PI * epoch / epochs));
    for (auto& group : sgd->param_groups()) group.options().set_lr(lr);
    const auto start = Clock::now();
    RETURN_IF_ERROR(train->Reset(epoch));
    m.train();
    double loss_sum = 0;
    int64_t correct = 0, seen = 0;
    absl::Status loader_status;
    RETURN_IF_ERROR(TorchCall(absl::StrCat("training epoch ", epoch + 1), [&] {
      Batch batch;
      while (true) {
        absl::StatusOr<bool> more = train->Next(&batch);
        if (!more.ok()) loader_status = more.status();
        if (!more.ok() || !*more) return;
        at::Tensor x = batch[0].toTensor(), y = batch[1].toTensor();
        sgd->zero_grad();
        at::Tensor logits = m.forward({x}).toTensor();
        at::Tensor loss = at::nll_loss(at::log_softmax(logits, 1), y);
        loss.backward();
        sgd->step();
        loss_sum += loss.item<double>() * y.size(0);
        correct += logits.argmax(1).eq(y).sum().item<int64_t>();
        seen += y.size(0);
      }
    }));
    RETURN_IF_ERROR(loader_status);
    const double secs = Seconds(start);
    ASSIGN_OR_RETURN(EvalResult v, Evaluate(m, *val));
    std::printf("epoch %d/%d  lr %.4f  loss %.4f  train acc %.2f%%  val acc %.2f%%  %.1fs (%.0f img/s)\n",
                epoch + 1, epochs, lr, loss_sum / seen, 100.0 * correct / seen, v.accuracy, secs,
                seen / secs);
    std::fflush(stdout);
  }

  ASSIGN_OR_RETURN(EvalResult t, Evaluate(m, *test));
  const std::string out_dir = ResolveUserPath(absl::GetFlag(FLAGS_out));
  RETURN_IF_ERROR(CreateDirectories(out_dir));
  const std::string path = absl::StrCat(out_dir, "/", model.metadata().name().empty() ? "model" : model.metadata().name(), ".pt");
  model.Eval();
  RETURN_IF_ERROR(model.Save(path));
  ASSIGN_OR_RETURN(int64_t bytes, RegularFileSize(path));
  ASSIGN_OR_RETURN(LayerTable table, BuildLayerTable(model));
  std::vector<int64_t> shape = FirstInputShape(model.metadata());
  if (shape.empty()) shape = {1, 1, 28, 28};
  const int runs = std::max(1, absl::GetFlag(FLAGS_latency_runs));
  ASSIGN_OR_RETURN(auto lat1, TorchCallOr("latency", [&] { return Latency(model.module(), at::randn(shape), runs); }));
  shape[0] = 64;
  ASSIGN_OR_RETURN(auto lat64, TorchCallOr("latency", [&] { return Latency(model.module(), at::randn(shape), runs); }));

  std::printf("\n== %s on %s ==\n", absl::GetFlag(FLAGS_model).c_str(), absl::GetFlag(FLAGS_data_dir).c_str());
  std::printf("test accuracy     %.2f%%  (loss %.4f)\n", t.accuracy, t.loss);
  std::printf("parameters        %lld in %zu layers\n", static_cast<long long>(table.total_params), table.layers.size());
  std::printf("file size         %.1f KiB\n", bytes / 1024.0);
  std::printf("latency batch 1   median %.3f ms, p90 %.3f ms (%d runs, %d thread%s)\n", lat1.first,
              lat1.second, runs, threads, threads == 1 ? "" : "s");
  std::printf("latency batch 64  median %.3f ms, p90 %.3f ms\n", lat64.first, lat64.second);
  std::printf("saved             %s\n", path.c_str());
  std::printf("next              bazel run //tools:inspect -- --model=%s\n", path.c_str());
  return absl::OkStatus();
}

}  // namespace
}  // namespace slimfit

int main(int argc, char** argv) {
  return slimfit::RunTool(argc, argv, "train",
      "Trains a zoo model on Fashion-MNIST and profiles it.\n"
      "  bazel run //tools:train -- [--model=lenet5] [--epochs=5] [--max_train_samples=N]", &slimfit::Run);
}
