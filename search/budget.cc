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

int SensitivityBnBatches(int64_t samples, int64_t eval_samples, int bn_batches) {
  if (bn_batches <= kMinSensitivityBnBatches || eval_samples <= 0 || samples >= eval_samples) return bn_batches;
  const double share = static_cast<double>(std::max<int64_t>(0, samples)) / static_cast<double>(eval_samples);
  return std::clamp(static_cast<int>(std::ceil(bn_batches * share - 1e-9)), kMinSensitivityBnBatches, bn_batches);
}

SensitivityScoring ScaleSensitivity(int points, double seconds, double fixed_seconds, double eval_seconds,
                                    double bn_seconds, int64_t eval_samples, int bn_batches) {
  const SensitivityScoring whole{eval_samples, bn_batches};
  fixed_seconds = std::max(0.0, fixed_seconds);
  eval_seconds = std::max(0.0, eval_seconds);
  bn_seconds = std::max(0.0, bn_seconds);
  if (points <= 0 || !(seconds > 0) || !(eval_seconds + bn_seconds > 0) || eval_samples <= 0) return whole;
  const double per_point = seconds / points;
  if (fixed_seconds + eval_seconds + bn_seconds <= per_point) return whole;
  const double left = std::max(0.0, per_point - fixed_seconds);
  // Both parts scaled alike, then batch norm in whole batches (at least the
  // floor) and the samples in what that leaves.
  const double share = left / (eval_seconds + bn_seconds);
  const int64_t floor = std::min(kMinSensitivitySamples, eval_samples);
  const int bn = SensitivityBnBatches(
      static_cast<int64_t>(std::floor(share * static_cast<double>(eval_samples) + 1e-6)), eval_samples, bn_batches);
  const double for_eval = left - bn_seconds * bn / std::max(1, bn_batches);
  const double eval_share = eval_seconds > 0 ? std::max(0.0, for_eval) / eval_seconds : 1.0;
  const int64_t samples = std::clamp(
      static_cast<int64_t>(std::floor(eval_share * static_cast<double>(eval_samples) + 1e-6)), floor, eval_samples);
  return SensitivityScoring{samples, bn};
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
