#include "search/in_turns.h"

#include <algorithm>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"

namespace slimfit {

absl::StatusOr<std::vector<Latency>> FastestInTurns(int n, int rounds,
                                                    const std::function<absl::StatusOr<Latency>(int)>& time_one) {
  if (n < 0) return absl::InvalidArgumentError(absl::StrCat("FastestInTurns: n is ", n, "; valid: >= 0"));
  if (rounds < 1)
    return absl::InvalidArgumentError(absl::StrCat("FastestInTurns: rounds is ", rounds, "; valid: >= 1"));
  std::vector<Latency> best(n);
  for (int round = 0; round < rounds; ++round) {
    for (int i = 0; i < n; ++i) {
      absl::StatusOr<Latency> t = time_one(i);
      if (!t.ok()) return t.status();
      best[i].b1_ms = round == 0 ? t->b1_ms : std::min(best[i].b1_ms, t->b1_ms);
      best[i].bn_ms = round == 0 ? t->bn_ms : std::min(best[i].bn_ms, t->bn_ms);
    }
  }
  return best;
}

}  // namespace slimfit
