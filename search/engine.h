// File: search/engine.h
//
// Engine: the compression search (Neutrino's engine semantics, NNI's
// pruners, quantizers and speedup). Given a trained model, data, a forward
// pass, an evaluation function and a loss, it returns the best model on the
// experiment's objective whose eval_key on eval_split stays within `delta` of
// the reference's, and writes a run directory that shows what it did.
//
//   Engine engine(std::move(data), std::move(model), experiment, forward_pass,
//                 std::move(evaluator), std::move(loss));
//   ASSIGN_OR_RETURN(EngineResult r, engine.Run());
//   std::cout << r.summary;
//
// The search (docs/search.md has the details and why):
//   1. reference: eval_key on eval_split, costs (size, MACs, latency at
//      batch 1 and 64); target = reference - delta (the right way round for
//      lower-is-better metrics, via Drop).
//   2. sensitivity: each prunable dependency group cut alone at a few
//      ratios (no fine-tuning, batch norms re-estimated) → a drop-vs-ratio
//      curve per group.
//   3. allocation: a tolerance τ gives every group the largest ratio whose
//      drop stays <= τ; τ is bisected until the model has 1/F of the MACs.
//   4. search over F (the strategy: gradual by default, a chain of ever
//      smaller models each cut from the last; or geometric bisection over
//      independent candidates — search/strategies/): first the fine-tuning lr is
//      found (tune_lr: short trials of the first probe's cut); each
//      candidate is cut, fine-tuned `candidate_epochs` (learning from the
//      reference as a teacher: compression.distillation), scored on
//      eval_split and timed; at the first F every allowed pruner is tried
//      and the best kept. A candidate within delta + promising_slack delta
//      goes on.
//   5. final: the best candidate on the objective within delta + the
//      expected recovery is fine-tuned `final_epochs` more (fewer when the
//      budget has less left: anytime); the recovery it shows sets the bar
//      for a more aggressive one; a miss, for a safer one.
//   6. level 2: the chosen model is quantized to int8 (PTQ, mixed precision
//      within what is left of delta); kept only if it still qualifies.
//   7. the result is never outside delta and never worse than the reference
//      on the objective: otherwise the reference is returned, with why
//      (search/decision.h). The reference and the result are also scored
//      on the test split when the data has one (reported, never used to
//      choose).
//
// Run directory (experiment.output_dir): model.pt (frozen fp32 or int8:
// plain TorchScript), model_trainable.pt (level 1's unfrozen fp32 model, for
// more training), model.onnx (export ONNX), reference.pt, report.json /
// report.md / report.html, metrics.jsonl, state/ (resume). Every file is written atomically. Killed at
// any moment, the same call resumes: scored candidates and completed
// fine-tuning epochs are read back from state/, never recomputed.
//
// Distributed (set_group with W > 1 ranks, distributed/): every rank runs
// the same Run() on the same experiment. Records are made once and shared:
// sensitivity points and candidates are spread over the ranks (round robin;
// while one rank scores the bisection's next probe the others score the
// probes that would follow it, so the path — and so the choice — is the one
// a single process takes given the same scores), final fine-tunes are
// data-parallel over the shards in EngineData, and every other record is
// rank 0's. Decisions that depend on the clock or on signals (time budget,
// Ctrl-C) are rank 0's / any rank's, agreed by all. Only rank 0 prints and
// writes the run directory; the others hold the state in memory (rank 0's
// is sent to them when a run resumes). A rank that fails fails the others'
// next collective: every rank returns an error, and the same command
// resumes.
//
// Contract: no exception escapes; errors are absl::Status naming the
// experiment field. A time budget (compression.time_budget_minutes) stops
// the search in time for the final fine-tune; with none left, the best
// candidate that already qualifies is returned. The caller's objects are
// used from one thread and must outlive Run().
#ifndef SLIMFIT_SEARCH_ENGINE_H_
#define SLIMFIT_SEARCH_ENGINE_H_

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "data/data_loader.h"
#include "distributed/collective.h"
#include "evaluators/evaluation_function.h"
#include "forward_pass/forward_pass.h"
#include "losses/loss_function.h"
#include "model/model.h"
#include "search/experiment.pb.h"
#include "search/report.h"
#include "search/search_state.pb.h"

namespace slimfit {

// The data an engine trains and scores on.
struct EngineData {
  std::unique_ptr<DataLoader> train;  // required: fine-tuning, data-driven pruners, calibration
  std::unique_ptr<DataLoader> eval;   // required: the eval_split loader (delta is measured here)
  // Optional: the test split, when it is not eval_split. The reference and
  // the result are also scored here (record.test_metric), never to choose.
  std::unique_ptr<DataLoader> test;
  // Distributed runs only: this rank's ShardedLoaders (data/sharded_loader.h)
  // of train and eval, for the data-parallel final fine-tunes.
  std::unique_ptr<DataLoader> train_shard, eval_shard;
  // Optional: a loader over a seeded random `samples` of the eval split
  // (the same rows for the same seed: data/splits.h's MakeSampleLoader).
  // The sensitivity pass scores on one when the whole split would not fit
  // in its time (compression.tuning.sensitivity_samples); without it the
  // pass always scores on `eval`.
  std::function<absl::StatusOr<std::unique_ptr<DataLoader>>(int64_t samples, uint64_t seed)> eval_sample;
};

struct EngineResult {
  // The returned model: frozen fp32 or int8 TorchScript (the reference
  // itself when nothing qualified).
  Model model;
  CandidateRecord reference;
  CandidateRecord chosen;                 // == reference when returned_reference
  std::vector<CandidateRecord> candidates;  // everything scored, in order
  bool returned_reference = false;
  std::string why;                        // why this model (one sentence)
  double target = 0;                      // the metric the result must reach
  std::string run_dir;
  int reused = 0;                         // records read back from state/
  double seconds = 0;
  std::string summary;                    // the before/after table (as in report.md)
  // Stopped early by SIGINT / SIGTERM (common/interrupt.h): the outputs hold
  // the best qualifying model so far; running again resumes.
  bool interrupted = false;
  // Candidates and final fine-tunes that failed (diverged) and were skipped.
  std::vector<std::string> failures;
  // Said when the experiment looks wrong for the model (e.g. the reference
  // scores much higher on eval_split than on test); empty otherwise.
  std::string warning;
  // Every fine-tune's lr as a factor of full_trainer's (compression.tune_lr).
  double lr_factor = 1;
};

class Engine {
 public:
  Engine(EngineData data, Model model, Experiment config, std::shared_ptr<ForwardPass> forward_pass,
         std::unique_ptr<EvaluationFunction> evaluator, std::unique_ptr<LossFunction> loss);
  ~Engine();

  // Progress lines (phase, candidate, ETA) go here; default: stdout.
  void set_progress(std::function<void(const std::string&)> sink) { progress_ = std::move(sink); }
  // Runs as one rank of `group` (not owned; null or one rank: alone).
  void set_group(Collective* group) { group_ = group; }
  // Times a TorchScript file and its ONNX export in LibTorch and in ONNX
  // Runtime (one row each, `model` left empty; `int8`: the files are
  // quantized). With export ONNX the result is timed so (and, when it is
  // int8, its fp32 form too) for the report's Runtimes section; unset, the
  // section says it was not timed. tools/onnx_runtime_timer.h runs
  // export/verify_onnx.py --latency.
  using RuntimeTimer = std::function<absl::StatusOr<std::vector<RuntimeRow>>(const std::string& model_pt,
                                                                             const std::string& model_onnx, bool int8)>;
  void set_runtime_timer(RuntimeTimer timer) { runtime_timer_ = std::move(timer); }

  absl::StatusOr<EngineResult> Run();

 private:
  class Search;
  EngineData data_;
  Model model_;
  Experiment config_;
  std::shared_ptr<ForwardPass> forward_pass_;
  std::unique_ptr<EvaluationFunction> evaluator_;
  std::unique_ptr<LossFunction> loss_;
  std::function<void(const std::string&)> progress_;
  Collective* group_ = nullptr;
  RuntimeTimer runtime_timer_;
};

}  // namespace slimfit

#endif  // SLIMFIT_SEARCH_ENGINE_H_
