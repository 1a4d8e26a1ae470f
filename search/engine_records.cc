// Engine::Search: records (the store, metrics.jsonl, the ranks), progress, the budget and interrupts, and the run's
// outputs.
#include <ATen/Functions.h>
#include <ATen/core/Tensor.h>

#include <cstdio>
#include <map>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_split.h"
#include "common/files.h"
#include "common/interrupt.h"
#include "common/json.h"
#include "common/status_macros.h"
#include "common/text_proto.h"
#include "evaluators/profiler.h"
#include "export/onnx.h"
#include "search/budget.h"
#include "search/engine_search.h"
#include "search/experiment.h"
#include "search/report.h"
#include "search/run_dir.h"

namespace slimfit {

absl::Status Engine::Search::Keep(CandidateRecord rec, const Model* model) {
  if (distributed()) {
    ASSIGN_OR_RETURN(std::vector<std::string> all, group().AllGather(root() ? ToTextProto(rec) : std::string()),
                     "sharing a record");
    RETURN_IF_ERROR(ParseTextProto(all[0], "rank 0's record", &rec));
  }
  return Record(std::move(rec), model);
}

absl::Status Engine::Search::Record(CandidateRecord rec, const Model* model) {
  RETURN_IF_ERROR(store_->Put(rec, model));
  const CandidateRecord* stored = store_->Find(rec.key());
  std::string line = absl::StrCat("{\"event\": ", JsonString(stored->phase()), ", \"sequence\": ", stored->sequence(),
                                  ", \"description\": ", JsonString(stored->description()));
  // A widths record is measured, not evaluated (a retimed one keeps its
  // candidate's evaluation).
  if (stored->phase() != "widths") {
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

absl::Status Engine::Search::AppendMetricsLine(const std::string& line) {
  if (!root()) return absl::OkStatus();  // rank 0 writes the run directory
  metrics_lines_ += line + "\n";
  return WriteFileAtomically(run_dir_ + "/metrics.jsonl", metrics_lines_);
}

absl::Status Engine::Search::SkipFailed(const std::string& what, const absl::Status& status) {
  Say(absl::StrCat("    ", what, " failed, the search goes on: ", status.message()));
  failures_.push_back(absl::StrCat(what, ": ", status.message()));
  return AppendMetricsLine(absl::StrCat("{\"event\": \"failed\", \"what\": ", JsonString(what),
                                        ", \"error\": ", JsonString(std::string(status.message())), "}"));
}

void Engine::Search::Say(const std::string& line) {
  if (!root()) return;
  if (e_.progress_) {
    e_.progress_(line);
  } else {
    std::printf("%s\n", line.c_str());
    std::fflush(stdout);
  }
}

void Engine::Search::Phase(const std::string& name, const std::string& detail) {
  phase_seconds_.emplace_back(name, 0);
  phase_started_ = Clock::now();
  Say(absl::StrFormat("[%s] %s  (elapsed %s)", name, detail, Hms(SecondsSince(start_))));
}

std::string Engine::Search::StopReason() const {
  return InterruptRequested() ? InterruptMessage()
         : stopped_elsewhere_ ? "another rank was interrupted"
                              : "time budget";
}

absl::StatusOr<bool> Engine::Search::Interrupted() {
  if (!distributed()) return InterruptRequested();
  std::vector<at::Tensor> flag{at::full({1}, InterruptRequested() ? 1 : 0, at::kLong)};
  RETURN_IF_ERROR(group().AllReduceMax(flag), "agreeing on an interrupt");
  return flag[0][0].item<int64_t>() > 0;
}

absl::StatusOr<bool> Engine::Search::FitsShare(double seconds, double share) {
  const bool in_budget =
      comp_.time_budget_minutes() <= 0 || SecondsSince(start_) + seconds <= share * comp_.time_budget_minutes() * 60;
  if (!distributed()) return in_budget && !InterruptRequested();
  std::vector<at::Tensor> flags{at::zeros({2}, at::kLong)};
  flags[0][0] = root() && !in_budget ? 1 : 0;
  flags[0][1] = InterruptRequested() ? 1 : 0;
  RETURN_IF_ERROR(group().AllReduceMax(flags), "agreeing on the time budget");
  stopped_elsewhere_ = flags[0][1].item<int64_t>() > 0 && !InterruptRequested();
  return flags[0][0].item<int64_t>() == 0 && flags[0][1].item<int64_t>() == 0;
}

absl::StatusOr<double> Engine::Search::RootsValue(double value) {
  if (!distributed()) return value;
  std::vector<at::Tensor> v{at::full({1}, root() ? value : 0.0, at::kDouble)};
  RETURN_IF_ERROR(group().AllReduceMax(v), "agreeing on a value");
  return v[0][0].item<double>();
}

absl::Status Engine::Search::AgreeTimings() {
  if (!distributed()) return absl::OkStatus();
  std::vector<at::Tensor> t{at::empty({5}, at::kDouble)};
  t[0][0] = epoch_seconds_;
  t[0][1] = slowest_epoch_seconds_;
  t[0][2] = epoch_seconds_prior_;
  t[0][3] = eval_seconds_;
  t[0][4] = final_epoch_ratio_;
  RETURN_IF_ERROR(group().AllReduceMax(t), "agreeing on epoch timings");
  epoch_seconds_ = t[0][0].item<double>();
  slowest_epoch_seconds_ = t[0][1].item<double>();
  epoch_seconds_prior_ = t[0][2].item<double>();
  eval_seconds_ = t[0][3].item<double>();
  final_epoch_ratio_ = t[0][4].item<double>();
  return absl::OkStatus();
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
  return AgreeTimings();
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
  if (ExportsOnnx(c_)) {
    const std::string onnx_path = run_dir_ + "/model.onnx";
    absl::StatusOr<OnnxExportSummary> onnx = WriteOnnx(result.model, onnx_path, OnnxExportOptions());
    if (onnx.ok()) {
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
