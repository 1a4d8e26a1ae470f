#include "search/widths.h"

#include <algorithm>
#include <cmath>

namespace slimfit {

std::map<std::string, double> RoundKeptUp(const std::map<std::string, double>& ratios,
                                          const std::map<std::string, int64_t>& channels, int multiple) {
  std::map<std::string, double> out;
  for (const auto& [path, n] : channels) {
    const auto it = ratios.find(path);
    const double r = it == ratios.end() ? 0.0 : it->second;
    if (multiple <= 1 || n <= 0) {
      out[path] = r;
      continue;
    }
    const int64_t kept = n - std::llround(r * static_cast<double>(n));
    const int64_t up = std::min<int64_t>(n, (kept + multiple - 1) / multiple * multiple);
    out[path] = static_cast<double>(n - up) / static_cast<double>(n);
  }
  return out;
}

size_t PickWidthVariant(const std::vector<WidthVariant>& variants, double tolerance) {
  double fastest = variants[0].latency;
  for (const WidthVariant& v : variants) fastest = std::min(fastest, v.latency);
  size_t best = variants.size();
  for (size_t i = 0; i < variants.size(); ++i) {
    if (variants[i].latency > fastest * (1 + tolerance)) continue;
    if (best == variants.size() || variants[i].macs > variants[best].macs) best = i;
  }
  return best;
}

}  // namespace slimfit
