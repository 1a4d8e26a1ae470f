// File: search/strategies/finals.h
//
// The final fine-tunes a strategy ends with, over the candidates it scored:
//   - the scored candidate best on the objective whose drop is within
//     delta + the expected recovery (at first tuning.promising_slack x
//     delta; then 0.8 x what the last final recovered) is fine-tuned
//     final_epochs more — fewer when the budget has less left (anytime:
//     search/budget.h; then the recovery expected of it shrinks in
//     proportion to its epochs, so a cut-short final goes to a candidate
//     nearer the target) — and becomes the result when it qualifies and beats
//     the result so far; a miss lowers the bar; at most tuning.max_finals;
//   - without a qualifying final, the best candidate that already qualifies;
//   - with tuning.polish and a time budget, a final after which no full
//     final would fit takes every epoch that fits instead (LastFinalEpochs:
//     one longer schedule rather than a restart after it);
//   - then Polish (below) of the model chosen.
// Phase "final" in the progress and the report.
#ifndef SLIMFIT_SEARCH_STRATEGIES_FINALS_H_
#define SLIMFIT_SEARCH_STRATEGIES_FINALS_H_

#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "search/strategy.h"

namespace slimfit {

absl::StatusOr<std::optional<CandidateRecord>> RunFinals(SearchContext& ctx, std::vector<CandidateRecord> scored);

// The epochs of a final fine-tune of `candidate` that fit in what is left
// of the budget, each costing ctx.FinalEpochSecondsOf(candidate):
// final_epochs, fewer when less is left (search/budget.h), 0 when not one
// fits or the run is stopping (ctx.StopReason() says why).
absl::StatusOr<int> FinalEpochsThatFit(SearchContext& ctx, const CandidateRecord& candidate);

// tuning.polish (default on), with a time budget only: when what is left
// of the budget cannot take final_epochs twice, the final about to start is
// the last full one: it gets every epoch that fits (more than final_epochs;
// at most twice). 0 otherwise (the final takes FinalEpochsThatFit), when
// polish is off or there is no budget.
absl::StatusOr<int> LastFinalEpochs(SearchContext& ctx, const CandidateRecord& candidate);

// tuning.polish (default on), with a time budget only: the epochs of it
// left (at most final_epochs; none when not one fits) go into fine-tuning
// `chosen` further on a fresh schedule (ctx.Final), and the result replaces
// *chosen only when it qualifies and is better on eval_split. Anytime: the
// budget a run would leave unused becomes margin to delta (accuracy the
// search never chose on). Interrupted: *chosen stays, OK.
absl::Status Polish(SearchContext& ctx, CandidateRecord* chosen);

// One candidate's fine-tune: candidate_epochs x ctx.EpochSeconds().
double CandidateSeconds(const SearchContext& ctx);

// The time a strategy keeps back for the final fine-tune before it starts
// another candidate: one epoch (the final takes what is left, up to
// final_epochs: anytime, so a full final need not be kept back).
double FinalReserveSeconds(const SearchContext& ctx);

// The allowed pruners to compare at the first candidate: all of them when
// they and `later_candidates` more candidates plus a full final fine-tune
// fit in the budget, else the first alone (said in the progress).
absl::StatusOr<std::vector<std::string>> PrunersToCompare(SearchContext& ctx, int later_candidates);

// What a strategy does with the context's answer for a candidate: a record
// is said as a progress line and returned; Cancelled (interrupted) says why,
// sets *stop and returns none; DataLoss (diverged) is reported through
// ctx.SkipFailed and returns none; any other error is returned.
absl::StatusOr<std::optional<CandidateRecord>> Scored(SearchContext& ctx, const std::string& what,
                                                      absl::StatusOr<CandidateRecord> got, bool* stop);

// The time budget's answer before another candidate: true when it and the
// final's reserve fit; otherwise says why the search stops.
absl::StatusOr<bool> CandidateFits(SearchContext& ctx);

// ctx.TuneLr, with Cancelled turned into *stop (said) and OK.
absl::Status TuneLrOrStop(SearchContext& ctx, const std::string& pruner, double factor, bool* stop);

}  // namespace slimfit

#endif  // SLIMFIT_SEARCH_STRATEGIES_FINALS_H_
