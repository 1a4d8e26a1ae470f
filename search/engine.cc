#include "search/engine.h"

#include <ATen/Functions.h>
#include <ATen/core/Tensor.h>
#include <ATen/core/grad_mode.h>
#include <c10/core/Device.h>

#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "common/field_error.h"
#include "common/files.h"
#include "common/interrupt.h"
#include "common/status_macros.h"
#include "common/text_proto.h"
#include "common/threads.h"
#include "export/onnx.h"
#include "graph/freeze.h"
#include "losses/teacher_distillation.h"
#include "model/device.h"
#include "quantizers/int8.h"
#include "search/budget.h"
#include "search/engine_search.h"
#include "search/experiment.h"
#include "search/in_turns.h"
#include "search/run_dir.h"

namespace slimfit {

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
  eval_seconds_ = SecondsSince(eval_start);
  epoch_seconds_prior_ = EpochSecondsPrior(eval_seconds_, e_.data_.train->num_samples(), e_.data_.eval->num_samples());
  RETURN_IF_ERROR(AgreeTimings());
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

absl::Status Engine::Search::CheckModelTakesTheData() {
  const std::string& split = c_.evaluation().eval_split();
  RETURN_IF_ERROR(e_.data_.eval->Reset(0), AtField("evaluation.eval_split"));
  Batch batch;
  ASSIGN_OR_RETURN(bool any, e_.data_.eval->Next(&batch), AtField("evaluation.eval_split"));
  if (!any) {
    return FieldError("evaluation.eval_split", "the split has no samples, and the engine scores every model on it",
                      Quoted(split), "a split with samples");
  }
  ASSIGN_OR_RETURN(ModelInputs inputs, e_.forward_pass_->ExtractModelInputs(batch), AtField("forward_pass"));
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
    return absl::InvalidArgumentError(
        absl::StrCat("the model does not accept the data: forward failed on a batch of \"", split,
                     "\" (model inputs: ", absl::StrJoin(shapes, ", "),
                     "; forward_pass.input_pattern picks them from the batch): ", out.status().message()));
  }
  sample_output_ = *std::move(out);
  // A model traced or scripted elsewhere records no input shapes; freezing
  // needs them (graph/freeze.h) and they travel with every model written.
  RecordInputsIfUnknown(inputs, e_.model_.mutable_metadata());
  return absl::OkStatus();
}

absl::Status Engine::Search::CheckOnnxExport() {
  if (!ExportsOnnx(c_)) return absl::OkStatus();
  absl::StatusOr<std::string> exported = ExportOnnx(e_.model_, OnnxExportOptions());
  if (!exported.ok()) {
    return absl::FailedPreconditionError(absl::StrCat(
        "export.formats: lists ONNX, but the reference does not export (nothing searched): ",
        exported.status().message(), "; valid: a model whose ops export/onnx.h maps, or formats without ONNX"));
  }
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
  options.stats = &teacher_stats_;
  distill_loss_ = WithTeacher(e_.loss_.get(), &*teacher_, e_.forward_pass_, options);
  return absl::OkStatus();
}

absl::StatusOr<EngineResult> Engine::Search::Run() {
  RETURN_IF_ERROR(RequireNonNull("EngineData", {{"train", e_.data_.train.get()}, {"eval", e_.data_.eval.get()}},
                                 "the engine needs a train and an eval_split loader"));
  if (distributed()) {
    RETURN_IF_ERROR(RequireNonNull(
        "EngineData", {{"train_shard", e_.data_.train_shard.get()}, {"eval_shard", e_.data_.eval_shard.get()}},
        "a distributed engine needs this rank's train_shard and eval_shard (data/sharded_loader.h)"));
  }
  ASSIGN_OR_RETURN(device_, ResolveDevice(c_.device()), AtField("device"));
  ASSIGN_OR_RETURN(deploy_device_, ResolveDevice(c_.deploy_device()), AtField("deploy_device"));
  if (!device_.is_cpu()) Say(absl::StrCat("fine-tuning on ", DeviceName(device_)));
  if (!deploy_device_.is_cpu()) Say(absl::StrCat("latency measured on ", DeviceName(deploy_device_)));
  RETURN_IF_ERROR(Agree(CheckModelTakesTheData()));
  RETURN_IF_ERROR(Agree(CheckOnnxExport()));
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
            "load the same model",
            r, all[r], all[0]));
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
  if (comp_.level() >= 2)
    RETURN_IF_ERROR(SetQuantizedEngine(comp_.quantization().engine()), AtField("compression.quantization.engine"));
  at::manual_seed(c_.seed());
  RETURN_IF_ERROR(Reference());
  RETURN_IF_ERROR(SetUpDistillation());
  // Level 1: structured pruning.
  std::optional<CandidateRecord> fp32;
  {
    RETURN_IF_ERROR(FindGroups());
    RETURN_IF_ERROR(Sensitivity());
    ASSIGN_OR_RETURN(StrategyFactory make, StrategyRegistry().Get(comp_.strategy()), AtField("compression.strategy"));
    std::unique_ptr<SearchStrategy> strategy = make();
    ASSIGN_OR_RETURN(fp32, strategy->Search(*this), absl::StrCat("strategy ", comp_.strategy()));
  }
  ASSIGN_OR_RETURN(const bool interrupted, Interrupted());
  CandidateRecord int8_base;  // the fp32 model int8 was made from
  ASSIGN_OR_RETURN(std::optional<CandidateRecord> int8, Level2(fp32, interrupted, &int8_base));

  // Latencies side by side for the decision and the report.
  CandidateRecord reference = reference_;
  if (!interrupted && !InterruptRequested()) RETURN_IF_ERROR(TimeSideBySide(&reference, &fp32, &int8));

  // The decision (search/decision.h).
  DecisionInputs inputs;
  inputs.reference = &reference;
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
  } else if (IsQuantizedPhase(chosen->phase())) {
    ASSIGN_OR_RETURN(Model q, store_->LoadModel(*chosen));
    out.emplace(std::move(q));
    ASSIGN_OR_RETURN(Model base, int8_base.key() == "reference" ? e_.model_.Clone() : LoadStored(int8_base));
    trainable.emplace(std::move(base));
    if (fp32 && int8_base.key() != fp32->key()) {
      why = absl::StrCat(why, " (int8 of ", int8_base.description(), ": int8 of the best pruned model missed delta)");
    }
  } else {
    ASSIGN_OR_RETURN(Model base, LoadStored(*chosen));
    ASSIGN_OR_RETURN(Model frozen, FrozenForInference(base));
    out.emplace(std::move(frozen));
    trainable.emplace(std::move(base));
  }
  EngineResult result{std::move(*out)};
  result.reference = reference;
  result.chosen = chosen ? *chosen : reference;
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
    result.why = why =
        absl::StrCat(why, " (best so far: ", InterruptRequested() ? InterruptMessage() : "another rank was interrupted",
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

absl::Status Engine::Search::TimeSideBySide(CandidateRecord* reference, std::optional<CandidateRecord>* fp32,
                                            std::optional<CandidateRecord>* int8) {
  const CandidateRecord* stored_frozen = store_->Find("reference_frozen");
  std::vector<CandidateRecord*> records = {reference};
  std::optional<CandidateRecord> frozen;
  if (stored_frozen != nullptr) {
    frozen = *stored_frozen;
    records.push_back(&*frozen);
  }
  if (*fp32) records.push_back(&**fp32);
  if (*int8) records.push_back(&**int8);
  // Recorded (keyed by the set timed together): running a finished run
  // again decides on the same figures and returns the same model, rather
  // than on a second timing that noise may rank otherwise.
  std::vector<std::string> set_keys;
  for (const CandidateRecord* r : records) set_keys.push_back(r->key());
  if (root()) {
    Phase("timing", absl::StrFormat("%zu models side by side: in turns, each its fastest of %d rounds", records.size(),
                                    kSideBySideRounds));
  }
  RETURN_IF_ERROR(TimedTogetherOnce(
      records, absl::StrCat("side_by_side|", absl::StrJoin(set_keys, "+"), "|"), "timed side by side with the result",
      [&](std::vector<Model>& hold, std::vector<Model*>& deployed) -> absl::Status {
        ASSIGN_OR_RETURN(Model given, e_.model_.Clone());
        deployed.push_back(&hold.emplace_back(std::move(given)));
        if (frozen) {
          ASSIGN_OR_RETURN(Model * f, FrozenReference());
          deployed.push_back(f);
        }
        if (*fp32) {
          ASSIGN_OR_RETURN(Model trainable, LoadStored(**fp32));
          ASSIGN_OR_RETURN(Model f, FrozenForInference(trainable), "freezing the pruned model to time it");
          deployed.push_back(&hold.emplace_back(std::move(f)));
        }
        if (*int8) {
          ASSIGN_OR_RETURN(Model q, store_->LoadModel(**int8));
          deployed.push_back(&hold.emplace_back(std::move(q)));
        }
        return absl::OkStatus();
      },
      "  "));
  if (root()) EndPhase();
  frozen_side_by_side_ = frozen;
  return absl::OkStatus();
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
  RETURN_IF_ERROR(RequireNonNull(
      "Engine", {{"forward_pass", forward_pass_.get()}, {"evaluator", evaluator_.get()}, {"loss", loss_.get()}},
      "forward_pass, evaluator and loss are required"));
  Search search(*this, std::move(config));
  return search.Run();
}

}  // namespace slimfit
