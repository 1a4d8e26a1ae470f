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
//      fine-tuned candidate_epochs.
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
  // stops (budget, interrupt) or the link failed (reported).
  absl::StatusOr<std::optional<CandidateRecord>> Link(SearchContext& ctx, const CandidateRecord* from,
                                                      const std::string& pruner, double factor);
  absl::Status Chain(SearchContext& ctx);

  std::vector<CandidateRecord> scored_;
  bool stopped_ = false;
};

absl::StatusOr<std::optional<CandidateRecord>> Gradual::Link(SearchContext& ctx, const CandidateRecord* from,
                                                             const std::string& pruner, double factor) {
  const CompressionConfig& comp = ctx.experiment().compression();
  ASSIGN_OR_RETURN(bool fits, ctx.Fits(comp.candidate_epochs() * ctx.EpochSeconds() + FinalReserveSeconds(ctx)));
  if (!fits) {
    ctx.Say(absl::StrCat("  ", ctx.StopReason(), ": no time left for another step and the final fine-tune; "
                         "search stops"));
    stopped_ = true;
    return std::optional<CandidateRecord>();
  }
  ctx.Say(absl::StrFormat("  step %zu: %s at %.2fx fewer MACs%s", scored_.size() + 1, pruner, factor,
                          from ? absl::StrFormat(" (cut further from %.2fx)", from->mac_factor()) : ""));
  absl::StatusOr<CandidateRecord> got = from ? ctx.CandidateFrom(*from, pruner, factor) : ctx.Candidate(pruner, factor);
  if (absl::IsCancelled(got.status())) {
    ctx.Say(absl::StrCat("  ", got.status().message(), ": search stops"));
    stopped_ = true;
    return std::optional<CandidateRecord>();
  }
  if (absl::IsDataLoss(got.status())) {
    RETURN_IF_ERROR(ctx.SkipFailed(absl::StrFormat("step %s at %.2fx", pruner, factor), got.status()));
    return std::optional<CandidateRecord>();
  }
  if (!got.ok()) return got.status();
  scored_.push_back(*got);
  ctx.Say(absl::StrFormat("    %s = %.4g (%+.2f)  %.2fx MACs  latency b1 %.3f ms, bN %.2f ms  %d epoch(s) in all  %.0f s",
                          ctx.experiment().evaluation().eval_key(), got->eval_metric(),
                          -ctx.DropOf(got->eval_metric()),
                          static_cast<double>(ctx.reference().macs()) / std::max<int64_t>(1, got->macs()),
                          got->latency_b1_ms(), got->latency_bn_ms(), got->epochs(), got->seconds()));
  return std::optional<CandidateRecord>(*got);
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
  const absl::Status tuned = ctx.TuneLr(comp.pruners(0), factor);
  if (absl::IsCancelled(tuned)) {
    ctx.Say(absl::StrCat("  ", tuned.message(), ": search stops"));
    ctx.EndPhase();
    return absl::OkStatus();
  }
  RETURN_IF_ERROR(tuned);
  // The first link: every allowed pruner from the reference, the best kept.
  std::optional<CandidateRecord> last;
  std::string pruner = comp.pruners(0);
  ASSIGN_OR_RETURN(const std::vector<std::string> pruners, PrunersToCompare(ctx, 3));
  for (const std::string& p : pruners) {
    ASSIGN_OR_RETURN(std::optional<CandidateRecord> got, Link(ctx, nullptr, p, factor));
    if (stopped_) break;
    if (got && (!last || ctx.DropOf(got->eval_metric()) < ctx.DropOf(last->eval_metric()))) {
      last = got;
      pruner = p;
    }
  }
  if (pruners.size() > 1 && last) ctx.Say(absl::StrCat("  pruner: ", pruner));
  while (!stopped_ && last && ctx.DropOf(last->eval_metric()) <= comp.delta() + slack && factor < hi) {
    factor = std::min(hi, factor * step);
    ASSIGN_OR_RETURN(std::optional<CandidateRecord> got, Link(ctx, &*last, pruner, factor));
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
