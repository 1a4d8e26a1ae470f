#include "trainer/trainer.h"

#include <ATen/ATen.h>
#include <ATen/autocast_mode.h>
#include <c10/core/GradMode.h>
#include <signal.h>
#include <torch/csrc/jit/api/module.h>
#include <torch/csrc/jit/runtime/graph_executor.h>
#include <torch/optim/optimizer.h>

#include <cmath>
#include <fstream>
#include <functional>
#include <map>
#include <set>

#include "absl/strings/str_format.h"
#include "common/files.h"
#include "common/interrupt.h"
#include "common/status_matchers.h"
#include "common/text_proto.h"
#include "data/splits.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "model/test_models.h"
#include "model/zoo/zoo.h"
#include "trainer/function_evaluator.h"
#include "trainer/trainable.h"

namespace slimfit {
namespace {

using ::slimfit::testing::StatusIs;
using ::slimfit::testing::TempPath;
using ::testing::AllOf;
using ::testing::HasSubstr;
using ::testing::Not;

// Synthetic 4-class data shaped like the traced test model's input.
struct Data {
  DataConfig config;
  Splits splits;
  std::unique_ptr<DataLoader> train, val;
};

Data MakeData(int64_t train_samples = 512, int classes = 4, int size = 12, float noise = 1.5) {
  Data d;
  EXPECT_OK(ParseTextProto(absl::StrFormat("synthetic { train_samples: %d test_samples: 128 shape: [1, %d, %d] "
                                           "num_classes: %d noise: %g } train_batch_size: 32 seed: 1",
                                           train_samples, size, size, classes, noise),
                           "t", &d.config));
  d.splits = LoadSplits(d.config).value();
  d.train = MakeLoader(d.config, d.splits, "train").value();
  d.val = MakeLoader(d.config, d.splits, "val").value();
  return d;
}

struct Parts {
  std::shared_ptr<ForwardPass> fp = std::make_shared<ForwardPass>();
  std::unique_ptr<LossFunction> loss;
  std::unique_ptr<EvaluationFunction> eval;
  Parts() {
    LossConfig lc;
    lc.mutable_cross_entropy();
    loss = MakeLoss(lc, LossContext{fp}).value();
    eval = MakeEvaluator(EvaluationConfig(), EvaluatorContext{fp}).value();
  }
};

TrainerConfig Config(const std::string& extra = "") {
  TrainerConfig c;
  const std::string optimizer =
      extra.find("optimizer") == std::string::npos ? "optimizer { sgd { momentum: 0.9 } lr: 0.05 } " : "";
  EXPECT_OK(ParseTextProto(optimizer + "progress: NONE " + extra, "t", &c));
  return c;
}

double Accuracy(Parts& p, Model& m, DataLoader& loader) {
  return p.eval->Apply(m, loader).value().Get("accuracy")->value;
}

// Every node of `kind` in the model's method graphs (blocks included).
int CountNodes(const Model& m, const char* kind) {
  std::function<int(torch::jit::Block*)> count = [&](torch::jit::Block* b) {
    int n = 0;
    for (torch::jit::Node* node : b->nodes()) {
      for (torch::jit::Block* inner : node->blocks()) n += count(inner);
      n += std::string(node->kind().toQualString()) == kind;
    }
    return n;
  };
  int total = 0;
  std::set<const torch::jit::Graph*> seen;
  for (const torch::jit::Module& sub : m.module().modules()) {
    for (const torch::jit::Method& method : sub.get_methods()) {
      if (seen.insert(method.graph().get()).second) total += count(method.graph()->block());
    }
  }
  return total;
}

TEST(TrainerTest, LearnsAndLogsEveryEpoch) {
  Data d = MakeData();
  Parts p;
  ZooOptions zo;
  zo.height = zo.width = 12;
  zo.num_classes = 4;
  ASSERT_OK_AND_ASSIGN(Model m, CreateZooModel("lenet5", zo));
  const double before = Accuracy(p, m, *d.val);
  const std::string log = TempPath("metrics.jsonl");
  ASSERT_OK_AND_ASSIGN(auto trainer, Trainer::Create(Config("epochs: 3 metrics_path: '" + log + "'"),
                                                     {p.loss.get(), p.eval.get(), d.train.get(), d.val.get()}));
  const int relus = CountNodes(m, "aten::relu");
  ASSERT_OK_AND_ASSIGN(TrainResult r, trainer->Train(m));
  EXPECT_EQ(r.epochs_run, 3);
  EXPECT_EQ(r.steps, 3 * d.train->num_batches());
  EXPECT_GT(r.best.Get("accuracy")->value, 90.0) << "before training: " << before;
  EXPECT_LT(before, 50.0);
  EXPECT_FALSE(m.is_training());
  // Its relus (each after a conv or linear) ran in place while it trained,
  // the two before its max pools after them; the returned model has its own
  // graph back and scores as the trainer said.
  EXPECT_EQ(r.relus_made_in_place, relus);
  EXPECT_EQ(r.relus_moved_after_pools, CountNodes(m, "aten::max_pool2d"));
  EXPECT_EQ(CountNodes(m, "aten::relu"), relus);
  EXPECT_EQ(CountNodes(m, "aten::relu_"), 0);
  EXPECT_DOUBLE_EQ(Accuracy(p, m, *d.val), r.best.Get("accuracy")->value);
  ASSERT_OK_AND_ASSIGN(std::string text, ReadFileToString(log));
  EXPECT_EQ(std::count(text.begin(), text.end(), '\n'), 3);
  EXPECT_THAT(text, HasSubstr("\"event\": \"epoch\", \"epoch\": 3"));
  EXPECT_THAT(text, HasSubstr("\"cross_entropy\": "));
  EXPECT_THAT(text, HasSubstr("\"eval\": {\"accuracy\": "));
}

TEST(TrainerTest, SameSeedSameWeights) {
  Parts p;
  std::vector<at::Tensor> runs;
  for (int run = 0; run < 2; ++run) {
    Data d = MakeData(256);  // fresh loaders: same (seed, epoch) order
    ASSERT_OK_AND_ASSIGN(Model m, CreateZooModel("vgg_small", ZooOptions{.height = 12, .width = 12, .num_classes = 4}));
    ASSERT_OK_AND_ASSIGN(auto trainer, Trainer::Create(Config("epochs: 2 seed: 7"),
                                                       {p.loss.get(), p.eval.get(), d.train.get(), d.val.get()}));
    ASSERT_OK(trainer->Train(m).status());
    runs.push_back(m.NamedParameters().back().second.detach().clone());  // after dropout: seed matters
  }
  EXPECT_TRUE(runs[0].equal(runs[1]));
}

// A device this process cannot use (no CUDA device visible, whatever the
// machine has: CUDA_VISIBLE_DEVICES is empty before anything looks): a
// clear error before any work, and the model as it was.
TEST(TrainerTest, ADeviceThisProcessLacksIsAnErrorThatLeavesTheModel) {
  setenv("CUDA_VISIBLE_DEVICES", "", 1);
  Data d = MakeData(64);
  Parts p;
  ASSERT_OK_AND_ASSIGN(Model m, CreateZooModel("lenet5", ZooOptions{.height = 12, .width = 12, .num_classes = 4}));
  const at::Tensor before = m.NamedParameters().front().second.detach().clone();
  TrainerDeps deps{p.loss.get(), p.eval.get(), d.train.get(), d.val.get()};
  deps.device = c10::Device(c10::kCUDA, 0);
  EXPECT_THAT(
      Trainer::Create(Config("epochs: 1"), deps),
      StatusIs(absl::StatusCode::kFailedPrecondition,
               ::testing::AllOf(HasSubstr("TrainerDeps.device: "), HasSubstr("got \"cuda:0\"; valid: cpu, auto"))));
  EXPECT_EQ(m.device(), c10::Device(c10::kCPU));
  EXPECT_TRUE(m.NamedParameters().front().second.equal(before));
}

// precision: BF16 runs the forward pass under autocast: the arithmetic
// changes (other weights than fp32's from the same seed), the model still
// learns, its weights stay fp32, and autocast is off again afterwards.
TEST(TrainerTest, Bf16AutocastTrainsInMixedPrecision) {
  Parts p;
  std::map<std::string, at::Tensor> weights[2];
  double accuracy[2] = {0, 0};
  for (int bf16 = 0; bf16 < 2; ++bf16) {
    Data d = MakeData();
    ASSERT_OK_AND_ASSIGN(Model m, CreateZooModel("lenet5", ZooOptions{.height = 12, .width = 12, .num_classes = 4}));
    ASSERT_OK_AND_ASSIGN(auto trainer,
                         Trainer::Create(Config(bf16 ? "epochs: 2 seed: 5 precision: BF16" : "epochs: 2 seed: 5"),
                                         {p.loss.get(), p.eval.get(), d.train.get(), d.val.get()}));
    ASSERT_OK_AND_ASSIGN(TrainResult r, trainer->Train(m));
    accuracy[bf16] = r.best.Get("accuracy")->value;
    for (auto& [name, w] : m.NamedParameters()) {
      EXPECT_EQ(w.scalar_type(), at::kFloat) << name;
      weights[bf16][name] = w.detach().clone();
    }
    EXPECT_FALSE(at::autocast::is_autocast_enabled(c10::DeviceType::CPU));
  }
  EXPECT_GT(accuracy[1], 85.0);
  EXPECT_NEAR(accuracy[1], accuracy[0], 5.0);
  ASSERT_EQ(weights[0].size(), weights[1].size());
  int differ = 0;
  for (const auto& [name, w] : weights[0]) differ += !at::equal(w, weights[1].at(name));
  EXPECT_EQ(differ, static_cast<int>(weights[0].size())) << "bf16 arithmetic left some weights as fp32's";
}

TEST(TrainableTest, TracedModelBakesTrainingFalseUntilRewired) {
  ASSERT_OK_AND_ASSIGN(Model m, Model::Load("trainer/testdata/traced_bn.pt"));
  const at::Tensor x = at::randn({8, 1, 12, 12}) * 2 + 1;
  m.Eval();
  const at::Tensor eval_out = m.module().forward({x}).toTensor();
  auto running_mean = [](Model& model) {
    for (auto& [name, b] : model.NamedBuffers()) {
      if (name == "1.running_mean") return b.clone();
    }
    return at::Tensor();
  };
  // The bug: train() changes nothing in a traced model.
  m.Train();
  const at::Tensor rm0 = running_mean(m);
  m.module().forward({x});
  EXPECT_TRUE(running_mean(m).equal(rm0)) << "expected the traced graph to ignore train()";
  // The fix.
  ASSERT_OK_AND_ASSIGN(int rewired, MakeTrainingModeFollowModule(m));
  EXPECT_EQ(rewired, 3);  // two batch norms, one dropout
  m.Eval();
  EXPECT_TRUE(m.module().forward({x}).toTensor().equal(eval_out)) << "eval outputs must not change";
  m.Train();
  m.module().forward({x});
  EXPECT_FALSE(running_mean(m).equal(rm0)) << "running statistics must move in train mode";
  // It saves and reloads, still trainable; rewiring again finds nothing.
  ASSERT_OK(m.Save(TempPath("rewired.pt")));
  ASSERT_OK_AND_ASSIGN(Model back, Model::Load(TempPath("rewired.pt")));
  EXPECT_THAT(MakeTrainingModeFollowModule(back), ::slimfit::testing::IsOkAndHolds(0));
}

TEST(TrainableTest, InstanceNormWithoutRunningStatisticsKeepsUsingInputStatistics) {
  // graph/testdata/everyday_traced.pt: nn.InstanceNorm2d (no running
  // statistics: use_input_stats is true in eager train and eval alike), then
  // a batch norm. Only the batch norm follows `training`; rewiring the
  // instance norm too made eval mode fail ("Expected running_mean and
  // running_var to be defined when use_input_stats is false").
  ASSERT_OK_AND_ASSIGN(Model m, Model::Load("graph/testdata/everyday_traced.pt"));
  const at::Tensor x = at::randn({3, 1, 16, 16});
  m.Eval();
  const at::Tensor eval_out = m.module().forward({x}).toTensor();
  ASSERT_OK_AND_ASSIGN(int rewired, MakeTrainingModeFollowModule(m));
  EXPECT_EQ(rewired, 1);
  m.Eval();
  EXPECT_TRUE(m.module().forward({x}).toTensor().equal(eval_out));
  m.Train();
  EXPECT_EQ(m.module().forward({x}).toTensor().sizes(), eval_out.sizes());
}

// Loss and every parameter's gradient after one forward + backward in train mode.
std::pair<at::Tensor, std::map<std::string, at::Tensor>> LossAndGrads(Model& m, const at::Tensor& x) {
  m.Train();
  at::manual_seed(11);  // the same dropout masks for every model
  // As the trainer runs: without the graph executor's optimizations, which
  // would differentiate a method's second run otherwise than its first.
  torch::jit::GraphOptimizerEnabledGuard no_graph_optimizer(false);
  for (auto& [n, p] : m.NamedParameters()) p.mutable_grad() = at::Tensor();
  at::Tensor loss = m.module().forward({x}).toTensor().pow(2).mean();
  loss.backward();
  std::map<std::string, at::Tensor> grads;
  for (auto& [n, p] : m.NamedParameters()) grads[n] = p.grad().clone();
  return {loss.detach(), grads};
}

// `a` and `b` give the same loss and every parameter the same gradient on
// `x`, bit for bit.
void ExpectSameLossAndGrads(Model& a, Model& b, const at::Tensor& x) {
  auto [loss_a, grads_a] = LossAndGrads(a, x);
  auto [loss_b, grads_b] = LossAndGrads(b, x);
  EXPECT_TRUE(loss_a.equal(loss_b));
  ASSERT_EQ(grads_a.size(), grads_b.size());
  for (const auto& [n, g] : grads_a) EXPECT_TRUE(g.equal(grads_b.at(n))) << n;
}

TEST(TrainableTest, ReluInPlaceKeepsValuesAndGradients) {
  ASSERT_OK_AND_ASSIGN(Model original, CreateZooModel("resnet_small"));
  ASSERT_OK_AND_ASSIGN(Model m, original.Clone());
  // In resnet_small every relu reads a batch norm or a residual add.
  const int relus = CountNodes(original, "aten::relu");
  ASSERT_GT(relus, 0);
  ASSERT_OK_AND_ASSIGN(int rewritten, MakeReluInPlace(m));
  EXPECT_EQ(rewritten, relus);
  EXPECT_EQ(CountNodes(m, "aten::relu"), 0);
  EXPECT_EQ(CountNodes(m, "aten::relu_"), relus);
  EXPECT_THAT(MakeReluInPlace(m), ::slimfit::testing::IsOkAndHolds(0)) << "a second pass finds nothing";

  at::manual_seed(3);
  const at::Tensor x = at::randn({4, 1, 28, 28});
  ExpectSameLossAndGrads(original, m, x);
  original.Eval();
  m.Eval();
  EXPECT_TRUE(original.module().forward({x}).toTensor().equal(m.module().forward({x}).toTensor()));

  // It saves and loads as plain TorchScript.
  const std::string path = TempPath("relu_in_place.pt");
  ASSERT_OK(m.Save(path));
  ASSERT_OK_AND_ASSIGN(Model back, Model::Load(path));
  back.Eval();
  EXPECT_TRUE(back.module().forward({x}).toTensor().equal(m.module().forward({x}).toTensor()));
}

TEST(TrainableTest, ReluInPlaceOnPythonModelsKeepsGradients) {
  // graph/testdata/make_models.py's Mixed has five relus, each reading a
  // fresh output: F.relu(x + branch(x)), F.relu(se_reduce(s)) and
  // F.relu(fc1(x)) read an add, a conv module's and a linear module's output;
  // the two nn.ReLU() modules (stem, mix) read a batch-norm module's. Traced,
  // they are aten::relu nodes (the modules' in their own forward); scripted,
  // calls of F.relu and of the ReLU modules. All five run in place, both ways.
  for (const auto& [path, expected] : std::vector<std::pair<std::string, int>>{
           {"graph/testdata/mixed_traced.pt", 5}, {"graph/testdata/mixed_scripted.pt", 5}}) {
    SCOPED_TRACE(path);
    ASSERT_OK_AND_ASSIGN(Model original, Model::Load(path));
    ASSERT_OK_AND_ASSIGN(Model m, original.Clone());
    ASSERT_OK_AND_ASSIGN(int rewritten, MakeReluInPlace(m));
    EXPECT_EQ(rewritten, expected);
    EXPECT_EQ(CountNodes(m, "aten::relu_"), CountNodes(original, "aten::relu_") + expected);
    at::manual_seed(5);
    ExpectSameLossAndGrads(original, m, at::randn({8, 1, 16, 16}));
  }
}

TEST(TrainableTest, TrainingRelusScopePutsTheGraphBackWithTheWeights) {
  ASSERT_OK_AND_ASSIGN(Model m, CreateZooModel("vgg_small"));
  const int relus = CountNodes(m, "aten::relu");
  const int pools = CountNodes(m, "aten::max_pool2d");  // each reads a relu
  ASSERT_GT(pools, 0);
  std::map<std::string, at::Tensor> expected;
  {
    ASSERT_OK_AND_ASSIGN(std::unique_ptr<TrainingRelusScope> scope, TrainingRelusScope::Enter(m));
    EXPECT_EQ(scope->moved_after_pools(), pools);
    EXPECT_EQ(scope->made_in_place(), relus);
    EXPECT_EQ(CountNodes(m, "aten::relu_"), relus);
    // What training would do: new weights and statistics, another mode.
    at::NoGradGuard no_grad;
    for (auto& [n, t] : m.NamedParameters()) t.add_(1.5);
    for (auto& [n, t] : m.NamedBuffers()) t.add_(2);
    for (auto& [n, t] : m.NamedParameters()) expected[n] = t.clone();
    for (auto& [n, t] : m.NamedBuffers()) expected[n] = t.clone();
    m.Eval();
  }
  EXPECT_EQ(CountNodes(m, "aten::relu"), relus);
  EXPECT_EQ(CountNodes(m, "aten::relu_"), 0);
  EXPECT_FALSE(m.is_training());
  size_t checked = 0;
  for (auto& [n, t] : m.NamedParameters()) checked += t.equal(expected.at(n));
  for (auto& [n, t] : m.NamedBuffers()) checked += t.equal(expected.at(n));
  EXPECT_EQ(checked, expected.size());
  // Nothing to rewrite: the model is left as it is.
  Model identity = ::slimfit::testing::IdentityModel();
  ASSERT_OK_AND_ASSIGN(std::unique_ptr<TrainingRelusScope> none, TrainingRelusScope::Enter(identity));
  EXPECT_EQ(none->moved_after_pools() + none->made_in_place(), 0);
}

TEST(TrainableTest, ReluInPlaceLeavesWhatItCannotProve) {
  // y reads x after the relu; sigmoid's backward reads its output; a relu of
  // a graph input would overwrite the caller's tensor.
  Model m = ::slimfit::testing::ScriptedTestModel("relu_kept", R"(
def forward(self, x):
    a = torch.relu(torch.conv2d(x, self.w))
    b = torch.conv2d(x, self.w)
    c = torch.relu(b) + b
    d = torch.relu(torch.sigmoid(x))
    e = torch.relu(x)
    return a + c + d.sum() + e.sum()
)",
                                                  {{"w", at::randn({1, 1, 1, 1})}});
  ASSERT_OK_AND_ASSIGN(int rewritten, MakeReluInPlace(m));
  EXPECT_EQ(rewritten, 1) << "only a = relu(conv(x)) qualifies";
  EXPECT_EQ(CountNodes(m, "aten::relu"), 3);
}

TEST(TrainableTest, PoolBeforeReluKeepsValuesAndGradients) {
  ASSERT_OK_AND_ASSIGN(Model original, CreateZooModel("vgg_small"));
  ASSERT_OK_AND_ASSIGN(Model m, original.Clone());
  // vgg_small's three max pools each read a relu of a batch norm.
  const int pools = CountNodes(original, "aten::max_pool2d");
  const int relus = CountNodes(original, "aten::relu");
  ASSERT_GT(pools, 0);
  ASSERT_OK_AND_ASSIGN(int moved, MakePoolBeforeRelu(m));
  EXPECT_EQ(moved, pools);
  EXPECT_EQ(CountNodes(m, "aten::relu"), relus) << "moved, not removed";
  EXPECT_THAT(MakePoolBeforeRelu(m), ::slimfit::testing::IsOkAndHolds(0)) << "a second pass finds nothing";
  at::manual_seed(4);
  // Batch-norm outputs are about half negative: windows whose maximum is
  // negative (no gradient either way) and positive ones both occur.
  const at::Tensor x = at::randn({4, 1, 28, 28});
  ExpectSameLossAndGrads(original, m, x);
  // The moved relus read a pool's fresh output: every relu runs in place.
  ASSERT_OK_AND_ASSIGN(int in_place, MakeReluInPlace(m));
  EXPECT_EQ(in_place, relus);
  ExpectSameLossAndGrads(original, m, x);
  original.Eval();
  m.Eval();
  EXPECT_TRUE(original.module().forward({x}).toTensor().equal(m.module().forward({x}).toTensor()));
}

TEST(TrainableTest, PoolBeforeReluOnPythonModels) {
  // graph/testdata/make_models.py's Pooled: relu -> max pool as nn.ReLU() and
  // nn.MaxPool2d modules, as F.relu and F.max_pool2d, and as
  // nn.ReLU(inplace=True) and a padded ceil-mode pool module (three moves,
  // traced and scripted); a fourth relu is also read by a mean and stays.
  for (const std::string path : {"graph/testdata/pooled_traced.pt", "graph/testdata/pooled_scripted.pt"}) {
    SCOPED_TRACE(path);
    ASSERT_OK_AND_ASSIGN(Model original, Model::Load(path));
    ASSERT_OK_AND_ASSIGN(Model m, original.Clone());
    ASSERT_OK_AND_ASSIGN(int moved, MakePoolBeforeRelu(m));
    EXPECT_EQ(moved, 3);
    at::manual_seed(6);
    const at::Tensor x = at::randn({8, 1, 16, 16});
    ExpectSameLossAndGrads(original, m, x);
    ASSERT_OK_AND_ASSIGN(int in_place, MakeReluInPlace(m));
    EXPECT_GT(in_place, 0);
    ExpectSameLossAndGrads(original, m, x);
    // It saves and loads as plain TorchScript, computing what the original does.
    const std::string saved = TempPath("pooled.pt");
    ASSERT_OK(m.Save(saved));
    ASSERT_OK_AND_ASSIGN(Model back, Model::Load(saved));
    original.Eval();
    back.Eval();
    EXPECT_TRUE(original.module().forward({x}).toTensor().equal(back.module().forward({x}).toTensor()));
  }
}

TEST(TrainableTest, PoolBeforeReluLeavesWhatItCannotProve) {
  // a's relu is read twice; b pools by average (relu does not commute with
  // a mean); c's in-place relu overwrites a tensor that is read again.
  Model m = ::slimfit::testing::ScriptedTestModel("pool_kept", R"(
def forward(self, x):
    r = torch.relu(x)
    a = torch.max_pool2d(r, [2, 2]) + r.sum()
    b = torch.avg_pool2d(torch.relu(x), [2, 2])
    y = x * 2.0
    c = torch.max_pool2d(torch.relu_(y), [2, 2]) + y.sum()
    d = torch.max_pool2d(torch.relu(x * 3.0), [2, 2])
    return a + b + c + d
)");
  ASSERT_OK_AND_ASSIGN(int moved, MakePoolBeforeRelu(m));
  EXPECT_EQ(moved, 1) << "only d = max_pool2d(relu(x * 3)) qualifies";
}

TEST(TrainerTest, TracedModelFineTunesAndRecoversFromPerturbation) {
  Data d = MakeData(1024, 4, 12, 1.0);
  Parts p;
  ASSERT_OK_AND_ASSIGN(Model m, Model::Load("trainer/testdata/traced_bn.pt"));
  ASSERT_OK_AND_ASSIGN(auto trainer, Trainer::Create(Config("epochs: 6 optimizer { adam {} lr: 0.01 }"),
                                                     {p.loss.get(), p.eval.get(), d.train.get(), d.val.get()}));
  const int relus = CountNodes(m, "aten::relu"), in_place = CountNodes(m, "aten::relu_");
  ASSERT_OK_AND_ASSIGN(TrainResult r, trainer->Train(m));
  EXPECT_EQ(r.traced_ops_rewired, 3);
  // Its graph comes back as it was (its relus are nn.ReLU modules' own).
  EXPECT_EQ(CountNodes(m, "aten::relu"), relus);
  EXPECT_EQ(CountNodes(m, "aten::relu_"), in_place);
  const double trained = Accuracy(p, m, *d.val);
  EXPECT_GT(trained, 85.0);
  {
    c10::NoGradGuard no_grad;
    for (auto& [name, w] : m.NamedParameters()) w.add_(at::randn_like(w) * w.std() * 1.5);
  }
  const double perturbed = Accuracy(p, m, *d.val);
  EXPECT_LT(perturbed, trained - 20.0);
  ASSERT_OK_AND_ASSIGN(auto fine, Trainer::Create(Config("epochs: 5 optimizer { adam {} lr: 0.005 }"),
                                                  {p.loss.get(), p.eval.get(), d.train.get(), d.val.get()}));
  ASSERT_OK(fine->Train(m).status());
  const double recovered = Accuracy(p, m, *d.val);
  EXPECT_GT(recovered, trained - 5.0) << "perturbed to " << perturbed;
  EXPECT_GT(recovered, perturbed + 20.0);
}

// Returns the scripted accuracies, one per evaluation.
class ScriptedEvaluator : public EvaluationFunction {
 public:
  explicit ScriptedEvaluator(std::vector<double> values) : values_(std::move(values)) {}
  absl::StatusOr<Metrics> Apply(Model&, DataLoader&) override {
    Metrics m;
    m.Set("accuracy", values_.at(std::min(i_++, values_.size() - 1)), true);
    return m;
  }

 private:
  std::vector<double> values_;
  size_t i_ = 0;
};

TEST(TrainerTest, HooksKeepBestAndEarlyStopping) {
  Data d = MakeData(128);
  Parts p;
  ScriptedEvaluator scripted({50, 90, 60, 70, 65, 99});
  ASSERT_OK_AND_ASSIGN(Model m, CreateZooModel("lenet5", ZooOptions{.height = 12, .width = 12, .num_classes = 4}));
  ASSERT_OK_AND_ASSIGN(auto trainer, Trainer::Create(Config("epochs: 6 early_stopping_patience: 3"),
                                                     {p.loss.get(), &scripted, d.train.get(), d.val.get()}));
  int backward = 0, steps = 0, epochs = 0;
  std::vector<at::Tensor> weights_after_epoch;
  trainer->AddHooks({.after_backward = [&](Model&) { ++backward; return absl::OkStatus(); },
                     .after_step = [&](Model&) { ++steps; return absl::OkStatus(); },
                     .after_epoch =
                         [&](Model& model, int, const Metrics* eval) {
                           ++epochs;
                           EXPECT_NE(eval, nullptr);
                           weights_after_epoch.push_back(model.NamedParameters()[0].second.detach().clone());
                           return absl::OkStatus();
                         }});
  ASSERT_OK_AND_ASSIGN(TrainResult r, trainer->Train(m));
  EXPECT_TRUE(r.early_stopped);
  EXPECT_EQ(r.epochs_run, 5);  // 90 at epoch 2, then 60, 70, 65: three without improvement
  EXPECT_EQ(epochs, 5);
  EXPECT_EQ(backward, r.steps);
  EXPECT_EQ(steps, r.steps);
  EXPECT_EQ(r.best_epoch, 2);
  EXPECT_DOUBLE_EQ(r.best.Get("accuracy")->value, 90);
  EXPECT_TRUE(m.NamedParameters()[0].second.equal(weights_after_epoch[1])) << "best weights restored";
  EXPECT_THAT(r.events, ::testing::Contains(HasSubstr("early stop after epoch 5")));
}

// Wraps a loss and returns NaN on the steps listed.
class FlakyLoss : public LossFunction {
 public:
  FlakyLoss(LossFunction* base, std::set<int> bad) : LossFunction(nullptr), base_(base), bad_(std::move(bad)) {}
  absl::StatusOr<LossTerms> operator()(Model& m, const Batch& b) override {
    ASSIGN_OR_RETURN(LossTerms t, (*base_)(m, b));
    if (bad_.count(call_++) || bad_.count(-1)) t.terms.emplace_back("poison", at::full({}, NAN));
    return t;
  }
  absl::StatusOr<LossTerms> FromOutput(const c10::IValue& o, const Batch& b) override { return base_->FromOutput(o, b); }

 private:
  LossFunction* base_;
  std::set<int> bad_;
  int call_ = 0;
};

TEST(TrainerTest, NanLossRollsBackLowersLrAndGoesOn) {
  Data d = MakeData(512);
  Parts p;
  FlakyLoss flaky(p.loss.get(), {5});
  ASSERT_OK_AND_ASSIGN(Model m, CreateZooModel("lenet5", ZooOptions{.height = 12, .width = 12, .num_classes = 4}));
  ASSERT_OK_AND_ASSIGN(auto trainer, Trainer::Create(Config("epochs: 3"), {&flaky, p.eval.get(), d.train.get(), d.val.get()}));
  ASSERT_OK_AND_ASSIGN(TrainResult r, trainer->Train(m));
  EXPECT_EQ(r.nan_recoveries, 1);
  EXPECT_THAT(r.events, ::testing::Contains(HasSubstr("loss is nan at step 5 (epoch 1): rolled back")));
  EXPECT_THAT(r.events, ::testing::Contains(HasSubstr("lr scaled by 0.5")));
  EXPECT_TRUE(at::isfinite(m.NamedParameters()[0].second).all().item<bool>());
  EXPECT_GT(r.best.Get("accuracy")->value, 80.0) << "training went on after the rollback";

  FlakyLoss always(p.loss.get(), {-1});
  ASSERT_OK_AND_ASSIGN(auto doomed, Trainer::Create(Config("epochs: 1 max_nan_recoveries: 2"),
                                                    {&always, p.eval.get(), d.train.get(), d.val.get()}));
  EXPECT_THAT(doomed->Train(m), StatusIs(absl::StatusCode::kDataLoss, HasSubstr("giving up after 2 recoveries")));
}

TEST(TrainerTest, InterruptStopsBetweenStepsWithCancelled) {
  Data d = MakeData(256);
  Parts p;
  ASSERT_OK_AND_ASSIGN(Model m, CreateZooModel("lenet5", ZooOptions{.height = 12, .width = 12, .num_classes = 4}));
  ASSERT_OK_AND_ASSIGN(auto trainer, Trainer::Create(Config("epochs: 3"), {p.loss.get(), p.eval.get(),
                                                                           d.train.get(), d.val.get()}));
  int steps = 0;
  trainer->AddHooks({.after_step = [&](Model&) {
    if (++steps == 10) SetInterruptForTesting(SIGINT);  // as Ctrl-C during step 10 would
    return absl::OkStatus();
  }});
  EXPECT_THAT(trainer->Train(m), StatusIs(absl::StatusCode::kCancelled,
                                          HasSubstr("interrupted by SIGINT at epoch 2 step 3")));
  SetInterruptForTesting(0);
  EXPECT_EQ(steps, 10) << "no step after the interrupt";
  EXPECT_TRUE(at::isfinite(m.NamedParameters()[0].second).all().item<bool>());
}

TEST(TrainerTest, MaxStepsAndIterationScheduler) {
  Data d = MakeData(256);
  Parts p;
  ASSERT_OK_AND_ASSIGN(Model m, CreateZooModel("lenet5", ZooOptions{.height = 12, .width = 12, .num_classes = 4}));
  const std::string log = TempPath("max_steps.jsonl");
  ASSERT_OK_AND_ASSIGN(auto trainer, Trainer::Create(
      Config("max_steps: 10 scheduler { cosine { t_max: 10 } interval: ITERATION } metrics_path: '" + log + "'"),
      {p.loss.get(), p.eval.get(), d.train.get(), d.val.get()}));
  ASSERT_OK_AND_ASSIGN(TrainResult r, trainer->Train(m));
  EXPECT_EQ(r.steps, 10);
  EXPECT_EQ(r.epochs_run, 2);  // 7 batches per epoch
  // Stepped per iteration: after 10 of t_max 10 steps the cosine is at 0
  // (per epoch it would have taken 2 of 10 steps: 0.05 (1 + cos(0.2 pi)) / 2).
  ASSERT_OK_AND_ASSIGN(std::string text, ReadFileToString(log));
  const size_t at = text.rfind("\"lr\": ");
  ASSERT_NE(at, std::string::npos) << text;
  EXPECT_EQ(text.substr(at + 6, text.find(',', at) - at - 6), "0") << text;
}

// grad_clip_norm bounds the global gradient norm, so one plain SGD step at
// lr 1 moves the parameters by at most the clip norm; without it the same
// step moves them further (derived, not a golden).
TEST(TrainerTest, GradClipNormBoundsTheStep) {
  Data d = MakeData(64);
  Parts p;
  auto step_norm = [&](const std::string& clip) -> double {
    auto m = CreateZooModel("lenet5", ZooOptions{.height = 12, .width = 12, .num_classes = 4, .seed = 3});
    EXPECT_OK(m);
    std::vector<at::Tensor> before;
    for (auto& [name, t] : m->NamedParameters()) before.push_back(t.detach().clone());
    auto trainer = Trainer::Create(Config("optimizer { sgd { } lr: 1.0 } max_steps: 1 " + clip),
                                   {p.loss.get(), p.eval.get(), d.train.get(), d.val.get()});
    EXPECT_OK(trainer);
    EXPECT_OK((*trainer)->Train(*m).status());
    double sq = 0;
    size_t i = 0;
    for (auto& [name, t] : m->NamedParameters()) sq += (t.detach() - before[i++]).pow(2).sum().item<double>();
    return std::sqrt(sq);
  };
  const double clipped = step_norm("grad_clip_norm: 0.01");
  const double free = step_norm("");
  EXPECT_GT(clipped, 0.0);
  EXPECT_LE(clipped, 0.01 * (1 + 1e-4));
  EXPECT_GT(free, 0.02);
}

TEST(TrainerTest, SkipSchedulerStepsContinuesASchedule) {
  // 8 batches per epoch; a 2-epoch cosine schedule resumed after epoch 1
  // ends where the uninterrupted one ends (lr 0), not half-way (0.025).
  Data d = MakeData(256);
  Parts p;
  auto final_lr = [&](const std::string& extra) {
    ZooOptions small{.height = 12, .width = 12, .num_classes = 4};
    auto m = CreateZooModel("lenet5", small);
    EXPECT_OK(m);
    const std::string log = TempPath("skip" + std::to_string(extra.size()) + ".jsonl");
    auto trainer = Trainer::Create(Config("epochs: 1 metrics_path: '" + log +
                                          "' scheduler { cosine { t_max: 16 } interval: ITERATION } " + extra),
                                   {p.loss.get(), p.eval.get(), d.train.get(), d.val.get()});
    EXPECT_OK(trainer);
    EXPECT_OK((*trainer)->Train(*m).status());
    auto text = ReadFileToString(log);
    EXPECT_OK(text);
    const size_t at = text->rfind("\"lr\": ");
    return text->substr(at + 6, text->find(',', at) - at - 6);
  };
  EXPECT_EQ(final_lr(""), "0.025");
  EXPECT_EQ(final_lr("skip_scheduler_steps: 8"), "0");
  ASSERT_OK_AND_ASSIGN(Model m, CreateZooModel("lenet5", ZooOptions{.height = 12, .width = 12, .num_classes = 4}));
  EXPECT_THAT(
      Trainer::Create(Config("skip_scheduler_steps: -1"), {p.loss.get(), p.eval.get(), d.train.get()})
          .value()
          ->Train(m),
      StatusIs(absl::StatusCode::kInvalidArgument, "full_trainer.skip_scheduler_steps: negative, got -1; valid: >= 0"));
}

TEST(TrainerTest, PlateauSchedulerIsSteppedWithTheEvalMetric) {
  Data d = MakeData(64);
  Parts p;
  ScriptedEvaluator flat({80, 80, 80, 80, 80});
  ASSERT_OK_AND_ASSIGN(Model m, CreateZooModel("lenet5", ZooOptions{.height = 12, .width = 12, .num_classes = 4}));
  const std::string log = TempPath("plateau.jsonl");
  ASSERT_OK_AND_ASSIGN(auto trainer, Trainer::Create(
      Config("epochs: 5 keep_best: false metrics_path: '" + log +
             "' scheduler { reduce_on_plateau { patience: 1 factor: 0.5 } }"),
      {p.loss.get(), &flat, d.train.get(), d.val.get()}));
  ASSERT_OK(trainer->Train(m).status());
  // Flat metric, patience 1: the lr halves after the 3rd and the 5th evaluation.
  ASSERT_OK_AND_ASSIGN(std::string text, ReadFileToString(log));
  std::vector<std::string> lrs;
  for (size_t at = text.find("\"lr\": "); at != std::string::npos; at = text.find("\"lr\": ", at + 1)) {
    lrs.push_back(text.substr(at + 6, text.find(',', at) - at - 6));
  }
  EXPECT_THAT(lrs, ::testing::ElementsAre("0.05", "0.05", "0.025", "0.025", "0.0125"));
}

TEST(TrainerTest, BadConfigsNameTheField) {
  Data d = MakeData(64);
  Parts p;
  TrainerDeps deps{p.loss.get(), p.eval.get(), d.train.get(), d.val.get()};
  auto err = [&](const std::string& text) { return Trainer::Create(Config(text), deps).status(); };
  EXPECT_THAT(err("epochs: -1"),
              StatusIs(absl::StatusCode::kInvalidArgument, "full_trainer.epochs: negative, got -1; valid: >= 0"));
  EXPECT_THAT(err("epochs: 0"), StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("would not train at all")));
  EXPECT_THAT(err("grad_clip_norm: -2"),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       "full_trainer.grad_clip_norm: negative, got -2; valid: >= 0 (0 = no clipping)"));
  EXPECT_THAT(err("nan_lr_factor: 1.5"), StatusIs(absl::StatusCode::kInvalidArgument,
                                                  "full_trainer.nan_lr_factor: out of range, got 1.5; valid: (0, 1)"));
  EXPECT_THAT(err("eval_split: 'validation'"),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       "full_trainer.eval_split: not a split, got \"validation\"; valid: train, val, test"));
  EXPECT_THAT(err("optimizer { sgd {} lr: 0 }"),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       "full_trainer.optimizer.lr: required, and positive, got 0; valid: > 0"));
  EXPECT_THAT(err("scheduler { step {} }"),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       "full_trainer.scheduler.step.step_size: required, got 0; valid: >= 1"));
  ASSERT_OK_AND_ASSIGN(auto t, Trainer::Create(Config("metrics_path: '/no/such/dir/m.jsonl'"), deps));
  ASSERT_OK_AND_ASSIGN(Model m, CreateZooModel("lenet5", ZooOptions{.height = 12, .width = 12, .num_classes = 4}));
  EXPECT_THAT(t->Train(m), StatusIs(absl::StatusCode::kFailedPrecondition,
                                    "full_trainer.metrics_path: cannot be opened for appending, got "
                                    "\"/no/such/dir/m.jsonl\"; valid: a writable file path"));
  ASSERT_OK_AND_ASSIGN(auto wrong_key, Trainer::Create(Config("eval_key: 'top5'"), deps));
  EXPECT_THAT(wrong_key->Train(m),
              StatusIs(absl::StatusCode::kNotFound,
                       HasSubstr("full_trainer.eval_key: not a computed metric, got \"top5\"; valid: accuracy")));
}

// Channels-last weights (AUTO's choice for convolutions on the CPU) train the
// same model as contiguous ones, within float rounding (a few steps: over
// epochs, training amplifies rounding like any change of summation order);
// the hooks see the same tensors, laid out channels-last, and the model comes
// back contiguous.
TEST(TrainerTest, ChannelsLastTrainsWhatContiguousTrains) {
  Parts p;
  const ZooOptions zo{.height = 12, .width = 12, .num_classes = 4};
  ASSERT_OK_AND_ASSIGN(Model initial, CreateZooModel("resnet_small", zo));
  std::map<std::string, at::Tensor> start;
  for (auto& [name, t] : initial.NamedParameters()) start[name] = t.detach().clone();
  std::vector<std::map<std::string, at::Tensor>> trained;
  for (const char* format : {"CONTIGUOUS", "MEMORY_FORMAT_AUTO"}) {
    Data d = MakeData(256);
    ASSERT_OK_AND_ASSIGN(Model m, initial.Clone());
    ASSERT_OK_AND_ASSIGN(auto trainer, Trainer::Create(Config(absl::StrCat("epochs: 0 max_steps: 3 memory_format: ", format)),
                                                       {p.loss.get(), p.eval.get(), d.train.get(), d.val.get()}));
    int steps = 0, channels_last = 0;
    trainer->AddHooks({.after_step = [&](Model& model) -> absl::Status {
      ++steps;
      for (auto& [name, t] : model.NamedParameters()) {
        if (name == "layer1.b0.conv1.weight") channels_last += t.is_contiguous(at::MemoryFormat::ChannelsLast);
      }
      return absl::OkStatus();
    }});
    ASSERT_OK_AND_ASSIGN(TrainResult r, trainer->Train(m));
    EXPECT_EQ(r.steps, 3);
    EXPECT_EQ(steps, 3);
    EXPECT_EQ(channels_last, std::string(format) == "CONTIGUOUS" ? 0 : steps) << format;
    EXPECT_TRUE(r.events.empty()) << format << ": " << r.events.front();
    std::map<std::string, at::Tensor> weights;
    for (auto& [name, t] : m.NamedParameters()) {
      EXPECT_TRUE(t.is_contiguous()) << format << " " << name;
      weights[name] = t.detach().clone();
    }
    for (auto& [name, t] : m.NamedBuffers()) weights[name] = t.detach().clone();
    trained.push_back(std::move(weights));
  }
  ASSERT_EQ(trained[0].size(), trained[1].size());
  double moved = 0, apart = 0;
  for (const auto& [name, t] : trained[0]) {
    if (start.count(name)) moved = std::max(moved, (t - start[name]).abs().max().item<double>());
    if (at::isFloatingType(t.scalar_type())) {
      apart = std::max(apart, (t - trained[1].at(name)).abs().max().item<double>());
    } else {
      EXPECT_TRUE(t.equal(trained[1].at(name))) << name;
    }
  }
  EXPECT_GT(moved, 1e-2) << "the weights must have trained for the comparison to mean anything";
  EXPECT_LT(apart, 1e-5);
}

// A model whose forward needs NCHW strides (`.view` of a convolution's
// output): AUTO falls back to contiguous weights after the first step fails
// and says so; an explicit CHANNELS_LAST is an error naming the field.
TEST(TrainerTest, AModelThatRefusesChannelsLastFallsBackOrFailsWhenAsked) {
  Parts p;
  const std::string source =
      "def forward(self, x: Tensor) -> Tensor:\n"
      "    y = torch.relu(torch.conv2d(x, self.w1, None, [1, 1], [1, 1], [1, 1], 1))\n"
      "    y = torch.conv2d(y, self.w2, None, [1, 1], [1, 1], [1, 1], 1)\n"
      "    return torch.linear(y.view(y.size(0), -1), self.fc_w, self.fc_b)\n";
  auto model = [&] {
    return testing::ScriptedTestModel("ViewsConvOutput", source,
                                      {{"w1", at::randn({8, 1, 3, 3}) * 0.3},
                                       {"w2", at::randn({8, 8, 3, 3}) * 0.2},
                                       {"fc_w", at::randn({4, 8 * 12 * 12}) * 0.02},
                                       {"fc_b", at::zeros({4})}});
  };
  {
    Data d = MakeData(128);
    Model m = model();
    ASSERT_OK_AND_ASSIGN(auto trainer, Trainer::Create(Config("epochs: 1"), {p.loss.get(), p.eval.get(),
                                                                             d.train.get(), d.val.get()}));
    ASSERT_OK_AND_ASSIGN(TrainResult r, trainer->Train(m));
    EXPECT_EQ(r.steps, d.train->num_batches());
    ASSERT_EQ(r.events.size(), 1u);
    EXPECT_THAT(r.events[0], HasSubstr("the model's first step fails with channels-last weights ("));
    EXPECT_THAT(r.events[0], HasSubstr("); training with contiguous weights"));
    for (auto& [name, t] : m.NamedParameters()) EXPECT_TRUE(t.is_contiguous()) << name;
  }
  {
    Data d = MakeData(128);
    Model m = model();
    ASSERT_OK_AND_ASSIGN(auto trainer, Trainer::Create(Config("epochs: 1 memory_format: CHANNELS_LAST"),
                                                       {p.loss.get(), p.eval.get(), d.train.get(), d.val.get()}));
    EXPECT_THAT(trainer->Train(m),
                StatusIs(absl::StatusCode::kInvalidArgument,
                         AllOf(HasSubstr("full_trainer.memory_format: the model's first step fails with "
                                         "channels-last weights"),
                               HasSubstr("and passes with contiguous ones, got CHANNELS_LAST; valid: "
                                         "MEMORY_FORMAT_AUTO, CONTIGUOUS"))));
    for (auto& [name, t] : m.NamedParameters()) EXPECT_TRUE(t.is_contiguous()) << name;
  }
  {
    // Failing both ways, the error is the model's own (the fc does not fit), not the layout's.
    Data d = MakeData(128);
    Model m = testing::ScriptedTestModel("ViewsConvOutput", source,
                                         {{"w1", at::randn({8, 1, 3, 3})},
                                          {"w2", at::randn({8, 8, 3, 3})},
                                          {"fc_w", at::randn({4, 7})},
                                          {"fc_b", at::zeros({4})}});
    ASSERT_OK_AND_ASSIGN(auto trainer, Trainer::Create(Config("epochs: 1 memory_format: CHANNELS_LAST"),
                                                       {p.loss.get(), p.eval.get(), d.train.get(), d.val.get()}));
    const absl::Status s = trainer->Train(m).status();
    EXPECT_FALSE(s.ok());
    EXPECT_THAT(s.message(), HasSubstr("epoch 1 step 1"));
    EXPECT_THAT(s.message(), Not(HasSubstr("memory_format")));
    for (auto& [name, t] : m.NamedParameters()) EXPECT_TRUE(t.is_contiguous()) << name;
  }
}

// A group of two ranks (its collectives are never reached here).
class TwoRanks : public LocalCollective {
 public:
  int world_size() const override { return 2; }
};

TEST(TrainerTest, DataParallelNeedsAShardedTrainLoader) {
  Data d = MakeData(64);
  Parts p;
  TwoRanks group;
  TrainerDeps deps{p.loss.get(), p.eval.get(), d.train.get(), nullptr};
  deps.group = &group;
  ASSERT_OK_AND_ASSIGN(auto trainer, Trainer::Create(Config("epochs: 1"), deps));
  ASSERT_OK_AND_ASSIGN(Model m, CreateZooModel("lenet5", ZooOptions{.height = 12, .width = 12, .num_classes = 4}));
  EXPECT_THAT(
      trainer->Train(m),
      StatusIs(
          absl::StatusCode::kInvalidArgument,
          HasSubstr(
              "TrainerDeps: train is not a ShardedLoader; data-parallel training needs each rank's train loader")));
}

TEST(FunctionEvaluatorTest, UserLoopGetsAFreshOptimizerPerModelAndAPatchedCriterion) {
  Data d = MakeData(128);
  Parts p;
  OptimizerConfig oc;
  ASSERT_OK(ParseTextProto("sgd { momentum: 0.9 } lr: 0.05", "t", &oc));
  std::shared_ptr<NativeOptimizerFactory> of = MakeOptimizerFactory(oc).value();
  std::vector<std::string> term_names;
  int calls = 0;
  TrainingFunction train = [&](Model& model, torch::optim::Optimizer& opt, LossFunction& criterion, Scheduler*,
                               std::optional<int64_t> max_steps, std::optional<int>) -> absl::Status {
    ++calls;
    // The optimizer holds exactly this model's parameters.
    const auto& params = opt.param_groups()[0].params();
    EXPECT_TRUE(params[0].is_same(model.NamedParameters()[0].second));
    RETURN_IF_ERROR(d.train->Reset(0));
    Batch b;
    for (int64_t s = 0; s < max_steps.value_or(1) && d.train->Next(&b).value(); ++s) {
      opt.zero_grad();
      ASSIGN_OR_RETURN(LossTerms t, criterion(model, b));
      term_names.clear();
      for (auto& [n, v] : t.terms) term_names.push_back(n);
      t.Total().backward();
      opt.step();
    }
    return absl::OkStatus();
  };
  EvaluatingFunction evaluate = [&](Model& model) -> absl::StatusOr<EvaluationResult> {
    ASSIGN_OR_RETURN(Metrics m, p.eval->Apply(model, *d.val));
    return EvaluationResult{m.Get("accuracy")->value, m};
  };
  FunctionEvaluator ev(train, evaluate, std::move(p.loss), of);
  ev.PatchCriterion("bn_l1", BatchNormL1Term(1e-4));
  ASSERT_OK_AND_ASSIGN(Model a, CreateZooModel("vgg_small", ZooOptions{.height = 12, .width = 12, .num_classes = 4}));
  ASSERT_OK_AND_ASSIGN(Model b, CreateZooModel("vgg_small", ZooOptions{.height = 12, .width = 12, .num_classes = 4, .width_multiplier = 0.5}));
  ASSERT_OK(ev.Train(a, 3, std::nullopt));
  ASSERT_OK(ev.Train(b, 3, std::nullopt));
  EXPECT_EQ(calls, 2);
  EXPECT_THAT(term_names, ::testing::ElementsAre("cross_entropy", "bn_l1"));
  ASSERT_OK_AND_ASSIGN(EvaluationResult r, ev.Evaluate(a));
  // The score is the user's evaluate function's: accuracy on val, as the
  // evaluator computes it directly.
  ASSERT_OK_AND_ASSIGN(Metrics direct, p.eval->Apply(a, *d.val));
  EXPECT_DOUBLE_EQ(r.score, direct.Get("accuracy")->value);
}

}  // namespace
}  // namespace slimfit
