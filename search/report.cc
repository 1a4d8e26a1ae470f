#include "search/report.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <map>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "common/json.h"
#include "search/decision.h"
#include "absl/strings/str_replace.h"

namespace slimfit {
namespace {

// One before/after row: label, reference value, result value, ratio text.
struct Row {
  std::string label, before, after, ratio;
};

std::string Times(double before, double after, const char* word) {
  if (before <= 0 || after <= 0) return "-";
  return absl::StrFormat("%.2fx %s", before / after, word);
}

std::vector<Row> Rows(const RunReport& r) {
  const CandidateRecord& a = r.reference;
  const CandidateRecord& b = r.chosen;
  std::vector<Row> rows;
  const double drop = MetricDrop(a.eval_metric(), b.eval_metric(), r.higher_is_better);
  rows.push_back({absl::StrCat(r.eval_key, " (", r.eval_split, ")"), absl::StrFormat("%.4g", a.eval_metric()),
                  absl::StrFormat("%.4g", b.eval_metric()),
                  absl::StrFormat("%+.3g (target %s %.4g)", -drop, r.higher_is_better ? ">=" : "<=", r.target)});
  if (a.has_test_metric() && b.has_test_metric()) {
    const double test_drop = MetricDrop(a.test_metric(), b.test_metric(), r.higher_is_better);
    rows.push_back({absl::StrCat(r.eval_key, " (test)"), absl::StrFormat("%.4g", a.test_metric()),
                    absl::StrFormat("%.4g", b.test_metric()),
                    absl::StrFormat("%+.3g (held out: never used to choose)", -test_drop)});
  }
  rows.push_back({"size (KiB)", absl::StrFormat("%.1f", a.serialized_bytes() / 1024.0),
                  absl::StrFormat("%.1f", b.serialized_bytes() / 1024.0),
                  Times(a.serialized_bytes(), b.serialized_bytes(), "smaller")});
  rows.push_back({"params", absl::StrCat(a.params()), absl::StrCat(b.params()), Times(a.params(), b.params(), "fewer")});
  rows.push_back({"MACs (M)", absl::StrFormat("%.3f", a.macs() / 1e6), absl::StrFormat("%.3f", b.macs() / 1e6),
                  Times(a.macs(), b.macs(), "fewer")});
  rows.push_back({"latency b1 (ms)", absl::StrFormat("%.3f", a.latency_b1_ms()),
                  absl::StrFormat("%.3f", b.latency_b1_ms()), Times(a.latency_b1_ms(), b.latency_b1_ms(), "faster")});
  rows.push_back({absl::StrFormat("latency b%d (ms)", r.latency_batch), absl::StrFormat("%.2f", a.latency_bn_ms()),
                  absl::StrFormat("%.2f", b.latency_bn_ms()), Times(a.latency_bn_ms(), b.latency_bn_ms(), "faster")});
  rows.push_back({"peak activations b1 (KiB)", absl::StrFormat("%.1f", a.peak_activation_bytes() / 1024.0),
                  absl::StrFormat("%.1f", b.peak_activation_bytes() / 1024.0),
                  Times(a.peak_activation_bytes(), b.peak_activation_bytes(), "less")});
  return rows;
}

const CandidateRecord* Find(const RunReport& r, const std::string& phase) {
  for (const CandidateRecord& c : r.candidates) {
    if (c.phase() == phase) return &c;
  }
  return nullptr;
}

std::string FrozenNote(const RunReport& r) {
  const CandidateRecord* f = Find(r, "reference_frozen");
  if (f == nullptr || f->latency_b1_ms() <= 0) return "";
  return absl::StrFormat(
      "Freezing alone (the reference with batch norm folded, not pruned): latency b1 %s, b%d %s.",
      Times(r.reference.latency_b1_ms(), f->latency_b1_ms(), "faster"), r.latency_batch,
      Times(r.reference.latency_bn_ms(), f->latency_bn_ms(), "faster"));
}

std::string RecordJson(const CandidateRecord& c) {
  // In module-path order: a protobuf map's own order changes from run to run.
  const std::map<std::string, double> sorted(c.ratios().begin(), c.ratios().end());
  std::vector<std::string> ratios;
  for (const auto& [path, v] : sorted) ratios.push_back(absl::StrCat(JsonString(path), ": ", JsonNumber(v)));
  return absl::StrCat("{\"key\": ", JsonString(c.key()), ", \"phase\": ", JsonString(c.phase()),
                      ", \"description\": ", JsonString(c.description()), ", \"sequence\": ", c.sequence(),
                      ", \"eval\": ", JsonNumber(c.eval_metric()),
                      c.has_test_metric() ? absl::StrCat(", \"test\": ", JsonNumber(c.test_metric())) : "",
                      ", \"qualifies\": ", c.qualifies() ? "true" : "false",
                      ", \"params\": ", c.params(), ", \"macs\": ", c.macs(), ", \"bytes\": ", c.serialized_bytes(),
                      ", \"latency_b1_ms\": ", JsonNumber(c.latency_b1_ms()), ", \"latency_bn_ms\": ", JsonNumber(c.latency_bn_ms()),
                      ", \"peak_activation_bytes\": ", c.peak_activation_bytes(), ", \"pruner\": ",
                      JsonString(c.pruner()), ", \"epochs\": ", c.epochs(), ", \"lr_factor\": ",
                      JsonNumber(c.lr_factor() > 0 ? c.lr_factor() : 1.0), ", \"ratios\": {",
                      absl::StrJoin(ratios, ", "), "}, \"seconds\": ", JsonNumber(c.seconds()), "}");
}

std::string Html(const std::string& s) {
  return absl::StrReplaceAll(s, {{"&", "&amp;"}, {"<", "&lt;"}, {">", "&gt;"}, {"\"", "&quot;"}});
}

// The x value of a record on the objective, relative to the reference
// (1 = the reference; lower is better).
// 0 when the reference has no figure for it.
double ObjectiveRatio(const RunReport& r, const CandidateRecord& c) {
  CompressionConfig::Objective objective = CompressionConfig::LATENCY;
  CompressionConfig::Objective_Parse(r.objective, &objective);
  const CandidateRecord& a = r.reference;
  if (objective == CompressionConfig::LATENCY && (a.latency_b1_ms() <= 0 || a.latency_bn_ms() <= 0)) return 0;
  const double reference = ObjectiveValue(objective, a, a);
  return reference > 0 ? ObjectiveValue(objective, a, c) / reference : 0;
}

std::string Plot(const RunReport& r) {
  struct P {
    double x, y;
    std::string phase, label;
    bool chosen;
  };
  std::vector<P> pts;
  for (const CandidateRecord& c : r.candidates) {
    if (c.phase() != "reference" && c.phase() != "candidate" && c.phase() != "final" && !IsQuantizedPhase(c.phase()) &&
        c.phase() != "reference_frozen") {
      continue;
    }
    const double x = ObjectiveRatio(r, c);
    if (x <= 0) continue;
    pts.push_back({x, c.eval_metric(), c.phase(), c.description(), c.key() == r.chosen.key()});
  }
  if (pts.empty()) return "";
  double x0 = 0, x1 = 1.05, y0 = r.target, y1 = r.target;
  for (const P& p : pts) {
    x1 = std::max(x1, p.x * 1.05);
    y0 = std::min(y0, p.y);
    y1 = std::max(y1, p.y);
  }
  const double pad = std::max(0.1, (y1 - y0) * 0.08);
  y0 -= pad;
  y1 += pad;
  const double W = 640, H = 360, L = 60, R = 20, T = 20, B = 50;
  auto sx = [&](double x) { return L + (x - x0) / (x1 - x0) * (W - L - R); };
  auto sy = [&](double y) { return T + (y1 - y) / (y1 - y0) * (H - T - B); };
  std::string svg = absl::StrFormat(
      "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%.0f\" height=\"%.0f\" font-family=\"sans-serif\" "
      "font-size=\"11\">\n<rect x=\"%.0f\" y=\"%.0f\" width=\"%.0f\" height=\"%.0f\" fill=\"none\" stroke=\"#888\"/>\n",
      W, H, L, T, W - L - R, H - T - B);
  for (int i = 0; i <= 5; ++i) {
    const double x = x0 + (x1 - x0) * i / 5, y = y0 + (y1 - y0) * i / 5;
    absl::StrAppendFormat(&svg, "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"middle\">%.2f</text>\n", sx(x), H - B + 15,
                          x);
    absl::StrAppendFormat(&svg, "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"end\">%.2f</text>\n", L - 5, sy(y) + 4, y);
  }
  absl::StrAppendFormat(&svg, "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"middle\">%s relative to the reference "
                        "(lower is better)</text>\n", (L + W - R) / 2, H - 12,
                        r.objective == "LATENCY" ? "latency (mean of b1 and bN)" : Html(r.objective));
  absl::StrAppendFormat(&svg, "<text x=\"14\" y=\"%.1f\" transform=\"rotate(-90 14 %.1f)\" "
                        "text-anchor=\"middle\">%s</text>\n", (T + H - B) / 2, (T + H - B) / 2, Html(r.eval_key));
  absl::StrAppendFormat(&svg, "<line x1=\"%.1f\" x2=\"%.1f\" y1=\"%.1f\" y2=\"%.1f\" stroke=\"#c00\" "
                        "stroke-dasharray=\"4 3\"/><text x=\"%.1f\" y=\"%.1f\" fill=\"#c00\">target %.4g</text>\n",
                        L, W - R, sy(r.target), sy(r.target), W - R - 90, sy(r.target) - 4, r.target);
  for (const P& p : pts) {
    const char* color = IsQuantizedPhase(p.phase) ? "#7b3294"
                        : p.phase == "final"      ? "#1a9641"
                        : p.phase == "candidate"  ? "#2c7bb6"
                                                  : "#444";
    absl::StrAppendFormat(&svg, "<circle cx=\"%.1f\" cy=\"%.1f\" r=\"%d\" fill=\"%s\"%s><title>%s: %.4g</title></circle>\n",
                          sx(p.x), sy(p.y), p.chosen ? 8 : 4, color,
                          p.chosen ? " stroke=\"#000\" stroke-width=\"2\" fill-opacity=\"0.6\"" : "",
                          Html(p.label), p.y);
    if (p.chosen) {
      absl::StrAppendFormat(&svg, "<text x=\"%.1f\" y=\"%.1f\" font-weight=\"bold\">chosen</text>\n", sx(p.x) + 10,
                            sy(p.y) + 4);
    }
  }
  svg += "</svg>\n";
  return svg;
}

std::string MarkdownTable(const std::vector<std::string>& header, const std::vector<std::vector<std::string>>& rows) {
  std::string out = "| " + absl::StrJoin(header, " | ") + " |\n|";
  for (size_t i = 0; i < header.size(); ++i) out += "---|";
  out += "\n";
  for (const auto& row : rows) out += "| " + absl::StrJoin(row, " | ") + " |\n";
  return out;
}

std::vector<std::vector<std::string>> CandidateRows(const RunReport& r) {
  std::vector<std::vector<std::string>> rows;
  for (const CandidateRecord& c : r.candidates) {
    if (c.phase() == "sensitivity" || c.phase() == "sensitivity_samples" || c.phase() == "final_epoch" ||
        c.phase() == "widths" || c.phase() == "retimed") {
      continue;
    }
    rows.push_back({absl::StrCat(c.sequence()), c.phase(), c.description(), absl::StrFormat("%.4g", c.eval_metric()),
                    c.qualifies() ? "yes" : "no", Times(r.reference.macs(), c.macs(), ""),
                    Times(r.reference.latency_b1_ms(), c.latency_b1_ms(), ""),
                    Times(r.reference.latency_bn_ms(), c.latency_bn_ms(), ""),
                    Times(r.reference.serialized_bytes(), c.serialized_bytes(), ""),
                    absl::StrFormat("%.0f", c.seconds())});
  }
  return rows;
}

const std::vector<std::string>& CandidateHeader() {
  static const auto* h = new std::vector<std::string>{"#", "phase", "what", "metric", "within delta", "MACs",
                                                      "latency b1", "latency bN", "size", "seconds"};
  return *h;
}

std::vector<std::vector<std::string>> LayerRows(const RunReport& r) {
  std::vector<std::vector<std::string>> rows;
  for (const LayerRow& l : r.layers) {
    rows.push_back({l.module_path, l.op_type, absl::StrCat(l.channels_before), absl::StrCat(l.channels_after),
                    absl::StrFormat("%.3f", l.macs_before / 1e6), absl::StrFormat("%.3f", l.macs_after / 1e6), "fp32",
                    l.bits_after});
  }
  return rows;
}

const std::vector<std::string>& LayerHeader() {
  static const auto* h = new std::vector<std::string>{"layer", "type", "channels before", "after",
                                                      "MMACs before", "after", "bits before", "after"};
  return *h;
}

std::string PhaseLine(const RunReport& r) {
  std::vector<std::string> parts;
  for (const auto& [name, s] : r.phase_seconds) parts.push_back(absl::StrFormat("%s %.0f s", name, s));
  return absl::StrFormat("%s (total %.0f s on %d thread(s)%s)", absl::StrJoin(parts, ", "), r.seconds, r.threads,
                         r.invocations > 1 ? absl::StrFormat(", over %d invocations", r.invocations) : "");
}

std::vector<std::string> FileHeader() { return {"file", "KiB", "what"}; }

std::vector<std::vector<std::string>> FileRows(const RunReport& r) {
  std::vector<std::vector<std::string>> rows;
  for (const OutputFile& f : r.files) {
    rows.push_back({f.name, f.bytes > 0 ? absl::StrFormat("%.1f", f.bytes / 1024.0) : "-", f.note});
  }
  return rows;
}

std::vector<std::string> RuntimeHeader() { return {"model", "runtime", "batch 1 ms", "batch 64 ms"}; }

std::vector<std::vector<std::string>> RuntimeRows(const RunReport& r) {
  std::vector<std::vector<std::string>> rows;
  for (const RuntimeRow& t : r.runtimes) {
    rows.push_back({t.model, t.runtime, absl::StrFormat("%.3f", t.batch1_ms), absl::StrFormat("%.2f", t.batch64_ms)});
  }
  return rows;
}

}  // namespace

std::string SummaryTable(const RunReport& r) {
  std::string out = absl::StrFormat("%-28s %14s %14s  %s\n", "", "reference", "result", "change");
  for (const Row& row : Rows(r)) {
    absl::StrAppendFormat(&out, "%-28s %14s %14s  %s\n", row.label, row.before, row.after, row.ratio);
  }
  return out;
}

std::string ReportJson(const RunReport& r) {
  std::vector<std::string> cands, layers, phases;
  for (const CandidateRecord& c : r.candidates) cands.push_back("    " + RecordJson(c));
  for (const LayerRow& l : r.layers) {
    layers.push_back(absl::StrCat("    {\"layer\": ", JsonString(l.module_path), ", \"type\": ", JsonString(l.op_type),
                                  ", \"channels_before\": ", l.channels_before, ", \"channels_after\": ",
                                  l.channels_after, ", \"macs_before\": ", l.macs_before, ", \"macs_after\": ",
                                  l.macs_after, ", \"bits_before\": \"fp32\", \"bits_after\": ",
                                  JsonString(l.bits_after), "}"));
  }
  for (const auto& [name, s] : r.phase_seconds) phases.push_back(absl::StrCat(JsonString(name), ": ", JsonNumber(s)));
  std::vector<std::string> files;
  for (const OutputFile& f : r.files) {
    files.push_back(absl::StrCat("    {\"name\": ", JsonString(f.name), ", \"bytes\": ", f.bytes,
                                 ", \"note\": ", JsonString(f.note), "}"));
  }
  std::vector<std::string> runtimes;
  for (const RuntimeRow& t : r.runtimes) {
    runtimes.push_back(absl::StrCat("    {\"model\": ", JsonString(t.model), ", \"runtime\": ", JsonString(t.runtime),
                                    ", \"batch1_ms\": ", JsonNumber(t.batch1_ms),
                                    ", \"batch64_ms\": ", JsonNumber(t.batch64_ms), "}"));
  }
  return absl::StrCat(
      "{\n  \"name\": ", JsonString(r.name), ",\n  \"eval_key\": ", JsonString(r.eval_key),
      ",\n  \"eval_split\": ", JsonString(r.eval_split),
      ",\n  \"higher_is_better\": ", r.higher_is_better ? "true" : "false", ",\n  \"delta\": ", JsonNumber(r.delta),
      ",\n  \"target\": ", JsonNumber(r.target), ",\n  \"level\": ", r.level,
      ",\n  \"objective\": ", JsonString(r.objective), ",\n  \"latency_batch\": ", r.latency_batch,
      ",\n  \"threads\": ", r.threads, ",\n  \"returned_reference\": ", r.returned_reference ? "true" : "false",
      ",\n  \"why\": ", JsonString(r.why), ",\n  \"warning\": ", JsonString(r.warning),
      ",\n  \"reference\": ", RecordJson(r.reference), ",\n  \"result\": ", RecordJson(r.chosen),
      ",\n  \"ratios\": {\"size\": ",
      JsonNumber(double(r.reference.serialized_bytes()) / std::max<int64_t>(1, r.chosen.serialized_bytes())),
      ", \"params\": ", JsonNumber(double(r.reference.params()) / std::max<int64_t>(1, r.chosen.params())),
      ", \"macs\": ", JsonNumber(double(r.reference.macs()) / std::max<int64_t>(1, r.chosen.macs())),
      ", \"latency_b1\": ", JsonNumber(r.reference.latency_b1_ms() / std::max(1e-12, r.chosen.latency_b1_ms())),
      ", \"latency_bn\": ", JsonNumber(r.reference.latency_bn_ms() / std::max(1e-12, r.chosen.latency_bn_ms())),
      "},\n  \"phase_seconds\": {", absl::StrJoin(phases, ", "), "},\n  \"seconds\": ", JsonNumber(r.seconds),
      ",\n  \"files\": [\n", absl::StrJoin(files, ",\n"), "\n  ]", ",\n  \"runtimes\": [\n",
      absl::StrJoin(runtimes, ",\n"), "\n  ],\n  \"runtimes_note\": ", JsonString(r.runtimes_note),
      ",\n  \"layers\": [\n", absl::StrJoin(layers, ",\n"), "\n  ],\n  \"candidates\": [\n",
      absl::StrJoin(cands, ",\n"), "\n  ],\n  \"experiment\": ", JsonString(r.experiment_text), "\n}\n");
}

std::string ReportMarkdown(const RunReport& r) {
  std::string out = absl::StrCat("# slimfit compression report: ", r.name, "\n\n");
  absl::StrAppendFormat(&out, "Level %d, objective %s, delta %g on %s (%s). **%s.**\n\n", r.level, r.objective,
                        r.delta, r.eval_key, r.eval_split, r.why);
  if (!r.warning.empty()) absl::StrAppend(&out, "**Warning:** ", r.warning, "\n\n");
  std::vector<std::vector<std::string>> rows;
  for (const Row& row : Rows(r)) rows.push_back({row.label, row.before, row.after, row.ratio});
  out += MarkdownTable({"", "reference", "result", "change"}, rows);
  absl::StrAppendFormat(&out, "\nLatency: median of timed runs at batch 1 and %d, %d thread(s), each on a fresh copy. "
                        "%s\n\nTime: %s.\n\n", r.latency_batch, r.threads, FrozenNote(r), PhaseLine(r));
  out += "## Files\n\n" + MarkdownTable(FileHeader(), FileRows(r));
  if (!r.runtimes_note.empty()) {
    out += "\n## Runtimes\n\n";
    if (!r.runtimes.empty()) out += MarkdownTable(RuntimeHeader(), RuntimeRows(r)) + "\n";
    out += r.runtimes_note + "\n";
  }
  out += "\n## Layers\n\n" + MarkdownTable(LayerHeader(), LayerRows(r));
  out += "\n## Candidates\n\n" + MarkdownTable(CandidateHeader(), CandidateRows(r));
  out += "\nRatios are reference / candidate (higher is better).\n\n## Experiment\n\n```\n" + r.experiment_text + "```\n";
  return out;
}

std::string ReportHtml(const RunReport& r) {
  auto table = [](const std::vector<std::string>& header, const std::vector<std::vector<std::string>>& rows) {
    std::string t = "<table><tr>";
    for (const auto& h : header) t += "<th>" + Html(h) + "</th>";
    t += "</tr>\n";
    for (const auto& row : rows) {
      t += "<tr>";
      for (const auto& cell : row) t += "<td>" + Html(cell) + "</td>";
      t += "</tr>\n";
    }
    return t + "</table>\n";
  };
  std::vector<std::vector<std::string>> rows;
  for (const Row& row : Rows(r)) rows.push_back({row.label, row.before, row.after, row.ratio});
  std::string out =
      "<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>slimfit: " + Html(r.name) +
      "</title>\n<style>body{font-family:sans-serif;max-width:1100px;margin:2em auto;}"
      "table{border-collapse:collapse;margin:1em 0;}td,th{border:1px solid #ccc;padding:3px 8px;text-align:right;}"
      "td:first-child,th:first-child{text-align:left;}pre{background:#f4f4f4;padding:1em;}</style></head><body>\n";
  out += "<h1>slimfit compression report: " + Html(r.name) + "</h1>\n";
  out += absl::StrFormat("<p>Level %d, objective %s, delta %g on %s (%s). <b>%s.</b></p>\n", r.level,
                         Html(r.objective), r.delta, Html(r.eval_key), Html(r.eval_split), Html(r.why));
  if (!r.warning.empty()) out += "<p><b>Warning:</b> " + Html(r.warning) + "</p>\n";
  out += table({"", "reference", "result", "change"}, rows);
  out += absl::StrFormat("<p>Latency: median at batch 1 and %d, %d thread(s). %s</p><p>Time: %s.</p>\n",
                         r.latency_batch, r.threads, Html(FrozenNote(r)), Html(PhaseLine(r)));
  out += "<h2>Files</h2>\n" + table(FileHeader(), FileRows(r));
  if (!r.runtimes_note.empty()) {
    out += "<h2>Runtimes</h2>\n";
    if (!r.runtimes.empty()) out += table(RuntimeHeader(), RuntimeRows(r));
    out += "<p>" + Html(r.runtimes_note) + "</p>\n";
  }
  out += "<h2>Candidates</h2>\n<p>Every scored model: grey the reference, blue candidates after their short "
         "fine-tune, green after the final fine-tune, purple int8. The chosen one is circled.</p>\n" +
         Plot(r);
  out += table(CandidateHeader(), CandidateRows(r));
  out += "<h2>Layers</h2>\n" + table(LayerHeader(), LayerRows(r));
  out += "<h2>Experiment</h2>\n<pre>" + Html(r.experiment_text) + "</pre>\n</body></html>\n";
  return out;
}

}  // namespace slimfit
