// File: quantizers/observer.h
//
// Observer: watches tensors and decides their quantization parameters —
// scale and zero point, per tensor or per channel, symmetric or affine, for
// 2..8 bits. Registered by ObserverConfig's oneof name: minmax,
// moving_average, percentile, mse, histogram (KL / entropy).
//
//   ASSIGN_OR_RETURN(auto obs, MakeObserver(config));        // "quantization.observer"
//   RETURN_IF_ERROR(obs->Observe(activations));  ...         // any number of batches
//   ASSIGN_OR_RETURN(QuantParams p, obs->Compute());
//   at::Tensor y = FakeQuantize(x, p);                       // quantize → dequantize
//   ErrorProfile e = MeasureError(x, p);                     // max / mean error, zeros, sign flips
//
// Contract: Compute before any Observe is FailedPrecondition; a tensor of a
// different channel count than the first is InvalidArgument; non-finite
// values are ignored (they would poison the range) and counted. The range
// always contains 0 (so zero is exact, as padding and ReLU need), and a
// constant tensor gets a tiny non-zero range rather than a zero scale.
// Affine parameters use unsigned codes [0, 2^bits - 1]; symmetric ones
// signed codes [-(2^(bits-1) - 1), 2^(bits-1) - 1] (the restricted range
// int8 kernels prefer).
#ifndef SLIMFIT_QUANTIZERS_OBSERVER_H_
#define SLIMFIT_QUANTIZERS_OBSERVER_H_

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <functional>
#include <memory>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "common/registry.h"
#include "quantizers/observer.pb.h"

namespace slimfit {

struct QuantParams {
  at::Tensor scale;       // float64; [1] per tensor, [C] per channel
  at::Tensor zero_point;  // int64, same shape
  int64_t axis = -1;      // channel axis, -1 per tensor
  int bits = 8;
  bool symmetric = false;
  int64_t qmin = 0;
  int64_t qmax = 255;
};

class Observer {
 public:
  explicit Observer(const ObserverConfig& config);
  virtual ~Observer() = default;

  absl::Status Observe(const at::Tensor& x);
  absl::StatusOr<QuantParams> Compute() const;
  int64_t observed_batches() const { return batches_; }
  int64_t ignored_non_finite() const { return non_finite_; }

 protected:
  // `x` is float64, finite, shaped [channels, n] (one row per tensor when
  // per-tensor). Implementations keep what they need.
  virtual void Update(const at::Tensor& rows) = 0;
  // Per row: the clipping range [lo, hi] to quantize to.
  virtual void Range(at::Tensor* lo, at::Tensor* hi) const = 0;
  const ObserverConfig& config() const { return config_; }
  int64_t qmin() const;
  int64_t qmax() const;

 private:
  ObserverConfig config_;
  int64_t batches_ = 0;
  int64_t non_finite_ = 0;
  int64_t channels_ = -1;
};

using ObserverFactory = std::function<absl::StatusOr<std::unique_ptr<Observer>>(const ObserverConfig&)>;
Registry<ObserverFactory>& ObserverRegistry();

// Validates the shared fields and builds the observer the oneof names; errors
// name fields under `context` ("<context>.bits: ...", common/field_error.h).
absl::StatusOr<std::unique_ptr<Observer>> MakeObserver(const ObserverConfig& config,
                                                       const std::string& context = "observer");

// A fresh observer of `config` that sees `x` once: the parameters for a
// tensor known in full (weights).
absl::StatusOr<QuantParams> ComputeQuantParams(const ObserverConfig& config, const at::Tensor& x,
                                               const std::string& context = "observer");

// scale / zero point for the clipping range [lo, hi] (per row) under `p`'s
// bits and symmetry; the range is widened to contain 0.
QuantParams ParamsForRange(const at::Tensor& lo, const at::Tensor& hi, int bits, bool symmetric, int64_t axis);

// Quantize then dequantize (round half to even, clamp to the code range).
at::Tensor FakeQuantize(const at::Tensor& x, const QuantParams& p);

struct ErrorProfile {
  double max_abs = 0;       // max |x - FakeQuantize(x)|
  double mean_abs = 0;
  double rmse = 0;
  int64_t zeroed = 0;       // non-zero values that became 0
  int64_t sign_flips = 0;   // values whose sign changed (0 excluded)
  int64_t clipped = 0;      // values outside the representable range
};
ErrorProfile MeasureError(const at::Tensor& x, const QuantParams& p);

}  // namespace slimfit

#endif  // SLIMFIT_QUANTIZERS_OBSERVER_H_
