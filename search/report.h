// File: search/report.h
//
// What a compression run shows: the before/after table (metric, size,
// params, MACs, latency at batch 1 and N, peak activation memory, each with
// its ratio), why this model, per-layer channels and bit widths, every
// scored candidate, the result in LibTorch and in ONNX Runtime side by side
// (when the run wrote model.onnx and had a runtime timer), and where the time went — as JSON (report.json),
// Markdown (report.md) and one self-contained HTML page with an SVG plot of
// every candidate's metric against the objective, the chosen one marked
// (report.html).
//
//   RunReport r = ...;                       // filled by the engine
//   RETURN_IF_ERROR(WriteFileAtomically(dir + "/report.html", ReportHtml(r)));
//
// Contract: pure functions of the RunReport (no I/O); the outputs are valid
// JSON / HTML for any strings (escaped).
#ifndef SLIMFIT_SEARCH_REPORT_H_
#define SLIMFIT_SEARCH_REPORT_H_

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "search/search_state.pb.h"

namespace slimfit {

struct LayerRow {
  std::string module_path;
  std::string op_type;
  int64_t channels_before = 0;  // output channels / features
  int64_t channels_after = 0;   // 0: the layer is gone
  int64_t macs_before = 0;
  int64_t macs_after = 0;
  std::string bits_after = "fp32";  // fp32 | int8
};

// A file the run wrote into its directory.
struct OutputFile {
  std::string name;   // "model.onnx"
  int64_t bytes = 0;  // 0 when not written
  std::string note;   // what it is, or why it is missing
};

// One model in one runtime, timed in turns with the other runtime in one
// process (export/verify_onnx.py --latency): ms per call, one thread.
struct RuntimeRow {
  std::string model;    // "int8: model.pt / model.onnx"
  std::string runtime;  // "LibTorch 2.11.0", "ONNX Runtime 1.32.0"
  double batch1_ms = 0;
  double batch64_ms = 0;
};

struct RunReport {
  std::string name;
  std::string eval_key;
  std::string eval_split;
  bool higher_is_better = true;
  double delta = 0;
  double target = 0;
  int level = 1;
  std::string objective;  // LATENCY, SIZE, MACS
  int latency_batch = 64;
  int threads = 1;
  CandidateRecord reference;
  CandidateRecord chosen;
  bool returned_reference = false;
  std::string why;
  std::string warning;  // empty: none
  std::vector<CandidateRecord> candidates;  // every record, in order
  std::vector<LayerRow> layers;
  std::vector<std::pair<std::string, double>> phase_seconds;
  double seconds = 0;   // wall time over every invocation (resumes add up)
  int invocations = 1;  // how many runs made this directory
  std::string experiment_text;  // the effective experiment (defaults filled in)
  std::vector<OutputFile> files;     // model.pt, model_trainable.pt, model.onnx
  std::vector<RuntimeRow> runtimes;  // empty: not timed (runtimes_note says why)
  std::string runtimes_note;         // how they were timed, or why not; empty: no ONNX asked for
};

// The before/after table (plain text, aligned), as printed by the tool.
std::string SummaryTable(const RunReport& report);
std::string ReportJson(const RunReport& report);
std::string ReportMarkdown(const RunReport& report);
std::string ReportHtml(const RunReport& report);

}  // namespace slimfit

#endif  // SLIMFIT_SEARCH_REPORT_H_
