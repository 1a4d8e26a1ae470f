#include "trainer/trainer.h"

#include <ATen/ATen.h>
#include <c10/core/GradMode.h>
#include <torch/csrc/jit/runtime/graph_executor.h>
#include <torch/optim/optimizer.h>
#include <unistd.h>

#include <chrono>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <map>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "common/allocator.h"
#include "common/field_error.h"
#include "common/interrupt.h"
#include "common/status_macros.h"
#include "common/torch_status.h"
#include "data/sharded_loader.h"
#include "distributed/data_parallel.h"
#include "model/device.h"
#include "model/weight_layout.h"
#include "trainer/autocast.h"
#include "trainer/trainable.h"

namespace slimfit {
namespace {

using Clock = std::chrono::steady_clock;
using Snapshot = std::vector<std::pair<at::Tensor, at::Tensor>>;  // (live, copy)

Snapshot Take(Model& model) {
  Snapshot s;
  for (auto& [name, p] : model.NamedParameters()) s.emplace_back(p, p.detach().clone());
  for (auto& [name, b] : model.NamedBuffers()) s.emplace_back(b, b.detach().clone());
  return s;
}

void Restore(const Snapshot& s) {
  c10::NoGradGuard no_grad;
  for (const auto& [live, copy] : s) live.copy_(copy);
}

bool AllFinite(Model& model) {
  for (auto& [name, p] : model.NamedParameters()) {
    if (!at::isfinite(p).all().item<bool>()) return false;
  }
  return true;
}


at::MemoryFormat WeightFormat(TrainerConfig::MemoryFormat requested, const Model& model) {
  switch (requested) {
    case TrainerConfig::CONTIGUOUS:
      return at::MemoryFormat::Contiguous;
    case TrainerConfig::CHANNELS_LAST:
      return at::MemoryFormat::ChannelsLast;
    default:
      return PreferredWeightFormat(model);
  }
}

std::string FormatDuration(double seconds) {
  const int64_t s = static_cast<int64_t>(seconds);
  return s >= 3600 ? absl::StrFormat("%d:%02d:%02d", s / 3600, (s / 60) % 60, s % 60)
                   : absl::StrFormat("%d:%02d", s / 60, s % 60);
}

class Progress {
 public:
  Progress(TrainerConfig::Progress mode, int log_every) : log_every_(log_every) {
    mode_ = mode == TrainerConfig::AUTO ? (::isatty(2) ? TrainerConfig::BAR : TrainerConfig::LINES) : mode;
  }
  void Step(int epoch, int epochs, int64_t i, int64_t n, double loss, double rate) {
    if (mode_ == TrainerConfig::BAR) {
      const int width = 24;
      const int filled = n > 0 ? static_cast<int>(width * i / n) : width;
      const double eta = rate > 0 ? (n - i) * (static_cast<double>(samples_per_step_) / rate) : 0;
      std::fprintf(stderr, "\repoch %d/%d [%s%s] %lld/%lld  loss %.4f  %.0f samples/s  ETA %s   ", epoch + 1,
                   epochs, std::string(filled, '=').c_str(), std::string(width - filled, ' ').c_str(),
                   static_cast<long long>(i), static_cast<long long>(n), loss, rate, FormatDuration(eta).c_str());
      std::fflush(stderr);
    } else if (mode_ == TrainerConfig::LINES && log_every_ > 0 && i % log_every_ == 0) {
      std::fprintf(stderr, "epoch %d/%d step %lld/%lld  loss %.4f  %.0f samples/s\n", epoch + 1, epochs,
                   static_cast<long long>(i), static_cast<long long>(n), loss, rate);
    }
  }
  void set_samples_per_step(int64_t s) { samples_per_step_ = s; }
  void EndEpoch(const std::string& line) {
    if (mode_ == TrainerConfig::NONE) return;
    if (mode_ == TrainerConfig::BAR) std::fprintf(stderr, "\r\033[K");
    std::fprintf(stderr, "%s\n", line.c_str());
    std::fflush(stderr);
  }

 private:
  TrainerConfig::Progress mode_;
  int log_every_;
  int64_t samples_per_step_ = 1;
};

std::string TermsJson(const std::map<std::string, double>& sums, int64_t n) {
  std::vector<std::string> parts;
  for (const auto& [k, v] : sums) parts.push_back(absl::StrFormat("\"%s\": %.6g", k, n ? v / n : 0.0));
  return absl::StrCat("{", absl::StrJoin(parts, ", "), "}");
}

}  // namespace

absl::StatusOr<std::unique_ptr<Trainer>> Trainer::Create(const TrainerConfig& c, TrainerDeps deps) {
  auto bad = [](const std::string& field, const std::string& problem, const absl::AlphaNum& got,
                const std::string& valid) { return FieldError("full_trainer." + field, problem, got, valid); };
  // A CUDA device this process has (model/device.h), found before any work.
  if (deps.device.is_cuda()) {
    RETURN_IF_ERROR(ResolveDevice(DeviceName(deps.device)).status(), AtField("TrainerDeps.device"));
  }
  if (c.has_epochs() && c.epochs() < 0) return bad("epochs", "negative", c.epochs(), ">= 0");
  if (c.max_steps() < 0) return bad("max_steps", "negative", c.max_steps(), ">= 0 (0 = no limit)");
  if (c.has_epochs() && c.epochs() == 0 && c.max_steps() == 0) {
    return bad("epochs", "0 with no max_steps would not train at all", 0, ">= 1, or 0 with max_steps > 0");
  }
  if (c.eval_freq() < 0) return bad("eval_freq", "negative", c.eval_freq(), ">= 1 (0 = every epoch)");
  if (c.grad_clip_norm() < 0) return bad("grad_clip_norm", "negative", c.grad_clip_norm(), ">= 0 (0 = no clipping)");
  if (c.early_stopping_patience() < 0) {
    return bad("early_stopping_patience", "negative", c.early_stopping_patience(), ">= 0 (0 = never stop early)");
  }
  if (c.has_max_nan_recoveries() && c.max_nan_recoveries() < 0) {
    return bad("max_nan_recoveries", "negative", c.max_nan_recoveries(), ">= 0");
  }
  if (c.nan_lr_factor() != 0 && !(c.nan_lr_factor() > 0 && c.nan_lr_factor() < 1)) {
    return bad("nan_lr_factor", "out of range", c.nan_lr_factor(), "(0, 1)");
  }
  if (c.log_every_steps() < 0) return bad("log_every_steps", "negative", c.log_every_steps(), ">= 0 (0 = never)");
  if (!c.eval_split().empty() && c.eval_split() != "train" && c.eval_split() != "val" && c.eval_split() != "test") {
    return bad("eval_split", "not a split", Quoted(c.eval_split()), "train, val, test");
  }
  RETURN_IF_ERROR(RequireNonNull("TrainerDeps", {{"loss", deps.loss}, {"train", deps.train}},
                                 "the trainer needs a loss and a train loader"));
  if (deps.eval != nullptr && deps.evaluator == nullptr) {
    return absl::InvalidArgumentError("TrainerDeps: evaluator is null, but eval is set; an eval loader needs one");
  }
  if (deps.optimizer_factory == nullptr) {
    ASSIGN_OR_RETURN(auto f, MakeOptimizerFactory(c.optimizer()), AtField("full_trainer.optimizer"));
    deps.optimizer_factory = std::move(f);
  }
  if (deps.scheduler_factory == nullptr) {
    ASSIGN_OR_RETURN(auto f, MakeSchedulerFactory(c.scheduler()), AtField("full_trainer.scheduler"));
    deps.scheduler_factory = std::move(f);
  }
  return std::unique_ptr<Trainer>(new Trainer(c, std::move(deps)));
}

absl::StatusOr<TrainResult> Trainer::Train(Model& model) {
  // The TorchScript graph executor's optimizations (the profiling
  // executor's differentiable-graph and fusion passes) cost training time:
  // on LibTorch 2.11, one resnet_small epoch (10,000 Fashion-MNIST samples,
  // 1 thread) took 28.8-29.8 s with them and 24.2-24.6 s without (1.13 took
  // 23.9-26.1 s). Off for this thread while training (tools/train.cc's
  // epoch, docs/libtorch2.md); inference elsewhere is unaffected.
  torch::jit::GraphOptimizerEnabledGuard no_graph_optimizer(false);
  const auto start = Clock::now();
  const TrainerConfig& c = config_;
  const int epochs = c.has_epochs() ? c.epochs() : (c.max_steps() > 0 ? 0 : 1);
  const int total_epochs = epochs > 0 ? epochs : 1 << 30;  // steps-only: until max_steps
  const int eval_freq = c.eval_freq() == 0 ? 1 : c.eval_freq();
  const std::string eval_key = c.eval_key().empty() ? "accuracy" : c.eval_key();
  const bool keep_best = c.has_keep_best() ? c.keep_best() : true;
  const int max_recoveries = c.has_max_nan_recoveries() ? c.max_nan_recoveries() : 3;
  const double nan_factor = c.nan_lr_factor() == 0 ? 0.5 : c.nan_lr_factor();

  TrainResult result;
  const bool parallel = IsDistributed(deps_.group);
  const bool root = !parallel || deps_.group->is_root();
  std::optional<DataParallel> dp;
  if (parallel) dp.emplace(*deps_.group);
  auto* shard = dynamic_cast<ShardedLoader*>(deps_.train);
  if (parallel && shard == nullptr) {
    return absl::InvalidArgumentError(
        "TrainerDeps: train is not a ShardedLoader; data-parallel training needs each rank's train loader to be "
        "one (data/sharded_loader.h) of the same global batches");
  }
  std::unique_ptr<std::ofstream> log;
  if (!c.metrics_path().empty() && root) {
    log = std::make_unique<std::ofstream>(c.metrics_path(), std::ios::app);
    if (!*log) {
      return FieldErrorWithCode(absl::StatusCode::kFailedPrecondition, "full_trainer.metrics_path",
                                "cannot be opened for appending", Quoted(c.metrics_path()), "a writable file path");
    }
  }
  auto write = [&](const std::string& line) {
    if (log) {
      *log << line << "\n";
      log->flush();
    }
  };

  TuneAllocatorForTensors();
  at::manual_seed(c.seed());
  // On the training device until the end (declared first: it moves the model
  // back after the scopes below have put its graph and layout back).
  ASSIGN_OR_RETURN(ModelOnDevice on_device, ModelOnDevice::Enter(model, deps_.device), "TrainerDeps.device");
  RETURN_IF_ERROR(deps_.loss->ToDevice(deps_.device), "TrainerDeps.device");
  ASSIGN_OR_RETURN(result.traced_ops_rewired, MakeTrainingModeFollowModule(model));
  // Relus after max pools and in place while this trains; the model's own graph comes back on
  // every way out (the destructor, after the layout's below).
  ASSIGN_OR_RETURN(std::unique_ptr<TrainingRelusScope> relus, TrainingRelusScope::Enter(model));
  result.relus_moved_after_pools = relus->moved_after_pools();
  result.relus_made_in_place = relus->made_in_place();
  if (dp) RETURN_IF_ERROR(dp->BroadcastModel(model));
  // Channels-last weights until the model's first step has shown it takes
  // them; put back contiguous on every way out (the destructor).
  WeightLayout layout;
  RETURN_IF_ERROR(layout.Apply(model, WeightFormat(c.memory_format(), model)), AtField("full_trainer.memory_format"));
  const std::string applied_format = MemoryFormatName(layout.current());
  bool probe_layout = layout.current() != at::MemoryFormat::Contiguous;
  ASSIGN_OR_RETURN(auto optimizer, deps_.optimizer_factory->Make(model), AtField("full_trainer.optimizer"));
  ASSIGN_OR_RETURN(auto scheduler, deps_.scheduler_factory->Make(*optimizer), AtField("full_trainer.scheduler"));
  int64_t scheduler_steps = 0;
  if (c.skip_scheduler_steps() < 0) {
    return FieldError("full_trainer.skip_scheduler_steps", "negative", c.skip_scheduler_steps(), ">= 0");
  }
  if (!scheduler->eval_based()) {
    for (; scheduler_steps < c.skip_scheduler_steps(); ++scheduler_steps) RETURN_IF_ERROR(scheduler->Step());
  }
  double lr_scale = 1.0;
  const std::optional<at::ScalarType> autocast_dtype =
      c.precision() == TrainerConfig::BF16 ? std::optional<at::ScalarType>(at::kBFloat16) : std::nullopt;

  Snapshot good = Take(model);
  Snapshot best_weights;
  std::optional<Metric> best_metric;
  int bad_evals = 0;
  Progress progress(root ? c.progress() : TrainerConfig::NONE, c.log_every_steps());

  // Rolls back after a non-finite loss or weight; re-creates optimizer and scheduler at a lower lr.
  auto recover = [&](const std::string& what, int epoch) -> absl::Status {
    ++result.nan_recoveries;
    const std::string event = absl::StrFormat("%s at step %d (epoch %d)", what, result.steps, epoch + 1);
    if (result.nan_recoveries > max_recoveries) {
      return absl::DataLossError(absl::StrCat(
          event, ": giving up after ", max_recoveries,
          " recoveries (lower the learning rate, or clip gradients with full_trainer.grad_clip_norm)"));
    }
    Restore(good);
    lr_scale *= nan_factor;
    ASSIGN_OR_RETURN(optimizer, deps_.optimizer_factory->Make(model));
    for (auto& g : optimizer->param_groups()) g.options().set_lr(g.options().get_lr() * lr_scale);
    ASSIGN_OR_RETURN(scheduler, deps_.scheduler_factory->Make(*optimizer));
    if (!scheduler->eval_based()) {
      for (int64_t i = 0; i < scheduler_steps; ++i) RETURN_IF_ERROR(scheduler->Step());
    }
    const std::string note = absl::StrFormat("%s: rolled back to the last good weights, lr scaled by %g", event, lr_scale);
    result.events.push_back(note);
    progress.EndEpoch(absl::StrCat("warning: ", note));
    write(absl::StrFormat("{\"event\": \"nan_recovery\", \"epoch\": %d, \"step\": %d, \"lr_scale\": %g}", epoch + 1,
                          result.steps, lr_scale));
    return absl::OkStatus();
  };

  // The first step (or an evaluation) failed with channels-last weights
  // (`why`) and passed with contiguous ones: AUTO goes on with contiguous
  // weights and says so; an explicit CHANNELS_LAST is an error. (Failing
  // both ways, the error is the model's own and is returned as it is; `why`
  // is OK when nothing was refused.)
  auto layout_refused = [&](const std::string& where, const absl::Status& why) -> absl::Status {
    if (why.ok()) return absl::OkStatus();
    if (c.memory_format() != TrainerConfig::MEMORY_FORMAT_AUTO) {
      return FieldError("full_trainer.memory_format",
                        absl::StrCat("the model's ", where, " fails with ", applied_format, " weights (", why.message(),
                                     ") and passes with contiguous ones"),
                        TrainerConfig::MemoryFormat_Name(c.memory_format()), "MEMORY_FORMAT_AUTO, CONTIGUOUS");
    }
    const std::string note =
        absl::StrCat("the model's ", where, " fails with ", applied_format, " weights (", why.message(),
                     "); training with contiguous weights");
    result.events.push_back(note);
    progress.EndEpoch(absl::StrCat("note: ", note));
    return absl::OkStatus();
  };

  bool stop = false;
  for (int epoch = 0; epoch < total_epochs && !stop; ++epoch) {
    const auto epoch_start = Clock::now();
    model.Train();
    RETURN_IF_ERROR(deps_.train->Reset(epoch));
    good = Take(model);
    std::map<std::string, double> sums;  // per named term
    double loss_sum = 0;
    int64_t samples = 0, local_samples = 0, i = 0;
    const int64_t n = deps_.train->num_batches();
    Batch batch;
    while (!stop) {
      // A safe point: the weights are whole between steps. The caller keeps
      // what finished before (epoch records, checkpoints).
      // Data-parallel, the interrupt travels with the step's all-reduce so
      // that every rank stops at the same step.
      if (InterruptRequested() && !dp) {
        return absl::CancelledError(absl::StrFormat("%s at epoch %d step %d", InterruptMessage(), epoch + 1, i + 1));
      }
      ASSIGN_OR_RETURN(bool more, deps_.train->Next(&batch));
      if (!more) break;
      ++i;
      optimizer->zero_grad();
      const int64_t bs = BatchRows(batch).value_or(1);
      LossTerms terms;
      double value = 0;
      if (!dp || bs > 0) {  // a rank's slice of a tiny last batch may be empty
        auto forward_backward = [&]() -> absl::Status {
          {
            AutocastScope autocast(deps_.device.type(), autocast_dtype);
            ASSIGN_OR_RETURN(terms, (*deps_.loss)(model, batch));
          }
          at::Tensor total = terms.Total();
          value = total.item<double>();
          if (std::isfinite(value)) RETURN_IF_ERROR(TorchCall("backward", [&] { total.backward(); }));
          return absl::OkStatus();
        };
        auto retry = [&] {
          optimizer->zero_grad();  // a failed channels-last try may have left gradients
          return forward_backward();
        };
        absl::Status refused;
        absl::Status s = probe_layout ? layout.RunOrRestore(retry, &refused) : forward_backward();
        probe_layout = false;
        RETURN_IF_ERROR(layout_refused("first step", refused));
        RETURN_IF_ERROR(s, absl::StrCat("epoch ", epoch + 1, " step ", i));
      }
      StepSync synced;
      if (dp) {
        StepReport mine{bs, shard->last_global_rows(), value * bs, !std::isfinite(value), InterruptRequested()};
        ASSIGN_OR_RETURN(synced, dp->Sync(model, mine), absl::StrCat("epoch ", epoch + 1, " step ", i));
        if (synced.stop) {
          return absl::CancelledError(absl::StrFormat("%s at epoch %d step %d",
                                                      InterruptRequested() ? InterruptMessage()
                                                                           : "another rank was interrupted",
                                                      epoch + 1, i));
        }
        if (synced.nonfinite) {
          RETURN_IF_ERROR(recover(std::isfinite(value) ? "loss is not finite on another rank"
                                                       : absl::StrCat("loss is ", value),
                                  epoch));
          continue;
        }
      } else if (!std::isfinite(value)) {
        RETURN_IF_ERROR(recover(absl::StrCat("loss is ", value), epoch));
        continue;
      }
      for (auto& h : hooks_) {
        if (h.after_backward) RETURN_IF_ERROR(h.after_backward(model), "after_backward hook");
      }
      if (c.grad_clip_norm() > 0) {
        RETURN_IF_ERROR(TorchCall("grad_clip_norm", [&] {
          std::vector<at::Tensor> grads;
          for (auto& g : optimizer->param_groups())
            for (auto& p : g.params())
              if (p.grad().defined()) grads.push_back(p.grad());
          if (grads.empty()) return;
          std::vector<at::Tensor> norms;
          for (auto& g : grads) norms.push_back(g.norm());
          const double norm = at::stack(norms).norm().item<double>();
          if (norm > c.grad_clip_norm()) {
            for (auto& g : grads) g.mul_(c.grad_clip_norm() / (norm + 1e-6));
          }
        }));
      }
      RETURN_IF_ERROR(TorchCall("optimizer step", [&] { optimizer->step(); }));
      for (auto& h : hooks_) {
        if (h.after_step) RETURN_IF_ERROR(h.after_step(model), "after_step hook");
      }
      ++result.steps;
      // Data-parallel: the global batch's loss (terms stay this rank's).
      samples += dp ? synced.rows : bs;
      local_samples += bs;
      for (const auto& [name, t] : terms.terms) sums[name] += t.item<double>() * bs;
      loss_sum += dp ? synced.loss * synced.rows : value * bs;
      if (scheduler->interval() == SchedulerConfig::ITERATION) {
        RETURN_IF_ERROR(scheduler->Step());
        ++scheduler_steps;
      }
      progress.set_samples_per_step(bs);
      const double secs = std::chrono::duration<double>(Clock::now() - epoch_start).count();
      progress.Step(epoch, epochs > 0 ? epochs : 1, i, n, loss_sum / samples, secs > 0 ? samples / secs : 0);
      if (c.max_steps() > 0 && result.steps >= c.max_steps()) stop = true;
    }
    if (!AllFinite(model)) {
      RETURN_IF_ERROR(recover("a weight is NaN/inf", epoch));
      continue;
    }
    ++result.epochs_run;
    if (scheduler->interval() == SchedulerConfig::EPOCH) {
      RETURN_IF_ERROR(scheduler->Step());
      ++scheduler_steps;
    }
    const bool last = stop || epoch + 1 == total_epochs;
    Metrics eval;
    bool evaluated = false;
    if (deps_.eval != nullptr && ((epoch + 1) % eval_freq == 0 || last)) {
      auto evaluate = [&]() -> absl::StatusOr<Metrics> {
        if (dp) return EvaluateAcrossRanks(*deps_.evaluator, model, *deps_.eval, deps_.eval_shard, *deps_.group);
        return deps_.evaluator->Apply(model, *deps_.eval);
      };
      absl::Status refused;
      absl::StatusOr<Metrics> evaluation = layout.RunOrRestore(evaluate, &refused);
      RETURN_IF_ERROR(layout_refused("evaluation", refused));
      ASSIGN_OR_RETURN(eval, std::move(evaluation), absl::StrCat("evaluating epoch ", epoch + 1));
      evaluated = true;
      ASSIGN_OR_RETURN(Metric m, eval.Get(eval_key), AtField("full_trainer.eval_key"));
      if (!std::isfinite(m.value)) {
        RETURN_IF_ERROR(recover(absl::StrCat(eval_key, " is ", m.value), epoch));
        continue;
      }
      if (scheduler->interval() == SchedulerConfig::EVAL) {
        RETURN_IF_ERROR(scheduler->eval_based() ? scheduler->Step(m.value) : scheduler->Step());
        ++scheduler_steps;
      }
      result.last = eval;
      if (!best_metric || Drop(*best_metric, m) < 0) {
        best_metric = m;
        result.best = eval;
        result.best_epoch = epoch + 1;
        bad_evals = 0;
        if (keep_best) best_weights = Take(model);
      } else if (c.early_stopping_patience() > 0 && ++bad_evals >= c.early_stopping_patience()) {
        result.early_stopped = true;
        result.events.push_back(absl::StrFormat("early stop after epoch %d: %s did not improve for %d evaluations",
                                                epoch + 1, eval_key, bad_evals));
        stop = true;
      }
      model.Train();
    }
    if (dp) RETURN_IF_ERROR(dp->CheckIdentical(model, absl::StrCat("after epoch ", epoch + 1)));
    for (auto& h : hooks_) {
      if (h.after_epoch) RETURN_IF_ERROR(h.after_epoch(model, epoch, evaluated ? &eval : nullptr), "after_epoch hook");
    }
    const double secs = std::chrono::duration<double>(Clock::now() - epoch_start).count();
    progress.EndEpoch(absl::StrFormat("epoch %d/%d  lr %.4g  train %s%s  %.1fs (%.0f samples/s)", epoch + 1,
                                      epochs > 0 ? epochs : result.epochs_run, scheduler->lr(),
                                      absl::StrFormat("loss %.4f", samples ? loss_sum / samples : 0.0),
                                      evaluated ? absl::StrCat("  ", c.eval_split().empty() ? "val" : c.eval_split(),
                                                               " ", eval.ToString())
                                                : "",
                                      secs, secs > 0 ? samples / secs : 0.0));
    write(absl::StrFormat("{\"event\": \"epoch\", \"epoch\": %d, \"step\": %d, \"lr\": %.6g, \"train_loss\": %.6g, "
                          "\"train\": %s, \"eval\": %s, \"seconds\": %.3f}",
                          epoch + 1, result.steps, scheduler->lr(), samples ? loss_sum / samples : 0.0,
                          TermsJson(sums, local_samples),
                          evaluated ? eval.ToJson() : "null", secs));
  }
  if (keep_best && !best_weights.empty()) {
    Restore(best_weights);
    if (result.best_epoch != result.epochs_run) {
      result.events.push_back(absl::StrFormat("restored the weights of epoch %d (best %s)", result.best_epoch, eval_key));
    }
  }
  model.Eval();
  if (dp) {
    result.sync_seconds = dp->sync_seconds();
    result.syncs = dp->syncs();
  }
  result.seconds = std::chrono::duration<double>(Clock::now() - start).count();
  for (const auto& e : result.events) write(absl::StrFormat("{\"event\": \"note\", \"text\": \"%s\"}", e));
  return result;
}

void FillScheduleLength(TrainerConfig* config, int64_t steps_per_epoch) {
  SchedulerConfig* s = config->mutable_scheduler();
  const bool by_iteration = s->interval() == SchedulerConfig::ITERATION;
  const int64_t epochs = config->has_epochs() ? config->epochs() : 1;
  const int64_t skipped = config->skip_scheduler_steps();
  const int64_t length = by_iteration ? epochs * steps_per_epoch + skipped : epochs + skipped;
  if (s->has_cosine() && s->cosine().t_max() == 0) {
    s->mutable_cosine()->set_t_max(std::max<int64_t>(length, s->cosine().warmup_steps() + 1));
  }
  if (s->has_one_cycle() && s->one_cycle().total_steps() == 0) {
    s->mutable_one_cycle()->set_total_steps(std::max<int64_t>(length, 2));
  }
}

}  // namespace slimfit
