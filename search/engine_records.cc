// Engine::Search: records (the store, metrics.jsonl, the ranks), progress, the budget and interrupts.
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

}  // namespace slimfit
