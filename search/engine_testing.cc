#include "search/engine_testing.h"

#include <torch/csrc/jit/serialization/import.h>

#include "common/status_matchers.h"
#include "common/text_proto.h"
#include "gtest/gtest.h"
#include "search/experiment.h"
#include "search/setup.h"

namespace slimfit::testing {

Experiment LenetSlice(const std::string& name, const std::string& compression) {
  return ZooSlice("lenet5", name, compression);
}

Experiment ZooSlice(const std::string& zoo, const std::string& name, const std::string& compression) {
  Experiment e;
  EXPECT_OK(ParseTextProto(R"pb(
    model { reference_epochs: 2 }
    data {
      mnist {}
      train_batch_size: 64
      max_train_samples: 3000
      max_eval_samples: 600
      train_transforms { normalize { mean: 0.2860 std: 0.3530 } }
      eval_transforms { normalize { mean: 0.2860 std: 0.3530 } }
    }
    full_trainer {
      optimizer { sgd { momentum: 0.9 } lr: 0.05 }
      scheduler { cosine {} interval: ITERATION }
    }
  )pb", "slice", &e));
  e.mutable_model()->set_zoo(zoo);
  e.set_name(name);
  e.set_output_dir(::testing::TempDir() + "/runs/" + name);
  EXPECT_OK(ParseTextProto(compression, "compression", e.mutable_compression()));
  // These tests exercise the engine through bisection's probes (pruners
  // compared at the first, tuning.probes, ...) unless they name a strategy;
  // every registered strategy also passes strategy_conformance_test.
  if (e.compression().strategy().empty()) e.mutable_compression()->set_strategy("bisection");
  return e;
}

std::unique_ptr<BuiltEngine> BuildEngine(const Experiment& e) {
  auto b = std::make_unique<BuiltEngine>();
  b->experiment = WithDefaults(e);
  SetupOptions options;
  options.references_dir = ::testing::TempDir() + "/references";
  auto in = BuildEngineInputs(b->experiment, options);
  EXPECT_OK(in);
  if (!in.ok()) return b;
  b->engine = std::make_unique<Engine>(std::move(in->data), std::move(*in->model), b->experiment, in->forward_pass,
                                       std::move(in->evaluator), std::move(in->loss));
  BuiltEngine* raw = b.get();
  b->engine->set_progress([raw](const std::string& line) { raw->lines.push_back(line); });
  return b;
}

double MetricOfFile(const Experiment& e, const std::string& path, bool on_test) {
  auto in = BuildEngineInputs(e, {::testing::TempDir() + "/references"});
  EXPECT_OK(in);
  if (!in.ok()) return -1;
  torch::jit::Module plain = torch::jit::load(path);
  Model m(plain);
  if (on_test && in->data.test == nullptr) {
    ADD_FAILURE() << "no test loader";
    return -1;
  }
  auto metrics = in->evaluator->Apply(m, on_test ? *in->data.test : *in->data.eval);
  EXPECT_OK(metrics);
  if (!metrics.ok()) return -1;
  auto metric = metrics->Get(e.evaluation().eval_key());
  EXPECT_OK(metric);
  return metric.ok() ? metric->value : -1;
}

}  // namespace slimfit::testing
