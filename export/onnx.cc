#include "export/onnx.h"

#include <ATen/ATen.h>

#include <set>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/files.h"
#include "common/status_macros.h"
#include "common/torch_status.h"
#include "export/onnx_converter.h"
#include "export/onnx_prepare.h"
#include "graph/freeze.h"
#include "onnx/checker.h"
#include "onnx/shape_inference/implementation.h"

namespace slimfit {
namespace {

using onnx_export::Converter;
using onnx_export::QuantizedInputRule;
using onnx_export::RecordShapes;
using onnx_export::Specialize;

constexpr int kOpset = 17;
constexpr int kIrVersion = 8;

// Nodes that produce no ONNX node of their own: constants and lists are read
// by their consumers, attributes by the quantized ops, the output tuple by
// the graph's outputs.
bool ReadByConsumers(c10::Symbol kind) {
  return kind == c10::prim::Constant || kind == c10::prim::ListConstruct || kind == c10::prim::GetAttr ||
         kind == c10::prim::TupleConstruct;
}

absl::StatusOr<std::vector<std::vector<int64_t>>> InputShapes(const Model& model, const OnnxExportOptions& options) {
  if (!options.input_shapes.empty()) return options.input_shapes;
  std::vector<std::vector<int64_t>> shapes;
  for (const TensorSpec& spec : model.metadata().inputs()) {
    if (!spec.dtype().empty() && spec.dtype() != "float32") {
      return absl::InvalidArgumentError(
          absl::StrCat("ONNX export: input ", shapes.size(), " is ", spec.dtype(), "; valid: float32 inputs"));
    }
    shapes.emplace_back(spec.shape().begin(), spec.shape().end());
  }
  if (shapes.empty()) {
    return absl::FailedPreconditionError(
        "ONNX export: the model's metadata records no input shapes; give them (--input_shape=1,1,28,28 or "
        "OnnxExportOptions.input_shapes)");
  }
  return shapes;
}

void SetShape(onnx::ValueInfoProto* info, int elem_type, const std::vector<int64_t>& dims, bool fixed_batch) {
  auto* tensor = info->mutable_type()->mutable_tensor_type();
  tensor->set_elem_type(elem_type);
  auto* shape = tensor->mutable_shape();
  for (size_t i = 0; i < dims.size(); ++i) {
    if (i == 0 && !fixed_batch) {
      shape->add_dim()->set_dim_param("batch");
    } else {
      shape->add_dim()->set_dim_value(dims[i]);
    }
  }
}

// Converts one node; `unmapped` set when no table has its op.
absl::Status ConvertNode(Converter& c, const torch::jit::Node* n, bool* unmapped) {
  const std::string kind = n->kind().toQualString();
  const auto& float_ops = onnx_export::FloatOps();
  const auto& quantized_ops = onnx_export::QuantizedOps();
  const onnx_export::QParams* quantized_input = nullptr;
  for (const torch::jit::Value* in : n->inputs()) {
    if (const auto* q = c.QuantParams(in); q != nullptr && quantized_input == nullptr) quantized_input = q;
  }
  if (quantized_input == nullptr) {
    if (auto it = float_ops.find(kind); it != float_ops.end()) return it->second(c, n);
    if (kind == "aten::quantize_per_tensor" || kind == "aten::dequantize" || kind.rfind("quantized::", 0) == 0) {
      if (auto it = quantized_ops.find(kind); it != quantized_ops.end()) return it->second(c, n);
    }
    *unmapped = true;
    return c.NodeError("no ONNX mapping for this op");
  }
  if (auto it = quantized_ops.find(kind); it != quantized_ops.end()) return it->second(c, n);
  const auto& on_quantized = onnx_export::OpsOnQuantizedInputs();
  auto rule = on_quantized.find(kind);
  auto op = float_ops.find(kind);
  if (rule == on_quantized.end() || op == float_ops.end()) {
    *unmapped = true;
    return c.NodeError("no ONNX mapping for this op on a quantized tensor");
  }
  const onnx_export::QParams q = *quantized_input;
  c.SetKeepQuantized(rule->second == QuantizedInputRule::kSameBytes);
  absl::Status converted = op->second(c, n);
  c.SetKeepQuantized(false);
  RETURN_IF_ERROR(converted);
  const torch::jit::Value* out = n->output(0);
  if (c.QuantParams(out) != nullptr || out->type()->kind() != c10::TypeKind::TensorType) return absl::OkStatus();
  if (rule->second == QuantizedInputRule::kRequantize) {
    ASSIGN_OR_RETURN(std::string y, c.Tensor(out));
    c.Bind(out, c.Quantize(y, q, absl::StrCat(out->debugName(), "_q")), c.Rank(out));
  }
  c.SetQParams(out, q);
  return absl::OkStatus();
}

absl::StatusOr<onnx::ModelProto> BuildModel(const Model& model, const OnnxExportOptions& options) {
  ASSIGN_OR_RETURN(std::vector<std::vector<int64_t>> shapes, InputShapes(model, options));
  ASSIGN_OR_RETURN(torch::jit::Module frozen, FreezeAndFold(model));
  std::shared_ptr<torch::jit::Graph> graph = frozen.get_method("forward").graph()->copy();
  Specialize(graph, shapes, options.fixed_batch);

  // One run on zeros: the outputs' shapes (and a model that runs at all).
  std::vector<c10::IValue> zeros;
  for (const auto& s : shapes) zeros.emplace_back(at::zeros(s));
  absl::StatusOr<c10::IValue> run = TorchCallOr("", [&] { return frozen.forward(zeros); });
  if (!run.ok()) {
    std::vector<std::string> shape_text;
    for (const auto& s : shapes) shape_text.push_back(absl::StrCat("[", absl::StrJoin(s, ", "), "]"));
    return absl::InvalidArgumentError(absl::StrCat("ONNX export: the model does not run on inputs of shape ",
                                                   absl::StrJoin(shape_text, ", "), ": ", run.status().message()));
  }
  c10::IValue result = *std::move(run);
  // A returned tuple's None elements (GoogLeNet's aux outputs when they are
  // off) have no ONNX value: the tensors are the outputs, in order.
  std::vector<at::Tensor> outputs;
  if (result.isTensor()) {
    outputs.push_back(result.toTensor());
  } else if (result.isTuple()) {
    for (const auto& e : result.toTupleRef().elements()) {
      if (e.isNone()) continue;
      if (!e.isTensor()) {
        return absl::InvalidArgumentError(absl::StrCat("ONNX export: the model returns a tuple holding a ", e.tagKind(),
                                                       "; valid: tensors (and None)"));
      }
      outputs.push_back(e.toTensor());
    }
  } else {
    return absl::InvalidArgumentError(
        absl::StrCat("ONNX export: the model returns ", result.tagKind(), "; valid: a tensor or a tuple of tensors"));
  }

  onnx::ModelProto proto;
  proto.set_ir_version(kIrVersion);
  proto.set_producer_name("slimfit");
  proto.set_producer_version("1");
  proto.set_doc_string(model.metadata().name());
  onnx::OperatorSetIdProto* opset = proto.add_opset_import();
  opset->set_domain("");
  opset->set_version(kOpset);
  onnx::GraphProto* g = proto.mutable_graph();
  g->set_name(model.metadata().name().empty() ? "slimfit" : model.metadata().name());
  Converter c(g, &frozen);
  c.SetRecordedShapes(RecordShapes(*graph, frozen, zeros), options.fixed_batch);
  auto output_name = [&](size_t i) { return outputs.size() == 1 ? std::string("output") : absl::StrCat("output_", i); };
  for (size_t i = 0; i < outputs.size(); ++i) c.Reserve(output_name(i));

  // Inputs (graph input 0 is the module itself).
  size_t tensor_inputs = 0;
  for (const torch::jit::Value* in : graph->inputs()) {
    if (in->type()->cast<c10::ClassType>() != nullptr) continue;
    if (tensor_inputs >= shapes.size()) {
      return absl::InvalidArgumentError(
          absl::StrCat("ONNX export: forward() takes more than the ", shapes.size(), " input shape(s) given"));
    }
    std::string name = c.Fresh(tensor_inputs == 0 ? "input" : absl::StrCat("input_", tensor_inputs));
    SetShape(g->add_input(), onnx::TensorProto::FLOAT, shapes[tensor_inputs], options.fixed_batch);
    g->mutable_input(g->input_size() - 1)->set_name(name);
    c.Bind(in, name, static_cast<int64_t>(shapes[tensor_inputs].size()));
    ++tensor_inputs;
  }
  if (tensor_inputs != shapes.size()) {
    return absl::InvalidArgumentError(absl::StrCat("ONNX export: forward() takes ", tensor_inputs, " tensor(s), ",
                                                   shapes.size(), " input shape(s) given"));
  }

  absl::Status first_error;
  std::string first_kind;
  std::set<std::string> other_unmapped;
  for (const torch::jit::Node* n : graph->nodes()) {
    if (ReadByConsumers(n->kind())) continue;
    c.SetNode(n);
    bool unmapped = false;
    if (!first_error.ok()) {
      // Only listing what else has no mapping.
      std::string kind = n->kind().toQualString();
      if (onnx_export::FloatOps().count(kind) == 0 && onnx_export::QuantizedOps().count(kind) == 0) {
        other_unmapped.insert(kind);
      }
      continue;
    }
    absl::Status s = ConvertNode(c, n, &unmapped);
    if (!s.ok()) {
      if (!unmapped) return s;
      first_error = s;
      first_kind = n->kind().toQualString();
    }
  }
  c.SetNode(nullptr);
  if (!first_error.ok()) {
    other_unmapped.erase(first_kind);
    if (other_unmapped.empty()) return first_error;
    return absl::InvalidArgumentError(
        absl::StrCat(first_error.message(), "; other ops with no mapping: ", absl::StrJoin(other_unmapped, ", ")));
  }

  // Outputs: the returned tensor or the tuple's elements.
  std::vector<const torch::jit::Value*> returned;
  for (const torch::jit::Value* out : graph->outputs()) {
    if (out->node()->kind() == c10::prim::TupleConstruct) {
      for (const torch::jit::Value* e : out->node()->inputs()) {
        if (e->type()->kind() != c10::TypeKind::NoneType) returned.push_back(e);
      }
    } else {
      returned.push_back(out);
    }
  }
  if (returned.size() != outputs.size()) {
    return absl::InternalError(
        absl::StrCat("ONNX export: the graph returns ", returned.size(), " values, the run ", outputs.size()));
  }
  for (size_t i = 0; i < returned.size(); ++i) {
    ASSIGN_OR_RETURN(std::string value, c.Tensor(returned[i]));
    const std::string name = output_name(i);
    c.AddNode("Identity", {value}, {name});
    int elem = c.QuantParams(returned[i]) != nullptr ? onnx::TensorProto::UINT8 : onnx::TensorProto::FLOAT;
    onnx::ValueInfoProto* info = g->add_output();
    info->set_name(name);
    SetShape(info, elem, outputs[i].sizes().vec(), options.fixed_batch);
  }

  try {
    onnx::checker::check_model(proto);
    onnx::shape_inference::InferShapes(proto, onnx::OpSchemaRegistry::Instance(),
                                       onnx::ShapeInferenceOptions(/*check_type=*/true, /*strict=*/1));
  } catch (const std::exception& e) {
    return absl::InternalError(absl::StrCat("ONNX export: the exported graph fails ONNX's checker: ", e.what()));
  }
  return proto;
}

}  // namespace

absl::StatusOr<std::string> ExportOnnx(const Model& model, const OnnxExportOptions& options,
                                       OnnxExportSummary* summary) {
  ASSIGN_OR_RETURN(onnx::ModelProto proto, TorchCallOr("", [&] { return BuildModel(model, options); }));
  std::string bytes;
  if (!proto.SerializeToString(&bytes)) return absl::InternalError("ONNX export: serializing the model failed");
  if (summary != nullptr) {
    *summary = OnnxExportSummary();
    summary->bytes = static_cast<int64_t>(bytes.size());
    summary->nodes = proto.graph().node_size();
    for (const onnx::NodeProto& n : proto.graph().node()) {
      ++summary->op_counts[n.op_type()];
      if (n.op_type() == "QuantizeLinear" || n.op_type() == "DequantizeLinear") summary->quantized = true;
    }
  }
  return bytes;
}

absl::StatusOr<OnnxExportSummary> WriteOnnx(const Model& model, const std::string& path,
                                            const OnnxExportOptions& options) {
  OnnxExportSummary summary;
  ASSIGN_OR_RETURN(std::string bytes, ExportOnnx(model, options, &summary));
  RETURN_IF_ERROR(WriteFileAtomically(path, bytes));
  return summary;
}

}  // namespace slimfit
