// The `bisection` strategy: geometric bisection over the MAC reduction
// factor F, then final fine-tunes of the best candidates.
//
//   1. lo = 1 (the reference), hi = the most the sensitivity curves allow.
//      The fine-tuning lr is found first (ctx.TuneLr at sqrt(lo hi)).
//   2. `tuning.probes` probes at F = sqrt(lo hi): the candidate for F is
//      scored (every allowed pruner at the first probe; the best is kept for
//      the rest); it "goes on" (lo = F) when its drop after the short
//      fine-tune is within delta + promising_slack delta, else hi = F.
//   3. finals: the scored candidate best on the objective whose drop is
//      within delta + the expected recovery (at first promising_slack
//      delta; then 0.8 x what the last final recovered) is fine-tuned
//      final_epochs more — fewer when the budget has less left — and
//      becomes the result when it qualifies and beats the result so far; at
//      most tuning.max_finals finals.
//   4. without a qualifying final, the best candidate that already
//      qualifies.
// Distributed: while one rank scores a probe the others score the probes
// that could follow it (breadth first, the "goes on" branch first); only
// the probes the bisection itself took reach the finals, so the result is
// the one a single process finds.
#include <algorithm>
#include <cmath>
#include <deque>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <tuple>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "common/status_macros.h"
#include "search/budget.h"
#include "search/strategy.h"

namespace slimfit {
namespace {

class Bisection : public SearchStrategy {
 public:
  absl::StatusOr<std::optional<CandidateRecord>> Search(SearchContext& ctx) override {
    RETURN_IF_ERROR(Probes(ctx));
    return Finals(ctx);
  }

 private:
  absl::Status Probes(SearchContext& ctx);
  absl::StatusOr<std::optional<CandidateRecord>> Finals(SearchContext& ctx);

  std::vector<CandidateRecord> scored_;  // the candidates the bisection itself took
};

absl::Status Bisection::Probes(SearchContext& ctx) {
  const CompressionConfig& comp = ctx.experiment().compression();
  const std::string& key = ctx.experiment().evaluation().eval_key();
  ASSIGN_OR_RETURN(double hi, ctx.MaxMacFactor());
  double lo = 1;
  const int probes = comp.tuning().probes();
  const double slack = comp.final_epochs() > 0 ? comp.tuning().promising_slack() * comp.delta() : 0;
  ctx.Phase("search", absl::StrFormat("MAC reduction between 1x and %.1fx; %d probes, %d fine-tuning epoch(s) each%s; "
                                      "a candidate goes on when within delta + %.2f",
                                      hi, probes, comp.candidate_epochs(), ctx.TrainingNote(), slack));
  std::string pruner = comp.pruners(0);
  if (hi / lo > 1.15) {
    const absl::Status tuned = ctx.TuneLr(pruner, std::sqrt(lo * hi));
    if (absl::IsCancelled(tuned)) {
      ctx.Say(absl::StrCat("  ", tuned.message(), ": search stops"));
      ctx.EndPhase();
      return absl::OkStatus();
    }
    RETURN_IF_ERROR(tuned);
  }
  for (int probe = 0; probe < probes && hi / lo > 1.15; ++probe) {
    const double factor = std::sqrt(lo * hi);
    std::vector<std::string> pruners = {pruner};
    if (probe == 0) pruners.assign(comp.pruners().begin(), comp.pruners().end());
    const double candidate_seconds = (comp.candidate_epochs() + comp.final_epochs()) * ctx.EpochSeconds();
    if (ctx.world_size() > 1) {
      ASSIGN_OR_RETURN(bool fits, ctx.Fits(candidate_seconds));
      if (fits) {
        std::vector<std::pair<std::string, double>> wanted;
        for (const std::string& p : pruners) wanted.emplace_back(p, factor);
        std::deque<std::tuple<double, double, int>> next;  // (lo, hi, probe)
        auto children = [&](double l, double h, int d) {
          const double f = std::sqrt(l * h);
          next.emplace_back(f, h, d + 1);
          next.emplace_back(l, f, d + 1);
        };
        children(lo, hi, probe);
        while (static_cast<int>(wanted.size()) < ctx.world_size() && !next.empty()) {
          const auto [l, h, d] = next.front();
          next.pop_front();
          if (d >= probes || h / l <= 1.15) continue;
          wanted.emplace_back(pruner, std::sqrt(l * h));
          children(l, h, d);
        }
        RETURN_IF_ERROR(ctx.Prefetch(wanted));
      }
    }
    double best_drop = 1e300;
    for (const std::string& p : pruners) {
      ASSIGN_OR_RETURN(bool fits, ctx.Fits(candidate_seconds));
      if (!fits) {
        ctx.Say(absl::StrCat("  ", ctx.StopReason(),
                             ": no time left for another candidate and the final fine-tune; search stops"));
        ctx.EndPhase();
        return absl::OkStatus();
      }
      const int left = probes - probe + static_cast<int>(pruners.size()) - 1;
      ctx.Say(absl::StrFormat("  probe %d/%d: %s at %.2fx fewer MACs  (ETA %s)", probe + 1, probes, p, factor,
                              Hms(left * (comp.candidate_epochs() * ctx.EpochSeconds() + 10) +
                                  comp.final_epochs() * ctx.EpochSeconds())));
      absl::StatusOr<CandidateRecord> got = ctx.Candidate(p, factor);
      if (absl::IsCancelled(got.status())) {
        ctx.Say(absl::StrCat("  ", got.status().message(), ": search stops"));
        ctx.EndPhase();
        return absl::OkStatus();
      }
      if (absl::IsDataLoss(got.status())) {
        RETURN_IF_ERROR(ctx.SkipFailed(absl::StrFormat("candidate %s at %.2fx", p, factor), got.status()));
        continue;
      }
      if (!got.ok()) return got.status();
      const CandidateRecord& r = *got;
      scored_.push_back(r);
      ctx.Say(absl::StrFormat("    %s = %.4g (%+.2f)  %.2fx MACs  latency b1 %.3f ms, bN %.2f ms  %.0f s", key,
                              r.eval_metric(), -ctx.DropOf(r.eval_metric()),
                              static_cast<double>(ctx.reference().macs()) / std::max<int64_t>(1, r.macs()),
                              r.latency_b1_ms(), r.latency_bn_ms(), r.seconds()));
      if (ctx.DropOf(r.eval_metric()) < best_drop) {
        best_drop = ctx.DropOf(r.eval_metric());
        pruner = p;
      }
    }
    if (pruners.size() > 1) ctx.Say(absl::StrCat("  pruner: ", pruner));
    if (best_drop <= comp.delta() + slack) {
      lo = factor;
    } else {
      hi = factor;
    }
  }
  ctx.EndPhase();
  return absl::OkStatus();
}

absl::StatusOr<std::optional<CandidateRecord>> Bisection::Finals(SearchContext& ctx) {
  const CompressionConfig& comp = ctx.experiment().compression();
  const std::string& key = ctx.experiment().evaluation().eval_key();
  std::vector<CandidateRecord> scored = scored_;
  std::sort(scored.begin(), scored.end(), [&](const CandidateRecord& a, const CandidateRecord& b) {
    return ctx.Objective(a) < ctx.Objective(b);
  });
  std::optional<CandidateRecord> fp32;
  double recovery = comp.final_epochs() > 0 ? comp.tuning().promising_slack() * comp.delta() : 0;
  const int max_finals = comp.tuning().max_finals();
  ctx.Phase("final", absl::StrFormat("%zu scored candidate(s); fine-tuning the best within delta + %.2f for %d more "
                                     "epochs (at most %d)",
                                     scored.size(), recovery, comp.final_epochs(), max_finals));
  std::set<std::string> tried;
  for (int finals = 0; finals < max_finals && comp.final_epochs() > 0; ++finals) {
    const CandidateRecord* next = nullptr;
    for (const CandidateRecord& c : scored) {
      if (tried.count(c.key()) || (fp32 && ctx.Objective(c) >= ctx.Objective(*fp32))) continue;
      if (ctx.DropOf(c.eval_metric()) <= comp.delta() + recovery) {
        next = &c;
        break;
      }
    }
    if (next == nullptr) break;
    // Anytime: with less time left than final_epochs take, the final
    // fine-tune gets the epochs that fit (a smaller gain, never none while
    // one epoch fits).
    ASSIGN_OR_RETURN(const double left, ctx.SecondsLeft());
    const int epochs = EpochsThatFit(comp.final_epochs(), left, ctx.EpochSeconds());
    ASSIGN_OR_RETURN(bool fits, ctx.Fits(std::max(1, epochs) * ctx.EpochSeconds()));
    if (!fits || epochs < 1) {
      ctx.Say(absl::StrCat("  ", fits ? "time budget" : ctx.StopReason(), ": no time for another final fine-tune"));
      break;
    }
    tried.insert(next->key());
    ctx.Say(absl::StrFormat("  final %d: %s%s", finals + 1, next->description(),
                            epochs < comp.final_epochs()
                                ? absl::StrFormat(" (%d of %d epochs: what the time budget has left)", epochs,
                                                  comp.final_epochs())
                                : std::string()));
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
  ctx.EndPhase();
  return fp32;
}

const Registration<StrategyFactory> kBisection(StrategyRegistry(), "bisection",
                                               [] { return std::make_unique<Bisection>(); });

}  // namespace
}  // namespace slimfit
