// The `gradual` strategy: pruning in steps along one chain of models, each
// cut from the last and fine-tuned from where it was (AGP / iterative
// pruning in the search: the budget goes into recovery that accumulates,
// not into re-training each candidate from the reference).
//
//   1. F1 = tuning.step_factor (or the most the sensitivity curves allow,
//      if less); the fine-tuning lr is found there (ctx.TuneLr); every
//      allowed pruner cuts the reference to F1 and the best after its short
//      fine-tune starts the chain.
//   2. While the last link's drop is within delta + promising_slack delta
//      and a candidate plus FinalReserveSeconds fit in the budget, the next
//      link is the last one cut further to F x step_factor (the sensitivity
//      allocation for that factor, applied to the channels left) and
//      fine-tuned candidate_epochs. Once the last link qualifies (within
//      delta), a next link need only fit by itself: a result is in hand
//      (anytime), and a link — an epoch that also cuts step_factor further
//      — is worth more than the short final the reserve would keep time
//      for (resnet_small at 7.5 min: one link, then a 1-epoch final that
//      recovered 0.13).
//   3. finals (search/strategies/finals.h) over the chain: the most
//      compressed promising link is fine-tuned final_epochs more.
#include <algorithm>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "common/status_macros.h"
#include "search/strategies/finals.h"
#include "search/strategy.h"

namespace slimfit {
namespace {

class Gradual : public SearchStrategy {
 public:
  absl::StatusOr<std::optional<CandidateRecord>> Search(SearchContext& ctx) override {
    RETURN_IF_ERROR(Chain(ctx));
    return RunFinals(ctx, scored_);
  }

 private:
  // Scores one link (Candidate or CandidateFrom); none when the search
  // stops (budget, interrupt) or the link failed (reported). `best`: the
  // best link so far (the one `from`, or none).
  absl::StatusOr<std::optional<CandidateRecord>> Link(SearchContext& ctx, const CandidateRecord* from,
                                                      const CandidateRecord* best, const std::string& pruner,
                                                      double factor);
  // Whether another link fits (step 2's rule); says why not.
  absl::StatusOr<bool> LinkFits(SearchContext& ctx, const CandidateRecord* best);
  absl::Status Chain(SearchContext& ctx);

  std::vector<CandidateRecord> scored_;
  bool stopped_ = false;
  bool said_no_reserve_ = false;
};

absl::StatusOr<bool> Gradual::LinkFits(SearchContext& ctx, const CandidateRecord* best) {
  if (best == nullptr || !best->qualifies()) return CandidateFits(ctx);
  // Every rank asks the same questions in the same order (Fits is agreed).
  const double link = CandidateSeconds(ctx);
  ASSIGN_OR_RETURN(const bool with_reserve, ctx.Fits(link + FinalReserveSeconds(ctx)));
  if (with_reserve) return true;
  ASSIGN_OR_RETURN(const bool alone, ctx.Fits(link));
  if (!alone) {
    ctx.Say(absl::StrCat("  ", ctx.StopReason(), ": no time left for another step; search stops"));
  } else if (!said_no_reserve_) {
    said_no_reserve_ = true;
    ctx.Say("  the last step is within delta: the next goes ahead without keeping time for a final fine-tune");
  }
  return alone;
}

absl::StatusOr<std::optional<CandidateRecord>> Gradual::Link(SearchContext& ctx, const CandidateRecord* from,
                                                             const CandidateRecord* best, const std::string& pruner,
                                                             double factor) {
  ASSIGN_OR_RETURN(bool fits, LinkFits(ctx, best));
  if (!fits) {
    stopped_ = true;
    return std::optional<CandidateRecord>();
  }
  ctx.Say(absl::StrFormat("  step %zu: %s at %.2fx fewer MACs%s", scored_.size() + 1, pruner, factor,
                          from ? absl::StrFormat(" (cut further from %.2fx)", from->mac_factor()) : ""));
  ASSIGN_OR_RETURN(std::optional<CandidateRecord> got,
                   Scored(ctx, absl::StrFormat("step %s at %.2fx", pruner, factor),
                          from ? ctx.CandidateFrom(*from, pruner, factor) : ctx.Candidate(pruner, factor), &stopped_));
  if (got) scored_.push_back(*got);
  return got;
}

absl::Status Gradual::Chain(SearchContext& ctx) {
  const CompressionConfig& comp = ctx.experiment().compression();
  ASSIGN_OR_RETURN(const double hi, ctx.MaxMacFactor());
  const double step = comp.tuning().step_factor();
  const double slack = comp.final_epochs() > 0 ? comp.tuning().promising_slack() * comp.delta() : 0;
  ctx.Phase("search", absl::StrFormat("gradual pruning up to %.1fx fewer MACs in steps of %.2fx, each cut from the "
                                      "last and fine-tuned %d epoch(s)%s; goes on while within delta + %.2f",
                                      hi, step, comp.candidate_epochs(), ctx.TrainingNote(), slack));
  if (hi < 1.15) {
    ctx.EndPhase();
    return absl::OkStatus();
  }
  double factor = std::min(step, hi);
  RETURN_IF_ERROR(TuneLrOrStop(ctx, comp.pruners(0), factor, &stopped_));
  // The first link: every allowed pruner from the reference, the best kept.
  std::optional<CandidateRecord> last;
  std::string pruner = comp.pruners(0);
  ASSIGN_OR_RETURN(const std::vector<std::string> pruners, PrunersToCompare(ctx, 3));
  for (size_t i = 0; i < pruners.size() && !stopped_; ++i) {
    const std::string& p = pruners[i];
    ASSIGN_OR_RETURN(std::optional<CandidateRecord> got, Link(ctx, nullptr, last ? &*last : nullptr, p, factor));
    if (got && (!last || ctx.DropOf(got->eval_metric()) < ctx.DropOf(last->eval_metric()))) {
      last = got;
      pruner = p;
    }
  }
  if (pruners.size() > 1 && last) ctx.Say(absl::StrCat("  pruner: ", pruner));
  while (!stopped_ && last && ctx.DropOf(last->eval_metric()) <= comp.delta() + slack && factor < hi) {
    factor = std::min(hi, factor * step);
    ASSIGN_OR_RETURN(std::optional<CandidateRecord> got, Link(ctx, &*last, &*last, pruner, factor));
    if (!got) break;
    last = got;
  }
  ctx.EndPhase();
  return absl::OkStatus();
}

const Registration<StrategyFactory> kGradual(StrategyRegistry(), "gradual",
                                             [] { return std::make_unique<Gradual>(); });

}  // namespace
}  // namespace slimfit
