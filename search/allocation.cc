#include "search/allocation.h"

#include <algorithm>
#include <cmath>

#include "absl/strings/match.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"

namespace slimfit {

std::string RatiosKey(const Ratios& ratios) {
  std::vector<std::string> parts;
  for (const auto& [path, r] : ratios) {
    if (r > 0) parts.push_back(absl::StrFormat("%s=%.2f", path, r));
  }
  return parts.empty() ? "none" : absl::StrJoin(parts, ",");
}

std::string DepthKey(const std::string& block_path) { return "depth:" + block_path; }

bool IsDepthKey(const std::string& path) { return absl::StartsWith(path, "depth:"); }

std::string BlockOfDepthKey(const std::string& path) {
  return IsDepthKey(path) ? path.substr(std::string("depth:").size()) : std::string();
}

double RatioAtTolerance(const std::vector<std::pair<double, double>>& curve, double tau) {
  double r = 0, worst = 0;
  for (size_t i = 1; i < curve.size(); ++i) {
    const double r0 = curve[i - 1].first, d0 = worst;
    const double r1 = curve[i].first, d1 = std::max(worst, curve[i].second);
    worst = d1;
    if (d1 <= tau) {
      r = r1;
      continue;
    }
    if (d1 > d0) r = r0 + (tau - d0) / (d1 - d0) * (r1 - r0);
    break;
  }
  return std::floor(std::max(0.0, r) * 100 + 1e-9) / 100;
}

double LatencySavingSlope(double ratio, double latency_vs_reference) {
  if (ratio <= 0) return 0;
  return std::max(0.0, 1 - latency_vs_reference) / ratio;
}

std::vector<double> ToleranceWeights(const std::vector<double>& savings) {
  double sum = 0;
  for (double s : savings) sum += std::max(0.0, s);
  std::vector<double> w(savings.size(), 1.0);
  if (sum <= 0) return w;
  const double mean = sum / static_cast<double>(savings.size());
  for (size_t i = 0; i < savings.size(); ++i) {
    w[i] = std::clamp(std::max(0.0, savings[i]) / mean, kMinToleranceWeight, kMaxToleranceWeight);
  }
  return w;
}

Ratios AllocateAt(const std::vector<PruneGroup>& groups, double t) {
  Ratios out;
  for (const PruneGroup& g : groups) {
    const double r =
        t <= 1 ? t * RatioAtTolerance(g.curve, 0) : RatioAtTolerance(g.curve, (t - 1) * std::max(1e-3, g.weight));
    // A block goes only when its whole drop is within the tolerance.
    out[g.path] = g.whole ? (r >= 1 - 1e-9 ? 1.0 : 0.0) : std::floor(r * 100 + 1e-9) / 100;
  }
  return out;
}

absl::StatusOr<Ratios> AllocateForMacs(const std::vector<PruneGroup>& groups, double goal_macs, const MacsOf& macs_of) {
  double hi_tau = 0;  // a knob past which no group's ratio grows
  for (const PruneGroup& g : groups) {
    for (const auto& [r, d] : g.curve) hi_tau = std::max(hi_tau, d / std::max(1e-3, g.weight));
  }
  const double hi_t = 1 + hi_tau + 1;
  Ratios best = AllocateAt(groups, hi_t);
  absl::StatusOr<int64_t> most = macs_of(best);
  if (!most.ok()) return most.status();
  if (*most >= goal_macs) return best;  // the most the curves allow
  double lo = 0, hi = hi_t;
  for (int i = 0; i < 16; ++i) {
    const double t = 0.5 * (lo + hi);
    Ratios ratios = AllocateAt(groups, t);
    absl::StatusOr<int64_t> macs = macs_of(ratios);
    if (!macs.ok()) return macs.status();
    if (*macs <= goal_macs) {
      hi = t;
      best = ratios;
      if (*macs >= goal_macs * 0.97) break;
    } else {
      lo = t;
    }
  }
  return best;
}

Ratios RatiosOfWhatIsLeft(const Ratios& target, const Ratios& base, const std::vector<PruneGroup>& groups,
                          double max_ratio) {
  Ratios out = target;
  for (auto& [path, r] : out) {
    if (IsDepthKey(path)) continue;
    const auto old = base.find(path);
    const double before = old == base.end() ? 0.0 : old->second;
    int64_t n = 0;
    for (const PruneGroup& g : groups) {
      if (g.path == path) n = g.channels;
    }
    const int64_t kept_before = n - std::llround(before * n), kept_after = n - std::llround(r * n);
    r = kept_before <= 0 || kept_after >= kept_before
            ? 0.0
            : std::min(max_ratio, static_cast<double>(kept_before - kept_after) / static_cast<double>(kept_before));
  }
  return out;
}

}  // namespace slimfit
