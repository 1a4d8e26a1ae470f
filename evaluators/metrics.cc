#include "evaluators/metrics.h"

#include <cmath>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "common/json.h"

namespace slimfit {

void Metrics::Set(const std::string& name, double value, bool higher_is_better) {
  values_[name] = Metric{value, higher_is_better};
}

absl::StatusOr<Metric> Metrics::Get(absl::string_view name) const {
  auto it = values_.find(std::string(name));
  if (it != values_.end()) return it->second;
  std::vector<std::string> names;
  for (const auto& [n, unused] : values_) names.push_back(n);
  return absl::NotFoundError(absl::StrCat("not a computed metric, got \"", name,
                                          "\"; valid: ", names.empty() ? "none computed" : absl::StrJoin(names, ", ")));
}

void Metrics::Merge(const Metrics& other) {
  for (const auto& [n, m] : other.values_) values_[n] = m;
  for (const auto& [n, t] : other.tensors_) tensors_[n] = t;
}

std::string Metrics::ToJson() const {
  std::vector<std::string> parts;
  for (const auto& [n, m] : values_) {
    parts.push_back(absl::StrCat(JsonString(n), ": ", JsonNumber(m.value)));
  }
  return absl::StrCat("{", absl::StrJoin(parts, ", "), "}");
}

std::string Metrics::ToString() const {
  std::vector<std::string> parts;
  for (const auto& [n, m] : values_) parts.push_back(absl::StrFormat("%s %.4f", n, m.value));
  return absl::StrJoin(parts, "  ");
}

double Drop(const Metric& reference, const Metric& candidate) {
  return reference.higher_is_better ? reference.value - candidate.value
                                    : candidate.value - reference.value;
}

}  // namespace slimfit
