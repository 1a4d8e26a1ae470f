// Engine::Search: the run's outputs (model.pt, model_trainable.pt,
// model.onnx, the report in three forms, metrics.jsonl's result line) and
// the result timed in LibTorch and in ONNX Runtime for the report.
#include <cstdio>
#include <map>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "common/files.h"
#include "common/json.h"
#include "common/status_macros.h"
#include "common/text_proto.h"
#include "evaluators/profiler.h"
#include "export/onnx.h"
#include "graph/freeze.h"
#include "search/engine_search.h"
#include "search/experiment.h"
#include "search/report.h"
#include "search/run_dir.h"

namespace slimfit {

void Engine::Search::TimeRuntimes(const EngineResult& result, bool int8, const Model& trainable, RunReport& report) {
  if (!e_.runtime_timer_) {
    report.runtimes_note =
        "Not timed in ONNX Runtime: this engine has no runtime timer (`bazel run //tools:compress` has one: "
        "docs/export.md).";
    return;
  }
  Say("timing the result in LibTorch and in ONNX Runtime");
  std::vector<std::string> missed;
  auto time = [&](const std::string& label, const std::string& pt, const std::string& onnx, bool int8) {
    absl::StatusOr<std::vector<RuntimeRow>> rows = e_.runtime_timer_(pt, onnx, int8);
    if (!rows.ok()) {
      missed.push_back(absl::StrCat(label, ": ", rows.status().message()));
      return;
    }
    for (RuntimeRow& row : *rows) {
      row.model = label;
      report.runtimes.push_back(std::move(row));
    }
  };
  if (int8) {
    // The int8 result's fp32 form, frozen as a level-1 result would be and
    // exported beside it (state/, removed after).
    const std::string label = "fp32: model_trainable.pt, frozen";
    const std::string pt = run_dir_ + "/state/runtime_fp32.pt", onnx = run_dir_ + "/state/runtime_fp32.onnx";
    absl::Status written = [&]() -> absl::Status {
      ASSIGN_OR_RETURN(Model frozen, FrozenForInference(trainable));
      RETURN_IF_ERROR(frozen.Save(pt));
      return WriteOnnx(frozen, onnx, OnnxExportOptions()).status();
    }();
    if (written.ok()) {
      time(label, pt, onnx, /*int8=*/false);
    } else {
      missed.push_back(absl::StrCat(label, ": ", written.message()));
    }
    std::remove(pt.c_str());
    std::remove(onnx.c_str());
  }
  // int8 (QDQ in ONNX), or fp32; a weight-only result (weights4) exports as fp32.
  const std::string kind = int8 ? "int8" : IsQuantizedPhase(result.chosen.phase()) ? result.chosen.phase() : "fp32";
  time(absl::StrCat(kind, ": model.pt / model.onnx"), run_dir_ + "/model.pt", run_dir_ + "/model.onnx", int8);
  report.runtimes_note =
      "The same models in LibTorch (torch.jit.load from Python) and in ONNX Runtime (CPU), timed in turns in one "
      "process by export/verify_onnx.py --latency: one thread, ms per call, each its best of 5 rounds. The table "
      "above is slimfit's own LibTorch timing (C++, the experiment's threads).";
  if (!missed.empty()) absl::StrAppend(&report.runtimes_note, " Not timed: ", absl::StrJoin(missed, "; "), ".");
  for (const std::string& m : missed) Say(absl::StrCat("warning: not timed in ONNX Runtime: ", m));
}

absl::Status Engine::Search::WriteOutputs(EngineResult& result, const Model& trainable) {
  result.candidates = store_->All();
  result.reused = reused_;
  result.seconds = SecondsSince(start_);
  RETURN_IF_ERROR(result.model.Save(run_dir_ + "/model.pt"));
  if (!result.returned_reference) RETURN_IF_ERROR(trainable.Save(run_dir_ + "/model_trainable.pt"));

  RunReport report;
  // The files the run returns, with their sizes (and why one is missing).
  std::vector<std::pair<std::string, std::string>> notes = {
      {"model.pt", "the result (TorchScript)"}, {"model_trainable.pt", "its fp32 form before freezing (fine-tune it)"}};
  std::string onnx_missing;
  bool onnx_int8 = false;
  if (ExportsOnnx(c_)) {
    const std::string onnx_path = run_dir_ + "/model.onnx";
    absl::StatusOr<OnnxExportSummary> onnx = WriteOnnx(result.model, onnx_path, OnnxExportOptions());
    if (onnx.ok()) {
      onnx_int8 = onnx->quantized;
      notes.push_back(
          {"model.onnx", absl::StrCat("the result as ONNX (opset 17", onnx->quantized ? ", int8 as QDQ" : "", ", ",
                                      onnx->nodes, " nodes)")});
    } else {
      std::remove(onnx_path.c_str());  // never a stale file from an earlier run
      Say(absl::StrCat("warning: model.onnx not written: ", onnx.status().message()));
      onnx_missing = absl::StrCat("not written: ", onnx.status().message());
    }
  }
  for (const auto& [name, note] : notes) {
    absl::StatusOr<int64_t> bytes = RegularFileSize(run_dir_ + "/" + name);
    if (bytes.ok()) report.files.push_back({name, *bytes, note});
  }
  if (!onnx_missing.empty()) report.files.push_back({"model.onnx", 0, onnx_missing});
  if (ExportsOnnx(c_)) {
    if (!onnx_missing.empty()) {
      report.runtimes_note = "Not timed in ONNX Runtime: model.onnx was not written.";
    } else if (result.interrupted) {
      report.runtimes_note = "Not timed in ONNX Runtime: the run was interrupted (the resumed run times it).";
    } else {
      TimeRuntimes(result, onnx_int8, trainable, report);
    }
  }
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
  report.reference = result.reference;  // timed beside the result (TimeSideBySide)
  report.chosen = result.chosen;
  report.returned_reference = result.returned_reference;
  report.why = result.why;
  report.warning = result.warning;
  report.candidates = result.candidates;
  // The frozen reference as timed beside the reference and the result: the
  // report's "freezing alone" note is a ratio of the two.
  for (CandidateRecord& c : report.candidates) {
    if (frozen_side_by_side_ && c.key() == frozen_side_by_side_->key()) c = *frozen_side_by_side_;
  }
  // Time across every invocation of this run directory (resumes add up).
  ASSIGN_OR_RETURN(RunTimes times, AddRunTimes(run_dir_, phase_seconds_, result.seconds));
  report.phase_seconds = std::move(times.phases);
  report.seconds = times.seconds;
  report.invocations = times.invocations;
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
    // The quantized result's note: layers left fp32 (int8) or at 8 bits (weights4).
    const std::string& phase = result.chosen.phase();
    std::set<std::string> kept_layers;
    if (IsQuantizedPhase(phase)) {
      for (absl::string_view s : absl::StrSplit(result.chosen.note(), ',', absl::SkipEmpty())) {
        kept_layers.insert(std::string(s));
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
        const bool kept = kept_layers.count(l.module_path) > 0;
        row.bits_after = phase == "int8"       ? (kept ? "fp32" : "int8")
                         : phase == "weights4" ? (kept ? "w8" : "w4")
                                               : "fp32";
      }
      report.layers.push_back(row);
    }
  }
  result.summary = SummaryTable(report);
  RETURN_IF_ERROR(WriteFileAtomically(run_dir_ + "/report.json", ReportJson(report)));
  RETURN_IF_ERROR(WriteFileAtomically(run_dir_ + "/report.md", ReportMarkdown(report)));
  RETURN_IF_ERROR(WriteFileAtomically(run_dir_ + "/report.html", ReportHtml(report)));
  return AppendMetricsLine(absl::StrCat(
      "{\"event\": \"result\", \"chosen\": ", JsonString(result.chosen.key()),
      ", \"eval\": ", JsonNumber(result.chosen.eval_metric()),
      result.chosen.has_test_metric() ? absl::StrCat(", \"test\": ", JsonNumber(result.chosen.test_metric()),
                                                     ", \"reference_test\": ", JsonNumber(reference_.test_metric()))
                                      : std::string(),
      ", \"returned_reference\": ", result.returned_reference ? "true" : "false",
      ", \"seconds\": ", JsonNumber(result.seconds), "}"));
}

}  // namespace slimfit
