// File: trainer/trainer.h
//
// Trainer: the fine-tuning loop every compression step uses (Neutrino's
// full_trainer). It creates a fresh optimizer and scheduler for each model
// it trains (from factories: never reused across pruned variants), and:
//   - runs `epochs` and/or `max_steps`, evaluating every `eval_freq` epochs
//     on the loader it is given for `eval_split`, listening to `eval_key`;
//   - steps the scheduler at its interval (iteration, epoch or eval, with the
//     metric when eval-based);
//   - calls hooks after backward (e.g. mask gradients), after each optimizer
//     step (re-apply masks, step a sparsity schedule) and after each epoch;
//   - clips gradients, stops early, keeps the best-by-eval_key weights;
//   - guards against NaN/inf: a non-finite loss or weight rolls the model back
//     to the last good weights, lowers the lr, records the event, and goes on
//     (never silently); after max_nan_recoveries it fails;
//   - stops between two steps when the process is interrupted
//     (common/interrupt.h): Cancelled, with the epoch and step;
//   - lays a convolutional model's weights out channels-last while it trains
//     on the CPU when their widths suit oneDNN's NHWC kernels (memory_format;
//     model/weight_layout.h: 10-30% faster epochs in trainer/benchmark),
//     falling back to contiguous if the model's first step refuses it, and
//     hands the model back contiguous;
//   - seeds LibTorch's generator; shows progress (bar with rate and ETA on a
//     terminal, plain lines otherwise); appends metrics.jsonl lines;
//   - trains on deps.device (CPU by default; a CUDA device: model/device.h)
//     and hands the model back where it was;
//   - runs each step's forward pass under bf16 autocast when precision is
//     BF16 (trainer/autocast.h; backward, the optimizer and evaluations stay
//     fp32);
//   - trains data-parallel when given a Collective of several ranks (below).
//
//   ASSIGN_OR_RETURN(auto trainer, Trainer::Create(config, {loss.get(), eval.get(),
//                                                           train.get(), val.get()}));
//   trainer->AddHooks({.after_step = reapply_masks});
//   ASSIGN_OR_RETURN(TrainResult r, trainer->Train(model));
//
// Data-parallel (deps.group spans W > 1 processes; distributed/): every rank
// calls Train with the same config and model, `train` being its
// ShardedLoader (data/sharded_loader.h) of the same global batches. Rank 0's
// weights are broadcast first; after each backward the gradients are
// averaged over the global batch in buckets (distributed/data_parallel.h), so
// every rank takes the same step as one process on the combined batch;
// batch-norm running statistics are averaged; a non-finite loss on any rank
// rolls back every rank, and an interrupt on any rank stops all of them at
// the same step. After each epoch the ranks' weights, buffers and masks are
// checked identical; evaluation runs on `eval_shard` with summed metric
// states (or on the whole split everywhere); only rank 0 prints progress and
// writes metrics_path. Hooks run on every rank.
//
// Models traced in Python are made trainable first (trainer/trainable.h).
// Train tunes glibc malloc for tensor workloads (common/allocator.h) unless
// the program called KeepDefaultAllocator().
#ifndef SLIMFIT_TRAINER_TRAINER_H_
#define SLIMFIT_TRAINER_TRAINER_H_

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "data/data_loader.h"
#include "distributed/collective.h"
#include "evaluators/evaluation_function.h"
#include "evaluators/metrics.h"
#include "losses/loss_function.h"
#include "model/model.h"
#include "optimizers/factories.h"
#include "trainer/trainer.pb.h"

namespace slimfit {

struct TrainerHooks {
  std::function<absl::Status(Model&)> after_backward;
  std::function<absl::Status(Model&)> after_step;
  std::function<absl::Status(Model&, int epoch, const Metrics* eval)> after_epoch;
};

// What Train needs besides the config. Not owned; must outlive the trainer.
struct TrainerDeps {
  LossFunction* loss = nullptr;              // required
  EvaluationFunction* evaluator = nullptr;   // required when evaluating
  DataLoader* train = nullptr;               // required
  DataLoader* eval = nullptr;                // the eval_split loader; null: no evaluation
  // Override the config's optimizer / scheduler (optional).
  std::shared_ptr<NativeOptimizerFactory> optimizer_factory;
  std::shared_ptr<NativeSchedulerFactory> scheduler_factory;
  // Data-parallel training over this group (null or one rank: none).
  Collective* group = nullptr;
  // This rank's shard of `eval` (reduced metrics); null: the whole split on
  // every rank.
  DataLoader* eval_shard = nullptr;
  // Where the model trains (model/device.h): its weights, each batch, the
  // optimizer's state and the loss (a distillation teacher is copied there).
  // The model is handed back on the device it came on. Evaluations run where
  // `evaluator` was made to run (EvaluatorContext::device).
  c10::Device device = c10::kCPU;
};

struct TrainResult {
  Metrics best;            // at the best evaluation (empty if none)
  Metrics last;            // at the last evaluation
  int best_epoch = -1;
  int epochs_run = 0;
  int64_t steps = 0;
  int nan_recoveries = 0;
  int traced_ops_rewired = 0;
  int relus_made_in_place = 0;      // trainable.h MakeReluInPlace
  int relus_moved_after_pools = 0;  // trainable.h MakePoolBeforeRelu
  bool early_stopped = false;
  double seconds = 0;
  std::vector<std::string> events;  // human-readable notes (recoveries, early stop)
  // Data-parallel: time in gradient all-reduces and how many.
  double sync_seconds = 0;
  int64_t syncs = 0;
};

class Trainer {
 public:
  // Validates the config (errors "full_trainer.<field>: ...") and builds the
  // optimizer/scheduler factories.
  static absl::StatusOr<std::unique_ptr<Trainer>> Create(const TrainerConfig& config, TrainerDeps deps);

  void AddHooks(TrainerHooks hooks) { hooks_.push_back(std::move(hooks)); }

  // Trains `model` in place. Leaves it in eval mode.
  absl::StatusOr<TrainResult> Train(Model& model);

  const TrainerConfig& config() const { return config_; }

 private:
  Trainer(TrainerConfig config, TrainerDeps deps) : config_(std::move(config)), deps_(std::move(deps)) {}
  TrainerConfig config_;
  TrainerDeps deps_;
  std::vector<TrainerHooks> hooks_;
};

// Gives schedules that need the run's length one when the config leaves it
// 0: cosine.t_max and one_cycle.total_steps become epochs x steps_per_epoch
// (ITERATION interval) or epochs (otherwise), with `epochs` the config's
// plus skip_scheduler_steps' worth (a resumed run keeps the full length).
void FillScheduleLength(TrainerConfig* config, int64_t steps_per_epoch);

}  // namespace slimfit

#endif  // SLIMFIT_TRAINER_TRAINER_H_
