// train: trains a zoo model (or fine-tunes a TorchScript file) with the
// full_trainer loop, then profiles it and writes model.pt, metrics.jsonl and
// profile.json to the output directory.
//
//   bazel run //tools:train                                   # lenet5 on Fashion-MNIST, 5 epochs
//   bazel run //tools:train -- --model=resnet_small --epochs=15 --augment --lr=0.1 --batch_size=128
//   bazel run //tools:train -- --config=experiments/train/resnet_small_fashion.pbtxt
//
// Without --config the job is: the named --model on the --data preset, SGD
// (Nesterov momentum 0.9, weight decay 5e-4 except on biases and norms),
// cosine learning rate per iteration after a one-epoch warm-up, cross-entropy,
// accuracy on val. Flags given explicitly override the config file.
//
// Data-parallel on N processes (c10d + Gloo; each takes 1/N of every batch,
// so --batch_size is the global batch), here or on several machines:
//   bazel build //tools:train //tools:launch
//   bazel-bin/tools/launch --nproc_per_node=2 -- bazel-bin/tools/train --model=resnet_small
// Rank 0 prints and writes every output.
#include <ATen/ATen.h>

#include <cstdio>
#include <string>

#include "absl/flags/flag.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "common/field_error.h"
#include "common/files.h"
#include "common/status_macros.h"
#include "common/text_proto.h"
#include "common/threads.h"
#include "data/sharded_loader.h"
#include "evaluators/profiler.h"
#include "tools/cli.h"
#include "tools/data_flags.h"
#include "tools/device_flag.h"
#include "tools/distributed_flags.h"
#include "tools/job.h"

ABSL_FLAG(std::string, config, "", "a TrainJob text proto (tools/train_job.proto); flags override it");
ABSL_FLAG(std::string, model, "lenet5", "zoo model name, or a TorchScript file to fine-tune");
ABSL_FLAG(bool, augment, false, "random crop with padding + horizontal flip on train batches");
ABSL_FLAG(int, epochs, 5, "training epochs");
ABSL_FLAG(int, batch_size, 64, "training batch size");
ABSL_FLAG(double, lr, 0.05, "peak learning rate");
ABSL_FLAG(std::string, optimizer, "sgd", "sgd (Nesterov, momentum 0.9) or adam");
ABSL_FLAG(double, weight_decay, 5e-4, "weight decay (not on biases and norm parameters)");
ABSL_FLAG(double, label_smoothing, 0.0, "cross-entropy label smoothing");
ABSL_FLAG(int64_t, max_train_samples, 0, "use only this many training samples (0 = all)");
ABSL_FLAG(int, threads, 1, "intra-op threads (1 is fastest on 2-core machines)");
ABSL_FLAG(uint64_t, seed, 0, "seed for weights, the val carve, shuffling and dropout");
ABSL_FLAG(std::string, out, "", "output directory (default runs/train/<model>)");
ABSL_FLAG(int, latency_runs, 50, "timed runs per latency figure");

namespace slimfit {
namespace {

bool Given(const char* name) { return FlagGiven(name); }

absl::StatusOr<TrainJob> JobFromFlags() {
  TrainJob job;
  const std::string config = absl::GetFlag(FLAGS_config);
  if (!config.empty()) RETURN_IF_ERROR(ParseTextProtoFile(ResolveUserPath(config), &job));
  const bool defaults = config.empty();
  if (defaults || Given("model")) job.set_model(absl::GetFlag(FLAGS_model));
  if (defaults || Given("data") || Given("data_dir") || Given("augment")) {
    ASSIGN_OR_RETURN(DataConfig data, RequiredDataFromFlags("train", "fashion_mnist", absl::GetFlag(FLAGS_augment)));
    *job.mutable_data() = data;
  }
  DataConfig& d = *job.mutable_data();
  if (defaults || Given("batch_size")) d.set_train_batch_size(absl::GetFlag(FLAGS_batch_size));
  if (defaults || Given("max_train_samples")) d.set_max_train_samples(absl::GetFlag(FLAGS_max_train_samples));
  if (defaults || Given("seed")) {
    d.set_seed(absl::GetFlag(FLAGS_seed));
    job.set_seed(absl::GetFlag(FLAGS_seed));
    job.mutable_full_trainer()->set_seed(absl::GetFlag(FLAGS_seed));
  }
  if (defaults || Given("label_smoothing")) {
    job.mutable_loss()->mutable_cross_entropy()->set_label_smoothing(absl::GetFlag(FLAGS_label_smoothing));
  }
  TrainerConfig& t = *job.mutable_full_trainer();
  if (defaults || Given("epochs")) t.set_epochs(absl::GetFlag(FLAGS_epochs));
  if (defaults || Given("optimizer") || Given("lr") || Given("weight_decay")) {
    OptimizerConfig& o = *t.mutable_optimizer();
    o.Clear();
    const std::string name = absl::GetFlag(FLAGS_optimizer);
    if (name == "sgd") {
      o.mutable_sgd()->set_momentum(0.9);
      o.mutable_sgd()->set_nesterov(true);
    } else if (name == "adam") {
      o.mutable_adamw();
    } else {
      return FieldError("--optimizer", "not an optimizer preset", Quoted(name), "sgd, adam");
    }
    o.set_lr(absl::GetFlag(FLAGS_lr));
    o.set_weight_decay(absl::GetFlag(FLAGS_weight_decay));
    o.set_no_weight_decay_on_bias_and_norm(true);
  }
  if (defaults || Given("threads")) job.set_threads(absl::GetFlag(FLAGS_threads));
  RETURN_IF_ERROR(ApplyDeviceFlag(job.mutable_device()));
  if (Given("out") || job.output_dir().empty()) {
    job.set_output_dir(absl::GetFlag(FLAGS_out).empty() ? absl::StrCat("runs/train/", job.model())
                                                        : absl::GetFlag(FLAGS_out));
  }
  return job;
}

absl::Status Run() {
  ASSIGN_OR_RETURN(TrainJob config, JobFromFlags());
  const int threads = ConfigureThreads(config.threads() == 0 ? 1 : config.threads());
  ASSIGN_OR_RETURN(std::unique_ptr<ProcessGroup> group, ConnectIfDistributed());
  const bool root = group == nullptr || group->is_root();
  RETURN_IF_ERROR(QuietUnlessRoot(group.get()));
  ASSIGN_OR_RETURN(Job job, BuildJob(config, /*with_train_loader=*/true));
  std::unique_ptr<DataLoader> eval_shard;
  if (group != nullptr) {
    ASSIGN_OR_RETURN(job.train, ShardedLoader::Create(std::move(job.train), group->rank(), group->world_size()));
    ASSIGN_OR_RETURN(auto eval_all, MakeLoader(config.data(), job.splits, job.eval_split));
    ASSIGN_OR_RETURN(eval_shard, ShardedLoader::Create(std::move(eval_all), group->rank(), group->world_size()));
  }
  // Default schedule: one epoch of linear warm-up, then cosine to zero, per iteration.
  TrainerConfig& t = *config.mutable_full_trainer();
  if (!t.has_scheduler()) {
    const int64_t per_epoch = job.train->num_batches();
    const int64_t epochs = t.has_epochs() ? t.epochs() : 1;
    auto* cos = t.mutable_scheduler()->mutable_cosine();
    cos->set_t_max(std::max<int64_t>(2, epochs * per_epoch));
    cos->set_warmup_steps(epochs > 1 ? per_epoch : 0);
    t.mutable_scheduler()->set_interval(SchedulerConfig::ITERATION);
  }
  const std::string out_dir = ResolveUserPath(config.output_dir());
  if (root) RETURN_IF_ERROR(CreateDirectories(out_dir));
  if (t.metrics_path().empty()) t.set_metrics_path(out_dir + "/metrics.jsonl");
  ASSIGN_OR_RETURN(auto trainer, MakeJobTrainer(config, job, group.get(), eval_shard.get()));
  Model& model = *job.model;
  std::printf("data: train %lld / val %lld / test %lld samples\n", static_cast<long long>(job.splits.train->size()),
              static_cast<long long>(job.splits.val->size()),
              static_cast<long long>(job.splits.test ? job.splits.test->size() : 0));
  std::printf("model: %s  %lld parameters  threads %d\n", config.model().c_str(),
              static_cast<long long>(model.NumParameters()), threads);
  if (group != nullptr) {
    std::printf("data-parallel: rank %d of %d, %lld of every %lld samples\n", group->rank(), group->world_size(),
                static_cast<long long>(job.train->num_samples()),
                static_cast<long long>(job.splits.train->size()));
  }
  std::fflush(stdout);

  ASSIGN_OR_RETURN(TrainResult r, trainer->Train(model));
  if (!root) return absl::OkStatus();  // rank 0 writes the outputs
  for (const auto& e : r.events) std::printf("note: %s\n", e.c_str());
  if (r.syncs > 0) {
    std::printf("all-reduce        %.2f ms per step (%lld steps, %.1f s of %.1f s)\n", 1e3 * r.sync_seconds / r.syncs,
                static_cast<long long>(r.syncs), r.sync_seconds, r.seconds);
  }

  // Test accuracy with the kept (best-on-val) weights.
  Metrics test;
  if (job.splits.test != nullptr) {
    ASSIGN_OR_RETURN(auto test_loader, MakeLoader(config.data(), job.splits, "test"));
    ASSIGN_OR_RETURN(test, job.evaluator->Apply(model, *test_loader));
  }
  const std::string model_path = out_dir + "/model.pt";
  RETURN_IF_ERROR(model.Save(model_path));

  ProfilerConfig pc;
  pc.set_runs(std::max(1, absl::GetFlag(FLAGS_latency_runs)));
  pc.set_threads(threads);
  ASSIGN_OR_RETURN(CostReport cost, ProfileModel(model, *job.forward_pass, pc));
  RETURN_IF_ERROR(WriteFileAtomically(out_dir + "/profile.json", CostReportToJson(cost)));

  std::printf("\n== %s ==\n", config.model().c_str());
  std::printf("trained           %d epochs, %lld steps in %.1f s%s\n", r.epochs_run, static_cast<long long>(r.steps),
              r.seconds, r.best_epoch > 0 ? absl::StrFormat(" (kept epoch %d)", r.best_epoch).c_str() : "");
  if (auto v = r.best.Get("accuracy"); v.ok()) std::printf("val accuracy      %.2f%%\n", v->value);
  if (auto a = test.Get("accuracy"); a.ok()) std::printf("test accuracy     %.2f%%\n", a->value);
  std::printf("parameters        %lld, %.2f MMACs per sample\n", static_cast<long long>(cost.params), cost.macs / 1e6);
  std::printf("file size         %.1f KiB\n", cost.serialized_bytes / 1024.0);
  for (const auto& l : cost.latency) {
    std::printf("latency batch %-3lld median %.3f ms, p90 %.3f ms (%d runs, %d thread%s)\n",
                static_cast<long long>(l.batch_size), l.median_ms, l.p90_ms, l.runs, threads, threads == 1 ? "" : "s");
  }
  std::printf("saved             %s (+ metrics.jsonl, profile.json)\n", model_path.c_str());
  std::printf("next              bazel run //tools:profile -- --model=%s\n", model_path.c_str());
  return absl::OkStatus();
}

}  // namespace
}  // namespace slimfit

int main(int argc, char** argv) {
  return slimfit::RunTool(argc, argv, "train",
                          "Trains a model with the full_trainer loop and profiles it.\n"
                          "  bazel run //tools:train -- [--config=job.pbtxt] [--model=lenet5] [--epochs=5] ...",
                          &slimfit::Run);
}
