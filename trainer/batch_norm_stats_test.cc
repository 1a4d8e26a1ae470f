// UpdateBatchNorm against statistics derived in the test: each batch norm's
// running mean / variance must equal the average over the batches of its
// input's per-batch mean and unbiased variance — what PyTorch's
// torch.optim.swa_utils.update_bn (momentum None) computes — for a model
// traced in Python (momentum 0.1 baked into the graph) and for scripted
// modules with momentum 0.01 and None, and the statistics are restored when
// a forward pass fails.
#include "trainer/batch_norm_stats.h"

#include <ATen/ATen.h>
#include <torch/csrc/jit/api/module.h>
#include <torch/csrc/jit/serialization/import.h>

#include <memory>
#include <string>
#include <vector>

#include "common/status_matchers.h"
#include "data/data_loader.h"
#include "gmock/gmock.h"
#include "graph/depth.h"
#include "gtest/gtest.h"
#include "model/test_models.h"

namespace slimfit {
namespace {

using ::slimfit::testing::StatusIs;
using ::testing::HasSubstr;

constexpr int kBatch = 32;

// `batches` batches of random inputs [kBatch, c, s, s] (labels unused).
struct Data {
  at::Tensor x;
  std::unique_ptr<BatchLoader> loader;
};
Data RandomData(int batches, int64_t c, int64_t s) {
  at::manual_seed(3);
  Data d;
  d.x = at::randn({batches * kBatch, c, s, s}) * 2 + 0.5;
  auto ds = TensorDataset::Create({d.x, at::zeros({batches * kBatch}, at::kLong)}, "random").value();
  LoaderOptions o;
  o.batch_size = kBatch;
  d.loader = BatchLoader::Create(ds, o).value();
  return d;
}

// The average over the batches of f(batch)'s per-channel mean and unbiased
// variance.
std::pair<at::Tensor, at::Tensor> Expected(const at::Tensor& x, int batches,
                                           const std::function<at::Tensor(const at::Tensor&)>& f) {
  at::Tensor mean, var;
  for (int b = 0; b < batches; ++b) {
    const at::Tensor y = f(x.narrow(0, b * kBatch, kBatch)).to(at::kDouble);
    const at::Tensor m = y.mean({0, 2, 3}), v = y.var({0, 2, 3}, /*unbiased=*/true);
    mean = b == 0 ? m : mean + m;
    var = b == 0 ? v : var + v;
  }
  return {mean / batches, var / batches};
}

at::Tensor Buffer(const Model& m, const std::string& name) {
  for (const auto& [n, t] : m.NamedBuffers()) {
    if (n == name) return t;
  }
  ADD_FAILURE() << "no buffer " << name;
  return at::Tensor();
}

void ExpectClose(const at::Tensor& got, const at::Tensor& want, const std::string& what) {
  ASSERT_TRUE(got.defined()) << what;
  EXPECT_TRUE(at::allclose(got.to(at::kDouble), want, /*rtol=*/1e-4, /*atol=*/1e-5))
      << what << "\ngot  " << got << "\nwant " << want;
}

TEST(BatchNormStatsTest, TracedModelWithMomentumInItsGraph) {
  // trainer/testdata/make_traced.py: conv(1 -> 8, no bias) -> bn -> relu ->
  // pool -> conv(8 -> 16) -> bn -> ..., traced in eval mode (momentum 0.1
  // and training=False constants in the graph).
  Model m(torch::jit::load("trainer/testdata/traced_bn.pt"));
  const int64_t tracked = Buffer(m, "1.num_batches_tracked").item<int64_t>();
  ASSERT_EQ(m.NamedParameters()[0].first, "0.weight");
  const at::Tensor w = m.NamedParameters()[0].second.detach().clone();
  Data d = RandomData(3, 1, 12);
  ForwardPass forward;
  ASSERT_OK_AND_ASSIGN(int seen, UpdateBatchNorm(m, *d.loader, 3, forward));
  EXPECT_EQ(seen, 3);
  EXPECT_FALSE(m.is_training()) << "the mode it was in";
  auto [mean, var] = Expected(d.x, 3, [&](const at::Tensor& x) { return at::conv2d(x, w, {}, 1, 1); });
  ExpectClose(Buffer(m, "1.running_mean"), mean, "running_mean");
  ExpectClose(Buffer(m, "1.running_var"), var, "running_var");
  EXPECT_EQ(Buffer(m, "1.num_batches_tracked").item<int64_t>(), tracked + 3);
  // The second batch norm moved too (its input: a pooled relu of the first's output).
  EXPECT_GT(Buffer(m, "5.running_var").sum().item<double>(), 0);
}

// A batch norm module: momentum `momentum`, or None ("None": the factor is
// 1 / num_batches_tracked, as nn.BatchNorm2d computes it).
torch::jit::Module ScriptedNorm(const std::string& momentum, int64_t c) {
  torch::jit::Module bn(c10::QualifiedName("__torch__.slimfit_test.Norm"),
                        std::make_shared<torch::jit::CompilationUnit>(), /*shouldMangle=*/true);
  bn.register_attribute("training", c10::BoolType::get(), true);
  bn.register_parameter("weight", at::ones({c}), false);
  bn.register_parameter("bias", at::zeros({c}), false);
  bn.register_buffer("running_mean", at::full({c}, 7.0));
  bn.register_buffer("running_var", at::full({c}, 9.0));
  bn.register_buffer("num_batches_tracked", at::zeros({}, at::kLong));
  const std::string factor = momentum == "None" ? "1.0 / float(self.num_batches_tracked.item())" : momentum;
  std::string source = R"(def forward(self, x: Tensor) -> Tensor:
    f = 0.0
    if self.training:
        self.num_batches_tracked.add_(1)
        f = FACTOR
    return torch.batch_norm(x, self.weight, self.bias, self.running_mean, self.running_var, self.training, f, 1e-5,
                            False)
)";
  source.replace(source.find("FACTOR"), 6, factor);
  bn.define(source);
  return bn;
}

TEST(BatchNormStatsTest, ScriptedModulesWithMomentumSmallAndNone) {
  // bn1 (momentum 0.01) reads the input; bn2 (momentum None) reads
  // relu(conv(bn1's train-mode output)).
  at::manual_seed(5);
  const at::Tensor w = at::randn({6, 3, 3, 3}) * 0.3;
  torch::jit::Module top(c10::QualifiedName("__torch__.slimfit_test.Two"),
                         std::make_shared<torch::jit::CompilationUnit>(), /*shouldMangle=*/true);
  top.register_attribute("training", c10::BoolType::get(), true);
  top.register_module("bn1", ScriptedNorm("0.01", 3));
  top.register_module("bn2", ScriptedNorm("None", 6));
  top.register_parameter("w", w, false);
  top.define(
      "def forward(self, x: Tensor) -> Tensor:\n"
      "    return self.bn2.forward(torch.relu(torch.conv2d(self.bn1.forward(x), self.w)))\n");
  Model m(top);
  m.Eval();
  Data d = RandomData(4, 3, 6);
  ForwardPass forward;
  ASSERT_OK_AND_ASSIGN(int seen, UpdateBatchNorm(m, *d.loader, 10, forward));
  EXPECT_EQ(seen, 4) << "the loader has 4 batches";
  auto [mean1, var1] = Expected(d.x, 4, [](const at::Tensor& x) { return x; });
  ExpectClose(Buffer(m, "bn1.running_mean"), mean1, "bn1.running_mean");
  ExpectClose(Buffer(m, "bn1.running_var"), var1, "bn1.running_var");
  auto [mean2, var2] = Expected(d.x, 4, [&](const at::Tensor& x) {
    const at::Tensor n = at::batch_norm(x, at::ones({3}), at::zeros({3}), {}, {}, true, 0.0, 1e-5, false);
    return at::relu(at::conv2d(n, w));
  });
  ExpectClose(Buffer(m, "bn2.running_mean"), mean2, "bn2.running_mean");
  ExpectClose(Buffer(m, "bn2.running_var"), var2, "bn2.running_var");
  EXPECT_EQ(Buffer(m, "bn2.num_batches_tracked").item<int64_t>(), 4);
}

// Fails every call after the first `ok` ones.
class FailingForward : public ForwardPass {
 public:
  explicit FailingForward(int ok) : ok_(ok) {}
  absl::StatusOr<c10::IValue> ModelCall(Model& model, const ModelInputs& inputs, c10::Device device) override {
    if (calls_++ >= ok_) return absl::InternalError("forward failed on purpose");
    return ForwardPass::ModelCall(model, inputs, device);
  }

 private:
  int ok_;
  int calls_ = 0;
};

TEST(BatchNormStatsTest, AFailedForwardRestoresEveryStatistic) {
  torch::jit::Module top(c10::QualifiedName("__torch__.slimfit_test.One"),
                         std::make_shared<torch::jit::CompilationUnit>(), /*shouldMangle=*/true);
  top.register_attribute("training", c10::BoolType::get(), true);
  top.register_module("bn", ScriptedNorm("0.1", 3));
  top.define("def forward(self, x: Tensor) -> Tensor:\n    return self.bn.forward(x)\n");
  Model m(top);
  Data d = RandomData(3, 3, 4);
  FailingForward forward(/*ok=*/3);  // batch 1 twice, batch 2, then batch 3 fails
  EXPECT_THAT(UpdateBatchNorm(m, *d.loader, 3, forward),
              StatusIs(absl::StatusCode::kInternal, HasSubstr("forward failed on purpose")));
  EXPECT_TRUE(Buffer(m, "bn.running_mean").equal(at::full({3}, 7.0)));
  EXPECT_TRUE(Buffer(m, "bn.running_var").equal(at::full({3}, 9.0)));
  EXPECT_EQ(Buffer(m, "bn.num_batches_tracked").item<int64_t>(), 0);
}

TEST(BatchNormStatsTest, NothingToDo) {
  Model identity = ::slimfit::testing::IdentityModel();
  Data d = RandomData(2, 1, 4);
  ForwardPass forward;
  ASSERT_OK_AND_ASSIGN(int none, UpdateBatchNorm(identity, *d.loader, 5, forward));
  EXPECT_EQ(none, 0) << "no batch norm";
  Model traced(torch::jit::load("trainer/testdata/traced_bn.pt"));
  const at::Tensor before = Buffer(traced, "1.running_mean").clone();
  ASSERT_OK_AND_ASSIGN(int zero, UpdateBatchNorm(traced, *d.loader, 0, forward));
  EXPECT_EQ(zero, 0);
  EXPECT_TRUE(Buffer(traced, "1.running_mean").equal(before));
}

// A model traced in Python (batch norms with num_batches_tracked) with its
// residual block removed: the block's norms keep empty buffers
// (graph/depth.h), which the update skips; the others are re-estimated.
TEST(BatchNormStatsTest, ARemovedResidualBlocksEmptyNormsAreSkipped) {
  ASSERT_OK_AND_ASSIGN(Model m, Model::Load("graph/testdata/mixed_traced.pt"));
  ASSERT_OK_AND_ASSIGN(Model shallower, RemoveBlocks(m, {"branch"}));
  ASSERT_EQ(Buffer(shallower, "branch.1.num_batches_tracked").numel(), 0);
  const at::Tensor before = Buffer(shallower, "stem.1.running_var").clone();
  Data d = RandomData(2, 1, 16);
  ForwardPass forward;
  ASSERT_OK_AND_ASSIGN(int seen, UpdateBatchNorm(shallower, *d.loader, 2, forward));
  EXPECT_EQ(seen, 2);
  EXPECT_FALSE(Buffer(shallower, "stem.1.running_var").equal(before));
  EXPECT_EQ(Buffer(shallower, "branch.1.running_mean").numel(), 0);
}

}  // namespace
}  // namespace slimfit
