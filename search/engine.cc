#include "search/engine.h"

#include <ATen/Context.h>
#include <ATen/Functions.h>
#include <ATen/core/Tensor.h>
#include <ATen/core/grad_mode.h>
#include <c10/core/Device.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <map>
#include <optional>
#include <set>
#include <utility>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "common/files.h"
#include "common/interrupt.h"
#include "common/json.h"
#include "common/status_macros.h"
#include "common/text_proto.h"
#include "common/threads.h"
#include "distributed/collective.h"
#include "evaluators/profiler.h"
#include "graph/freeze.h"
#include "pruners/plan.h"
#include "pruners/prune.h"
#include "quantizers/int8.h"
#include "quantizers/quantize.h"
#include "re2/re2.h"
#include "losses/teacher_distillation.h"
#include "search/allocation.h"
#include "search/budget.h"
#include "search/candidate_store.h"
#include "search/decision.h"
#include "search/experiment.h"
#include "search/report.h"
#include "search/rank_exchange.h"
#include "search/run_dir.h"
#include "search/strategy.h"
#include "search/widths.h"
#include "trainer/trainer.h"

namespace slimfit {
namespace {

using Clock = std::chrono::steady_clock;

constexpr int kLatencyBatch = 64;

double SecondsSince(Clock::time_point t) { return std::chrono::duration<double>(Clock::now() - t).count(); }

}  // namespace

// One Run(): the state of a search in progress.
// It is the context the strategy (search/strategy.h) works through.
class Engine::Search : public SearchContext {
 public:
  Search(Engine& engine, Experiment config) : e_(engine), c_(std::move(config)), comp_(c_.compression()) {}

  absl::StatusOr<EngineResult> Run();

  // ---- SearchContext ----
  const Experiment& experiment() const override { return c_; }
  const CandidateRecord& reference() const override { return reference_; }
  double DropOf(double value) const override {
    return MetricDrop(reference_metric_.value, value, reference_metric_.higher_is_better);
  }
  double Objective(const CandidateRecord& r) const override {
    return ObjectiveValue(comp_.objective(), reference_, r);
  }
  absl::StatusOr<double> MaxMacFactor() override;
  absl::Status TuneLr(const std::string& pruner, double factor) override;
  absl::StatusOr<CandidateRecord> Candidate(const std::string& pruner, double factor) override;
  absl::StatusOr<CandidateRecord> CandidateFrom(const CandidateRecord& base, const std::string& pruner,
                                                double factor) override;
  absl::Status Prefetch(const std::vector<std::pair<std::string, double>>& candidates) override;
  absl::StatusOr<CandidateRecord> Final(const CandidateRecord& candidate, int epochs) override;
  absl::StatusOr<bool> Fits(double seconds) override { return FitsShare(seconds, 1.0); }
  absl::StatusOr<double> SecondsLeft() override { return RootsValue(std::max(0.0, LocalSecondsLeft())); }
  double EpochSeconds() const override { return epoch_seconds_ > 0 ? epoch_seconds_ : epoch_seconds_prior_; }
  double FinalEpochSeconds() const override { return std::max(slowest_epoch_seconds_, EpochSeconds()); }
  // Why Fits said no.
  std::string StopReason() const override {
    return InterruptRequested() ? InterruptMessage() : stopped_elsewhere_ ? "another rank was interrupted" : "time budget";
  }
  // A fine-tune that failed for a reason that ends this candidate but not the
  // search: diverged (NaN/inf beyond the trainer's recoveries). Reported.
  absl::Status SkipFailed(const std::string& what, const absl::Status& status) override {
    Say(absl::StrCat("    ", what, " failed, the search goes on: ", status.message()));
    failures_.push_back(absl::StrCat(what, ": ", status.message()));
    return AppendMetricsLine(absl::StrCat("{\"event\": \"failed\", \"what\": ", JsonString(what),
                                          ", \"error\": ", JsonString(std::string(status.message())), "}"));
  }
  void Say(const std::string& line) override {
    if (!root()) return;
    if (e_.progress_) {
      e_.progress_(line);
    } else {
      std::printf("%s\n", line.c_str());
      std::fflush(stdout);
    }
  }
  void Phase(const std::string& name, const std::string& detail) override {
    phase_seconds_.emplace_back(name, 0);
    phase_started_ = Clock::now();
    Say(absl::StrFormat("[%s] %s  (elapsed %s)", name, detail, Hms(SecondsSince(start_))));
  }
  void EndPhase() override {
    if (!phase_seconds_.empty()) phase_seconds_.back().second = SecondsSince(phase_started_);
  }
  std::string TrainingNote() const override {
    return distill_loss_ ? absl::StrFormat(", distilled from the reference (alpha %.2g, T %.2g)",
                                           comp_.distillation().alpha(), comp_.distillation().temperature())
                         : std::string();
  }
  int world_size() const override { return distributed() ? e_.group_->world_size() : 1; }

 private:
  // A record (and its model) one rank makes for all: see Prefetch.
  struct Task {
    std::string key;
    MakeRecord make;
  };
  // ---- measuring ----
  // eval_key on eval_split (or on `loader`).
  absl::StatusOr<Metric> Evaluate(Model& m, DataLoader* loader = nullptr) {
    m.Eval();
    ASSIGN_OR_RETURN(Metrics all, e_.evaluator_->Apply(m, loader ? *loader : *e_.data_.eval),
                     loader ? "evaluation on the test split" : "evaluation");
    return all.Get(c_.evaluation().eval_key());
  }
  // Metric, counts (from `trainable`) and deployed size and latency (from
  // `deployed`: the frozen or int8 model).
  absl::Status Measure(Model& trainable, Model* deployed, CandidateRecord* rec) {
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
  // Serialized size and latency (batch 1 and kLatencyBatch) of a deployed model.
  absl::Status MeasureDeployed(Model& deployed, CandidateRecord* rec) {
    ProfilerConfig timing;
    timing.set_batch_size(kLatencyBatch);
    timing.set_runs(comp_.deepsearch() ? 30 : 20);
    timing.set_warmup_runs(3);
    timing.set_threads(c_.threads());
    ASSIGN_OR_RETURN(CostReport deployed_cost, ProfileModel(deployed, *e_.forward_pass_, timing), "timing");
    rec->set_serialized_bytes(deployed_cost.serialized_bytes);
    if (deployed_cost.latency.size() == 2) {
      rec->set_latency_b1_ms(deployed_cost.latency[0].median_ms);
      rec->set_latency_bn_ms(deployed_cost.latency[1].median_ms);
    }
    return absl::OkStatus();
  }
  absl::StatusOr<int64_t> Macs(Model& m) {
    ProfilerConfig counts;
    counts.set_skip_latency(true);
    ASSIGN_OR_RETURN(CostReport cost, ProfileModel(m, *e_.forward_pass_, counts), "profiling");
    return cost.macs;
  }
  bool Qualifies(double value) const { return DropOf(value) <= comp_.delta() + 1e-9; }

  // ---- pruning and training ----
  absl::StatusOr<Model> Cut(const Model& base, const std::string& pruner, const std::map<std::string, double>& ratios,
                            int bn_batches, bool with_data) {
    PruningConfig pc;
    SelectOneofField(&pc, "pruner", pruner);
    pc.mutable_one_shot();
    pc.set_max_ratio(comp_.tuning().max_ratio());
    pc.set_bn_recalibration_batches(bn_batches);
    for (const auto& [path, r] : ratios) {
      if (r <= 0) continue;
      LayerSelection* l = pc.add_layers();
      l->set_module_regex(RE2::QuoteMeta(path));
      l->set_ratio(r);
    }
    if (pc.layers_size() == 0) return base.Clone();
    PruneDeps deps;
    deps.forward_pass = e_.forward_pass_.get();
    if (with_data) {
      deps.loss = e_.loss_.get();
      deps.train = e_.data_.train.get();
    }
    ASSIGN_OR_RETURN(PruneResult r, Prune(base, pc, deps), absl::StrCat("pruning (", pruner, ")"));
    return std::move(r.model);
  }
  // The experiment's full_trainer for `epochs` epochs: schedules that need
  // a length get it, progress and logging are the engine's.
  // `steps_per_epoch`: the schedule's epoch length (default: the train
  // loader's batches).
  TrainerConfig FineTuneConfig(int epochs, int skipped_epochs, bool evaluate, int64_t steps_per_epoch = 0) const {
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
  // `parallel`: every rank trains `m` together (data-parallel, on the
  // shards); otherwise this rank alone on the whole train split.
  absl::Status FineTune(Model& m, int epochs, int skipped_epochs, TrainerHooks hooks = {}, bool parallel = false) {
    if (epochs <= 0) return absl::OkStatus();
    const bool evaluate = hooks.after_epoch != nullptr;
    TrainerDeps deps{Loss(), e_.evaluator_.get(), e_.data_.train.get(), evaluate ? e_.data_.eval.get() : nullptr};
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

  // The fine-tuning loss: the experiment's, with the reference as a teacher
  // when distillation is on and the model's output allows it.
  LossFunction* Loss() { return distill_loss_ ? distill_loss_.get() : e_.loss_.get(); }
  // What every fine-tune's key says about how it trained (lr factor,
  // distillation): records made otherwise are other work.
  std::string TrainingKey() const {
    std::string k;
    if (lr_factor_ != 1) absl::StrAppendFormat(&k, "|lr%.3g", lr_factor_);
    if (distill_loss_) {
      absl::StrAppendFormat(&k, "|kd%.3g,t%.3g", comp_.distillation().alpha(), comp_.distillation().temperature());
    }
    return k;
  }
  absl::Status SetUpDistillation();
  // Evaluates `m` on the test split (when the data has one) into rec.
  absl::Status MeasureTest(Model& m, CandidateRecord* rec);

  // ---- phases ----
  absl::Status Reference();
  absl::Status FindGroups();
  absl::Status Sensitivity();
  absl::StatusOr<std::map<std::string, double>> AllocateForFactor(double factor);
  // The allocation's channel counts, or rounded up to one of tuning.round_to
  // when that measures as fast (search/widths.h): objective LATENCY only.
  // Decided once per allocation (a "widths" record), so a resumed run and
  // every rank take the same widths.
  absl::StatusOr<std::map<std::string, double>> FastestWidths(const std::map<std::string, double>& ratios);
  // The candidate's key (from the allocation for `factor`), and the work.
  // `from`: cut that recorded candidate further instead of the reference.
  absl::StatusOr<Task> CandidateTask(const std::string& pruner, double factor, const CandidateRecord* from = nullptr);
  // The task's record: stored already, failed on another rank (its status),
  // or made now and kept.
  absl::StatusOr<CandidateRecord> Made(const Task& task);
  absl::StatusOr<CandidateRecord> SensitivityPoint(const PruneGroup& g, double ratio, const std::string& key);
  // int8 of `base`: PTQ as the quantization block says, or with
  // `qat_epochs` > 0 quantization-aware training on the fine-tuning loss
  // (distilled from the reference when distillation is on).
  absl::StatusOr<std::optional<CandidateRecord>> Quantized(const CandidateRecord& base, int qat_epochs = 0);

  // ---- bookkeeping ----
  // Stores a record every rank made (distributed: rank 0's numbers win, so
  // timings and anything else that differs between ranks agree).
  absl::Status Keep(CandidateRecord rec, const Model* model) {
    if (distributed()) {
      ASSIGN_OR_RETURN(std::vector<std::string> all,
                       group().AllGather(root() ? ToTextProto(rec) : std::string()), "sharing a record");
      RETURN_IF_ERROR(ParseTextProto(all[0], "rank 0's record", &rec));
    }
    return Record(std::move(rec), model);
  }
  // Stores a record (the same on every rank) and logs it.
  absl::Status Record(CandidateRecord rec, const Model* model) {
    RETURN_IF_ERROR(store_->Put(rec, model));
    const CandidateRecord* stored = store_->Find(rec.key());
    std::string line = absl::StrCat("{\"event\": ", JsonString(stored->phase()), ", \"sequence\": ", stored->sequence(),
                                    ", \"description\": ", JsonString(stored->description()));
    if (stored->phase() != "widths") {  // a widths record is measured, not evaluated
      absl::StrAppend(&line, ", \"eval\": ", JsonNumber(stored->eval_metric()),
                      ", \"qualifies\": ", stored->qualifies() ? "true" : "false");
    }
    if (stored->macs() > 0) absl::StrAppend(&line, ", \"macs\": ", stored->macs());
    if (stored->latency_b1_ms() > 0) {
      absl::StrAppend(&line, ", \"latency_b1_ms\": ", JsonNumber(stored->latency_b1_ms()),
                      ", \"latency_b64_ms\": ", JsonNumber(stored->latency_bn_ms()));
    }
    if (stored->serialized_bytes() > 0) absl::StrAppend(&line, ", \"bytes\": ", stored->serialized_bytes());
    absl::StrAppend(&line, ", \"seconds\": ", JsonNumber(stored->seconds()), "}");
    return AppendMetricsLine(line);
  }
  absl::Status AppendMetricsLine(const std::string& line) {
    if (!root()) return absl::OkStatus();  // rank 0 writes the run directory
    metrics_lines_ += line + "\n";
    return WriteFileAtomically(run_dir_ + "/metrics.jsonl", metrics_lines_);
  }
  // A stored record; counted as reused when it was there before this run.
  const CandidateRecord* Reuse(const std::string& key) {
    const CandidateRecord* r = store_->Find(key);
    if (r != nullptr && resumed_keys_.erase(key) > 0) ++reused_;
    return r;
  }
  // Whether `seconds` more work fits in the time budget (never once the
  // process is interrupted: the run stops at its next safe point).
  // Whether any rank was interrupted (agreed, so every rank takes one path).
  absl::StatusOr<bool> Interrupted() {
    if (!distributed()) return InterruptRequested();
    std::vector<at::Tensor> flag{at::full({1}, InterruptRequested() ? 1 : 0, at::kLong)};
    RETURN_IF_ERROR(group().AllReduceMax(flag), "agreeing on an interrupt");
    return flag[0][0].item<int64_t>() > 0;
  }
  // Distributed: rank 0's clock decides, an interrupt on any rank stops all.
  // `share`: of the budget (the sensitivity pass gets a part of it).
  absl::StatusOr<bool> FitsShare(double seconds, double share) {
    const bool in_budget = comp_.time_budget_minutes() <= 0 ||
                           SecondsSince(start_) + seconds <= share * comp_.time_budget_minutes() * 60;
    if (!distributed()) return in_budget && !InterruptRequested();
    std::vector<at::Tensor> flags{at::zeros({2}, at::kLong)};
    flags[0][0] = root() && !in_budget ? 1 : 0;
    flags[0][1] = InterruptRequested() ? 1 : 0;
    RETURN_IF_ERROR(group().AllReduceMax(flags), "agreeing on the time budget");
    stopped_elsewhere_ = flags[0][1].item<int64_t>() > 0 && !InterruptRequested();
    return flags[0][0].item<int64_t>() == 0 && flags[0][1].item<int64_t>() == 0;
  }
  // Rank 0's `value` on every rank (>= 0; itself in one process).
  absl::StatusOr<double> RootsValue(double value) {
    if (!distributed()) return value;
    std::vector<at::Tensor> v{at::full({1}, root() ? value : 0.0, at::kDouble)};
    RETURN_IF_ERROR(group().AllReduceMax(v), "agreeing on a value");
    return v[0][0].item<double>();
  }
  // Seconds left in the budget on this rank's clock (huge without one).
  double LocalSecondsLeft() const {
    return comp_.time_budget_minutes() <= 0 ? 1e18 : comp_.time_budget_minutes() * 60 - SecondsSince(start_);
  }
  absl::StatusOr<Model> LoadStored(const CandidateRecord& r) {
    ASSIGN_OR_RETURN(Model m, store_->LoadModel(r));
    m.Eval();
    return m;
  }
  absl::Status WriteOutputs(EngineResult& result, const Model& trainable);
  // One eval batch through the model before any work: a model that does not
  // take the data's shape is an InvalidArgument naming the inputs. Keeps
  // the output in sample_output_.
  absl::Status CheckModelTakesTheData();

  // ---- distributed ----
  bool distributed() const { return IsDistributed(e_.group_); }
  bool root() const { return !distributed() || e_.group_->is_root(); }
  Collective& group() { return e_.group_ != nullptr ? *e_.group_ : local_; }
  // `mine` on every rank, or the first failure of any rank.
  absl::Status Agree(const absl::Status& mine) { return AgreeOnStatus(group(), mine); }
  // Records (with models) that one rank makes and all keep: task i runs on
  // rank i % W; results are gathered in task order. A task that fails
  // leaves its status in failed_ (the search reports or stops on it when it
  // gets there); records already stored are skipped. No-op in one process.
  absl::Status PrefetchTasks(std::vector<Task> tasks);

  Engine& e_;
  LocalCollective local_;
  std::map<std::string, absl::Status> failed_;  // prefetched keys whose task failed
  bool stopped_elsewhere_ = false;
  Experiment c_;
  const CompressionConfig& comp_;
  std::string run_dir_;
  std::unique_ptr<CandidateStore> store_;
  std::vector<std::string> failures_;  // candidates / finals skipped, with the reason
  Clock::time_point start_ = Clock::now();
  Clock::time_point phase_started_ = Clock::now();
  std::vector<std::pair<std::string, double>> phase_seconds_;
  std::string metrics_lines_;
  int reused_ = 0;
  std::set<std::string> resumed_keys_;  // records found in state/ at the start
  double epoch_seconds_ = 0;
  // The slowest fine-tuning epoch measured (a candidate's over batches the
  // teacher had not seen, or a final epoch with its evaluation).
  double slowest_epoch_seconds_ = 0;
  // A training epoch's time before any was timed (search/budget.h).
  double epoch_seconds_prior_ = 60;
  double lr_factor_ = 1;
  std::optional<Model> teacher_;
  std::unique_ptr<LossFunction> distill_loss_;
  c10::IValue sample_output_;  // the reference's output on one eval batch

  Metric reference_metric_;
  double target_ = 0;
  CandidateRecord reference_;
  std::vector<PruneGroup> groups_;
  std::map<std::string, int64_t> macs_cache_;  // RatiosKey → MACs
  std::string warning_;                         // said to the user and in the report
  std::vector<std::string> log_;
};

absl::Status Engine::Search::Reference() {
  Phase("reference", "measuring the reference on " + c_.evaluation().eval_split());
  const std::string path = run_dir_ + "/reference.pt";
  if (root() && !RegularFileSize(path).ok()) RETURN_IF_ERROR(e_.model_.Save(path));
  if (const CandidateRecord* r = Reuse("reference")) {
    reference_ = *r;
  } else {
    const auto t0 = Clock::now();
    CandidateRecord rec;
    rec.set_key("reference");
    rec.set_phase("reference");
    rec.set_description("the reference model, as given");
    ASSIGN_OR_RETURN(Model copy, e_.model_.Clone());
    RETURN_IF_ERROR(Measure(copy, &copy, &rec));
    RETURN_IF_ERROR(MeasureTest(copy, &rec));
    rec.set_qualifies(true);
    rec.set_seconds(SecondsSince(t0));
    RETURN_IF_ERROR(Keep(rec, nullptr));
    reference_ = *store_->Find("reference");
  }
  ASSIGN_OR_RETURN(Model probe, e_.model_.Clone());
  const auto eval_start = Clock::now();
  ASSIGN_OR_RETURN(Metric m, Evaluate(probe));
  // A prior for a training epoch until one is timed: forward + backward
  // cost about three forward passes.
  epoch_seconds_prior_ =
      EpochSecondsPrior(SecondsSince(eval_start), e_.data_.train->num_samples(), e_.data_.eval->num_samples());
  reference_metric_ = Metric{reference_.eval_metric(), m.higher_is_better};
  if (!reference_.has_test_metric() && e_.data_.test != nullptr) {
    RETURN_IF_ERROR(MeasureTest(probe, &reference_));  // a record from before test figures were kept
  }
  target_ = reference_metric_.higher_is_better ? reference_.eval_metric() - comp_.delta()
                                               : reference_.eval_metric() + comp_.delta();
  // The reference frozen (batch norm folded): how much of the speed-up is
  // freezing alone, reported beside the result.
  if (Reuse("reference_frozen") == nullptr) {
    const auto t0 = Clock::now();
    CandidateRecord rec;
    rec.set_key("reference_frozen");
    rec.set_phase("reference_frozen");
    rec.set_description("the reference, frozen (batch norm folded), not pruned");
    ASSIGN_OR_RETURN(Model copy, e_.model_.Clone());
    RETURN_IF_ERROR(Measure(copy, nullptr, &rec));
    rec.set_seconds(SecondsSince(t0));
    RETURN_IF_ERROR(Keep(rec, nullptr));
  }
  Say(absl::StrFormat("  reference %s = %.4g on %s; target %s %s %.4g (delta %g)", c_.evaluation().eval_key(),
                      reference_.eval_metric(), c_.evaluation().eval_split(), c_.evaluation().eval_key(),
                      reference_metric_.higher_is_better ? ">=" : "<=", target_, comp_.delta()));
  Say(absl::StrFormat("  %.1f KiB, %lld params, %.2f M MACs, latency b1 %.3f ms, b%d %.2f ms",
                      reference_.serialized_bytes() / 1024.0, static_cast<long long>(reference_.params()),
                      reference_.macs() / 1e6, reference_.latency_b1_ms(), kLatencyBatch, reference_.latency_bn_ms()));
  if (reference_.has_test_metric()) {
    Say(absl::StrFormat("  reference %s = %.4g on test (reported beside %s; never used to choose)",
                        c_.evaluation().eval_key(), reference_.test_metric(), c_.evaluation().eval_split()));
    // A reference trained on every training sample has memorised a val
    // split carved from them: there it scores higher than on data it has
    // never seen, and every pruned model looks worse than it is.
    const double gap = DropOf(reference_.test_metric());
    if (c_.evaluation().eval_split() != "test" && gap > std::max(comp_.delta(), 1e-9)) {
      warning_ = absl::StrFormat(
          "the reference scores %.4g on %s but %.4g on test (%.2f worse, more than delta): %s is probably data it "
          "was trained on, which flatters the reference and makes every pruned model look worse. If the model was "
          "trained on all of data's training samples, set evaluation.eval_split: \"test\" (or give data a "
          "held-out val)",
          reference_.eval_metric(), c_.evaluation().eval_split(), reference_.test_metric(), gap,
          c_.evaluation().eval_split());
      Say(absl::StrCat("  warning: ", warning_));
    }
  }
  EndPhase();
  return absl::OkStatus();
}

absl::Status Engine::Search::FindGroups() {
  ASSIGN_OR_RETURN(Model copy, e_.model_.Clone());
  ASSIGN_OR_RETURN(DependencyGraph graph, AnalyzeModel(copy, *e_.forward_pass_), "analysing the model");
  PruningConfig dry;
  dry.mutable_l1_filter();
  dry.set_ratio(0.5);
  ASSIGN_OR_RETURN(PlanResult plan, MakePlan(graph, dry, nullptr));
  std::map<int, bool> seen;
  for (const LayerPlan& l : plan.layers) {
    if (!l.selected || l.kept >= l.channels || seen[l.group]) continue;
    seen[l.group] = true;
    groups_.push_back(PruneGroup{l.module_path, l.channels, {{0.0, 0.0}}});
  }
  if (groups_.empty()) {
    return absl::FailedPreconditionError(
        "the model has no prunable channel group (every conv / linear layer is tied to the output or to an op "
        "the dependency analysis does not handle; `bazel run //tools:inspect -- --model=...` shows why)");
  }
  return absl::OkStatus();
}

absl::StatusOr<CandidateRecord> Engine::Search::SensitivityPoint(const PruneGroup& g, double r, const std::string& key) {
  const auto t0 = Clock::now();
  ASSIGN_OR_RETURN(Model cut, Cut(e_.model_, comp_.pruners(0), {{g.path, r}}, 20, true));
  CandidateRecord n;
  n.set_key(key);
  n.set_phase("sensitivity");
  n.set_pruner(comp_.pruners(0));
  n.set_description(absl::StrFormat("%s alone at %.2f", g.path, r));
  (*n.mutable_ratios())[g.path] = r;
  ASSIGN_OR_RETURN(Metric m, Evaluate(cut));
  n.set_eval_metric(m.value);
  n.set_qualifies(Qualifies(m.value));
  ASSIGN_OR_RETURN(int64_t macs, Macs(cut));
  n.set_macs(macs);
  n.set_seconds(SecondsSince(t0));
  return n;
}

absl::Status Engine::Search::Sensitivity() {
  const std::vector<double> ratios =
      comp_.deepsearch() ? std::vector<double>{0.2, 0.4, 0.6, 0.8, 0.9} : std::vector<double>{0.25, 0.5, 0.75};
  Phase("sensitivity", absl::StrFormat("%zu prunable groups x %zu ratios, pruner %s, no fine-tuning%s",
                                       groups_.size(), ratios.size(), comp_.pruners(0),
                                       distributed() ? absl::StrFormat(", over %d ranks", group().world_size())
                                                     : std::string()));
  auto key_of = [&](const PruneGroup& g, double r) {
    return absl::StrFormat("sensitivity|%s|%s|%.2f", comp_.pruners(0), g.path, r);
  };
  if (distributed()) {
    ASSIGN_OR_RETURN(bool fits, Fits(0));
    if (fits) {
      std::vector<Task> tasks;
      for (const PruneGroup& g : groups_) {
        for (double r : ratios) {
          tasks.push_back(Task{key_of(g, r), [this, &g, r, key = key_of(g, r)]()
                                                 -> absl::StatusOr<MadeRecord> {
                                 ASSIGN_OR_RETURN(CandidateRecord rec, SensitivityPoint(g, r, key));
                                 return MadeRecord{std::move(rec), std::nullopt};
                               }});
        }
      }
      RETURN_IF_ERROR(PrefetchTasks(std::move(tasks)));
    }
  }
  int done = 0;
  const int total = static_cast<int>(groups_.size() * ratios.size());
  const double share = comp_.tuning().sensitivity_budget_fraction();
  for (PruneGroup& g : groups_) {
    ASSIGN_OR_RETURN(bool fits, FitsShare(0, share));
    if (!fits) {
      Say(absl::StrCat("  ", InterruptRequested() || stopped_elsewhere_ ? StopReason()
                                                                        : absl::StrFormat("its share of the time budget "
                                                                                          "(%.0f%%) is spent", 100 * share),
                       ": sensitivity analysis stops; groups not analysed stay unpruned"));
      break;
    }
    for (double r : ratios) {
      ++done;
      const std::string key = key_of(g, r);
      const CandidateRecord* rec = Reuse(key);
      if (rec == nullptr) {
        if (auto f = failed_.find(key); f != failed_.end()) return f->second;
        ASSIGN_OR_RETURN(CandidateRecord n, SensitivityPoint(g, r, key));
        RETURN_IF_ERROR(Keep(n, nullptr));
        rec = store_->Find(key);
      }
      g.curve.emplace_back(r, DropOf(rec->eval_metric()));
      if (done % std::max<int>(1, ratios.size()) == 0 || done == total) {
        std::vector<std::string> pts;
        for (size_t i = 1; i < g.curve.size(); ++i) {
          pts.push_back(absl::StrFormat("%.2f:%+.2f", g.curve[i].first, -g.curve[i].second));
        }
        Say(absl::StrFormat("  %d/%d  %-24s %lld ch  %s", done, total, g.path, static_cast<long long>(g.channels),
                            absl::StrJoin(pts, "  ")));
      }
    }
  }
  EndPhase();
  return absl::OkStatus();
}

absl::StatusOr<std::map<std::string, double>> Engine::Search::AllocateForFactor(double factor) {
  return AllocateForMacs(groups_, reference_.macs() / factor, [&](const Ratios& ratios) -> absl::StatusOr<int64_t> {
    const std::string key = RatiosKey(ratios);
    auto it = macs_cache_.find(key);
    if (it != macs_cache_.end()) return it->second;
    ASSIGN_OR_RETURN(Model cut, Cut(e_.model_, "l1_filter", ratios, 0, false));
    ASSIGN_OR_RETURN(int64_t macs, Macs(cut));
    macs_cache_[key] = macs;
    return macs;
  });
}

absl::StatusOr<std::map<std::string, double>> Engine::Search::FastestWidths(
    const std::map<std::string, double>& ratios) {
  std::vector<int> multiples;
  for (int m : comp_.tuning().round_to()) {
    if (m > 1) multiples.push_back(m);
  }
  const CompressionConfig::Objective objective = comp_.objective();
  if (multiples.empty() || objective == CompressionConfig::SIZE || objective == CompressionConfig::MACS) {
    return ratios;
  }
  const std::string key = absl::StrCat("widths|", RatiosKey(ratios));
  std::map<std::string, int64_t> channels;
  for (const PruneGroup& g : groups_) channels[g.path] = g.channels;
  if (const CandidateRecord* r = Reuse(key)) {
    return RoundKeptUp({r->ratios().begin(), r->ratios().end()}, channels, 1);
  }
  const auto t0 = Clock::now();
  std::vector<std::map<std::string, double>> shapes{RoundKeptUp(ratios, channels, 1)};
  std::vector<WidthVariant> variants{{1, 0, 0}};
  for (int m : multiples) {
    std::map<std::string, double> up = RoundKeptUp(ratios, channels, m);
    if (std::find(shapes.begin(), shapes.end(), up) != shapes.end()) continue;
    shapes.push_back(std::move(up));
    variants.push_back({m, 0, 0});
  }
  std::vector<CandidateRecord> measured(shapes.size());
  if (shapes.size() > 1) {
    // Timed in turns, three rounds, each variant's fastest round kept: a
    // busy machine's drift falls on every variant alike.
    std::vector<Model> frozen;
    for (size_t i = 0; i < shapes.size(); ++i) {
      ASSIGN_OR_RETURN(Model cut, Cut(e_.model_, "l1_filter", shapes[i], 0, false));
      ASSIGN_OR_RETURN(int64_t macs, Macs(cut));
      ASSIGN_OR_RETURN(Model f, FrozenForInference(cut));
      frozen.push_back(std::move(f));
      measured[i].set_macs(macs);
      variants[i].macs = macs;
    }
    for (int round = 0; round < 3; ++round) {
      for (size_t i = 0; i < shapes.size(); ++i) {
        CandidateRecord t;
        RETURN_IF_ERROR(MeasureDeployed(frozen[i], &t));
        if (round == 0 || t.latency_b1_ms() < measured[i].latency_b1_ms()) measured[i].set_latency_b1_ms(t.latency_b1_ms());
        if (round == 0 || t.latency_bn_ms() < measured[i].latency_bn_ms()) measured[i].set_latency_bn_ms(t.latency_bn_ms());
        measured[i].set_serialized_bytes(t.serialized_bytes());
      }
    }
    for (size_t i = 0; i < shapes.size(); ++i) variants[i].latency = Objective(measured[i]);
  }
  const size_t pick = shapes.size() > 1 ? PickWidthVariant(variants) : 0;
  CandidateRecord rec = measured[pick];
  rec.set_key(key);
  rec.set_phase("widths");
  for (const auto& [path, r] : shapes[pick]) (*rec.mutable_ratios())[path] = r;
  std::vector<std::string> tried;
  for (size_t i = 0; i < variants.size(); ++i) {
    tried.push_back(absl::StrFormat("%s %.3g", variants[i].multiple > 1 ? absl::StrCat("x", variants[i].multiple)
                                                                        : std::string("as allocated"),
                                    variants[i].latency));
  }
  rec.set_description(
      shapes.size() == 1
          ? std::string("widths as allocated (already multiples of tuning.round_to)")
          : absl::StrFormat("widths %s (latency vs the reference: %s; %.1fx fewer MACs)",
                            variants[pick].multiple > 1 ? absl::StrCat("rounded up to multiples of ", variants[pick].multiple)
                                                        : std::string("as allocated"),
                            absl::StrJoin(tried, ", "),
                            static_cast<double>(reference_.macs()) / std::max<int64_t>(1, variants[pick].macs)));
  rec.set_seconds(SecondsSince(t0));
  RETURN_IF_ERROR(Keep(rec, nullptr));
  const CandidateRecord* kept = store_->Find(key);
  if (shapes.size() > 1) Say(absl::StrCat("    ", kept->description()));
  return RoundKeptUp({kept->ratios().begin(), kept->ratios().end()}, channels, 1);
}

absl::StatusOr<Engine::Search::Task> Engine::Search::CandidateTask(const std::string& pruner, double factor,
                                                                   const CandidateRecord* from) {
  ASSIGN_OR_RETURN(auto allocated, AllocateForFactor(factor));
  ASSIGN_OR_RETURN(auto ratios, FastestWidths(allocated));
  // Cutting a pruned model further: each group's ratio of what is left (the
  // allocation's ratios are of the reference's channels).
  const Ratios cut_ratios =
      from == nullptr ? ratios
                      : RatiosOfWhatIsLeft(ratios, {from->ratios().begin(), from->ratios().end()}, groups_,
                                           comp_.tuning().max_ratio());
  Task task;
  task.key = absl::StrFormat("candidate|%s|%s|e%d%s", pruner, RatiosKey(ratios), comp_.candidate_epochs(),
                             TrainingKey());
  if (from != nullptr) absl::StrAppend(&task.key, "|from:", CandidateFileStem(from->key()));
  std::optional<CandidateRecord> base;
  if (from != nullptr) base = *from;
  task.make = [this, pruner, factor, ratios, cut_ratios, base,
               key = task.key]() -> absl::StatusOr<MadeRecord> {
    const auto t0 = Clock::now();
    std::optional<Model> start;
    if (base) {
      ASSIGN_OR_RETURN(Model m, LoadStored(*base));
      start.emplace(std::move(m));
    }
    ASSIGN_OR_RETURN(Model cut, Cut(start ? *start : e_.model_, pruner, cut_ratios, 50, true));
    const auto t1 = Clock::now();
    RETURN_IF_ERROR(FineTune(cut, comp_.candidate_epochs(), 0), "fine-tuning a candidate");
    if (comp_.candidate_epochs() > 0) {
      epoch_seconds_ = SecondsSince(t1) / comp_.candidate_epochs();
      slowest_epoch_seconds_ = std::max(slowest_epoch_seconds_, epoch_seconds_);
    }
    CandidateRecord rec;
    rec.set_key(key);
    rec.set_phase("candidate");
    rec.set_pruner(pruner);
    rec.set_mac_factor(factor);
    rec.set_epochs((base ? base->epochs() : 0) + comp_.candidate_epochs());
    rec.set_lr_factor(lr_factor_);
    for (const auto& [path, r] : ratios) (*rec.mutable_ratios())[path] = r;
    RETURN_IF_ERROR(Measure(cut, nullptr, &rec));
    rec.set_description(absl::StrFormat("%s, %.1fx fewer MACs (aimed at %.1fx), %d epoch(s)%s", pruner,
                                        static_cast<double>(reference_.macs()) / std::max<int64_t>(1, rec.macs()),
                                        factor, rec.epochs(),
                                        base ? absl::StrFormat(", cut further from #%d", base->sequence())
                                             : std::string()));
    rec.set_seconds(SecondsSince(t0));
    return MadeRecord{std::move(rec), std::move(cut)};
  };
  return task;
}

absl::StatusOr<double> Engine::Search::MaxMacFactor() {
  ASSIGN_OR_RETURN(auto most, AllocateForFactor(1e9));
  ASSIGN_OR_RETURN(Model cut, Cut(e_.model_, "l1_filter", most, 0, false));
  ASSIGN_OR_RETURN(int64_t least_macs, Macs(cut));
  return std::max(1.0, static_cast<double>(reference_.macs()) / std::max<int64_t>(1, least_macs));
}

absl::Status Engine::Search::Prefetch(const std::vector<std::pair<std::string, double>>& candidates) {
  if (!distributed()) return absl::OkStatus();
  std::vector<Task> tasks;
  for (const auto& [pruner, factor] : candidates) {
    ASSIGN_OR_RETURN(Task t, CandidateTask(pruner, factor));
    tasks.push_back(std::move(t));
  }
  return PrefetchTasks(std::move(tasks));
}

absl::StatusOr<CandidateRecord> Engine::Search::CandidateFrom(const CandidateRecord& base, const std::string& pruner,
                                                             double factor) {
  ASSIGN_OR_RETURN(Task task, CandidateTask(pruner, factor, &base));
  return Made(task);
}

absl::StatusOr<CandidateRecord> Engine::Search::Candidate(const std::string& pruner, double factor) {
  ASSIGN_OR_RETURN(Task task, CandidateTask(pruner, factor));
  return Made(task);
}

absl::StatusOr<CandidateRecord> Engine::Search::Made(const Task& task) {
  if (const CandidateRecord* r = Reuse(task.key)) return *r;
  if (auto f = failed_.find(task.key); f != failed_.end()) return f->second;
  ASSIGN_OR_RETURN(MadeRecord made, task.make());
  RETURN_IF_ERROR(Keep(made.record, made.model ? &*made.model : nullptr));
  return *store_->Find(task.key);
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
    hooks.after_epoch = [&, done](Model& model, int epoch, const Metrics* eval) -> absl::Status {
      const int k = done + epoch + 1;
      slowest_epoch_seconds_ = std::max(slowest_epoch_seconds_, SecondsSince(epoch_start));
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

absl::StatusOr<std::optional<CandidateRecord>> Engine::Search::Quantized(const CandidateRecord& base,
                                                                        int qat_epochs) {
  const std::string key = qat_epochs > 0 ? absl::StrCat("int8_qat", qat_epochs, TrainingKey(), "|", base.key())
                                         : absl::StrCat("int8|", base.key());
  if (const CandidateRecord* r = Reuse(key)) return std::optional<CandidateRecord>(*r);
  const auto t0 = Clock::now();
  QuantizationConfig qc = comp_.quantization();
  if (qat_epochs > 0) qc.mutable_qat()->set_epochs(qat_epochs);
  if (!qc.has_activation()) qc.mutable_activation()->mutable_mse();
  const double margin = -(DropOf(base.eval_metric()) - comp_.delta());
  if (!qc.has_mixed_precision() && margin > 0) qc.mutable_mixed_precision()->set_max_drop(margin);
  ASSIGN_OR_RETURN(Model fp32, base.key() == "reference" ? e_.model_.Clone() : LoadStored(base));
  TrainerConfig qat = FineTuneConfig(std::max(1, qc.qat().epochs()), 0, false);
  QuantizeDeps deps;
  deps.forward_pass = e_.forward_pass_.get();
  deps.calibration = e_.data_.train.get();
  deps.evaluator = e_.evaluator_.get();
  deps.eval = e_.data_.eval.get();
  deps.eval_key = c_.evaluation().eval_key();
  deps.loss = Loss();
  deps.train = e_.data_.train.get();
  deps.trainer = &qat;
  ASSIGN_OR_RETURN(QuantizeResult q, Quantize(fp32, qc, deps), "compression.quantization");
  for (const std::string& line : q.log) Say(absl::StrCat("  ", line));
  CandidateRecord rec = base;
  rec.set_key(key);
  rec.set_phase("int8");
  rec.set_model_file("");
  rec.set_description(absl::StrFormat("%s; int8%s (%zu layer(s) kept fp32)", base.description(),
                                      qat_epochs > 0 ? absl::StrFormat(", QAT %d epoch(s)", qat_epochs) : "",
                                      q.fp32_layers.size()));
  RETURN_IF_ERROR(Measure(fp32, &q.model, &rec));
  rec.set_seconds(SecondsSince(t0));
  std::vector<std::string> fp32_paths;
  for (int i : q.fp32_layers) fp32_paths.push_back(q.layers[i].module_path);
  rec.set_note(absl::StrJoin(fp32_paths, ","));
  RETURN_IF_ERROR(Keep(rec, &q.model));
  return std::optional<CandidateRecord>(*store_->Find(key));
}

absl::Status Engine::Search::MeasureTest(Model& m, CandidateRecord* rec) {
  if (e_.data_.test == nullptr) return absl::OkStatus();
  ASSIGN_OR_RETURN(Metric metric, Evaluate(m, e_.data_.test.get()));
  rec->set_test_metric(metric.value);
  return absl::OkStatus();
}

absl::Status Engine::Search::SetUpDistillation() {
  if (!comp_.distillation().enabled() || comp_.candidate_epochs() + comp_.final_epochs() == 0) {
    return absl::OkStatus();
  }
  // Whether the model's prediction (on the batch CheckModelTakesTheData
  // ran) is logits a teacher can soften.
  const absl::Status can = CanDistill(sample_output_, c_.loss().output_index());
  if (!can.ok()) {
    Say(absl::StrCat("  distillation off (compression.distillation): ", can.message(),
                     "; fine-tunes use the experiment's loss alone"));
    return absl::OkStatus();
  }
  ASSIGN_OR_RETURN(Model teacher, e_.model_.Clone());
  teacher.Eval();
  teacher_.emplace(std::move(teacher));
  TeacherOptions options;
  options.alpha = comp_.distillation().alpha();
  options.temperature = comp_.distillation().temperature();
  options.output_index = c_.loss().output_index();
  distill_loss_ = WithTeacher(e_.loss_.get(), &*teacher_, e_.forward_pass_, options);
  return absl::OkStatus();
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
  const std::string stem =
      absl::StrFormat("lr_trial|%s|%s|s%d%s", pruner, RatiosKey(ratios), steps, TrainingKey());
  Say(absl::StrFormat("  fine-tuning lr: %zu trial(s) of %d steps on %s at %.2fx fewer MACs (full_trainer lr %g)",
                      comp_.tuning().lr_factors_size(), steps, pruner, factor, base_lr));
  double best_factor = 1, best_drop = 1e300;
  std::vector<std::string> said;
  std::optional<Model> cut_once;  // every trial starts from the same cut
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
      ASSIGN_OR_RETURN(auto trainer, Trainer::Create(t, deps), "full_trainer (lr trial)");
      absl::StatusOr<TrainResult> trained = trainer->Train(cut);
      // The first timing of a pruned model's training: the epoch estimate
      // the budget works with until a candidate is timed.
      if (trained.ok() && trained->steps > 0 && epoch_seconds_ == 0) {
        epoch_seconds_prior_ = trained->seconds / trained->steps * per_epoch;
      }
      CandidateRecord n;
      n.set_key(key);
      n.set_phase("lr_trial");
      n.set_pruner(pruner);
      n.set_mac_factor(factor);
      n.set_lr_factor(f);
      for (const auto& [path, r] : ratios) (*n.mutable_ratios())[path] = r;
      n.set_description(absl::StrFormat("lr trial: %s at %.2fx, lr %g x %g, %d steps", pruner, factor, base_lr, f, steps));
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
    const double drop = DropOf(rec->eval_metric());
    said.push_back(rec->note().empty() ? absl::StrFormat("lr %g: %.4g", base_lr * f, rec->eval_metric())
                                       : absl::StrFormat("lr %g: diverged", base_lr * f));
    if (drop < best_drop - 1e-9) {
      best_drop = drop;
      best_factor = f;
    }
  }
  lr_factor_ = best_factor;
  Say(absl::StrFormat("    %s -> lr %g for every fine-tune", absl::StrJoin(said, ", "), base_lr * lr_factor_));
  return absl::OkStatus();
}

absl::Status Engine::Search::CheckModelTakesTheData() {
  const std::string& split = c_.evaluation().eval_split();
  RETURN_IF_ERROR(e_.data_.eval->Reset(0), "evaluation.eval_split");
  Batch batch;
  ASSIGN_OR_RETURN(bool any, e_.data_.eval->Next(&batch), "evaluation.eval_split");
  if (!any) {
    return absl::InvalidArgumentError(absl::StrCat("evaluation.eval_split: \"", split,
                                                   "\" has no samples; the engine scores every model on it"));
  }
  ASSIGN_OR_RETURN(ModelInputs inputs, e_.forward_pass_->ExtractModelInputs(batch), "forward_pass");
  std::vector<std::string> shapes;
  for (const c10::IValue& v : inputs) {
    if (!v.isTensor()) {
      shapes.push_back(v.tagKind());
      continue;
    }
    const at::Tensor& t = v.toTensor();
    shapes.push_back(absl::StrCat("[", absl::StrJoin(t.sizes(), ", "), "] ", c10::toString(t.scalar_type())));
  }
  ASSIGN_OR_RETURN(Model copy, e_.model_.Clone());
  copy.Eval();
  at::NoGradGuard no_grad;
  absl::StatusOr<c10::IValue> out = e_.forward_pass_->ModelCall(copy, inputs, c10::kCPU);
  if (!out.ok()) {
    return absl::InvalidArgumentError(absl::StrCat(
        "the model does not accept the data: forward failed on a batch of \"", split, "\" (model inputs: ",
        absl::StrJoin(shapes, ", "), "; forward_pass.input_pattern picks them from the batch): ",
        out.status().message()));
  }
  sample_output_ = *std::move(out);
  return absl::OkStatus();
}

absl::StatusOr<EngineResult> Engine::Search::Run() {
  if (e_.data_.train == nullptr || e_.data_.eval == nullptr) {
    return absl::InvalidArgumentError("data: the engine needs a train loader and an eval_split loader");
  }
  if (distributed() && (e_.data_.train_shard == nullptr || e_.data_.eval_shard == nullptr)) {
    return absl::InvalidArgumentError(
        "data: a distributed engine needs this rank's train_shard and eval_shard (data/sharded_loader.h)");
  }
  RETURN_IF_ERROR(Agree(CheckModelTakesTheData()));
  run_dir_ = c_.output_dir();
  // Rank 0 owns the run directory; the others keep its records in memory.
  absl::Status opened = [&]() -> absl::Status {
    if (!root()) {
      store_ = CandidateStore::InMemory();
      return absl::OkStatus();
    }
    RETURN_IF_ERROR(CreateDirectories(run_dir_ + "/state"));
    ASSIGN_OR_RETURN(store_, CandidateStore::Open(run_dir_ + "/state/candidates"));
    if (auto old = ReadFileToString(run_dir_ + "/metrics.jsonl"); old.ok()) metrics_lines_ = *old;
    const std::string fingerprint = ModelFingerprint(e_.model_);
    RETURN_IF_ERROR(CheckSameWork(run_dir_, c_, fingerprint));
    RETURN_IF_ERROR(WriteFileAtomically(run_dir_ + "/state/experiment.pbtxt", ToTextProto(c_)));
    return WriteFileAtomically(run_dir_ + "/state/model.fingerprint", fingerprint + "\n");
  }();
  RETURN_IF_ERROR(Agree(opened));
  if (distributed()) {
    const std::string fingerprint = ModelFingerprint(e_.model_);
    ASSIGN_OR_RETURN(std::vector<std::string> all, group().AllGather(fingerprint), "comparing the reference");
    for (int r = 0; r < group().world_size(); ++r) {
      if (all[r] != all[0]) {
        return absl::FailedPreconditionError(absl::StrFormat(
            "rank %d's reference model differs from rank 0's (weights fingerprint %s vs %s): every rank must "
            "load the same model", r, all[r], all[0]));
      }
    }
    RETURN_IF_ERROR(ShareRootStore(group(), *store_));
  }
  for (const CandidateRecord& r : store_->All()) resumed_keys_.insert(r.key());
  if (!store_->All().empty()) {
    Say(absl::StrFormat("resuming: %zu record(s) in %s/state", store_->All().size(), run_dir_));
  }
  ConfigureThreads(c_.threads());
  // The configured int8 engine from the start, not only once quantization
  // runs: a resumed run loads and measures its stored int8 models without
  // quantizing again, and a model loaded under another engine is measured
  // (and re-saved) by that engine's kernels.
  if (comp_.level() >= 2) RETURN_IF_ERROR(SetQuantizedEngine(comp_.quantization().engine()), "compression.quantization.engine");
  at::manual_seed(c_.seed());
  RETURN_IF_ERROR(Reference());
  RETURN_IF_ERROR(SetUpDistillation());
  // Level 1: structured pruning.
  std::optional<CandidateRecord> fp32;
  {
    RETURN_IF_ERROR(FindGroups());
    RETURN_IF_ERROR(Sensitivity());
    ASSIGN_OR_RETURN(StrategyFactory make, StrategyRegistry().Get(comp_.strategy()), "compression.strategy");
    std::unique_ptr<SearchStrategy> strategy = make();
    ASSIGN_OR_RETURN(fp32, strategy->Search(*this), absl::StrCat("strategy ", comp_.strategy()));
  }
  // Level 2: int8 on top.
  std::optional<CandidateRecord> int8;
  ASSIGN_OR_RETURN(const bool interrupted, Interrupted());
  if (comp_.level() >= 2 && interrupted) {
    Say(absl::StrCat("[quantize] skipped: ", InterruptMessage()));
  } else if (comp_.level() >= 2) {
    const CandidateRecord& base = fp32 ? *fp32 : reference_;
    Phase("quantize", absl::StrCat("int8 (", QuantizedEngineName(comp_.quantization().engine()), ") of: ",
                                   base.description()));
    ASSIGN_OR_RETURN(int8, Quantized(base));
    auto say_int8 = [&](const char* what, const CandidateRecord& q) {
      Say(absl::StrFormat("  %s: %s = %.4g (%+.2f)  latency b1 %.3f ms, b%d %.2f ms, %.1f KiB", what,
                          c_.evaluation().eval_key(), q.eval_metric(), -DropOf(q.eval_metric()), q.latency_b1_ms(),
                          kLatencyBatch, q.latency_bn_ms(), q.serialized_bytes() / 1024.0));
    };
    say_int8("int8", *int8);
    // PTQ missed delta: one epoch of quantization-aware training (on the
    // fine-tuning loss, so distilled from the reference) when it fits.
    if (!int8->qualifies() && comp_.quantization().qat().epochs() == 0 && comp_.quantization().weight_only().bits() == 0) {
      ASSIGN_OR_RETURN(bool fits, Fits(2 * EpochSeconds()));
      if (fits) {
        Say("  int8 missed the target: 1 epoch of quantization-aware training");
        absl::StatusOr<std::optional<CandidateRecord>> qat = Quantized(base, 1);
        if (qat.ok()) {
          say_int8("int8 QAT", **qat);
          if ((*qat)->qualifies()) int8 = *qat;
        } else if (absl::IsCancelled(qat.status())) {
          Say(absl::StrCat("  ", qat.status().message(), ": quantization-aware training stops"));
        } else if (absl::IsDataLoss(qat.status())) {
          RETURN_IF_ERROR(SkipFailed("quantization-aware training", qat.status()));
        } else {
          return qat.status();
        }
      } else {
        Say(absl::StrCat("  ", StopReason(), ": no time for quantization-aware training"));
      }
    }
    EndPhase();
  }

  // The decision (search/decision.h).
  DecisionInputs inputs;
  inputs.reference = &reference_;
  inputs.fp32 = fp32 ? &*fp32 : nullptr;
  inputs.int8 = int8 ? &*int8 : nullptr;
  inputs.delta = comp_.delta();
  inputs.higher_is_better = reference_metric_.higher_is_better;
  inputs.objective = comp_.objective();
  const Decision decision = Decide(inputs);
  std::optional<CandidateRecord> chosen;
  if (decision.kind != Decision::Kind::kReference) chosen = decision.chosen;
  std::string why = decision.why;
  // The returned model and the fp32 model behind it (trainable).
  std::optional<Model> out, trainable;
  if (!chosen) {
    ASSIGN_OR_RETURN(Model ref, e_.model_.Clone());
    out.emplace(std::move(ref));
    ASSIGN_OR_RETURN(Model ref2, e_.model_.Clone());
    trainable.emplace(std::move(ref2));
  } else if (chosen->phase() == "int8") {
    ASSIGN_OR_RETURN(Model q, store_->LoadModel(*chosen));
    out.emplace(std::move(q));
    ASSIGN_OR_RETURN(Model base, fp32 ? LoadStored(*fp32) : e_.model_.Clone());
    trainable.emplace(std::move(base));
  } else {
    ASSIGN_OR_RETURN(Model base, LoadStored(*chosen));
    ASSIGN_OR_RETURN(Model frozen, FrozenForInference(base));
    out.emplace(std::move(frozen));
    trainable.emplace(std::move(base));
  }
  EngineResult result{std::move(*out)};
  result.reference = reference_;
  result.chosen = chosen ? *chosen : reference_;
  // The result on the test split (the reference's was measured at the start).
  if (chosen) RETURN_IF_ERROR(MeasureTest(result.model, &result.chosen));
  result.warning = warning_;
  result.lr_factor = lr_factor_;
  result.returned_reference = !chosen;
  result.why = why;
  result.target = target_;
  result.run_dir = run_dir_;
  result.failures = failures_;
  if (interrupted || InterruptRequested()) {
    result.interrupted = true;
    result.why = why = absl::StrCat(why, " (best so far: ",
                                    InterruptRequested() ? InterruptMessage() : "another rank was interrupted",
                                    "; run the same command again to resume)");
  }
  Say(absl::StrCat("result: ", why));
  if (root()) {
    RETURN_IF_ERROR(WriteOutputs(result, *trainable));
  } else {
    result.candidates = store_->All();
    result.reused = reused_;
    result.seconds = SecondsSince(start_);
  }
  return result;
}

absl::Status Engine::Search::PrefetchTasks(std::vector<Task> tasks) {
  if (!distributed()) return absl::OkStatus();
  std::vector<std::string> keys;
  std::vector<MakeRecord> todo;
  std::set<std::string> seen;
  for (Task& t : tasks) {
    if (store_->Find(t.key) != nullptr || failed_.count(t.key) || !seen.insert(t.key).second) continue;
    keys.push_back(t.key);
    todo.push_back(std::move(t.make));
  }
  if (todo.empty()) return absl::OkStatus();
  ASSIGN_OR_RETURN(std::vector<absl::StatusOr<MadeRecord>> made, RunSpread(group(), todo));
  for (size_t i = 0; i < made.size(); ++i) {
    if (!made[i].ok()) {
      // Ends this candidate (diverged, interrupted) or, when the search
      // reaches it, the run: the same on every rank.
      failed_[keys[i]] = made[i].status();
      continue;
    }
    RETURN_IF_ERROR(Record(std::move(made[i]->record), made[i]->model ? &*made[i]->model : nullptr));
  }
  return absl::OkStatus();
}

absl::Status Engine::Search::WriteOutputs(EngineResult& result, const Model& trainable) {
  result.candidates = store_->All();
  result.reused = reused_;
  result.seconds = SecondsSince(start_);
  RETURN_IF_ERROR(result.model.Save(run_dir_ + "/model.pt"));
  if (!result.returned_reference) RETURN_IF_ERROR(trainable.Save(run_dir_ + "/model_trainable.pt"));

  RunReport report;
  report.name = c_.name();
  report.eval_key = c_.evaluation().eval_key();
  report.eval_split = c_.evaluation().eval_split();
  report.higher_is_better = reference_metric_.higher_is_better;
  report.delta = comp_.delta();
  report.target = target_;
  report.level = comp_.level();
  report.objective = CompressionConfig::Objective_Name(comp_.objective());
  report.latency_batch = kLatencyBatch;
  report.threads = c_.threads();
  report.reference = reference_;
  report.chosen = result.chosen;
  report.returned_reference = result.returned_reference;
  report.why = result.why;
  report.warning = result.warning;
  report.candidates = result.candidates;
  // Time across every invocation of this run directory (resumes add up).
  {
    std::map<std::string, double> total;
    std::vector<std::string> order;
    if (auto text = ReadFileToString(run_dir_ + "/state/time.txt"); text.ok()) {
      for (absl::string_view line : absl::StrSplit(*text, '\n', absl::SkipEmpty())) {
        std::vector<std::string> f = absl::StrSplit(line, ' ');
        double v = 0;
        if (f.size() == 2 && absl::SimpleAtod(f[1], &v)) {
          if (!total.count(f[0])) order.push_back(f[0]);
          total[f[0]] += v;
        }
      }
    }
    for (const auto& [name, v] : phase_seconds_) {
      if (!total.count(name)) order.push_back(name);
      total[name] += v;
    }
    if (!total.count("invocations")) order.push_back("invocations");
    total["invocations"] += 1;
    if (!total.count("total")) order.push_back("total");
    total["total"] += result.seconds;
    std::string text;
    for (const std::string& name : order) {
      absl::StrAppendFormat(&text, "%s %.3f\n", name, total[name]);
      if (name != "total" && name != "invocations") report.phase_seconds.emplace_back(name, total[name]);
    }
    RETURN_IF_ERROR(WriteFileAtomically(run_dir_ + "/state/time.txt", text));
    report.seconds = total["total"];
    report.invocations = static_cast<int>(total["invocations"]);
  }
  report.experiment_text = ToTextProto(c_);
  // Per-layer channels and bit widths.
  {
    ProfilerConfig counts;
    counts.set_skip_latency(true);
    ASSIGN_OR_RETURN(Model ref, e_.model_.Clone());
    ASSIGN_OR_RETURN(CostReport before, ProfileModel(ref, *e_.forward_pass_, counts));
    ASSIGN_OR_RETURN(Model after_model, trainable.Clone());
    ASSIGN_OR_RETURN(CostReport after, ProfileModel(after_model, *e_.forward_pass_, counts));
    std::map<std::string, const LayerCost*> by_path;
    for (const LayerCost& l : after.layers) by_path[l.module_path] = &l;
    std::set<std::string> fp32_layers;
    if (result.chosen.phase() == "int8") {
      for (absl::string_view s : absl::StrSplit(result.chosen.note(), ',', absl::SkipEmpty())) {
        fp32_layers.insert(std::string(s));
      }
    }
    for (const LayerCost& l : before.layers) {
      LayerRow row;
      row.module_path = l.module_path;
      row.op_type = l.op_type;
      row.channels_before = l.weight_shape.empty() ? 0 : l.weight_shape[0];
      auto it = by_path.find(l.module_path);
      row.channels_after = it == by_path.end() || it->second->weight_shape.empty() ? 0 : it->second->weight_shape[0];
      row.macs_before = l.macs;
      row.macs_after = it == by_path.end() ? 0 : it->second->macs;
      if (l.op_type.find("Norm") != std::string::npos) {
        row.bits_after = "folded";
      } else {
        row.bits_after = result.chosen.phase() == "int8" && !fp32_layers.count(l.module_path) ? "int8" : "fp32";
      }
      report.layers.push_back(row);
    }
  }
  result.summary = SummaryTable(report);
  RETURN_IF_ERROR(WriteFileAtomically(run_dir_ + "/report.json", ReportJson(report)));
  RETURN_IF_ERROR(WriteFileAtomically(run_dir_ + "/report.md", ReportMarkdown(report)));
  RETURN_IF_ERROR(WriteFileAtomically(run_dir_ + "/report.html", ReportHtml(report)));
  return AppendMetricsLine(absl::StrCat("{\"event\": \"result\", \"chosen\": ", JsonString(result.chosen.key()),
                                        ", \"eval\": ", JsonNumber(result.chosen.eval_metric()),
                                        result.chosen.has_test_metric()
                                            ? absl::StrCat(", \"test\": ", JsonNumber(result.chosen.test_metric()),
                                                           ", \"reference_test\": ",
                                                           JsonNumber(reference_.test_metric()))
                                            : std::string(),
                                        ", \"returned_reference\": ", result.returned_reference ? "true" : "false",
                                        ", \"seconds\": ", JsonNumber(result.seconds), "}"));
}

Engine::Engine(EngineData data, Model model, Experiment config, std::shared_ptr<ForwardPass> forward_pass,
               std::unique_ptr<EvaluationFunction> evaluator, std::unique_ptr<LossFunction> loss)
    : data_(std::move(data)),
      model_(std::move(model)),
      config_(std::move(config)),
      forward_pass_(std::move(forward_pass)),
      evaluator_(std::move(evaluator)),
      loss_(std::move(loss)) {}

Engine::~Engine() = default;

absl::StatusOr<EngineResult> Engine::Run() {
  Experiment config = WithDefaults(config_);
  RETURN_IF_ERROR(ValidateEngineConfig(config));
  if (forward_pass_ == nullptr || evaluator_ == nullptr || loss_ == nullptr) {
    return absl::InvalidArgumentError("Engine: forward_pass, evaluator and loss are required (null given)");
  }
  Search search(*this, std::move(config));
  return search.Run();
}

}  // namespace slimfit
