#include "graph/layer_table.h"

#include <ATen/ATen.h>
#include <torch/csrc/jit/api/module.h>
#include <torch/csrc/jit/runtime/graph_executor.h>

#include "common/status_matchers.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "model/zoo/zoo.h"

namespace slimfit {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;

LayerTable TableFor(const std::string& name) {
  auto m = CreateZooModel(name);
  EXPECT_OK(m);
  auto t = BuildLayerTable(*m);
  EXPECT_OK(t);
  return *t;
}

// Trainer::Train switches the graph executor's optimizations off for its
// thread, and a forward pass run then caches each submodule's plain graph;
// a loss term that reads the table while training (slim's bn_l1) must still
// see every layer of a Python-traced model with nested Sequentials (torch
// 2.11's trace, graph/testdata/make_models.py). The two models are loaded
// separately: each has its own cache.
TEST(LayerTableTest, SameLayersAfterAForwardPassWithTheGraphOptimizerOff) {
  ASSERT_OK_AND_ASSIGN(Model fresh, Model::Load("graph/testdata/mixed_traced.pt"));
  ASSERT_OK_AND_ASSIGN(LayerTable expected, BuildLayerTable(fresh));
  ASSERT_OK_AND_ASSIGN(Model m, Model::Load("graph/testdata/mixed_traced.pt"));
  torch::jit::GraphOptimizerEnabledGuard off(false);
  m.Train();
  m.module().forward({at::randn({2, 1, 16, 16})});
  ASSERT_OK_AND_ASSIGN(LayerGraph lg, BuildLayerGraph(m));
  const LayerTable& table = lg.table;
  ASSERT_EQ(table.layers.size(), expected.layers.size()) << lg.graph->toString();
  int batch_norms = 0;
  for (size_t i = 0; i < expected.layers.size(); ++i) {
    EXPECT_EQ(table.layers[i].module_path, expected.layers[i].module_path);
    EXPECT_EQ(table.layers[i].op_type, expected.layers[i].op_type);
    batch_norms += expected.layers[i].op_type == "BatchNorm";
  }
  EXPECT_EQ(batch_norms, 6);
}

TEST(LayerTableTest, LeNet5LayersInExecutionOrder) {
  LayerTable t = TableFor("lenet5");
  std::vector<std::string> paths, types;
  for (const Layer& l : t.layers) {
    paths.push_back(l.module_path);
    types.push_back(l.op_type);
  }
  EXPECT_THAT(paths, ElementsAre("conv1", "conv2", "fc1", "fc2", "fc3"));
  EXPECT_THAT(types, ElementsAre("Conv2d", "Conv2d", "Linear", "Linear", "Linear"));
  EXPECT_THAT(t.layers[2].weight_shape, ElementsAre(120, 400));
  EXPECT_THAT(t.layers[0].parameters, ElementsAre("conv1.weight", "conv1.bias"));
  // LeNet-5 (1x28x28 in, padded conv1): weights + biases, layer by layer.
  EXPECT_EQ(t.layers[0].num_params, 1 * 6 * 5 * 5 + 6);
  EXPECT_EQ(t.total_params, (1 * 6 * 5 * 5 + 6) + (6 * 16 * 5 * 5 + 16) + (16 * 5 * 5 * 120 + 120) + (120 * 84 + 84) +
                                (84 * 10 + 10));
  EXPECT_EQ(t.params_in_layers, t.total_params);
}

TEST(LayerTableTest, ResNetNestedPathsAndBatchNorms) {
  LayerTable t = TableFor("resnet_small");
  int convs = 0, bns = 0, linears = 0;
  bool saw_downsample = false;
  for (const Layer& l : t.layers) {
    convs += l.op_type == "Conv2d";
    bns += l.op_type == "BatchNorm";
    linears += l.op_type == "Linear";
    saw_downsample |= l.module_path == "layer2.b0.downsample.conv";
  }
  EXPECT_EQ(convs, 1 + 3 * 2 * 2 + 2);  // stem + 12 block convs + 2 downsample
  EXPECT_EQ(bns, convs);
  EXPECT_EQ(linears, 1);
  EXPECT_TRUE(saw_downsample);
  EXPECT_EQ(t.params_in_layers, t.total_params);
}

TEST(LayerTableTest, MobileNetDepthwiseConvsAreRecognised) {
  LayerTable t = TableFor("mobilenetv2_small");
  int depthwise = 0;
  for (const Layer& l : t.layers) {
    if (l.op_type == "DepthwiseConv2d") {
      ++depthwise;
      EXPECT_EQ(l.groups, l.weight_shape[0]) << l.module_path;
    }
  }
  EXPECT_EQ(depthwise, 7);  // one per inverted residual block
}

TEST(LayerTableTest, FormatShowsEveryLayerAndTheTotal) {
  const std::string text = FormatLayerTable(TableFor("lenet5"));
  EXPECT_THAT(text, HasSubstr("conv1"));
  EXPECT_THAT(text, HasSubstr("[120, 400]"));
  EXPECT_THAT(text, HasSubstr("5 layers, 61706 parameters"));
}

}  // namespace
}  // namespace slimfit
