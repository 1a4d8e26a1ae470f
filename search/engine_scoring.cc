// Engine::Search: measuring a model (metric, counts, size, latency), cutting it, fine-tuning it (the lr trials and the
// final fine-tunes).
#include <c10/core/Device.h>

#include <algorithm>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "common/status_macros.h"
#include "common/text_proto.h"
#include "evaluators/profiler.h"
#include "graph/depth.h"
#include "graph/freeze.h"
#include "model/device.h"
#include "pruners/prune.h"
#include "re2/re2.h"
#include "search/decision.h"
#include "search/engine_search.h"
#include "search/experiment.h"
#include "search/in_turns.h"
#include "trainer/trainer.h"

namespace slimfit {

absl::StatusOr<Metric> Engine::Search::Evaluate(Model& m, DataLoader* loader, const char* what) {
  m.Eval();
  ASSIGN_OR_RETURN(Metrics all, e_.evaluator_->Apply(m, loader ? *loader : *e_.data_.eval), what);
  return all.Get(c_.evaluation().eval_key());
}

absl::Status Engine::Search::Measure(Model& trainable, Model* deployed, CandidateRecord* rec) {
  ASSIGN_OR_RETURN(Metric m, Evaluate(deployed ? *deployed : trainable));
  rec->set_eval_metric(m.value);
  rec->set_qualifies(Qualifies(m.value));
  ProfilerConfig counts;
  counts.set_skip_latency(true);
  ASSIGN_OR_RETURN(CostReport cost, ProfileModel(trainable, *e_.forward_pass_, counts), "profiling");
  rec->set_params(cost.params);
  rec->set_macs(cost.macs);
  rec->set_peak_activation_bytes(cost.peak_activation_bytes);
  std::optional<Model> frozen;
  if (deployed == nullptr) {
    ASSIGN_OR_RETURN(Model f, FrozenForInference(trainable));
    frozen.emplace(std::move(f));
    deployed = &*frozen;
  }
  return MeasureDeployed(*deployed, rec);
}

absl::Status Engine::Search::MeasureDeployed(Model& deployed, CandidateRecord* rec, int runs) {
  ProfilerConfig timing;
  timing.set_batch_size(kLatencyBatch);
  timing.set_runs(runs > 0 ? runs : comp_.deepsearch() ? 30 : 20);
  timing.set_warmup_runs(3);
  timing.set_threads(c_.threads());
  timing.set_device(DeviceName(deploy_device_));
  ASSIGN_OR_RETURN(CostReport deployed_cost, ProfileModel(deployed, *e_.forward_pass_, timing), "timing");
  rec->set_serialized_bytes(deployed_cost.serialized_bytes);
  if (deployed_cost.latency.size() == 2) {
    rec->set_latency_b1_ms(deployed_cost.latency[0].median_ms);
    rec->set_latency_bn_ms(deployed_cost.latency[1].median_ms);
  }
  return absl::OkStatus();
}

absl::StatusOr<std::vector<CandidateRecord>> Engine::Search::TimedInTurns(const std::vector<Model*>& deployed,
                                                                          int rounds, int runs) {
  std::vector<CandidateRecord> best(deployed.size());
  ASSIGN_OR_RETURN(std::vector<Latency> fastest,
                   FastestInTurns(static_cast<int>(deployed.size()), rounds, [&](int i) -> absl::StatusOr<Latency> {
                     RETURN_IF_ERROR(MeasureDeployed(*deployed[i], &best[i], runs));
                     return Latency{best[i].latency_b1_ms(), best[i].latency_bn_ms()};
                   }));
  for (size_t i = 0; i < deployed.size(); ++i) {
    best[i].set_latency_b1_ms(fastest[i].b1_ms);
    best[i].set_latency_bn_ms(fastest[i].bn_ms);
  }
  return best;
}

absl::Status Engine::Search::TimedTogetherOnce(const std::vector<CandidateRecord*>& records,
                                               const std::string& key_prefix, const std::string& how,
                                               const LoadDeployed& load, const std::string& indent) {
  std::vector<std::string> keys;
  for (const CandidateRecord* r : records) keys.push_back(absl::StrCat(key_prefix, r->key()));
  bool all_recorded = true;
  for (const std::string& key : keys) all_recorded &= Reuse(key) != nullptr;
  if (!all_recorded) {
    // All are timed together (under one load); one recorded before keeps
    // its recorded figures, so a resumed run ranks as the first did.
    std::vector<Latency> latencies(records.size());
    const auto t0 = Clock::now();
    if (root()) {
      std::vector<Model> hold;
      hold.reserve(records.size());
      std::vector<Model*> deployed;
      RETURN_IF_ERROR(load(hold, deployed));
      ASSIGN_OR_RETURN(std::vector<CandidateRecord> timed, TimedInTurns(deployed, kSideBySideRounds),
                       absl::StrCat("timing ", records.size(), " models in turns"));
      for (size_t i = 0; i < records.size(); ++i) latencies[i] = {timed[i].latency_b1_ms(), timed[i].latency_bn_ms()};
    }
    for (size_t i = 0; i < records.size(); ++i) {
      CandidateRecord rec = *records[i];
      ASSIGN_OR_RETURN(const double b1, RootsValue(latencies[i].b1_ms));
      ASSIGN_OR_RETURN(const double bn, RootsValue(latencies[i].bn_ms));
      rec.set_latency_b1_ms(b1);
      rec.set_latency_bn_ms(bn);
      rec.set_key(keys[i]);
      rec.set_phase("retimed");
      rec.set_description(absl::StrCat(records[i]->description(), ", ", how));
      rec.set_seconds(SecondsSince(t0));
      rec.clear_model_file();
      if (store_->Find(keys[i]) == nullptr) RETURN_IF_ERROR(Keep(rec, nullptr));
    }
  } else {
    Say(absl::StrCat(indent, "the figures recorded when these were first timed together (state/)"));
  }
  for (size_t i = 0; i < records.size(); ++i) {
    const CandidateRecord* timed = store_->Find(keys[i]);
    Say(absl::StrFormat("%s%s: latency b1 %.3f ms (when made: %.3f), b%d %.2f ms (when made: %.2f)", indent,
                        records[i]->description(), timed->latency_b1_ms(), records[i]->latency_b1_ms(), kLatencyBatch,
                        timed->latency_bn_ms(), records[i]->latency_bn_ms()));
    records[i]->set_latency_b1_ms(timed->latency_b1_ms());
    records[i]->set_latency_bn_ms(timed->latency_bn_ms());
  }
  return absl::OkStatus();
}

absl::Status Engine::Search::TimeAgainInTurns(std::vector<CandidateRecord>& records) {
  if (records.size() < 2) return absl::OkStatus();
  std::vector<CandidateRecord*> timed;
  for (CandidateRecord& r : records) timed.push_back(&r);
  return TimedTogetherOnce(
      timed, "retimed|", "timed again in turns",
      [&](std::vector<Model>& hold, std::vector<Model*>& deployed) -> absl::Status {
        for (const CandidateRecord* r : timed) {
          ASSIGN_OR_RETURN(Model trainable, LoadStored(*r));
          ASSIGN_OR_RETURN(Model f, FrozenForInference(trainable), "freezing a candidate to time it again");
          deployed.push_back(&hold.emplace_back(std::move(f)));
        }
        return absl::OkStatus();
      },
      "    ");
}

absl::StatusOr<int64_t> Engine::Search::Macs(Model& m) {
  ProfilerConfig counts;
  counts.set_skip_latency(true);
  ASSIGN_OR_RETURN(CostReport cost, ProfileModel(m, *e_.forward_pass_, counts), "profiling");
  return cost.macs;
}

absl::Status Engine::Search::MeasureTest(Model& m, CandidateRecord* rec) {
  if (e_.data_.test == nullptr) return absl::OkStatus();
  ASSIGN_OR_RETURN(Metric metric, Evaluate(m, e_.data_.test.get(), "evaluation on the test split"));
  rec->set_test_metric(metric.value);
  return absl::OkStatus();
}

absl::StatusOr<Model> Engine::Search::Cut(const Model& base, const std::string& pruner,
                                          const std::map<std::string, double>& ratios, int bn_batches, bool with_data) {
  PruneDeps deps;
  deps.forward_pass = e_.forward_pass_.get();
  if (with_data) {
    deps.loss = e_.loss_.get();
    deps.train = e_.data_.train.get();
  }
  // Residual blocks first (graph/depth.h): those of `ratios` that `base`
  // still has; a base cut from before may have lost some already.
  std::vector<std::string> gone;
  for (const auto& [path, r] : ratios) {
    if (IsDepthKey(path) && r >= 1) gone.push_back(BlockOfDepthKey(path));
  }
  const Model* start = &base;
  std::optional<Model> shallower;
  if (!gone.empty()) {
    ASSIGN_OR_RETURN(std::vector<ResidualBlock> present, FindResidualBlocks(base));
    std::vector<std::string> now;
    for (const ResidualBlock& b : present) {
      if (std::find(gone.begin(), gone.end(), b.path) != gone.end()) now.push_back(b.path);
    }
    if (!now.empty()) {
      ASSIGN_OR_RETURN(Model m, RemoveBlocks(base, now));
      shallower.emplace(std::move(m));
      start = &*shallower;
    }
  }
  // Then channels, of the layers that are left.
  auto in_removed_block = [&](const std::string& path) {
    for (const std::string& b : gone) {
      if (path == b || absl::StartsWith(path, b + ".")) return true;
    }
    return false;
  };
  PruningConfig pc;
  SelectOneofField(&pc, "pruner", pruner);
  pc.mutable_one_shot();
  pc.set_max_ratio(comp_.tuning().max_ratio());
  pc.set_bn_recalibration_batches(bn_batches);
  for (const auto& [path, r] : ratios) {
    if (r <= 0 || IsDepthKey(path) || in_removed_block(path)) continue;
    LayerSelection* l = pc.add_layers();
    l->set_module_regex(RE2::QuoteMeta(path));
    l->set_ratio(r);
  }
  if (pc.layers_size() == 0) {
    ASSIGN_OR_RETURN(Model out, start->Clone());
    if (shallower) RETURN_IF_ERROR(ReestimateBatchNorm(out, bn_batches, deps), "removing residual blocks");
    return out;
  }
  ASSIGN_OR_RETURN(PruneResult r, Prune(*start, pc, deps), absl::StrCat("pruning (", pruner, ")"));
  return std::move(r.model);
}

TrainerConfig Engine::Search::FineTuneConfig(int epochs, int skipped_epochs, bool evaluate,
                                             int64_t steps_per_epoch) const {
  TrainerConfig t = c_.full_trainer();
  t.mutable_optimizer()->set_lr(t.optimizer().lr() * lr_factor_);
  t.set_epochs(epochs);
  t.set_seed(c_.seed());
  t.set_metrics_path("");
  t.set_keep_best(false);
  if (!root()) t.set_progress(TrainerConfig::NONE);  // rank 0 speaks for the run
  const int64_t per_epoch = steps_per_epoch > 0 ? steps_per_epoch : e_.data_.train->num_batches();
  const bool by_iteration = t.scheduler().interval() == SchedulerConfig::ITERATION;
  t.set_skip_scheduler_steps(by_iteration ? skipped_epochs * per_epoch : skipped_epochs);
  FillScheduleLength(&t, per_epoch);
  return t;
}

absl::Status Engine::Search::FineTune(Model& m, int epochs, int skipped_epochs, TrainerHooks hooks, bool parallel) {
  if (epochs <= 0) return absl::OkStatus();
  const bool evaluate = hooks.after_epoch != nullptr;
  TrainerDeps deps{Loss(), e_.evaluator_.get(), e_.data_.train.get(), evaluate ? e_.data_.eval.get() : nullptr};
  deps.device = device_;
  if (parallel && distributed()) {
    deps.train = e_.data_.train_shard.get();
    deps.eval_shard = evaluate ? e_.data_.eval_shard.get() : nullptr;
    deps.group = &group();
  }
  ASSIGN_OR_RETURN(auto trainer, Trainer::Create(FineTuneConfig(epochs, skipped_epochs, evaluate), deps));
  if (evaluate) trainer->AddHooks(std::move(hooks));
  ASSIGN_OR_RETURN(TrainResult r, trainer->Train(m));
  for (const std::string& event : r.events) Say(absl::StrCat("  trainer: ", event));
  return absl::OkStatus();
}

std::string Engine::Search::TrainingKey() const {
  std::string k;
  if (lr_factor_ != 1) absl::StrAppendFormat(&k, "|lr%.3g", lr_factor_);
  if (distill_loss_) {
    absl::StrAppendFormat(&k, "|kd%.3g,t%.3g", comp_.distillation().alpha(), comp_.distillation().temperature());
  }
  return k;
}

std::string Engine::Search::TrainingNote() const {
  return distill_loss_ ? absl::StrFormat(", distilled from the reference (alpha %.2g, T %.2g)",
                                         comp_.distillation().alpha(), comp_.distillation().temperature())
                       : std::string();
}

absl::StatusOr<Model> Engine::Search::LoadStored(const CandidateRecord& r) {
  ASSIGN_OR_RETURN(Model m, store_->LoadModel(r));
  m.Eval();
  return m;
}

absl::Status Engine::Search::TuneLr(const std::string& pruner, double factor) {
  if (!comp_.tune_lr() || comp_.candidate_epochs() + comp_.final_epochs() == 0) return absl::OkStatus();
  ASSIGN_OR_RETURN(auto allocated, AllocateForFactor(factor));
  ASSIGN_OR_RETURN(auto ratios, FastestWidths(allocated));  // the widths the first candidate trains
  const int64_t per_epoch = e_.data_.train->num_batches();
  const int64_t steps = comp_.tuning().lr_trial_steps() > 0
                            ? comp_.tuning().lr_trial_steps()
                            : std::min<int64_t>(per_epoch, std::max<int64_t>(20, per_epoch / 8));
  const double base_lr = c_.full_trainer().optimizer().lr();
  // Keyed apart from candidates; lr_factor_ is still 1 here, so TrainingKey
  // says only whether the trials distil.
  const std::string stem = absl::StrFormat("lr_trial|%s|%s|s%d%s", pruner, RatiosKey(ratios), steps, TrainingKey());
  Say(absl::StrFormat("  fine-tuning lr: %zu trial(s) of %d steps on %s at %.2fx fewer MACs (full_trainer lr %g)",
                      comp_.tuning().lr_factors_size(), steps, pruner, factor, base_lr));
  std::vector<LrTrial> trials;
  std::vector<std::string> said;
  std::optional<Model> cut_once;  // every trial starts from the same cut
  double slowest_trial_epoch = 0;
  for (double f : comp_.tuning().lr_factors()) {
    const std::string key = absl::StrFormat("%s|x%.4g", stem, f);
    const CandidateRecord* rec = Reuse(key);
    if (rec == nullptr) {
      ASSIGN_OR_RETURN(bool fits, Fits(steps * EpochSeconds() / std::max<int64_t>(1, per_epoch)));
      if (!fits) {
        Say(absl::StrCat("    ", StopReason(), ": lr trials stop"));
        break;
      }
      const auto t0 = Clock::now();
      if (!cut_once) {
        ASSIGN_OR_RETURN(Model m, Cut(e_.model_, pruner, ratios, 50, true));
        cut_once.emplace(std::move(m));
      }
      ASSIGN_OR_RETURN(Model cut, cut_once->Clone());
      // One "epoch" of `steps`: the schedule's shape, over the trial.
      TrainerConfig t = FineTuneConfig(1, 0, false, steps);
      t.mutable_optimizer()->set_lr(base_lr * f);
      t.set_progress(TrainerConfig::NONE);
      t.set_epochs(0);
      t.set_max_steps(steps);
      TrainerDeps deps{Loss(), e_.evaluator_.get(), e_.data_.train.get(), nullptr};
      deps.device = device_;
      ASSIGN_OR_RETURN(auto trainer, Trainer::Create(t, deps), "full_trainer (lr trial)");
      absl::StatusOr<TrainResult> trained = trainer->Train(cut);
      // The first timing of a pruned model's training: the epoch estimate
      // the budget works with until a candidate is timed. The slowest
      // trial's: the first one computes the teacher's outputs for its
      // batches and the later ones find them cached, which a candidate's
      // epoch mostly will not (the last trial's timing, used before,
      // estimated a default-run candidate at 78 s; it took 137 s).
      if (trained.ok() && trained->steps > 0 && epoch_seconds_ == 0) {
        slowest_trial_epoch = std::max(slowest_trial_epoch, trained->seconds / trained->steps * per_epoch);
        epoch_seconds_prior_ = slowest_trial_epoch;
      }
      CandidateRecord n;
      n.set_key(key);
      n.set_phase("lr_trial");
      n.set_pruner(pruner);
      n.set_mac_factor(factor);
      n.set_lr_factor(f);
      for (const auto& [path, r] : ratios) (*n.mutable_ratios())[path] = r;
      n.set_description(
          absl::StrFormat("lr trial: %s at %.2fx, lr %g x %g, %d steps", pruner, factor, base_lr, f, steps));
      if (!trained.ok() && !absl::IsDataLoss(trained.status())) return trained.status();
      if (trained.ok()) {
        ASSIGN_OR_RETURN(Metric m, Evaluate(cut));
        n.set_eval_metric(m.value);
      } else {
        // Diverged at this lr: the worst possible score, and the search goes on.
        n.set_eval_metric(reference_metric_.higher_is_better ? -1e30 : 1e30);
        n.set_note(std::string(trained.status().message()));
      }
      n.set_seconds(SecondsSince(t0));
      RETURN_IF_ERROR(Keep(n, nullptr));
      rec = store_->Find(key);
    }
    const bool diverged = !rec->note().empty();
    trials.push_back({f, DropOf(rec->eval_metric()), diverged});
    said.push_back(!diverged ? absl::StrFormat("lr %g: %.4g", base_lr * f, rec->eval_metric())
                             : absl::StrFormat("lr %g: diverged", base_lr * f));
  }
  const double tie = comp_.tuning().lr_tie() * comp_.delta();
  lr_factor_ = ChooseLrFactor(trials, tie);
  RETURN_IF_ERROR(AgreeTimings());
  Say(absl::StrFormat("    %s -> lr %g for every fine-tune (the largest within %.3g of the best)",
                      absl::StrJoin(said, ", "), base_lr * lr_factor_, tie));
  return absl::OkStatus();
}

double Engine::Search::FinalEpochSecondsOf(const CandidateRecord& candidate) const {
  if (candidate.epoch_seconds() <= 0) return FinalEpochSeconds();
  const double teacher = distill_loss_ ? eval_seconds_ * static_cast<double>(e_.data_.train->num_samples()) /
                                             std::max<int64_t>(1, e_.data_.eval->num_samples())
                                       : 0;
  return (candidate.epoch_seconds() + teacher + eval_seconds_) * final_epoch_ratio_;
}

absl::StatusOr<CandidateRecord> Engine::Search::Final(const CandidateRecord& candidate, int epochs) {
  const std::string key = absl::StrCat("final|", candidate.key(), "|e", epochs);
  if (const CandidateRecord* r = Reuse(key)) return *r;
  const auto t0 = Clock::now();
  // An epoch of a 2-epoch schedule is not one of a 5-epoch schedule.
  auto epoch_key = [&](int k) { return absl::StrCat("final_epoch|", candidate.key(), "|", k, "/", epochs); };
  int done = 0;
  for (int k = epochs; k >= 1; --k) {
    if (Reuse(epoch_key(k)) != nullptr) {
      done = k;
      break;
    }
  }
  if (done < epochs) {
    ASSIGN_OR_RETURN(Model m, done > 0 ? LoadStored(*store_->Find(epoch_key(done))) : LoadStored(candidate));
    if (done > 0) Say(absl::StrFormat("  resuming the fine-tune after epoch %d/%d", done, epochs));
    TrainerHooks hooks;
    auto epoch_start = Clock::now();
    const double estimate = FinalEpochSecondsOf(candidate) / final_epoch_ratio_;
    hooks.after_epoch = [&, done, estimate](Model& model, int epoch, const Metrics* eval) -> absl::Status {
      const int k = done + epoch + 1;
      const double took = SecondsSince(epoch_start);
      slowest_epoch_seconds_ = std::max(slowest_epoch_seconds_, took);
      final_epoch_ratio_ = std::max(final_epoch_ratio_, took / std::max(1e-9, estimate));
      epoch_start = Clock::now();
      CandidateRecord rec;
      rec.set_key(epoch_key(k));
      rec.set_phase("final_epoch");
      rec.set_description(absl::StrFormat("%s, final fine-tune epoch %d/%d", candidate.description(), k, epochs));
      rec.set_epochs(candidate.epochs() + k);
      if (eval != nullptr) {
        ASSIGN_OR_RETURN(Metric m, eval->Get(c_.evaluation().eval_key()));
        rec.set_eval_metric(m.value);
        rec.set_qualifies(Qualifies(m.value));
      }
      rec.set_seconds(SecondsSince(t0));
      Say(absl::StrFormat("    epoch %d/%d: %s = %.4g (%+.2f)", k, epochs, c_.evaluation().eval_key(),
                          rec.eval_metric(), -DropOf(rec.eval_metric())));
      return Keep(rec, &model);
    };
    RETURN_IF_ERROR(FineTune(m, epochs - done, done, std::move(hooks), /*parallel=*/true), "the final fine-tune");
    RETURN_IF_ERROR(AgreeTimings());
  }
  // The best epoch (every epoch was evaluated and kept).
  const CandidateRecord* best = nullptr;
  for (int k = 1; k <= epochs; ++k) {
    const CandidateRecord* r = store_->Find(epoch_key(k));
    if (r != nullptr && (best == nullptr || DropOf(r->eval_metric()) < DropOf(best->eval_metric()))) best = r;
  }
  if (best == nullptr) return absl::InternalError("the final fine-tune recorded no epoch");
  ASSIGN_OR_RETURN(Model m, LoadStored(*best));
  CandidateRecord rec = candidate;
  rec.set_key(key);
  rec.set_phase("final");
  rec.set_epochs(best->epochs());
  rec.set_description(absl::StrFormat("%s, then %d more epoch(s) (best: epoch %d)", candidate.description(), epochs,
                                      best->epochs() - candidate.epochs()));
  RETURN_IF_ERROR(Measure(m, nullptr, &rec));
  rec.set_seconds(SecondsSince(t0));
  RETURN_IF_ERROR(Keep(rec, &m));
  return *store_->Find(key);
}

}  // namespace slimfit
