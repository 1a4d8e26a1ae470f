#include "search/strategies/finals.h"

#include <algorithm>
#include <map>
#include <set>
#include <string>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "common/status_macros.h"
#include "search/budget.h"
#include "search/decision.h"

namespace slimfit {

namespace {

// With objective LATENCY, the candidates a final or the fallback could pick
// (within delta + `recovery`; the kMaxTimedAgain best on the objective as
// measured when made) are timed again side by side, so that the ranking is
// not one candidate's lucky or unlucky moment (mobilenetv2_small,
// 2026-12-03: a 1.35x link timed 0.85 ms when made, 1.41 ms in turns, and
// was taken over a 1.70x one at 1.31 ms).
absl::Status TimeAgainWhatCouldBeChosen(SearchContext& ctx, double recovery, std::vector<CandidateRecord>& scored) {
  constexpr size_t kMaxTimedAgain = 6;
  const CompressionConfig& comp = ctx.experiment().compression();
  if (!IsLatencyObjective(comp.objective())) return absl::OkStatus();
  std::vector<size_t> in_play;
  for (size_t i = 0; i < scored.size(); ++i) {
    if (ctx.DropOf(scored[i].eval_metric()) <= comp.delta() + recovery) in_play.push_back(i);
  }
  std::stable_sort(in_play.begin(), in_play.end(),
                   [&](size_t a, size_t b) { return ctx.Objective(scored[a]) < ctx.Objective(scored[b]); });
  if (in_play.size() > kMaxTimedAgain) in_play.resize(kMaxTimedAgain);
  if (in_play.size() < 2) return absl::OkStatus();
  std::vector<CandidateRecord> records;
  for (size_t i : in_play) records.push_back(scored[i]);
  ctx.Say(absl::StrFormat("  %zu candidate(s) that could be chosen, timed again side by side:", records.size()));
  RETURN_IF_ERROR(ctx.TimeAgainInTurns(records));
  for (size_t j = 0; j < in_play.size(); ++j) scored[in_play[j]] = std::move(records[j]);
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<std::optional<CandidateRecord>> RunFinals(SearchContext& ctx, std::vector<CandidateRecord> scored) {
  const CompressionConfig& comp = ctx.experiment().compression();
  const std::string& key = ctx.experiment().evaluation().eval_key();
  // Candidates of one shape (the same MACs and parameters: e.g. the same
  // cut by different pruners) run at the same speed; their measured
  // latencies differ only by noise. Of each shape only the most accurate
  // goes on, ranked by the shape's best measured objective.
  struct Shape {
    CandidateRecord best;
    double objective;
  };
  double recovery = comp.final_epochs() > 0 ? comp.tuning().promising_slack() * comp.delta() : 0;
  RETURN_IF_ERROR(TimeAgainWhatCouldBeChosen(ctx, recovery, scored));
  std::map<std::pair<int64_t, int64_t>, Shape> by_shape;
  for (const CandidateRecord& c : scored) {
    auto [it, fresh] = by_shape.emplace(std::make_pair(c.macs(), c.params()), Shape{c, ctx.Objective(c)});
    if (fresh) continue;
    it->second.objective = std::min(it->second.objective, ctx.Objective(c));
    if (ctx.DropOf(c.eval_metric()) < ctx.DropOf(it->second.best.eval_metric())) it->second.best = c;
  }
  std::vector<std::pair<double, CandidateRecord>> ranked;
  for (auto& [shape, s] : by_shape) ranked.emplace_back(s.objective, s.best);
  std::stable_sort(ranked.begin(), ranked.end(),
                   [](const auto& a, const auto& b) { return a.first < b.first; });
  scored.clear();
  for (auto& [objective, c] : ranked) scored.push_back(std::move(c));
  std::optional<CandidateRecord> fp32;
  const int max_finals = comp.tuning().max_finals();
  ctx.Phase("final", absl::StrFormat("%zu scored candidate(s); fine-tuning the best within delta + %.2f for %d more "
                                     "epochs (at most %d)",
                                     scored.size(), recovery, comp.final_epochs(), max_finals));
  std::set<std::string> tried;
  for (int finals = 0; finals < max_finals && comp.final_epochs() > 0; ++finals) {
    // Anytime: with less time left than final_epochs take, the final
    // fine-tune gets the epochs that fit (a smaller gain, never none while
    // one epoch fits), and is expected to recover in proportion: the bar
    // for a candidate whose final the budget cuts short is lower (vgg_small,
    // 2026-12-03: a 7.1x link at -1.95 got 4 of 5 epochs, recovered 0.75
    // and missed, with no time left for a second final).
    const CandidateRecord* next = nullptr;
    int epochs = 0;
    double expected = recovery;
    bool out_of_time = false;
    for (const CandidateRecord& c : scored) {
      if (tried.count(c.key()) || (fp32 && ctx.Objective(c) >= ctx.Objective(*fp32))) continue;
      ASSIGN_OR_RETURN(const int fit, FinalEpochsThatFit(ctx, c));
      if (fit < 1) {
        out_of_time = true;
        break;
      }
      const double bar = recovery * std::min(1.0, static_cast<double>(fit) / comp.final_epochs());
      if (ctx.DropOf(c.eval_metric()) <= comp.delta() + bar) {
        next = &c;
        epochs = fit;
        expected = bar;
        break;
      }
    }
    if (out_of_time) {
      ctx.Say(absl::StrCat("  ", ctx.StopReason(), ": no time for another final fine-tune"));
      break;
    }
    if (next == nullptr) break;
    ASSIGN_OR_RETURN(const int last, LastFinalEpochs(ctx, *next));
    tried.insert(next->key());
    std::string note;
    if (last > epochs) {
      note = absl::StrFormat(
          " (%d epochs, not %d: no full final fits after it, so it takes what the time budget "
          "has left)",
          last, comp.final_epochs());
      epochs = last;
    } else if (epochs < comp.final_epochs()) {
      note = absl::StrFormat(
          " (%d of %d epochs: what the time budget has left; taken within delta + %.2f, the "
          "recovery expected of %d epochs)",
          epochs, comp.final_epochs(), expected, epochs);
    }
    ctx.Say(absl::StrFormat("  final %d: %s%s", finals + 1, next->description(), note));
    absl::StatusOr<CandidateRecord> got = ctx.Final(*next, epochs);
    if (absl::IsCancelled(got.status())) {
      ctx.Say(absl::StrCat("  ", got.status().message(), ": the final fine-tune stops (its finished epochs are kept)"));
      break;
    }
    if (absl::IsDataLoss(got.status())) {
      RETURN_IF_ERROR(ctx.SkipFailed(absl::StrCat("final fine-tune of ", next->description()), got.status()));
      continue;
    }
    if (!got.ok()) return got.status();
    const CandidateRecord& f = *got;
    const double gained = ctx.DropOf(next->eval_metric()) - ctx.DropOf(f.eval_metric());
    if (f.qualifies() && (!fp32 || ctx.Objective(f) < ctx.Objective(*fp32))) {
      fp32 = f;
      recovery = std::max(recovery, 0.8 * gained);
      ctx.Say(absl::StrFormat("  qualifies (%s = %.4g, recovered %.2f); looking for more within delta + %.2f", key,
                              f.eval_metric(), gained, recovery));
    } else {
      recovery = std::max(0.0, std::min(recovery, 0.8 * gained));
      ctx.Say(absl::StrFormat("  %s = %.4g: %s", key, f.eval_metric(),
                              f.qualifies() ? "no better on the objective" : "misses the target"));
    }
  }
  // Without a qualifying final: the best candidate that already qualifies.
  if (!fp32) {
    for (const CandidateRecord& r : scored) {
      if (r.qualifies()) {
        fp32 = r;
        break;
      }
    }
  }
  if (fp32) RETURN_IF_ERROR(Polish(ctx, &*fp32));
  ctx.EndPhase();
  return fp32;
}

namespace {

// Up to `wanted` epochs of a final of `candidate` that fit in what is left;
// 0 when not one fits or the run is stopping.
absl::StatusOr<int> EpochsLeftFor(SearchContext& ctx, const CandidateRecord& candidate, int wanted) {
  const double epoch = ctx.FinalEpochSecondsOf(candidate);
  ASSIGN_OR_RETURN(const double left, ctx.SecondsLeft());
  const int epochs = EpochsThatFit(wanted, left, epoch);
  ASSIGN_OR_RETURN(const bool fits, ctx.Fits(std::max(1, epochs) * epoch));
  return fits ? epochs : 0;
}

}  // namespace

absl::StatusOr<int> FinalEpochsThatFit(SearchContext& ctx, const CandidateRecord& candidate) {
  return EpochsLeftFor(ctx, candidate, ctx.experiment().compression().final_epochs());
}

absl::StatusOr<int> LastFinalEpochs(SearchContext& ctx, const CandidateRecord& candidate) {
  const CompressionConfig& comp = ctx.experiment().compression();
  if (!comp.tuning().polish() || comp.time_budget_minutes() <= 0 || comp.final_epochs() <= 0) return 0;
  ASSIGN_OR_RETURN(const double left, ctx.SecondsLeft());
  // Room for another full final after it: not the last.
  if (left >= 2 * comp.final_epochs() * ctx.FinalEpochSecondsOf(candidate)) return 0;
  return EpochsLeftFor(ctx, candidate, 2 * comp.final_epochs());
}

absl::Status Polish(SearchContext& ctx, CandidateRecord* chosen) {
  const CompressionConfig& comp = ctx.experiment().compression();
  if (!comp.tuning().polish() || comp.time_budget_minutes() <= 0 || comp.final_epochs() <= 0) return absl::OkStatus();
  ASSIGN_OR_RETURN(const int epochs, FinalEpochsThatFit(ctx, *chosen));
  if (epochs < 1) return absl::OkStatus();
  const std::string& key = ctx.experiment().evaluation().eval_key();
  ctx.Say(absl::StrFormat("  polish: %d more epoch(s) of %s with the budget left (kept when better on %s)", epochs,
                          chosen->description(), ctx.experiment().evaluation().eval_split()));
  bool stop = false;  // interrupted: the model before it is kept
  ASSIGN_OR_RETURN(std::optional<CandidateRecord> got,
                   Scored(ctx, "polishing the chosen model", ctx.Final(*chosen, epochs), &stop));
  if (!got) return absl::OkStatus();
  if (got->qualifies() && ctx.DropOf(got->eval_metric()) < ctx.DropOf(chosen->eval_metric())) {
    ctx.Say(absl::StrFormat("  polished: %s = %.4g (%+.2f, was %.4g)", key, got->eval_metric(),
                            -ctx.DropOf(got->eval_metric()), chosen->eval_metric()));
    *chosen = *got;
  } else {
    ctx.Say(absl::StrFormat("  polishing reached %s = %.4g, no better than %.4g: the model before it is kept", key,
                            got->eval_metric(), chosen->eval_metric()));
  }
  return absl::OkStatus();
}

double CandidateSeconds(const SearchContext& ctx) {
  return ctx.experiment().compression().candidate_epochs() * ctx.EpochSeconds();
}

double FinalReserveSeconds(const SearchContext& ctx) {
  return std::min(ctx.experiment().compression().final_epochs(), 1) * ctx.FinalEpochSeconds();
}

absl::StatusOr<std::vector<std::string>> PrunersToCompare(SearchContext& ctx, int later_candidates) {
  const CompressionConfig& comp = ctx.experiment().compression();
  std::vector<std::string> all(comp.pruners().begin(), comp.pruners().end());
  if (all.size() <= 1) return all;
  const double candidate = CandidateSeconds(ctx);
  ASSIGN_OR_RETURN(bool fits, ctx.Fits((all.size() + later_candidates) * candidate +
                                       comp.final_epochs() * ctx.FinalEpochSeconds()));
  if (fits) return all;
  ctx.Say(absl::StrFormat("  too little time to compare %zu pruners (%.0f s a candidate): %s alone", all.size(),
                          candidate, all[0]));
  return std::vector<std::string>{all[0]};
}

absl::StatusOr<std::optional<CandidateRecord>> Scored(SearchContext& ctx, const std::string& what,
                                                      absl::StatusOr<CandidateRecord> got, bool* stop) {
  if (absl::IsCancelled(got.status())) {
    ctx.Say(absl::StrCat("  ", got.status().message(), ": search stops"));
    *stop = true;
    return std::optional<CandidateRecord>();
  }
  if (absl::IsDataLoss(got.status())) {
    RETURN_IF_ERROR(ctx.SkipFailed(what, got.status()));
    return std::optional<CandidateRecord>();
  }
  if (!got.ok()) return got.status();
  const CandidateRecord& r = *got;
  ctx.Say(absl::StrFormat("    %s = %.4g (%+.2f)  %.2fx MACs  latency b1 %.3f ms, bN %.2f ms  %.0f s",
                          ctx.experiment().evaluation().eval_key(), r.eval_metric(), -ctx.DropOf(r.eval_metric()),
                          static_cast<double>(ctx.reference().macs()) / std::max<int64_t>(1, r.macs()),
                          r.latency_b1_ms(), r.latency_bn_ms(), r.seconds()));
  return std::optional<CandidateRecord>(r);
}

absl::StatusOr<bool> CandidateFits(SearchContext& ctx) {
  ASSIGN_OR_RETURN(bool fits, ctx.Fits(CandidateSeconds(ctx) + FinalReserveSeconds(ctx)));
  if (!fits) {
    ctx.Say(absl::StrCat("  ", ctx.StopReason(),
                         ": no time left for another candidate and the final fine-tune; search stops"));
  }
  return fits;
}

absl::Status TuneLrOrStop(SearchContext& ctx, const std::string& pruner, double factor, bool* stop) {
  const absl::Status tuned = ctx.TuneLr(pruner, factor);
  if (absl::IsCancelled(tuned)) {
    ctx.Say(absl::StrCat("  ", tuned.message(), ": search stops"));
    *stop = true;
    return absl::OkStatus();
  }
  return tuned;
}

}  // namespace slimfit
