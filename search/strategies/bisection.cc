// The `bisection` strategy: geometric bisection over the MAC reduction
// factor F, then final fine-tunes of the best candidates.
//
//   1. lo = 1 (the reference), hi = the most the sensitivity curves allow.
//      The fine-tuning lr is found first (ctx.TuneLr at sqrt(lo hi)).
//   2. `tuning.probes` probes at F = sqrt(lo hi) (lo (hi/lo)^(1/4) when
//      the budget cannot take two more candidates and a full final: anytime,
//      what may be the last candidate is likely to qualify); the candidate
//      for F is scored (every allowed pruner at the first probe when they
//      all fit in the budget; the best is kept for the rest); it "goes on"
//      (lo = F) when its drop after the short fine-tune is within delta +
//      promising_slack delta, else hi = F — F being the reduction the
//      candidate reached (its MACs), which rounding widths up can move far
//      from the one aimed at.
//   3. finals (search/strategies/finals.h) over the probes it took.
// A candidate starts only when it and FinalReserveSeconds fit.
// Distributed: while one rank scores a probe the others score the probes
// that could follow it (breadth first, the "goes on" branch first, guessed
// from the aims: a probe that reaches another reduction makes the guesses
// below it miss, which costs those ranks' work, not the result); only the
// probes the bisection itself took reach the finals, so the result is the
// one a single process finds.
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
#include "search/strategies/finals.h"
#include "search/strategy.h"

namespace slimfit {
namespace {

class Bisection : public SearchStrategy {
 public:
  absl::StatusOr<std::optional<CandidateRecord>> Search(SearchContext& ctx) override {
    RETURN_IF_ERROR(Probes(ctx));
    return RunFinals(ctx, scored_);
  }

 private:
  absl::Status Probes(SearchContext& ctx);

  std::vector<CandidateRecord> scored_;  // the candidates the bisection itself took
};

absl::Status Bisection::Probes(SearchContext& ctx) {
  const CompressionConfig& comp = ctx.experiment().compression();
  ASSIGN_OR_RETURN(double hi, ctx.MaxMacFactor());
  double lo = 1;
  const int probes = comp.tuning().probes();
  const double slack = comp.final_epochs() > 0 ? comp.tuning().promising_slack() * comp.delta() : 0;
  ctx.Phase("search", absl::StrFormat("MAC reduction between 1x and %.1fx; %d probes, %d fine-tuning epoch(s) each%s; "
                                      "a candidate goes on when within delta + %.2f",
                                      hi, probes, comp.candidate_epochs(), ctx.TrainingNote(), slack));
  std::string pruner = comp.pruners(0);
  bool stop = false;
  if (hi / lo > 1.15) RETURN_IF_ERROR(TuneLrOrStop(ctx, pruner, std::sqrt(lo * hi), &stop));
  for (int probe = 0; !stop && probe < probes && hi / lo > 1.15; ++probe) {
    // Anytime: when the budget cannot take two more candidates and a full
    // final (this may be the last candidate), the probe goes a quarter of
    // the way (on a log scale) from the last factor that went on instead of
    // halfway, so that it is likely to qualify.
    const double candidate = CandidateSeconds(ctx);
    ASSIGN_OR_RETURN(const bool roomy,
                     ctx.Fits(std::min(2, probes - probe) * candidate + comp.final_epochs() * ctx.FinalEpochSeconds()));
    auto split = [roomy](double l, double h) { return roomy ? std::sqrt(l * h) : l * std::pow(h / l, 0.25); };
    const double factor = split(lo, hi);
    if (!roomy && probe == 0) {
      ctx.Say("  too little time for two candidates and a full final fine-tune: the probe goes a quarter of the "
              "way up, not halfway");
    }
    std::vector<std::string> pruners = {pruner};
    if (probe == 0) {
      ASSIGN_OR_RETURN(pruners, PrunersToCompare(ctx, probes - 1));
      pruner = pruners[0];
    }
    if (ctx.world_size() > 1) {
      ASSIGN_OR_RETURN(bool fits, ctx.Fits(CandidateSeconds(ctx) + FinalReserveSeconds(ctx)));
      if (fits) {
        std::vector<std::pair<std::string, double>> wanted;
        for (const std::string& p : pruners) wanted.emplace_back(p, factor);
        std::deque<std::tuple<double, double, int>> next;  // (lo, hi, probe)
        auto children = [&](double l, double h, int d) {
          const double f = split(l, h);
          next.emplace_back(f, h, d + 1);
          next.emplace_back(l, f, d + 1);
        };
        children(lo, hi, probe);
        while (static_cast<int>(wanted.size()) < ctx.world_size() && !next.empty()) {
          const auto [l, h, d] = next.front();
          next.pop_front();
          if (d >= probes || h / l <= 1.15) continue;
          wanted.emplace_back(pruner, split(l, h));
          children(l, h, d);
        }
        RETURN_IF_ERROR(ctx.Prefetch(wanted));
      }
    }
    double best_drop = 1e300;
    double reached = factor;  // the MAC reduction the best candidate reached
    for (const std::string& p : pruners) {
      ASSIGN_OR_RETURN(bool fits, CandidateFits(ctx));
      if (!fits) {
        stop = true;
        break;
      }
      const int left = probes - probe + static_cast<int>(pruners.size()) - 1;
      ctx.Say(
          absl::StrFormat("  probe %d/%d: %s at %.2fx fewer MACs  (ETA %s)", probe + 1, probes, p, factor,
                          Hms(left * (CandidateSeconds(ctx) + 10) + comp.final_epochs() * ctx.FinalEpochSeconds())));
      ASSIGN_OR_RETURN(std::optional<CandidateRecord> r,
                       Scored(ctx, absl::StrFormat("candidate %s at %.2fx", p, factor), ctx.Candidate(p, factor),
                              &stop));
      if (stop) break;
      if (!r) continue;
      scored_.push_back(*r);
      if (ctx.DropOf(r->eval_metric()) < best_drop) {
        best_drop = ctx.DropOf(r->eval_metric());
        reached = static_cast<double>(ctx.reference().macs()) / std::max<int64_t>(1, r->macs());
        pruner = p;
      }
    }
    if (stop) break;
    if (pruners.size() > 1) ctx.Say(absl::StrCat("  pruner: ", pruner));
    // The bounds move to the reduction the candidate reached, not the one
    // it aimed at: widths rounded up to fast multiples (tuning.round_to)
    // can leave a cut far below its aim (vgg_small: aimed at 7.9x, 5.6x
    // reached), and a bisection over aims would go on searching above a
    // factor no candidate was scored at. A reach outside (lo, hi) says
    // nothing new about the interval: the aim moves the bound then.
    const double bound = reached > lo && reached < hi ? reached : factor;
    if (reached != factor) {
      ctx.Say(absl::StrFormat("  aimed at %.2fx, reached %.2fx: the search %s from %.2fx", factor, reached,
                              best_drop <= comp.delta() + slack ? "goes on" : "stays below", bound));
    }
    if (best_drop <= comp.delta() + slack) {
      lo = bound;
    } else {
      hi = bound;
    }
  }
  ctx.EndPhase();
  return absl::OkStatus();
}

const Registration<StrategyFactory> kBisection(StrategyRegistry(), "bisection",
                                               [] { return std::make_unique<Bisection>(); });

}  // namespace
}  // namespace slimfit
