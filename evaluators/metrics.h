// File: evaluators/metrics.h
//
// Metrics: named scalar results, each declaring whether higher is better,
// plus named tensors (a confusion matrix). The engine listens to one key
// (eval_key) and measures a drop the right way round for it.
#ifndef SLIMFIT_EVALUATORS_METRICS_H_
#define SLIMFIT_EVALUATORS_METRICS_H_

#include <ATen/core/Tensor.h>

#include <map>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace slimfit {

struct Metric {
  double value = 0;
  bool higher_is_better = true;
};

class Metrics {
 public:
  void Set(const std::string& name, double value, bool higher_is_better);
  // NotFound listing the available names.
  absl::StatusOr<Metric> Get(absl::string_view name) const;
  // Adds every value and tensor of `other` (its entries win).
  void Merge(const Metrics& other);
  const std::map<std::string, Metric>& values() const { return values_; }
  std::map<std::string, at::Tensor>& tensors() { return tensors_; }
  const std::map<std::string, at::Tensor>& tensors() const { return tensors_; }
  // {"accuracy": 91.25, "loss": 0.2875} (values only, sorted by name).
  std::string ToJson() const;
  // "accuracy 91.25  loss 0.2875"
  std::string ToString() const;

 private:
  std::map<std::string, Metric> values_;
  std::map<std::string, at::Tensor> tensors_;
};

// How much `candidate` is worse than `reference` (positive = worse), in the
// metric's own units: ref - cand when higher is better, cand - ref otherwise.
double Drop(const Metric& reference, const Metric& candidate);

}  // namespace slimfit

#endif  // SLIMFIT_EVALUATORS_METRICS_H_
