// File: search/engine_search.h
//
// Internal to //search:engine: Engine::Search, the state of one Run() and
// the SearchContext a strategy works through (search/strategy.h). Its
// members are defined by concern:
//   engine.cc          Engine, the run's order (Run), the reference, the
//                      data check, distillation set-up
//   engine_scoring.cc  measuring (metric, counts, latency), cutting,
//                      fine-tuning, the lr trials and final fine-tunes
//   engine_pruning.cc  dependency groups, sensitivity, allocation, widths,
//                      candidates
//   engine_level2.cc   int8 (PTQ, QAT when PTQ misses)
//   engine_records.cc  records, metrics.jsonl, progress, the budget and
//                      interrupts as every rank agrees on them, outputs
// Not a public header: nothing outside search/engine*.cc includes it.
#ifndef SLIMFIT_SEARCH_ENGINE_SEARCH_H_
#define SLIMFIT_SEARCH_ENGINE_SEARCH_H_

#include <ATen/core/ivalue.h>

#include <algorithm>
#include <chrono>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "distributed/collective.h"
#include "evaluators/evaluation_function.h"
#include "losses/teacher_distillation.h"
#include "search/allocation.h"
#include "search/candidate_store.h"
#include "search/decision.h"
#include "search/engine.h"
#include "search/rank_exchange.h"
#include "search/strategy.h"
#include "trainer/trainer.h"

namespace slimfit {

// One Run(): the state of a search in progress.
class Engine::Search : public SearchContext {
 public:
  using Clock = std::chrono::steady_clock;
  static constexpr int kLatencyBatch = 64;
  static double SecondsSince(Clock::time_point t) { return std::chrono::duration<double>(Clock::now() - t).count(); }

  Search(Engine& engine, Experiment config) : e_(engine), c_(std::move(config)), comp_(c_.compression()) {}

  absl::StatusOr<EngineResult> Run();

  // ---- SearchContext ----
  const Experiment& experiment() const override { return c_; }
  const CandidateRecord& reference() const override { return reference_; }
  double DropOf(double value) const override {
    return MetricDrop(reference_metric_.value, value, reference_metric_.higher_is_better);
  }
  double Objective(const CandidateRecord& r) const override { return ObjectiveValue(comp_.objective(), reference_, r); }
  absl::StatusOr<double> MaxMacFactor() override;
  absl::Status TuneLr(const std::string& pruner, double factor) override;
  absl::StatusOr<CandidateRecord> Candidate(const std::string& pruner, double factor) override;
  absl::StatusOr<CandidateRecord> CandidateFrom(const CandidateRecord& base, const std::string& pruner,
                                                double factor) override;
  absl::Status TimeAgainInTurns(std::vector<CandidateRecord>& records) override;
  absl::Status Prefetch(const std::vector<std::pair<std::string, double>>& candidates) override;
  absl::StatusOr<CandidateRecord> Final(const CandidateRecord& candidate, int epochs) override;
  absl::StatusOr<bool> Fits(double seconds) override { return FitsShare(seconds, 1.0); }
  absl::StatusOr<double> SecondsLeft() override { return RootsValue(std::max(0.0, LocalSecondsLeft())); }
  double EpochSeconds() const override { return epoch_seconds_ > 0 ? epoch_seconds_ : epoch_seconds_prior_; }
  // A final epoch trains and then evaluates on eval_split: before one has
  // been timed, a candidate's (training-only) epoch plus an evaluation.
  double FinalEpochSeconds() const override { return std::max(slowest_epoch_seconds_, EpochSeconds() + eval_seconds_); }
  // `candidate`'s own timed epoch (Record::epoch_seconds) + the teacher's
  // forward over an epoch of batches it has not seen (final epochs train on
  // new ones; eval_split's timed pass scaled to the train split) + an
  // evaluation, times final_epoch_ratio_; FinalEpochSeconds when the
  // candidate's epoch was not timed.
  double FinalEpochSecondsOf(const CandidateRecord& candidate) const override;
  // Why Fits said no.
  std::string StopReason() const override;
  // A fine-tune that failed for a reason that ends this candidate but not the
  // search: diverged (NaN/inf beyond the trainer's recoveries). Reported.
  absl::Status SkipFailed(const std::string& what, const absl::Status& status) override;
  void Say(const std::string& line) override;
  void Phase(const std::string& name, const std::string& detail) override;
  void EndPhase() override {
    if (!phase_seconds_.empty()) phase_seconds_.back().second = SecondsSince(phase_started_);
  }
  std::string TrainingNote() const override;
  int world_size() const override { return distributed() ? e_.group_->world_size() : 1; }

 private:
  // A record (and its model) one rank makes for all: see Prefetch.
  struct Task {
    std::string key;
    MakeRecord make;
  };
  // ---- measuring ----
  // eval_key on eval_split (or on `loader`: `what` names it in errors).
  absl::StatusOr<Metric> Evaluate(Model& m, DataLoader* loader = nullptr, const char* what = "evaluation");
  // Metric, counts (from `trainable`) and deployed size and latency (from
  // `deployed`: the frozen or int8 model).
  absl::Status Measure(Model& trainable, Model* deployed, CandidateRecord* rec);
  // Serialized size and latency (batch 1 and kLatencyBatch) of a deployed
  // model, `runs` timed runs per batch size (0: 20, deepsearch 30).
  absl::Status MeasureDeployed(Model& deployed, CandidateRecord* rec, int runs = 0);
  // Deployed models timed in turns over `rounds` rounds, each keeping its
  // fastest round (a busy machine's drift falls on every model alike):
  // their serialized size and latencies, in order.
  absl::StatusOr<std::vector<CandidateRecord>> TimedInTurns(const std::vector<Model*>& deployed, int rounds,
                                                            int runs = 0);
  absl::StatusOr<int64_t> Macs(Model& m);
  bool Qualifies(double value) const { return DropOf(value) <= comp_.delta() + 1e-9; }

  // ---- pruning and training ----
  // `base` cut by `pruner` at per-group `ratios`; `bn_batches` of train
  // re-estimate batch norms; `with_data`: data-driven pruners get the loss
  // and the train split.
  absl::StatusOr<Model> Cut(const Model& base, const std::string& pruner, const Ratios& ratios, int bn_batches,
                            bool with_data);
  // The experiment's full_trainer for `epochs` epochs: schedules that need
  // a length get it, progress and logging are the engine's.
  // `steps_per_epoch`: the schedule's epoch length (default: the train
  // loader's batches).
  TrainerConfig FineTuneConfig(int epochs, int skipped_epochs, bool evaluate, int64_t steps_per_epoch = 0) const;
  // `parallel`: every rank trains `m` together (data-parallel, on the
  // shards); otherwise this rank alone on the whole train split.
  absl::Status FineTune(Model& m, int epochs, int skipped_epochs, TrainerHooks hooks = {}, bool parallel = false);

  // The fine-tuning loss: the experiment's, with the reference as a teacher
  // when distillation is on and the model's output allows it.
  LossFunction* Loss() { return distill_loss_ ? distill_loss_.get() : e_.loss_.get(); }
  // What every fine-tune's key says about how it trained (lr factor,
  // distillation): records made otherwise are other work.
  std::string TrainingKey() const;
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
  // `timed`: the point also times the cut beside the reference
  // (latency_vs_reference: the latency-aware allocation's table).
  absl::StatusOr<CandidateRecord> SensitivityPoint(const PruneGroup& g, double ratio, const std::string& key,
                                                   bool timed);
  // The point of `g` the sensitivity pass scores first: the largest of
  // `ratios` up to kTimedRatio (a block: its removal), or the smallest when
  // none is; 0: no ratios.
  static constexpr double kTimedRatio = 0.8;
  // The extra point of a group within delta at its largest ratio.
  static constexpr double kFlatRatio = 0.9;
  static double FirstSensitivityRatio(const PruneGroup& g, const std::vector<double>& ratios);
  // Objective LATENCY: the one point of `g` that is timed, its first; 0:
  // none (another objective).
  double TimedRatio(const PruneGroup& g, const std::vector<double>& ratios) const;
  // A cut model's latency objective (the mean of its batch-1 and batch-N
  // ratios) against the reference's, both frozen and timed in turns, each
  // its fastest of two rounds (a busy machine's drift falls on both alike).
  absl::StatusOr<double> LatencyVsReference(const Model& cut);
  // The reference frozen for timing, made once (LatencyVsReference,
  // TimeSideBySide).
  absl::StatusOr<Model*> FrozenReference();
  // The allocation's tolerance weights from the timed points (objective
  // LATENCY, search/allocation.h's ToleranceWeights); said in the progress.
  void WeighByLatency(const std::map<std::string, double>& savings);
  // How the sensitivity pass scores its `points` (those not stored yet):
  // the whole eval split, or a sample when they would not fit in the pass's
  // share of the budget (search/budget.h's ScaleSensitivity, or
  // tuning.sensitivity_samples). Decided once (a "sensitivity_samples"
  // record holding the reference's metric on the sample), so a resumed run
  // and every rank score alike. Sets sensitivity_.
  // `timed` of the points also time their cut (LatencyVsReference).
  absl::Status ChooseSensitivityScoring(int points, int timed);
  // int8 of `base`: PTQ as the quantization block says, or with
  // `qat_epochs` > 0 quantization-aware training on the fine-tuning loss
  // (distilled from the reference when distillation is on).
  // `weight_bits` 4: 4-bit weights instead (weight-only, the most sensitive
  // layers at 8 bits within what is left of delta; phase "weights4").
  absl::StatusOr<std::optional<CandidateRecord>> Quantized(const CandidateRecord& base, int qat_epochs = 0,
                                                           int weight_bits = 0);
  // A level-2 attempt that may fail: OK gives its record; Cancelled says
  // that `what` stops, DataLoss skips it as a failed candidate is skipped
  // (both give none); any other error is returned.
  absl::StatusOr<std::optional<CandidateRecord>> Attempt(const std::string& what,
                                                         absl::StatusOr<std::optional<CandidateRecord>> made);
  // Level 2: int8 of the level-1 result (`fp32`, or the reference when
  // none), with one epoch of QAT when PTQ misses delta and it fits; when
  // both miss, PTQ of up to kInt8Fallbacks other fp32 models with no less
  // room whose int8 is predicted to win (search/decision.h's
  // Int8Fallbacks), while they fit; for the SIZE objective also 4-bit
  // weights, the smaller that qualifies going on; none when level < 2 or
  // the run was interrupted. `base` is set to the fp32 record the returned
  // one was made from.
  static constexpr int kInt8Fallbacks = 2;
  absl::StatusOr<std::optional<CandidateRecord>> Level2(const std::optional<CandidateRecord>& fp32, bool interrupted,
                                                        CandidateRecord* base);

  // The end of the run: the reference as given, the reference frozen, and
  // the models the decision weighs (`fp32`, `int8`, when present) timed
  // side by side (search/in_turns.h: in turns, each its fastest of
  // kSideBySideRounds rounds) on rank 0, every rank taking its numbers. The
  // decision and the report compare these, not timings made minutes apart
  // on a machine whose speed drifts. Sets the records' latencies (the
  // store's stay as made; the side-by-side figures are recorded beside
  // them: TimedTogetherOnce) and frozen_side_by_side_.
  static constexpr int kSideBySideRounds = 3;
  absl::Status TimeSideBySide(CandidateRecord* reference, std::optional<CandidateRecord>* fp32,
                              std::optional<CandidateRecord>* int8);
  // `records` timed together in turns (kSideBySideRounds rounds, on rank 0,
  // every rank taking its numbers) the first time, their figures recorded
  // as key_prefix + key (phase "retimed", described with `how`); a resumed
  // or repeated run reads them back rather than timing again, so it ranks
  // and decides as the first did. `load` (rank 0) puts the deployed models
  // to time in `deployed`, in order (`hold` keeps those it makes). Sets the
  // records' latencies and says each, `indent`ed, beside its figures when
  // made.
  using LoadDeployed = std::function<absl::Status(std::vector<Model>& hold, std::vector<Model*>& deployed)>;
  absl::Status TimedTogetherOnce(const std::vector<CandidateRecord*>& records, const std::string& key_prefix,
                                 const std::string& how, const LoadDeployed& load, const std::string& indent);

  // ---- bookkeeping ----
  // Stores a record every rank made (distributed: rank 0's numbers win, so
  // timings and anything else that differs between ranks agree).
  absl::Status Keep(CandidateRecord rec, const Model* model);
  // Stores a record (the same on every rank) and logs it.
  absl::Status Record(CandidateRecord rec, const Model* model);
  absl::Status AppendMetricsLine(const std::string& line);
  // A stored record; counted as reused when it was there before this run.
  const CandidateRecord* Reuse(const std::string& key) {
    const CandidateRecord* r = store_->Find(key);
    if (r != nullptr && resumed_keys_.erase(key) > 0) ++reused_;
    return r;
  }
  // Whether any rank was interrupted (agreed, so every rank takes one path).
  absl::StatusOr<bool> Interrupted();
  // Whether `seconds` more work fits in `share` of the time budget (the
  // sensitivity pass gets a part of it); never once the process is
  // interrupted: the run stops at its next safe point. Distributed: rank
  // 0's clock decides, an interrupt on any rank stops all.
  absl::StatusOr<bool> FitsShare(double seconds, double share);
  // Rank 0's `value` on every rank (>= 0; itself in one process).
  absl::StatusOr<double> RootsValue(double value);
  // The epoch timings (EpochSeconds, FinalEpochSeconds, the prior and the
  // evaluation's) made the same on every rank: each the largest any rank
  // measured. Every rank times its own work (a prefetched candidate is timed
  // only by the rank that made it), and the strategies size finals from
  // these: ranks that
  // disagreed could ask for different work. Called after each step that
  // times training, on every rank in the same order; no-op in one process.
  absl::Status AgreeTimings();
  // Seconds left in the budget on this rank's clock (huge without one).
  double LocalSecondsLeft() const {
    return comp_.time_budget_minutes() <= 0 ? 1e18 : comp_.time_budget_minutes() * 60 - SecondsSince(start_);
  }
  absl::StatusOr<Model> LoadStored(const CandidateRecord& r);
  absl::Status WriteOutputs(EngineResult& result, const Model& trainable);
  // With ONNX exported: the result (`int8`: its ONNX file is QDQ; then
  // also its fp32 form, `trainable` frozen) timed in LibTorch and in ONNX
  // Runtime by the engine's runtime timer, into report.runtimes; how, and
  // what could not be timed, into runtimes_note.
  void TimeRuntimes(const EngineResult& result, bool int8, const Model& trainable, RunReport& report);
  // One eval batch through the model before any work: a model that does not
  // take the data's shape is an InvalidArgument naming the inputs. Keeps
  // the output in sample_output_.
  absl::Status CheckModelTakesTheData();
  // With ONNX in export.formats: the reference exports (fail before searching).
  absl::Status CheckOnnxExport();

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
  // The last candidate's fine-tuning epoch, less the teacher's runs whose
  // predictions it cached (the next candidate trains on the same batches
  // and finds them: the first candidate's epoch is not the later ones').
  double epoch_seconds_ = 0;
  // The slowest fine-tuning epoch measured (a candidate's over batches the
  // teacher had not seen, or a final epoch with its evaluation).
  double slowest_epoch_seconds_ = 0;
  // The most a timed final epoch took over its estimate (FinalEpochSecondsOf),
  // at least 1: later estimates are scaled by it, so an estimate that proved
  // short is not trusted twice.
  double final_epoch_ratio_ = 1;
  // A training epoch's time before any was timed (search/budget.h).
  double epoch_seconds_prior_ = 60;
  double lr_factor_ = 1;
  std::optional<Model> teacher_;
  TeacherStats teacher_stats_;  // distill_loss_'s
  std::unique_ptr<LossFunction> distill_loss_;
  c10::IValue sample_output_;  // the reference's output on one eval batch
  c10::Device device_ = c10::kCPU;         // where fine-tunes run (experiment.device, resolved)
  c10::Device deploy_device_ = c10::kCPU;  // where latency is timed (experiment.deploy_device)

  Metric reference_metric_;
  double target_ = 0;
  CandidateRecord reference_;
  std::vector<PruneGroup> groups_;
  double eval_seconds_ = 0;  // one pass of the reference over eval_split
  // The sensitivity pass's scoring: batch norm on `bn_batches`, then the
  // whole eval split (samples 0) or `loader`'s sample; the reference scores
  // `reference` on the same rows.
  struct SensitivitySample {
    int64_t samples = 0;
    int bn_batches = 20;
    std::unique_ptr<DataLoader> loader;
    double reference = 0;
    // The metric's drop from the reference's on the same rows.
    double DropOf(const Search& s, double value) const {
      return MetricDrop(reference, value, s.reference_metric_.higher_is_better);
    }
  } sensitivity_;
  std::optional<Model> frozen_reference_;  // FrozenReference()'s
  // The frozen reference's record as TimeSideBySide timed it (the report's
  // "freezing alone" note compares it with the reference timed beside it).
  std::optional<CandidateRecord> frozen_side_by_side_;
  std::map<std::string, int64_t> macs_cache_;  // RatiosKey → MACs
  std::string warning_;                        // said to the user and in the report
};

}  // namespace slimfit

#endif  // SLIMFIT_SEARCH_ENGINE_SEARCH_H_
