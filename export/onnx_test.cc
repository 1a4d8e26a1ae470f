// The ONNX exporter's graphs (structure, what is folded, QDQ) and its
// errors. That the exported numbers match LibTorch is
// //export:onnx_runtime_test's job (it runs ONNX Runtime).
#include "export/onnx.h"

#include <ATen/ATen.h>
#include <torch/csrc/jit/api/module.h>

#include <map>
#include <set>
#include <string>
#include <vector>

#include "common/files.h"
#include "common/status_matchers.h"
#include "gmock/gmock.h"
#include "graph/layer_table.h"
#include "graph/pruning_test_util.h"
#include "gtest/gtest.h"
#include "model/test_models.h"
#include "model/zoo/zoo.h"
#include "onnx/onnx_pb.h"
#include "quantizers/int8.h"

namespace slimfit {
namespace {

using ::slimfit::testing::PruningTestModels;
using ::slimfit::testing::RandomInput;
using ::slimfit::testing::ScriptedTestModel;
using ::slimfit::testing::StatusIs;
using ::testing::HasSubstr;

std::vector<int64_t> Batched(const std::vector<int64_t>& sample) {
  std::vector<int64_t> shape = {1};
  shape.insert(shape.end(), sample.begin(), sample.end());
  return shape;
}

onnx::ModelProto Parse(const std::string& bytes) {
  onnx::ModelProto proto;
  EXPECT_TRUE(proto.ParseFromString(bytes));
  return proto;
}

std::map<std::string, int> OpCounts(const onnx::ModelProto& proto) {
  std::map<std::string, int> counts;
  for (const onnx::NodeProto& n : proto.graph().node()) ++counts[n.op_type()];
  return counts;
}

int CountKind(const Model& m, const std::string& prefix) {
  int n = 0;
  for (const torch::jit::Node* node : m.module().get_method("forward").graph()->nodes()) {
    if (std::string(node->kind().toQualString()).rfind(prefix, 0) == 0) ++n;
  }
  return n;
}

TEST(OnnxExport, EveryTestModelExportsWithABatchInputAndOneNodePerLayer) {
  ASSERT_OK_AND_ASSIGN(auto models, PruningTestModels());
  ASSERT_GE(models.size(), 13u);  // the zoo and graph/testdata's models
  for (auto& tm : models) {
    SCOPED_TRACE(tm.name);
    OnnxExportOptions options;
    options.input_shapes = {Batched(tm.input_shape)};
    OnnxExportSummary summary;
    ASSERT_OK_AND_ASSIGN(std::string bytes, ExportOnnx(tm.model, options, &summary));
    const onnx::ModelProto proto = Parse(bytes);
    EXPECT_EQ(proto.opset_import(0).version(), 17);
    ASSERT_EQ(proto.graph().input_size(), 1);
    EXPECT_EQ(proto.graph().input(0).name(), "input");
    EXPECT_EQ(proto.graph().input(0).type().tensor_type().shape().dim(0).dim_param(), "batch");
    ASSERT_EQ(proto.graph().output_size(), 1);
    EXPECT_EQ(proto.graph().output(0).name(), "output");
    EXPECT_FALSE(summary.quantized);
    EXPECT_EQ(summary.bytes, static_cast<int64_t>(bytes.size()));
    // Every convolution and linear layer of the model is one Conv / Gemm / MatMul.
    ASSERT_OK_AND_ASSIGN(LayerTable table, BuildLayerTable(tm.model));
    int convs = 0, linears = 0;
    for (const Layer& l : table.layers) {
      if (l.op_kind.find("conv") != std::string::npos) ++convs;
      if (l.op_kind == "aten::linear") ++linears;
    }
    ASSERT_GT(convs, 0);
    std::map<std::string, int> ops = OpCounts(proto);
    EXPECT_EQ(ops["Conv"], convs);
    EXPECT_EQ(ops["Gemm"] + ops["MatMul"], linears);
    EXPECT_EQ(ops["Dropout"], 0);
    // SSA: every name is defined once (inputs, initializers, node outputs).
    std::set<std::string> names;
    int defined = proto.graph().input_size() + proto.graph().initializer_size();
    for (const auto& i : proto.graph().input()) names.insert(i.name());
    for (const auto& t : proto.graph().initializer()) names.insert(t.name());
    for (const auto& n : proto.graph().node()) {
      defined += n.output_size();
      names.insert(n.output().begin(), n.output().end());
    }
    EXPECT_EQ(names.size(), static_cast<size_t>(defined));
  }
}

TEST(OnnxExport, ValuesNamedInputAndOutputDoNotTakeTheGraphsNames) {
  Model m = ScriptedTestModel("Names",
                              "def forward(self, x: Tensor) -> Tensor:\n"
                              "    output = torch.relu(x)\n"
                              "    input = output + 1.0\n"
                              "    return input * 2.0\n");
  OnnxExportOptions options;
  options.input_shapes = {{1, 4}};
  ASSERT_OK_AND_ASSIGN(std::string bytes, ExportOnnx(m, options));
  const onnx::ModelProto proto = Parse(bytes);
  EXPECT_EQ(proto.graph().input(0).name(), "input");
  EXPECT_EQ(proto.graph().output(0).name(), "output");
  int defining_output = 0;
  for (const auto& n : proto.graph().node()) {
    for (const std::string& o : n.output()) defining_output += o == "output";
  }
  EXPECT_EQ(defining_output, 1);
}

TEST(OnnxExport, BatchNormAfterAConvolutionIsFolded) {
  for (const std::string name : {"resnet_small", "mobilenetv2_small", "vgg_small"}) {
    SCOPED_TRACE(name);
    ASSERT_OK_AND_ASSIGN(Model m, CreateZooModel(name, ZooOptions()));
    ASSERT_OK_AND_ASSIGN(LayerTable table, BuildLayerTable(m));
    int norms = 0;
    for (const Layer& l : table.layers) norms += l.op_type.find("Norm") != std::string::npos;
    ASSERT_GT(norms, 0);  // the model has batch norms to fold
    ASSERT_OK_AND_ASSIGN(std::string bytes, ExportOnnx(m, OnnxExportOptions()));
    EXPECT_EQ(OpCounts(Parse(bytes))["BatchNormalization"], 0);
  }
}

TEST(OnnxExport, FixedBatchKeepsTheRecordedBatchSize) {
  ASSERT_OK_AND_ASSIGN(Model m, CreateZooModel("lenet5", ZooOptions()));
  OnnxExportOptions options;
  options.input_shapes = {{4, 1, 28, 28}};
  options.fixed_batch = true;
  ASSERT_OK_AND_ASSIGN(std::string bytes, ExportOnnx(m, options));
  const onnx::ModelProto proto = Parse(bytes);
  EXPECT_EQ(proto.graph().input(0).type().tensor_type().shape().dim(0).dim_value(), 4);
  EXPECT_EQ(proto.graph().output(0).type().tensor_type().shape().dim(0).dim_value(), 4);
}

TEST(OnnxExport, Int8ModelsBecomeQdqWithInt8WeightsAndInt32Biases) {
  ASSERT_OK_AND_ASSIGN(auto models, PruningTestModels());
  int exported = 0;
  for (auto& tm : models) {
    SCOPED_TRACE(tm.name);
    QuantizationConfig config;
    config.mutable_activation()->mutable_minmax();
    ASSERT_OK_AND_ASSIGN(auto q, Int8Quantizer::Create(tm.model, config));
    for (int b = 0; b < 4; ++b) ASSERT_OK(q->Observe({RandomInput(tm.input_shape, 8, 10 + b)}));
    ASSERT_OK_AND_ASSIGN(Model int8, q->Convert());
    OnnxExportOptions options;
    options.input_shapes = {Batched(tm.input_shape)};
    OnnxExportSummary summary;
    ASSERT_OK_AND_ASSIGN(std::string bytes, ExportOnnx(int8, options, &summary));
    ++exported;
    EXPECT_TRUE(summary.quantized);
    const onnx::ModelProto proto = Parse(bytes);
    std::map<std::string, int> ops = OpCounts(proto);
    const int quantized_convs = CountKind(int8, "quantized::conv");
    const int quantized_linears = CountKind(int8, "quantized::linear");
    ASSERT_GT(quantized_convs, 0);
    EXPECT_EQ(ops["Conv"], quantized_convs);
    EXPECT_EQ(ops["QuantizeLinear"] > 0, true);
    // One int8 weight per quantized layer, a per-channel scale per output
    // channel, and the bias as int32.
    std::map<std::string, const onnx::TensorProto*> inits;
    for (const onnx::TensorProto& t : proto.graph().initializer()) inits[t.name()] = &t;
    int int8_weights = 0, int32_biases = 0;
    for (const onnx::NodeProto& n : proto.graph().node()) {
      if (n.op_type() != "DequantizeLinear" || !inits.count(n.input(0))) continue;
      const onnx::TensorProto& data = *inits[n.input(0)];
      if (data.data_type() == onnx::TensorProto::INT8) {
        ++int8_weights;
        ASSERT_TRUE(inits.count(n.input(1)));
        const onnx::TensorProto& scale = *inits[n.input(1)];
        EXPECT_TRUE(scale.dims_size() == 0 || scale.dims(0) == data.dims(0));
      }
      if (data.data_type() == onnx::TensorProto::INT32) ++int32_biases;
    }
    EXPECT_EQ(int8_weights, quantized_convs + quantized_linears);
    EXPECT_GT(int32_biases, 0);
  }
  EXPECT_GE(exported, 13);
}

// A layer kept in float inside an int8 model (mixed precision) must not
// read a DequantizeLinear: ONNX Runtime would take DQ → Conv → Q for a
// quantized layer and quantize the float weights (docs/export.md).
TEST(OnnxExport, LayersKeptInFloatDoNotLookQuantizedToTheRuntime) {
  ASSERT_OK_AND_ASSIGN(Model m, CreateZooModel("lenet5", ZooOptions()));
  QuantizationConfig config;
  config.mutable_activation()->mutable_minmax();
  ASSERT_OK_AND_ASSIGN(auto q, Int8Quantizer::Create(m, config));
  for (int b = 0; b < 4; ++b) ASSERT_OK(q->Observe({RandomInput({1, 28, 28}, 8, 30 + b)}));
  ASSERT_OK_AND_ASSIGN(Model mixed, q->Convert({1, 3}));  // the second conv and a linear stay fp32
  ASSERT_EQ(CountKind(mixed, "quantized::"), 3);
  ASSERT_OK_AND_ASSIGN(std::string bytes, ExportOnnx(mixed, OnnxExportOptions()));
  const onnx::ModelProto proto = Parse(bytes);
  std::set<std::string> float_initializers, dequantized;
  for (const onnx::TensorProto& t : proto.graph().initializer()) {
    if (t.data_type() == onnx::TensorProto::FLOAT) float_initializers.insert(t.name());
  }
  for (const onnx::NodeProto& n : proto.graph().node()) {
    if (n.op_type() == "DequantizeLinear") dequantized.insert(n.output(0));
  }
  int float_layers = 0;
  for (const onnx::NodeProto& n : proto.graph().node()) {
    if ((n.op_type() == "Conv" || n.op_type() == "Gemm" || n.op_type() == "MatMul") &&
        float_initializers.count(n.input(1))) {
      ++float_layers;
      EXPECT_EQ(dequantized.count(n.input(0)), 0u) << n.name() << " reads " << n.input(0);
    }
  }
  EXPECT_GE(float_layers, 2);  // the two kept fp32, and any the quantizer left fp32 with them
}

TEST(OnnxExport, AnOpWithoutAMappingNamesItsNodeAndSourceAndWritesNothing) {
  Model m = ScriptedTestModel("Unmapped",
                              "def forward(self, x: Tensor) -> Tensor:\n"
                              "    y = torch.relu(x)\n"
                              "    z = torch.cumsum(y, 1)\n"
                              "    return torch.erfinv(z)\n");
  OnnxExportOptions options;
  options.input_shapes = {{1, 4}};
  const absl::StatusOr<std::string> exported = ExportOnnx(m, options);
  EXPECT_THAT(exported, StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("aten::cumsum at <string>:3")));
  EXPECT_THAT(exported.status().message(), HasSubstr("no ONNX mapping"));
  EXPECT_THAT(exported.status().message(), HasSubstr("other ops with no mapping: aten::erfinv"));
  const std::string path = testing::TempPath("unmapped.onnx");
  EXPECT_THAT(WriteOnnx(m, path, options), StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("aten::cumsum")));
  EXPECT_THAT(RegularFileSize(path), StatusIs(absl::StatusCode::kNotFound, HasSubstr("unmapped.onnx")));
}

TEST(OnnxExport, InputShapesComeFromTheMetadataOrAreAsked) {
  Model identity = testing::IdentityModel();
  EXPECT_THAT(ExportOnnx(identity, OnnxExportOptions()),
              StatusIs(absl::StatusCode::kFailedPrecondition, HasSubstr("--input_shape")));
  ASSERT_OK_AND_ASSIGN(Model lenet, CreateZooModel("lenet5", ZooOptions()));
  ASSERT_OK(ExportOnnx(lenet, OnnxExportOptions()).status());  // the zoo records [1, 1, 28, 28]
  OnnxExportOptions wrong;
  wrong.input_shapes = {{1, 3, 32, 32}};
  EXPECT_THAT(ExportOnnx(lenet, wrong), StatusIs(absl::StatusCode::kInvalidArgument,
                                                 HasSubstr("does not run on inputs of shape [1, 3, 32, 32]")));
}

}  // namespace
}  // namespace slimfit
