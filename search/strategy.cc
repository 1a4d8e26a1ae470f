#include "search/strategy.h"

namespace slimfit {

Registry<StrategyFactory>& StrategyRegistry() {
  static auto* registry = new Registry<StrategyFactory>("search strategy");
  return *registry;
}

}  // namespace slimfit
