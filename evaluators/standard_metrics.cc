// The registered evaluators: accuracy (top-k), mean_loss, regression,
// classification_report.
#include <ATen/ATen.h>

#include <cmath>

#include "absl/strings/str_cat.h"
#include "common/field_error.h"
#include "common/status_macros.h"
#include "common/torch_status.h"
#include "evaluators/evaluation_function.h"

namespace slimfit {
namespace {

absl::Status CheckStateSize(const char* metric, const std::vector<double>& state, size_t expected) {
  if (state.size() == expected) return absl::OkStatus();
  return absl::InvalidArgumentError(absl::StrCat(metric, ": a reduced state of ", state.size(),
                                                 " numbers, expected ", expected,
                                                 " (every process must evaluate at least one batch)"));
}

using internal::PredictionOf;
using internal::TargetOf;

// Resolves target/output indices like a loss would.
absl::StatusOr<std::pair<int, int>> Indices(const EvaluatorConfig& c, const EvaluatorContext& ctx) {
  LossConfig as_loss;
  if (c.has_target_index()) as_loss.set_target_index(c.target_index());
  ASSIGN_OR_RETURN(int target, internal::ResolveTargetIndex(as_loss, ctx.forward_pass->pattern()));
  if (c.output_index() < 0) {
    return FieldError("output_index", "negative", c.output_index(), ">= 0");
  }
  return std::make_pair(target, static_cast<int>(c.output_index()));
}

class PredTargetMetric : public BatchMetric {
 public:
  explicit PredTargetMetric(std::pair<int, int> idx) : target_(idx.first), output_(idx.second) {}
  absl::Status Update(const c10::IValue& output, const Batch& batch) final {
    ASSIGN_OR_RETURN(at::Tensor pred, PredictionOf(output, output_));
    ASSIGN_OR_RETURN(at::Tensor target, TargetOf(batch, target_));
    return TorchCall("", [&] { return Add(pred, target.to(pred.device())); });
  }

 protected:
  virtual absl::Status Add(const at::Tensor& pred, const at::Tensor& target) = 0;

 private:
  int target_, output_;
};

class Accuracy : public PredTargetMetric {
 public:
  Accuracy(std::pair<int, int> idx, std::vector<int64_t> ks) : PredTargetMetric(idx), ks_(std::move(ks)) {}
  void Reset() override {
    correct_.assign(ks_.size(), 0);
    seen_ = 0;
  }
  absl::Status Add(const at::Tensor& pred, const at::Tensor& target) override {
    if (pred.dim() != 2) {
      return absl::InvalidArgumentError(absl::StrCat(
          "accuracy: needs [N, classes] predictions, got ", pred.dim(), " dimensions"));
    }
    const int64_t kmax = *std::max_element(ks_.begin(), ks_.end());
    if (kmax > pred.size(1)) {
      return FieldError("accuracy.top_k", absl::StrCat("more than the model's ", pred.size(1), " classes"), kmax,
                        absl::StrCat("<= ", pred.size(1)));
    }
    // A stable descending sort, not topk: among tied scores the lower class
    // index ranks first, as PyTorch's argmax picks it (topk's order among
    // ties is unspecified, and int8 models' quantized logits tie often:
    // 0.3 points of a LeNet-5's accuracy).
    at::Tensor top = std::get<1>(pred.sort(/*stable=*/true, /*dim=*/1, /*descending=*/true)).narrow(1, 0, kmax);
    at::Tensor hit = top.eq(target.view({-1, 1}));
    for (size_t i = 0; i < ks_.size(); ++i) {
      correct_[i] += hit.narrow(1, 0, ks_[i]).any(1).sum().item<int64_t>();
    }
    seen_ += pred.size(0);
    return absl::OkStatus();
  }
  absl::StatusOr<Metrics> Compute() const override {
    Metrics m;
    for (size_t i = 0; i < ks_.size(); ++i) {
      const double acc = seen_ == 0 ? 0 : 100.0 * correct_[i] / seen_;
      m.Set(ks_[i] == 1 ? "accuracy" : absl::StrCat("top", ks_[i], "_accuracy"), acc, true);
    }
    return m;
  }
  std::optional<std::vector<double>> SumState() const override {
    std::vector<double> s(correct_.begin(), correct_.end());
    s.push_back(static_cast<double>(seen_));
    return s;
  }
  absl::Status SetSumState(const std::vector<double>& s) override {
    RETURN_IF_ERROR(CheckStateSize("accuracy", s, ks_.size() + 1));
    for (size_t i = 0; i < ks_.size(); ++i) correct_[i] = std::llround(s[i]);
    seen_ = std::llround(s.back());
    return absl::OkStatus();
  }

 private:
  std::vector<int64_t> ks_;
  std::vector<int64_t> correct_;
  int64_t seen_ = 0;
};

class Regression : public PredTargetMetric {
 public:
  using PredTargetMetric::PredTargetMetric;
  void Reset() override { sq_ = abs_ = 0; n_ = 0; }
  absl::Status Add(const at::Tensor& pred, const at::Tensor& target) override {
    at::Tensor d = (pred.to(at::kDouble) - target.to(at::kDouble).view(pred.sizes()));
    sq_ += d.pow(2).sum().item<double>();
    abs_ += d.abs().sum().item<double>();
    n_ += d.numel();
    return absl::OkStatus();
  }
  absl::StatusOr<Metrics> Compute() const override {
    Metrics m;
    m.Set("mse", n_ == 0 ? 0 : sq_ / n_, false);
    m.Set("mae", n_ == 0 ? 0 : abs_ / n_, false);
    return m;
  }
  std::optional<std::vector<double>> SumState() const override {
    return std::vector<double>{sq_, abs_, static_cast<double>(n_)};
  }
  absl::Status SetSumState(const std::vector<double>& s) override {
    RETURN_IF_ERROR(CheckStateSize("regression", s, 3));
    sq_ = s[0];
    abs_ = s[1];
    n_ = std::llround(s[2]);
    return absl::OkStatus();
  }

 private:
  double sq_ = 0, abs_ = 0;
  int64_t n_ = 0;
};

class ClassificationReport : public PredTargetMetric {
 public:
  ClassificationReport(std::pair<int, int> idx, int64_t k) : PredTargetMetric(idx), k_(k) {}
  void Reset() override { confusion_ = at::zeros({k_, k_}, at::kLong); }
  absl::Status Add(const at::Tensor& pred, const at::Tensor& target) override {
    if (pred.dim() != 2 || pred.size(1) != k_) {
      return FieldError("classification_report.num_classes",
                        pred.dim() == 2
                            ? absl::StrCat("not the model's ", pred.size(1), " classes")
                            : absl::StrCat("the model's predictions have ", pred.dim(), " dimensions, not 2"),
                        k_, pred.dim() == 2 ? absl::StrCat(pred.size(1)) : "");
    }
    at::Tensor t = target.to(at::kLong).cpu();
    if (t.numel() > 0 && (t.min().item<int64_t>() < 0 || t.max().item<int64_t>() >= k_)) {
      return absl::InvalidArgumentError(absl::StrCat("classification_report: a target is outside [0, ", k_, ")"));
    }
    at::Tensor p = pred.argmax(1).cpu();
    confusion_.view(-1).index_add_(0, t * k_ + p, at::ones_like(t));
    return absl::OkStatus();
  }
  absl::StatusOr<Metrics> Compute() const override {
    Metrics m;
    at::Tensor per_row = confusion_.sum(1).to(at::kDouble);
    at::Tensor diag = confusion_.diagonal().to(at::kDouble);
    double sum = 0;
    int present = 0;
    for (int64_t c = 0; c < k_; ++c) {
      const double n = per_row[c].item<double>();
      const double acc = n == 0 ? 0 : 100.0 * diag[c].item<double>() / n;
      m.Set(absl::StrCat("class", c, "_accuracy"), acc, true);
      if (n > 0) {
        sum += acc;
        ++present;
      }
    }
    m.Set("balanced_accuracy", present == 0 ? 0 : sum / present, true);
    m.tensors()["confusion_matrix"] = confusion_.clone();
    return m;
  }
  std::optional<std::vector<double>> SumState() const override {
    at::Tensor flat = confusion_.to(at::kDouble).contiguous().view(-1);
    return std::vector<double>(flat.data_ptr<double>(), flat.data_ptr<double>() + flat.numel());
  }
  absl::Status SetSumState(const std::vector<double>& s) override {
    RETURN_IF_ERROR(CheckStateSize("classification_report", s, static_cast<size_t>(k_ * k_)));
    confusion_ = at::tensor(s, at::kDouble).round().to(at::kLong).view({k_, k_});
    return absl::OkStatus();
  }

 private:
  int64_t k_;
  at::Tensor confusion_;
};

class MeanLoss : public BatchMetric {
 public:
  explicit MeanLoss(std::unique_ptr<LossFunction> loss) : loss_(std::move(loss)) {}
  void Reset() override {
    sums_.clear();
    n_ = 0;
  }
  absl::Status Update(const c10::IValue& output, const Batch& batch) override {
    ASSIGN_OR_RETURN(LossTerms terms, loss_->FromOutput(output, batch));
    const int64_t size = BatchRows(batch).value_or(1);
    for (const auto& [name, t] : terms.terms) sums_[name] += t.item<double>() * size;
    sums_[""] += terms.Total().item<double>() * size;
    n_ += size;
    return absl::OkStatus();
  }
  absl::StatusOr<Metrics> Compute() const override {
    Metrics m;
    for (const auto& [name, s] : sums_) {
      m.Set(name.empty() ? "loss" : absl::StrCat("loss/", name), n_ == 0 ? 0 : s / n_, false);
    }
    return m;
  }
  // The samples, then the sums in name order (the same loss gives the same
  // names on every part of the data that has a batch).
  std::optional<std::vector<double>> SumState() const override {
    std::vector<double> s{static_cast<double>(n_)};
    for (const auto& [name, v] : sums_) s.push_back(v);
    return s;
  }
  absl::Status SetSumState(const std::vector<double>& s) override {
    RETURN_IF_ERROR(CheckStateSize("mean_loss", s, sums_.size() + 1));
    n_ = std::llround(s[0]);
    size_t i = 1;
    for (auto& [name, v] : sums_) v = s[i++];
    return absl::OkStatus();
  }

 private:
  std::unique_ptr<LossFunction> loss_;
  std::map<std::string, double> sums_;
  int64_t n_ = 0;
};

absl::StatusOr<std::unique_ptr<BatchMetric>> MakeAccuracy(const EvaluatorConfig& c,
                                                          const EvaluatorContext& ctx) {
  ASSIGN_OR_RETURN(auto idx, Indices(c, ctx));
  std::vector<int64_t> ks(c.accuracy().top_k().begin(), c.accuracy().top_k().end());
  if (ks.empty()) ks = {1};
  for (size_t i = 0; i < ks.size(); ++i) {
    if (ks[i] < 1) {
      return FieldError(IndexedField("accuracy.top_k", static_cast<int>(i)), "below 1", ks[i], ">= 1");
    }
  }
  return std::make_unique<Accuracy>(idx, ks);
}

absl::StatusOr<std::unique_ptr<BatchMetric>> MakeRegression(const EvaluatorConfig& c,
                                                            const EvaluatorContext& ctx) {
  ASSIGN_OR_RETURN(auto idx, Indices(c, ctx));
  return std::make_unique<Regression>(idx);
}

absl::StatusOr<std::unique_ptr<BatchMetric>> MakeReport(const EvaluatorConfig& c,
                                                        const EvaluatorContext& ctx) {
  ASSIGN_OR_RETURN(auto idx, Indices(c, ctx));
  const int64_t k = c.classification_report().num_classes();
  if (k < 2) {
    return FieldError("classification_report.num_classes", "required", k, ">= 2");
  }
  auto r = std::make_unique<ClassificationReport>(idx, k);
  r->Reset();
  return r;
}

absl::StatusOr<std::unique_ptr<BatchMetric>> MakeMeanLoss(const EvaluatorConfig& c,
                                                          const EvaluatorContext& ctx) {
  if (!c.mean_loss().has_loss()) return FieldError("mean_loss.loss", "required", "", "a loss, as in the loss block");
  LossContext lc = ctx.loss_context;
  lc.forward_pass = ctx.forward_pass;
  ASSIGN_OR_RETURN(auto loss, MakeLoss(c.mean_loss().loss(), lc), AtField("mean_loss.loss"));
  RETURN_IF_ERROR(loss->ToDevice(ctx.device), AtField("mean_loss.loss"));

  return std::make_unique<MeanLoss>(std::move(loss));
}

const Registration<BatchMetricFactory> kAccuracy(EvaluatorRegistry(), "accuracy", &MakeAccuracy);
const Registration<BatchMetricFactory> kMeanLoss(EvaluatorRegistry(), "mean_loss", &MakeMeanLoss);
const Registration<BatchMetricFactory> kRegression(EvaluatorRegistry(), "regression", &MakeRegression);
const Registration<BatchMetricFactory> kReport(EvaluatorRegistry(), "classification_report", &MakeReport);

}  // namespace
}  // namespace slimfit
