// The engine as a library: a user's own data layout, ForwardPass,
// LossFunction and EvaluationFunction plugged into slimfit's search — the
// C++ form of Neutrino's `Neutrino(framework, data, model, config,
// forward_pass, eval_func, loss_function).run()`.
//
//   bazel run //examples:custom_engine                       # ~1 minute
//   bazel run //examples:custom_engine -- --train_samples=60000 --level=2
//
// From another repository, depend on the engine target alone:
//   deps = ["@slimfit//search:engine"]     (see docs/search.md, "As a library")
//
// The user's data here: batches of (label, raw uint8 image) — label first,
// pixels unnormalised — so the forward pass feeds element 1 to the model (input
// pattern ('_', 0)) and normalises it itself.
#include <ATen/ATen.h>
#include <ATen/core/grad_mode.h>

#include <cstdio>
#include <memory>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "data/data_loader.h"
#include "data/dataset.h"
#include "data/readers/idx.h"
#include "evaluators/evaluation_function.h"
#include "forward_pass/forward_pass.h"
#include "losses/loss_function.h"
#include "model/model.h"
#include "model/zoo/zoo.h"
#include "search/engine.h"
#include "trainer/trainer.h"

ABSL_FLAG(int64_t, train_samples, 6000, "Training samples used (of 60000).");
ABSL_FLAG(int32_t, level, 1, "Compression level (1: pruning, 2: pruning + int8).");
ABSL_FLAG(std::string, output_dir, "runs/custom_engine", "Run directory.");

namespace {

using slimfit::Batch;

// 1. A ForwardPass for (label, uint8 image) batches: selects element 1 and
// normalises it before the model sees it.
class RawImageForwardPass : public slimfit::ForwardPass {
 public:
  // Batch element 0 (the label) is not a model input; element 1 is model input 0.
  static absl::StatusOr<std::shared_ptr<RawImageForwardPass>> Create() {
    auto pattern = slimfit::InputPattern::Parse("('_', 0)");
    if (!pattern.ok()) return pattern.status();
    return std::shared_ptr<RawImageForwardPass>(new RawImageForwardPass(*pattern));
  }
  absl::StatusOr<slimfit::ModelInputs> ExtractModelInputs(const Batch& batch) override {
    if (batch.size() < 2 || !batch[1].isTensor()) {
      return absl::InvalidArgumentError("RawImageForwardPass: expected (label, image) batches");
    }
    Batch normalised = batch;
    normalised[1] = (batch[1].toTensor().to(at::kFloat).div(255).sub(0.2860).div(0.3530)).unsqueeze(1);
    return ForwardPass::ExtractModelInputs(normalised);
  }

 private:
  explicit RawImageForwardPass(slimfit::InputPattern pattern) : ForwardPass(std::move(pattern)) {}
};

// 2. A LossFunction returning a dict of terms (summed by the trainer):
// cross entropy and a label-smoothing term.
class SmoothedCrossEntropy : public slimfit::LossFunction {
 public:
  using LossFunction::LossFunction;
  absl::StatusOr<slimfit::LossTerms> FromOutput(const c10::IValue& output, const Batch& batch) override {
    const at::Tensor logits = output.toTensor();
    const at::Tensor target = batch[0].toTensor().to(logits.device());
    const at::Tensor logp = at::log_softmax(logits, 1);
    slimfit::LossTerms t;
    t.terms.emplace_back("nll", at::nll_loss(logp, target).mul(0.9));
    t.terms.emplace_back("smoothing", logp.mean(1).neg().mean().mul(0.1));
    return t;
  }
};

// 3. An EvaluationFunction with several metrics; the engine listens to the
// one named by evaluation.eval_key (here macro_f1).
class F1Evaluator : public slimfit::EvaluationFunction {
 public:
  explicit F1Evaluator(std::shared_ptr<slimfit::ForwardPass> fp) : fp_(std::move(fp)) {}
  absl::StatusOr<slimfit::Metrics> Apply(slimfit::Model& model, slimfit::DataLoader& loader) override {
    at::NoGradGuard no_grad;
    model.Eval();
    at::Tensor confusion = at::zeros({10, 10}, at::kLong);
    auto status = loader.Reset(0);
    if (!status.ok()) return status;
    Batch b;
    while (true) {
      auto got = loader.Next(&b);
      if (!got.ok()) return got.status();
      if (!*got) break;
      auto out = fp_->Forward(model, b, c10::kCPU);
      if (!out.ok()) return out.status();
      const at::Tensor pred = out->toTensor().argmax(1);
      const at::Tensor label = b[0].toTensor();
      confusion.index_put_({label, pred}, at::ones_like(label), /*accumulate=*/true);
    }
    const at::Tensor tp = confusion.diag().to(at::kDouble);
    const at::Tensor precision = tp / confusion.sum(0).to(at::kDouble).clamp_min(1);
    const at::Tensor recall = tp / confusion.sum(1).to(at::kDouble).clamp_min(1);
    const at::Tensor f1 = 2 * precision * recall / (precision + recall).clamp_min(1e-12);
    slimfit::Metrics m;
    m.Set("macro_f1", f1.mean().item<double>() * 100, /*higher_is_better=*/true);
    m.Set("accuracy", tp.sum().item<double>() * 100 / std::max<int64_t>(1, confusion.sum().item<int64_t>()), true);
    return m;
  }

 private:
  std::shared_ptr<slimfit::ForwardPass> fp_;
};

absl::Status Run() {
  // The user's data: Fashion-MNIST as (label, uint8 image) tensors.
  const std::string dir = slimfit::kDefaultFashionMnistDir;
  auto images = slimfit::ReadIdxFile(dir + "/train-images-idx3-ubyte.gz");
  if (!images.ok()) return images.status();
  auto labels = slimfit::ReadIdxFile(dir + "/train-labels-idx1-ubyte.gz");
  if (!labels.ok()) return labels.status();
  const int64_t n = std::min<int64_t>(absl::GetFlag(FLAGS_train_samples), 50000);
  auto train = slimfit::TensorDataset::Create({labels->slice(0, 0, n).to(at::kLong), images->slice(0, 0, n)}, "train");
  auto val = slimfit::TensorDataset::Create(
      {labels->slice(0, 50000, 52000).to(at::kLong), images->slice(0, 50000, 52000)}, "val");
  if (!train.ok()) return train.status();
  if (!val.ok()) return val.status();
  slimfit::EngineData data;
  auto train_loader = slimfit::BatchLoader::Create(*train, {.batch_size = 64, .shuffle = true, .seed = 1});
  auto val_loader = slimfit::BatchLoader::Create(*val, {.batch_size = 256});
  if (!train_loader.ok()) return train_loader.status();
  if (!val_loader.ok()) return val_loader.status();
  data.train = std::move(*train_loader);
  data.eval = std::move(*val_loader);

  auto created = RawImageForwardPass::Create();
  if (!created.ok()) return created.status();
  std::shared_ptr<RawImageForwardPass> fp = *created;
  Batch first;
  if (auto s = data.eval->Reset(0); !s.ok()) return s;
  if (auto got = data.eval->Next(&first); !got.ok()) return got.status();
  // The first extraction records the (normalised) input specs that random
  // inputs for analysis and profiling are made from.
  if (auto in = fp->ExtractModelInputs(first); !in.ok()) return in.status();

  // The user's trained model (here: a zoo LeNet-5 trained for two epochs).
  auto model = slimfit::CreateZooModel("lenet5");
  if (!model.ok()) return model.status();
  auto loss = std::make_unique<SmoothedCrossEntropy>(fp);
  auto eval = std::make_unique<F1Evaluator>(fp);
  slimfit::TrainerConfig tc;
  tc.mutable_optimizer()->mutable_sgd()->set_momentum(0.9);
  tc.mutable_optimizer()->set_lr(0.05);
  tc.set_epochs(2);
  tc.set_eval_key("macro_f1");
  auto trainer = slimfit::Trainer::Create(tc, {loss.get(), eval.get(), data.train.get(), data.eval.get()});
  if (!trainer.ok()) return trainer.status();
  if (auto r = (*trainer)->Train(*model); !r.ok()) return r.status();

  // The experiment: only what the engine needs (no model or data blocks).
  slimfit::Experiment config;
  config.set_name("custom_engine");
  config.set_output_dir(absl::GetFlag(FLAGS_output_dir));
  config.mutable_evaluation()->set_eval_key("macro_f1");
  *config.mutable_full_trainer()->mutable_optimizer() = tc.optimizer();
  config.mutable_full_trainer()->mutable_scheduler()->mutable_cosine();
  config.mutable_full_trainer()->mutable_scheduler()->set_interval(slimfit::SchedulerConfig::ITERATION);
  config.mutable_compression()->set_delta(1.0);
  config.mutable_compression()->set_level(absl::GetFlag(FLAGS_level));
  config.mutable_compression()->set_final_epochs(2);

  slimfit::Engine engine(std::move(data), std::move(*model), config, fp, std::move(eval), std::move(loss));
  auto result = engine.Run();
  if (!result.ok()) return result.status();
  std::printf("\n%s\n%s\nmodel: %s/model.pt\n", result->why.c_str(), result->summary.c_str(),
              result->run_dir.c_str());
  return absl::OkStatus();
}

}  // namespace

int main(int argc, char** argv) {
  absl::ParseCommandLine(argc, argv);
  if (const char* wd = std::getenv("BUILD_WORKING_DIRECTORY"); wd != nullptr && wd[0] != '\0') {
    if (chdir(wd) != 0) std::perror("chdir");
  }
  const absl::Status s = Run();
  if (!s.ok()) {
    std::fprintf(stderr, "custom_engine: %s\n", std::string(s.message()).c_str());
    return 1;
  }
  return 0;
}
