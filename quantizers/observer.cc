#include "quantizers/observer.h"

#include <ATen/ATen.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <vector>

#include "absl/strings/str_cat.h"
#include "common/field_error.h"
#include "common/status_macros.h"
#include "common/text_proto.h"
#include "common/torch_status.h"

namespace slimfit {
namespace {

constexpr int64_t kDefaultMaxSamples = 65536;
constexpr double kMinScale = 1e-8;

// [C, n] float64 view of `x` (C = 1 per tensor), non-finite values zeroed.
at::Tensor Rows(const at::Tensor& x, bool per_channel, int64_t axis, int64_t* non_finite) {
  at::Tensor d = x.detach().to(at::kDouble);
  at::Tensor finite = at::isfinite(d);
  *non_finite += d.numel() - finite.sum().item<int64_t>();
  d = at::where(finite, d, at::zeros_like(d));
  if (!per_channel) return d.reshape({1, -1});
  return d.movedim(axis, 0).reshape({d.size(axis), -1});
}

class MinMaxObserver : public Observer {
 public:
  using Observer::Observer;

 protected:
  void Update(const at::Tensor& rows) override {
    at::Tensor lo = std::get<0>(rows.min(1)), hi = std::get<0>(rows.max(1));
    lo_ = lo_.defined() ? at::minimum(lo_, lo) : lo;
    hi_ = hi_.defined() ? at::maximum(hi_, hi) : hi;
  }
  void Range(at::Tensor* lo, at::Tensor* hi) const override {
    *lo = lo_;
    *hi = hi_;
  }

 private:
  at::Tensor lo_, hi_;
};

class MovingAverageObserver : public Observer {
 public:
  MovingAverageObserver(const ObserverConfig& c, double constant) : Observer(c), c_(constant) {}

 protected:
  void Update(const at::Tensor& rows) override {
    at::Tensor lo = std::get<0>(rows.min(1)), hi = std::get<0>(rows.max(1));
    if (!lo_.defined()) {
      lo_ = lo;
      hi_ = hi;
      return;
    }
    lo_ = lo_ + c_ * (lo - lo_);
    hi_ = hi_ + c_ * (hi - hi_);
  }
  void Range(at::Tensor* lo, at::Tensor* hi) const override {
    *lo = lo_;
    *hi = hi_;
  }

 private:
  double c_;
  at::Tensor lo_, hi_;
};

// Keeps a bounded, seeded random sample of columns.
class SampledObserver : public Observer {
 public:
  SampledObserver(const ObserverConfig& c, int64_t max_samples)
      : Observer(c), max_(max_samples), gen_(at::detail::createCPUGenerator(0)) {}

 protected:
  void Update(const at::Tensor& rows) override {
    samples_ = samples_.defined() ? at::cat({samples_, rows}, 1) : rows;
    if (samples_.size(1) > max_) {
      at::Tensor idx = at::randperm(samples_.size(1), gen_, at::TensorOptions().dtype(at::kLong)).narrow(0, 0, max_);
      samples_ = samples_.index_select(1, idx);
    }
    at::Tensor lo = std::get<0>(rows.min(1)), hi = std::get<0>(rows.max(1));
    min_ = min_.defined() ? at::minimum(min_, lo) : lo;
    max_seen_ = max_seen_.defined() ? at::maximum(max_seen_, hi) : hi;
  }
  at::Tensor samples_, min_, max_seen_;

 private:
  int64_t max_;
  at::Generator gen_;
};

class PercentileObserver : public SampledObserver {
 public:
  PercentileObserver(const ObserverConfig& c, double percentile, int64_t max_samples)
      : SampledObserver(c, max_samples), q_(percentile / 100.0) {}

 protected:
  void Range(at::Tensor* lo, at::Tensor* hi) const override {
    if (config().symmetric()) {
      *hi = at::quantile(samples_.abs(), q_, 1);
      *lo = -*hi;
      return;
    }
    *lo = at::quantile(samples_, 1.0 - q_, 1);
    *hi = at::quantile(samples_, q_, 1);
  }

 private:
  double q_;
};

class MseObserver : public SampledObserver {
 public:
  MseObserver(const ObserverConfig& c, int steps, int64_t max_samples) : SampledObserver(c, max_samples), steps_(steps) {}

 protected:
  void Range(at::Tensor* lo, at::Tensor* hi) const override {
    at::Tensor best_err, best_lo, best_hi;
    for (int i = 0; i < steps_; ++i) {
      const double a = steps_ == 1 ? 1.0 : 0.3 + 0.7 * static_cast<double>(i) / (steps_ - 1);
      at::Tensor l = min_ * a, h = max_seen_ * a;
      QuantParams p = ParamsForRange(l, h, config().bits() ? config().bits() : 8, config().symmetric(), 0);
      at::Tensor err = (FakeQuantize(samples_, p) - samples_).pow(2).mean(1);
      if (!best_err.defined()) {
        best_err = err;
        best_lo = l;
        best_hi = h;
        continue;
      }
      at::Tensor better = err < best_err;
      best_err = at::where(better, err, best_err);
      best_lo = at::where(better, l, best_lo);
      best_hi = at::where(better, h, best_hi);
    }
    *lo = best_lo;
    *hi = best_hi;
  }

 private:
  int steps_;
};

// Entropy calibration on |x| (one histogram; per tensor only).
class HistogramObserver : public Observer {
 public:
  HistogramObserver(const ObserverConfig& c, int bins) : Observer(c), bins_(bins), pos_(bins, 0.0), neg_(bins, 0.0) {}

 protected:
  // Magnitudes of the positive and of the negative values go to two
  // histograms of one bin width, so each side gets its own threshold: a
  // normalised image, say, has its bulk at the negative end and its detail
  // on the positive side — one threshold on |x| would clip the detail.
  void Update(const at::Tensor& rows) override {
    at::Tensor v = rows.reshape({-1});
    lo_ = std::min(lo_, v.min().item<double>());
    hi_ = std::max(hi_, v.max().item<double>());
    const double m = std::max(hi_, -lo_);
    if (m > width_ * bins_) Rebin(m);
    if (width_ <= 0) return;
    Add(v.masked_select(v > 0), &pos_);
    Add(-v.masked_select(v < 0), &neg_);
  }
  void Range(at::Tensor* lo, at::Tensor* hi) const override {
    const int bits = config().bits() ? config().bits() : 8;
    const bool symmetric = config().symmetric();
    // Codes per side: all of them for one-signed data, half when signed.
    const int levels = (lo_ < 0 && hi_ > 0) || symmetric ? (1 << (bits - 1)) : (1 << bits);
    double top = hi_ > 0 ? std::min(hi_, Threshold(pos_, levels)) : hi_;
    double bottom = lo_ < 0 ? std::max(lo_, -Threshold(neg_, levels)) : lo_;
    if (symmetric) {
      top = std::max(top, -bottom);
      bottom = -top;
    }
    *lo = at::full({1}, bottom, at::kDouble);
    *hi = at::full({1}, top, at::kDouble);
  }

 private:
  void Add(const at::Tensor& magnitudes, std::vector<double>* hist) {
    if (magnitudes.numel() == 0) return;
    at::Tensor idx = (magnitudes / width_).floor().clamp(0, bins_ - 1).to(at::kLong);
    at::Tensor counts = at::bincount(idx, {}, bins_).to(at::kDouble);
    auto acc = counts.accessor<double, 1>();
    for (int i = 0; i < bins_; ++i) (*hist)[i] += acc[i];
  }

  void Rebin(double new_max) {
    const double new_width = new_max / bins_;
    for (std::vector<double>* hist : {&pos_, &neg_}) {
      std::vector<double> h(bins_, 0.0);
      for (int i = 0; i < bins_; ++i) {
        if ((*hist)[i] == 0) continue;
        const int j = std::min(bins_ - 1, static_cast<int>(((i + 0.5) * width_) / new_width));
        h[j] += (*hist)[i];
      }
      *hist = std::move(h);
    }
    width_ = new_width;
  }

  // TensorRT's entropy calibration: the threshold (a bin edge) whose
  // histogram, clipped there and quantized to `levels` levels, has the least
  // KL divergence from the clipped reference.
  double Threshold(const std::vector<double>& hist, int levels) const {
    if (width_ <= 0) return 0;
    double best_kl = std::numeric_limits<double>::infinity();
    int best = bins_;
    for (int i = std::min(levels, bins_); i <= bins_; ++i) {
      std::vector<double> ref(hist.begin(), hist.begin() + i);
      double outliers = 0;
      for (int k = i; k < bins_; ++k) outliers += hist[k];
      ref[i - 1] += outliers;
      // Quantize hist[0, i) (without the outliers) to `levels` groups,
      // spreading each group's mass evenly over its non-empty bins.
      std::vector<double> q(i, 0.0);
      const double per = static_cast<double>(i) / levels;
      for (int g = 0; g < levels; ++g) {
        const int b = static_cast<int>(std::floor(g * per)), e = std::max(b + 1, static_cast<int>(std::floor((g + 1) * per)));
        double mass = 0;
        int nonzero = 0;
        for (int k = b; k < e && k < i; ++k) {
          mass += hist[k];
          nonzero += hist[k] > 0 ? 1 : 0;
        }
        for (int k = b; k < e && k < i; ++k) q[k] = hist[k] > 0 ? mass / nonzero : 0;
      }
      double sr = 0, sq = 0;
      for (int k = 0; k < i; ++k) {
        sr += ref[k];
        sq += q[k];
      }
      if (sr <= 0 || sq <= 0) continue;
      double kl = 0;
      for (int k = 0; k < i; ++k) {
        if (ref[k] <= 0) continue;
        const double p = ref[k] / sr;
        const double qq = q[k] > 0 ? q[k] / sq : 1e-12;
        kl += p * std::log(p / qq);
      }
      if (kl < best_kl) {
        best_kl = kl;
        best = i;
      }
    }
    return best * width_;
  }

  int bins_;
  std::vector<double> pos_, neg_;
  double width_ = 0;
  double lo_ = 0, hi_ = 0;
};

absl::Status CheckSamples(const std::string& field, int64_t v) {
  if (v < 0 || (v > 0 && v < 16)) {
    return FieldError(field, "out of range", v, ">= 16 (0 = 65536)");
  }
  return absl::OkStatus();
}

const Registration<ObserverFactory> kMinMax(ObserverRegistry(), "minmax",
                                            [](const ObserverConfig& c) -> absl::StatusOr<std::unique_ptr<Observer>> {
                                              return std::unique_ptr<Observer>(new MinMaxObserver(c));
                                            });
const Registration<ObserverFactory> kMovingAverage(
    ObserverRegistry(), "moving_average", [](const ObserverConfig& c) -> absl::StatusOr<std::unique_ptr<Observer>> {
      const double a = c.moving_average().averaging_constant() == 0 ? 0.01 : c.moving_average().averaging_constant();
      if (!(a > 0 && a <= 1)) {
        return FieldError("moving_average.averaging_constant", "out of range", c.moving_average().averaging_constant(),
                          "(0, 1] (0 = 0.01)");
      }
      return std::unique_ptr<Observer>(new MovingAverageObserver(c, a));
    });
const Registration<ObserverFactory> kPercentile(
    ObserverRegistry(), "percentile", [](const ObserverConfig& c) -> absl::StatusOr<std::unique_ptr<Observer>> {
      const double p = c.percentile().percentile() == 0 ? 99.99 : c.percentile().percentile();
      if (!(p > 50 && p <= 100)) {
        return FieldError("percentile.percentile", "out of range", c.percentile().percentile(),
                          "(50, 100] (0 = 99.99)");
      }
      RETURN_IF_ERROR(CheckSamples("percentile.max_samples", c.percentile().max_samples()));
      const int64_t n = c.percentile().max_samples() ? c.percentile().max_samples() : kDefaultMaxSamples;
      return std::unique_ptr<Observer>(new PercentileObserver(c, p, n));
    });
const Registration<ObserverFactory> kMse(
    ObserverRegistry(), "mse", [](const ObserverConfig& c) -> absl::StatusOr<std::unique_ptr<Observer>> {
      const int steps = c.mse().steps() == 0 ? 50 : c.mse().steps();
      if (steps < 1 || steps > 1000) {
        return FieldError("mse.steps", "out of range", c.mse().steps(), "[1, 1000] (0 = 50)");
      }
      RETURN_IF_ERROR(CheckSamples("mse.max_samples", c.mse().max_samples()));
      const int64_t n = c.mse().max_samples() ? c.mse().max_samples() : kDefaultMaxSamples;
      return std::unique_ptr<Observer>(new MseObserver(c, steps, n));
    });
const Registration<ObserverFactory> kHistogram(
    ObserverRegistry(), "histogram", [](const ObserverConfig& c) -> absl::StatusOr<std::unique_ptr<Observer>> {
      const int bins = c.histogram().bins() == 0 ? 2048 : c.histogram().bins();
      if (bins < 256 || bins > 65536) {
        return FieldError("histogram.bins", "out of range", c.histogram().bins(), "[256, 65536] (0 = 2048)");
      }
      if (c.per_channel()) {
        return FieldError("per_channel", "histogram (entropy) calibration is per tensor", "true",
                          "false, or the minmax or mse observer for per-channel weights");
      }
      return std::unique_ptr<Observer>(new HistogramObserver(c, bins));
    });

}  // namespace

Observer::Observer(const ObserverConfig& config) : config_(config) {}

int64_t Observer::qmin() const {
  const int bits = config_.bits() ? config_.bits() : 8;
  return config_.symmetric() ? -((int64_t{1} << (bits - 1)) - 1) : 0;
}

int64_t Observer::qmax() const {
  const int bits = config_.bits() ? config_.bits() : 8;
  return config_.symmetric() ? (int64_t{1} << (bits - 1)) - 1 : (int64_t{1} << bits) - 1;
}

absl::Status Observer::Observe(const at::Tensor& x) {
  return TorchCall("observer", [&]() -> absl::Status {
    if (!x.defined() || x.numel() == 0) return absl::InvalidArgumentError("observer: empty tensor");
    const int64_t axis = config_.channel_axis();
    if (config_.per_channel() && (axis < 0 || axis >= x.dim())) {
      return FieldError("channel_axis", absl::StrCat("not an axis of the observed ", x.dim(), "-d tensor"), axis,
                        absl::StrCat("[0, ", x.dim(), ")"));
    }
    at::Tensor rows = Rows(x, config_.per_channel(), axis, &non_finite_);
    if (channels_ >= 0 && rows.size(0) != channels_) {
      return absl::InvalidArgumentError(absl::StrCat("observer: tensor has ", rows.size(0),
                                                     " channels, earlier ones had ", channels_));
    }
    channels_ = rows.size(0);
    Update(rows);
    ++batches_;
    return absl::OkStatus();
  });
}

absl::StatusOr<QuantParams> Observer::Compute() const {
  if (batches_ == 0) return absl::FailedPreconditionError("observer: Compute before any Observe");
  return TorchCallOr("observer", [&] {
    at::Tensor lo, hi;
    Range(&lo, &hi);
    return ParamsForRange(lo, hi, config_.bits() ? config_.bits() : 8, config_.symmetric(),
                          config_.per_channel() ? config_.channel_axis() : -1);
  });
}

Registry<ObserverFactory>& ObserverRegistry() {
  static auto* r = new Registry<ObserverFactory>("observer");
  return *r;
}

absl::StatusOr<std::unique_ptr<Observer>> MakeObserver(const ObserverConfig& config, const std::string& context) {
  if (config.bits() != 0 && (config.bits() < 2 || config.bits() > 8)) {
    return FieldError(JoinFieldPath(context, "bits"), "out of range", config.bits(), "[2, 8] (0 = 8)");
  }
  if (config.channel_axis() < 0) {
    return FieldError(JoinFieldPath(context, "channel_axis"), "negative", config.channel_axis(), ">= 0");
  }
  ASSIGN_OR_RETURN(std::string name, RequiredOneofField(config, "observer", context, ObserverRegistry().Names()));
  ASSIGN_OR_RETURN(ObserverFactory factory, ObserverRegistry().Get(name), AtField(JoinFieldPath(context, name)));
  ASSIGN_OR_RETURN(auto made, factory(config), AtField(context));
  return made;
}

absl::StatusOr<QuantParams> ComputeQuantParams(const ObserverConfig& config, const at::Tensor& x,
                                               const std::string& context) {
  ASSIGN_OR_RETURN(auto observer, MakeObserver(config, context));
  RETURN_IF_ERROR(observer->Observe(x));
  return observer->Compute();
}

QuantParams ParamsForRange(const at::Tensor& lo_in, const at::Tensor& hi_in, int bits, bool symmetric,
                           int64_t axis) {
  QuantParams p;
  p.bits = bits;
  p.symmetric = symmetric;
  p.axis = axis;
  at::Tensor lo = at::clamp_max(lo_in.to(at::kDouble), 0.0);
  at::Tensor hi = at::clamp_min(hi_in.to(at::kDouble), 0.0);
  if (symmetric) {
    p.qmax = (int64_t{1} << (bits - 1)) - 1;
    p.qmin = -p.qmax;
    at::Tensor m = at::maximum(lo.abs(), hi);
    p.scale = at::clamp_min(m / static_cast<double>(p.qmax), kMinScale);
    p.zero_point = at::zeros_like(p.scale, at::TensorOptions().dtype(at::kLong));
    return p;
  }
  p.qmin = 0;
  p.qmax = (int64_t{1} << bits) - 1;
  p.scale = at::clamp_min((hi - lo) / static_cast<double>(p.qmax - p.qmin), kMinScale);
  p.zero_point = at::clamp(at::round(static_cast<double>(p.qmin) - lo / p.scale), p.qmin, p.qmax).to(at::kLong);
  return p;
}

namespace {

// scale / zero point shaped to broadcast against `x`.
std::pair<at::Tensor, at::Tensor> Broadcast(const at::Tensor& x, const QuantParams& p) {
  if (p.axis < 0) return {p.scale.reshape({}), p.zero_point.reshape({}).to(at::kDouble)};
  std::vector<int64_t> shape(x.dim(), 1);
  shape[p.axis] = -1;
  return {p.scale.reshape(shape), p.zero_point.to(at::kDouble).reshape(shape)};
}

}  // namespace

at::Tensor FakeQuantize(const at::Tensor& x, const QuantParams& p) {
  auto [s, z] = Broadcast(x, p);
  at::Tensor d = x.to(at::kDouble);
  at::Tensor q = at::clamp(at::round(d / s) + z, static_cast<double>(p.qmin), static_cast<double>(p.qmax));
  return ((q - z) * s).to(x.scalar_type());
}

ErrorProfile MeasureError(const at::Tensor& x, const QuantParams& p) {
  ErrorProfile e;
  at::Tensor d = x.detach().to(at::kDouble);
  at::Tensor y = FakeQuantize(d, p);
  at::Tensor err = (d - y).abs();
  e.max_abs = err.max().item<double>();
  e.mean_abs = err.mean().item<double>();
  e.rmse = std::sqrt(err.pow(2).mean().item<double>());
  e.zeroed = ((d != 0) & (y == 0)).sum().item<int64_t>();
  e.sign_flips = ((d * y) < 0).sum().item<int64_t>();
  auto [s, z] = Broadcast(d, p);
  at::Tensor lo = (static_cast<double>(p.qmin) - z - 0.5) * s, hi = (static_cast<double>(p.qmax) - z + 0.5) * s;
  e.clipped = ((d < lo) | (d > hi)).sum().item<int64_t>();
  return e;
}

}  // namespace slimfit
