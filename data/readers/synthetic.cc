// The "synthetic" dataset source: seeded Gaussian class prototypes plus
// noise. Learnable (a linear model separates it for small noise), fast to
// make, and identical for the same seed: for tests and smoke runs.
#include <ATen/ATen.h>
#include <ATen/CPUGeneratorImpl.h>

#include "absl/strings/str_cat.h"
#include "common/field_error.h"
#include "common/status_macros.h"
#include "common/torch_status.h"
#include "data/splits.h"

namespace slimfit {
namespace {

absl::StatusOr<Splits> MakeSynthetic(const DataConfig& config) {
  const auto& c = config.synthetic();
  const int64_t train_n = c.train_samples() == 0 ? 512 : c.train_samples();
  const int64_t test_n = c.test_samples() == 0 ? 256 : c.test_samples();
  const int64_t classes = c.num_classes() == 0 ? 10 : c.num_classes();
  const double noise = c.noise() == 0 ? 1.0 : c.noise();
  std::vector<int64_t> shape(c.shape().begin(), c.shape().end());
  if (shape.empty()) shape = {1, 28, 28};
  if (train_n < 1) return FieldError("train_samples", "below 1", train_n, ">= 1 (0 = default)");
  if (test_n < 1) return FieldError("test_samples", "below 1", test_n, ">= 1 (0 = 256)");
  if (classes < 2) return FieldError("num_classes", "below 2", classes, ">= 2 (0 = 10)");
  if (noise < 0) return FieldError("noise", "negative", noise, ">= 0 (0 = 1.0)");
  for (size_t i = 0; i < shape.size(); ++i) {
    if (shape[i] < 1) return FieldError(IndexedField("shape", static_cast<int>(i)), "below 1", shape[i], ">= 1");
  }

  return TorchCallOr("synthetic", [&] {
    at::Generator gen = at::detail::createCPUGenerator(config.seed() + 12345);
    std::vector<int64_t> proto_shape = {classes};
    proto_shape.insert(proto_shape.end(), shape.begin(), shape.end());
    at::Tensor prototypes = at::randn(proto_shape, gen);
    Splits s;
    for (const bool train : {true, false}) {
      const int64_t n = train ? train_n : test_n;
      at::Tensor labels = at::randint(0, classes, {n}, gen, at::kLong);
      at::Tensor x = prototypes.index_select(0, labels);
      x = x + noise * at::randn(x.sizes(), gen);
      auto ds = TensorDataset::Create({x, labels}, train ? "synthetic/train" : "synthetic/test");
      (train ? s.train : s.test) = std::move(ds).value();
    }
    return s;
  });
}

const Registration<DatasetSource> kRegistration(DatasetRegistry(), "synthetic", &MakeSynthetic);

}  // namespace
}  // namespace slimfit
