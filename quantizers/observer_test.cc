// Quantize → dequantize error profiles on known tensors, per observer
// (max and mean error, values rounded to zero, sign flips, clipping), and the
// observers' contract.
#include "quantizers/observer.h"

#include <ATen/ATen.h>

#include <cmath>

#include "common/status_matchers.h"
#include "common/text_proto.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace slimfit {
namespace {

using ::slimfit::testing::StatusIs;
using ::testing::HasSubstr;

ObserverConfig Config(const std::string& text) {
  ObserverConfig c;
  EXPECT_OK(ParseTextProto(text, "t", &c));
  return c;
}

QuantParams Calibrate(const std::string& text, const std::vector<at::Tensor>& batches) {
  auto obs = MakeObserver(Config(text));
  EXPECT_OK(obs.status());
  for (const auto& b : batches) EXPECT_OK((*obs)->Observe(b));
  auto p = (*obs)->Compute();
  EXPECT_OK(p.status());
  return *p;
}

at::Generator Gen() { return at::detail::createCPUGenerator(42); }

TEST(ObserverTest, MinMaxAffine8BitOnUniformValues) {
  at::Tensor x = at::rand({10000}, Gen()) * 2 - 1;  // [-1, 1)
  QuantParams p = Calibrate("minmax {}", {x});
  const double s = p.scale.item<double>();
  EXPECT_NEAR(s, 2.0 / 255, 1e-3 / 255);
  ErrorProfile e = MeasureError(x, p);
  EXPECT_LE(e.max_abs, s / 2 + 1e-9);   // rounding only
  EXPECT_NEAR(e.mean_abs, s / 4, s / 20);  // uniform rounding error: s/4
  EXPECT_EQ(e.sign_flips, 0);
  EXPECT_EQ(e.clipped, 0);
  EXPECT_LE(e.zeroed, 10000 * (s / 2) + 20);  // only |x| < s/2 become 0
}

TEST(ObserverTest, SymmetricHasZeroPointZeroAndRestrictedCodes) {
  at::Tensor x = at::randn({5000}, Gen()) * 3;
  QuantParams p = Calibrate("minmax {} symmetric: true", {x});
  EXPECT_EQ(p.zero_point.item<int64_t>(), 0);
  EXPECT_EQ(p.qmin, -127);
  EXPECT_EQ(p.qmax, 127);
  EXPECT_NEAR(p.scale.item<double>(), x.abs().max().item<double>() / 127, 1e-9);
  EXPECT_EQ(MeasureError(x, p).sign_flips, 0);
}

TEST(ObserverTest, PerChannelKeepsSmallChannelsAlive) {
  // Output channel c has magnitude 10^(c-2): per tensor, the small channels
  // round to zero; per channel, each has its own scale.
  at::Tensor w = at::randn({5, 16, 3, 3}, Gen());
  for (int c = 0; c < 5; ++c) w[c].mul_(std::pow(10.0, c - 2));
  QuantParams pt = Calibrate("minmax {} symmetric: true", {w});
  QuantParams pc = Calibrate("minmax {} symmetric: true per_channel: true channel_axis: 0", {w});
  ASSERT_EQ(pc.scale.numel(), 5);
  const ErrorProfile et = MeasureError(w[0], [&] { QuantParams q = pt; return q; }());
  EXPECT_GT(et.zeroed, 100);  // most of channel 0 vanishes per tensor
  const ErrorProfile ec = MeasureError(w, pc);
  EXPECT_LT(ec.zeroed, 20);  // only values within half a step of 0, of 720
  EXPECT_EQ(ec.sign_flips, 0);
  for (int c = 0; c < 5; ++c) {
    const double err = (FakeQuantize(w, pc)[c] - w[c]).abs().max().item<double>();
    EXPECT_LE(err, pc.scale[c].item<double>() / 2 + 1e-12) << c;
  }
}

TEST(ObserverTest, PercentileAndHistogramClipAnOutlierToResolveTheBulk) {
  // Gaussian activations with one huge outlier.
  at::Tensor x = at::randn({20000}, Gen());
  x[7] = 200.0;
  at::Tensor bulk = at::cat({x.narrow(0, 0, 7), x.narrow(0, 8, x.size(0) - 8)});
  const QuantParams mm = Calibrate("minmax {}", {x});
  const ErrorProfile mm_bulk = MeasureError(bulk, mm);
  EXPECT_GT(mm_bulk.zeroed, 2000);  // scale ~0.8: a third of N(0, 1) rounds to 0
  for (const char* text : {"percentile { percentile: 99.9 }", "histogram {}"}) {
    SCOPED_TRACE(text);
    const QuantParams p = Calibrate(text, {x});
    const ErrorProfile e = MeasureError(bulk, p);
    EXPECT_LT(e.rmse, mm_bulk.rmse / 5);
    EXPECT_LT(e.zeroed, mm_bulk.zeroed / 5);
    EXPECT_EQ(e.sign_flips, 0);
    const ErrorProfile all = MeasureError(x, p);
    EXPECT_GE(all.clipped, 1);  // the outlier (and the far tail) is clipped
    EXPECT_LT(all.clipped, 100);
  }
}

TEST(ObserverTest, MseMinimisesSquaredErrorAndClipsHeavyTails) {
  // Its objective: never worse than the full range.
  at::Tensor x = at::randn({20000}, Gen());
  x[7] = 200.0;
  EXPECT_LE(MeasureError(x, Calibrate("mse {}", {x})).rmse,
            MeasureError(x, Calibrate("minmax {}", {x})).rmse + 1e-12);
  // Laplace-distributed values (heavy tails, 4 bits): clipping pays.
  at::Tensor u = at::rand({50000}, Gen()) - 0.5;
  at::Tensor lap = -at::sign(u) * at::log1p(-2 * u.abs());
  const ErrorProfile mse = MeasureError(lap, Calibrate("mse {} bits: 4 symmetric: true", {lap}));
  const ErrorProfile mm = MeasureError(lap, Calibrate("minmax {} bits: 4 symmetric: true", {lap}));
  EXPECT_LT(mse.rmse, 0.8 * mm.rmse);
  EXPECT_GT(mse.clipped, 0);
}

TEST(ObserverTest, LowerBitWidthsUseTheirCodeRange) {
  at::Tensor w = at::randn({4096}, Gen());
  double last = 0;
  for (int bits : {8, 4, 2}) {
    SCOPED_TRACE(bits);
    QuantParams p = Calibrate(absl::StrCat("minmax {} symmetric: true bits: ", bits), {w});
    EXPECT_EQ(p.qmax, (1 << (bits - 1)) - 1);
    at::Tensor codes = at::round(w.to(at::kDouble) / p.scale.item<double>());
    EXPECT_LE(codes.abs().max().item<double>(), p.qmax);
    const ErrorProfile e = MeasureError(w, p);
    EXPECT_LE(e.max_abs, p.scale.item<double>() / 2 + 1e-9);
    EXPECT_GT(e.rmse, last);  // fewer bits, more error
    last = e.rmse;
  }
}

TEST(ObserverTest, MovingAverageFollowsBatches) {
  QuantParams p = Calibrate("moving_average { averaging_constant: 0.5 }",
                            {at::tensor({0.0, 1.0}, at::kDouble), at::tensor({0.0, 3.0}, at::kDouble)});
  // hi: 1 then 1 + 0.5 (3 - 1) = 2; affine 8-bit over [0, 2].
  EXPECT_NEAR(p.scale.item<double>(), 2.0 / 255, 1e-12);
  EXPECT_EQ(p.zero_point.item<int64_t>(), 0);
}

TEST(ObserverTest, RangeAlwaysContainsZeroAndConstantsGetAScale) {
  QuantParams p = Calibrate("minmax {}", {at::full({10}, 5.0)});
  EXPECT_EQ(p.zero_point.item<int64_t>(), 0);
  EXPECT_NEAR(p.scale.item<double>(), 5.0 / 255, 1e-12);
  EXPECT_EQ(FakeQuantize(at::zeros({3}), p).abs().sum().item<double>(), 0.0);
  QuantParams z = Calibrate("minmax {}", {at::zeros({10})});
  EXPECT_GT(z.scale.item<double>(), 0);
}

TEST(ObserverTest, NonFiniteValuesAreIgnoredAndCounted) {
  auto obs = MakeObserver(Config("minmax {}"));
  ASSERT_OK(obs.status());
  ASSERT_OK((*obs)->Observe(at::tensor({1.0, std::nan(""), INFINITY, -2.0}, at::kDouble)));
  EXPECT_EQ((*obs)->ignored_non_finite(), 2);
  ASSERT_OK_AND_ASSIGN(QuantParams p, (*obs)->Compute());
  EXPECT_NEAR(p.scale.item<double>(), 3.0 / 255, 1e-12);
}

TEST(ObserverTest, ErrorsNameTheField) {
  EXPECT_THAT(
      MakeObserver(Config("minmax {} bits: 1")).status(),
      StatusIs(absl::StatusCode::kInvalidArgument, "observer.bits: out of range, got 1; valid: [2, 8] (0 = 8)"));
  EXPECT_THAT(MakeObserver(Config("percentile { percentile: 20 }")).status(),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       "observer.percentile.percentile: out of range, got 20; valid: (50, 100] (0 = 99.99)"));
  EXPECT_THAT(MakeObserver(Config("histogram {} per_channel: true"), "activation").status(),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       "activation.per_channel: histogram (entropy) calibration is per tensor, got true; valid: "
                       "false, or the minmax or mse observer for per-channel weights"));
  EXPECT_THAT(MakeObserver(ObserverConfig()).status(),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("observer: no observer set; valid: histogram, ")));

  auto obs = MakeObserver(Config("minmax {} per_channel: true"));
  ASSERT_OK(obs.status());
  EXPECT_THAT((*obs)->Compute().status(),
              StatusIs(absl::StatusCode::kFailedPrecondition, HasSubstr("Compute before any Observe")));
  ASSERT_OK((*obs)->Observe(at::ones({4, 2})));
  EXPECT_THAT((*obs)->Observe(at::ones({3, 2})),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("tensor has 3 channels, earlier ones had 4")));
}

TEST(ObserverTest, EveryOneofChoiceIsRegistered) {
  const auto* oneof = ObserverConfig::descriptor()->FindOneofByName("observer");
  for (int i = 0; i < oneof->field_count(); ++i) {
    EXPECT_TRUE(ObserverRegistry().Contains(oneof->field(i)->name())) << oneof->field(i)->name();
  }
}

}  // namespace
}  // namespace slimfit
