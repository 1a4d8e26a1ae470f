#include "search/budget.h"

#include <algorithm>
#include <cmath>
#include <cstdio>

namespace slimfit {

double EpochSecondsPrior(double eval_seconds, int64_t train_samples, int64_t eval_samples) {
  const double scale = static_cast<double>(std::max<int64_t>(0, train_samples)) /
                       static_cast<double>(std::max<int64_t>(1, eval_samples));
  return std::max(1.0, 3.0 * std::max(0.0, eval_seconds) * scale);
}

int EpochsThatFit(int wanted, double seconds_left, double epoch_seconds) {
  if (wanted <= 0 || !(seconds_left > 0)) return 0;
  if (!(epoch_seconds > 0)) return wanted;
  const double fit = std::floor(seconds_left / epoch_seconds + 1e-9);
  return fit >= wanted ? wanted : static_cast<int>(fit);
}

std::string Hms(double seconds) {
  const long long t = static_cast<long long>(std::max(0.0, seconds) + 0.5);
  char buf[32];
  if (t >= 3600) {
    std::snprintf(buf, sizeof(buf), "%lld:%02lld:%02lld", t / 3600, t / 60 % 60, t % 60);
  } else {
    std::snprintf(buf, sizeof(buf), "%lld:%02lld", t / 60, t % 60);
  }
  return buf;
}

}  // namespace slimfit
