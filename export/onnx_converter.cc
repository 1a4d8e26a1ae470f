#include "export/onnx_converter.h"

#include <ATen/ATen.h>
#include <torch/csrc/jit/ir/constants.h>

#include <cstring>
#include <sstream>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_replace.h"
#include "absl/strings/strip.h"
#include "common/status_macros.h"

namespace slimfit::onnx_export {
namespace {

// ONNX names: letters, digits, '_' and '.'; TorchScript debug names have more.
std::string Sanitized(absl::string_view hint) {
  std::string out;
  for (char c : hint) out.push_back((isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '.') ? c : '_');
  if (out.empty()) out = "t";
  return out;
}

std::optional<onnx::TensorProto::DataType> OnnxType(at::ScalarType t) {
  switch (t) {
    case at::kFloat:
      return onnx::TensorProto::FLOAT;
    case at::kLong:
      return onnx::TensorProto::INT64;
    case at::kInt:
      return onnx::TensorProto::INT32;
    case at::kChar:
      return onnx::TensorProto::INT8;
    case at::kByte:
      return onnx::TensorProto::UINT8;
    case at::kBool:
      return onnx::TensorProto::BOOL;
    default:
      return std::nullopt;
  }
}

}  // namespace

std::string SourceLine(const torch::jit::Node* n) {
  auto flc = n->sourceRange().file_line_col();
  if (flc.has_value() && !std::get<0>(*flc).empty()) {
    return absl::StrCat(std::get<0>(*flc), ":", std::get<1>(*flc));
  }
  if (flc.has_value() && std::get<1>(*flc) > 0) return absl::StrCat("line ", std::get<1>(*flc));
  return "no source line";
}

Converter::Converter(onnx::GraphProto* graph, const torch::jit::Module* module) : graph_(graph), module_(module) {}

std::string Converter::Fresh(absl::string_view hint) {
  const std::string base = Sanitized(hint);
  int& next = next_suffix_[base];
  std::string name = next == 0 ? base : absl::StrCat(base, "_", next);
  while (taken_.contains(name)) name = absl::StrCat(base, "_", ++next);
  ++next;
  taken_.insert(name);
  return name;
}

void Converter::Reserve(const std::string& name) { taken_.insert(name); }

void Converter::Bind(const torch::jit::Value* v, const std::string& name, std::optional<int64_t> rank) {
  names_[v] = name;
  if (rank.has_value()) ranks_[v] = *rank;
}

std::optional<c10::IValue> Converter::Constant(const torch::jit::Value* v) const {
  if (auto it = known_.find(v); it != known_.end()) return it->second;
  if (v->node()->kind() != c10::prim::Constant) return std::nullopt;
  return torch::jit::toIValue(v);
}

absl::Status Converter::NodeError(absl::string_view problem) const {
  if (node_ == nullptr) return absl::InvalidArgumentError(absl::StrCat("ONNX export: ", problem));
  std::ostringstream printed;
  printed << *node_;
  std::string node_text(absl::StripTrailingAsciiWhitespace(printed.str()));
  return absl::InvalidArgumentError(absl::StrCat("ONNX export: ", node_->kind().toQualString(), " at ",
                                                 SourceLine(node_), ": ", problem, "; node: ", node_text));
}

absl::StatusOr<std::string> Converter::Tensor(const torch::jit::Value* v) {
  auto it = names_.find(v);
  if (it != names_.end()) return it->second;
  std::optional<c10::IValue> c = Constant(v);
  if (!c.has_value()) {
    return NodeError(
        absl::StrCat("input %", v->debugName(), " (made by ", v->node()->kind().toQualString(), ") has no ONNX value"));
  }
  std::string name;
  if (c->isTensor()) {
    if (c->toTensor().is_quantized()) return NodeError("a quantized constant tensor has no ONNX mapping");
    name = AddInitializer(v->debugName(), c->toTensor());
  } else if (c->isDouble()) {
    name = FloatScalar(v->debugName(), c->toDouble());
  } else if (c->isInt()) {
    name = AddInitializer(v->debugName(), at::scalar_tensor(c->toInt(), at::kLong));
  } else if (c->isBool()) {
    name = AddInitializer(v->debugName(), at::scalar_tensor(c->toBool(), at::kBool));
  } else {
    return NodeError(absl::StrCat("constant %", v->debugName(), " of type ", c->tagKind(), " is not a tensor"));
  }
  names_[v] = name;
  if (c->isTensor()) ranks_[v] = c->toTensor().dim();
  return name;
}

absl::StatusOr<std::string> Converter::FloatTensor(const torch::jit::Value* v) {
  const QParams* q = QuantParams(v);
  if (q == nullptr || keep_quantized_) return Tensor(v);
  // A float layer reads its input dequantized by arithmetic (IsFloatLayer).
  const bool by_arithmetic = node_ != nullptr && IsFloatLayer(node_);
  auto& cache = by_arithmetic ? arithmetic_dequantized_names_ : dequantized_names_;
  auto it = cache.find(v);
  if (it != cache.end()) return it->second;
  auto name = Tensor(v);
  if (!name.ok()) return name.status();
  std::string dq;
  if (by_arithmetic) {
    dq = DequantizeByArithmetic(*name, *q, absl::StrCat(*name, "_dequantized"));
  } else {
    dq = Dequantize(*name, *q, absl::StrCat(*name, "_dq"));
  }
  cache[v] = dq;
  return dq;
}

absl::StatusOr<int64_t> Converter::Int(const torch::jit::Value* v) const {
  auto c = Constant(v);
  if (!c.has_value() || !c->isInt()) {
    return NodeError(absl::StrCat("%", v->debugName(), " must be a constant int"));
  }
  return c->toInt();
}

absl::StatusOr<double> Converter::Double(const torch::jit::Value* v) const {
  auto c = Constant(v);
  if (c.has_value() && c->isDouble()) return c->toDouble();
  if (c.has_value() && c->isInt()) return static_cast<double>(c->toInt());
  return NodeError(absl::StrCat("%", v->debugName(), " must be a constant number"));
}

absl::StatusOr<bool> Converter::Bool(const torch::jit::Value* v) const {
  auto c = Constant(v);
  if (!c.has_value() || !c->isBool()) return NodeError(absl::StrCat("%", v->debugName(), " must be a constant bool"));
  return c->toBool();
}

absl::StatusOr<std::vector<const torch::jit::Value*>> Converter::ListElements(const torch::jit::Value* v) const {
  if (auto it = lists_.find(v); it != lists_.end()) return it->second;
  if (v->node()->kind() != c10::prim::ListConstruct) {
    return NodeError(absl::StrCat("list %", v->debugName(), " is not built by prim::ListConstruct"));
  }
  std::vector<const torch::jit::Value*> out;
  for (const torch::jit::Value* e : v->node()->inputs()) out.push_back(e);
  return out;
}

absl::Status Converter::AppendToList(const torch::jit::Value* list, const torch::jit::Value* element) {
  auto elements = ListElements(list);
  if (!elements.ok()) return elements.status();
  elements->push_back(element);
  lists_[list] = *elements;
  return absl::OkStatus();
}

absl::StatusOr<std::vector<int64_t>> Converter::Ints(const torch::jit::Value* v) const {
  auto c = Constant(v);
  if (c.has_value() && c->isIntList()) return c->toIntVector();
  if (c.has_value() && c->isInt()) return std::vector<int64_t>{c->toInt()};
  if (v->node()->kind() == c10::prim::ListConstruct) {
    std::vector<int64_t> out;
    for (const torch::jit::Value* e : v->node()->inputs()) {
      auto i = Int(e);
      if (!i.ok()) return i.status();
      out.push_back(*i);
    }
    return out;
  }
  return NodeError(absl::StrCat("%", v->debugName(), " must be a constant int list"));
}

absl::StatusOr<std::string> Converter::IntsTensor(const torch::jit::Value* v) {
  auto it = names_.find(v);
  if (it != names_.end()) return it->second;
  auto constant = Ints(v);
  if (constant.ok()) return Int64s(absl::StrCat(v->debugName(), "_ints"), *constant);
  if (v->node()->kind() != c10::prim::ListConstruct) return constant.status();
  std::vector<std::string> parts;
  for (const torch::jit::Value* e : v->node()->inputs()) {
    auto c = Constant(e);
    if (c.has_value() && c->isInt()) {
      parts.push_back(Int64s(absl::StrCat(v->debugName(), "_c"), {c->toInt()}));
      continue;
    }
    auto scalar = Tensor(e);
    if (!scalar.ok()) return scalar.status();
    parts.push_back(Op("Unsqueeze", {*scalar, Int64s("axes0", {0})}, absl::StrCat(*scalar, "_1d")));
  }
  onnx::NodeProto* concat = nullptr;
  std::string out = Op("Concat", parts, absl::StrCat(v->debugName(), "_shape"), &concat);
  SetInt(concat, "axis", 0);
  names_[v] = out;
  return out;
}

absl::StatusOr<c10::IValue> Converter::Object(const torch::jit::Value* v) const {
  auto c = Constant(v);
  if (c.has_value()) return *c;
  const torch::jit::Node* n = v->node();
  if (n->kind() == c10::prim::Param && module_ != nullptr && v->type()->cast<c10::ClassType>() != nullptr) {
    return module_->_ivalue();
  }
  if (n->kind() == c10::prim::GetAttr) {
    auto owner = Object(n->input(0));
    if (!owner.ok()) return owner.status();
    if (!owner->isObject()) return NodeError(absl::StrCat("%", v->debugName(), " is read from a non-object"));
    return owner->toObjectRef().getAttr(n->s(c10::attr::name));
  }
  return NodeError(absl::StrCat("%", v->debugName(), " is neither a constant nor a module attribute"));
}

std::optional<int64_t> Converter::Rank(const torch::jit::Value* v) const {
  auto it = ranks_.find(v);
  if (it != ranks_.end()) return it->second;
  if (auto t = v->type()->cast<c10::TensorType>(); t != nullptr && t->dim().has_value()) {
    return static_cast<int64_t>(*t->dim());
  }
  return std::nullopt;
}

std::optional<int64_t> Converter::StaticSize(const torch::jit::Value* v, int64_t dim) const {
  if (dim == 0 && !fixed_batch_) return std::nullopt;
  if (auto it = recorded_shapes_.find(v); it != recorded_shapes_.end()) {
    if (dim < static_cast<int64_t>(it->second.size())) return it->second[dim];
    return std::nullopt;
  }
  auto t = v->type()->cast<c10::TensorType>();
  if (t == nullptr || !t->sizes().size().has_value() || dim >= static_cast<int64_t>(*t->sizes().size())) {
    return std::nullopt;
  }
  return t->sizes()[dim];
}

absl::StatusOr<int64_t> Converter::NormalizedDim(const torch::jit::Value* tensor, int64_t dim) const {
  if (dim >= 0) return dim;
  std::optional<int64_t> rank = Rank(tensor);
  if (!rank.has_value()) return NodeError(absl::StrCat("dim ", dim, " needs the rank of %", tensor->debugName()));
  return dim + *rank;
}

const QParams* Converter::QuantParams(const torch::jit::Value* v) const {
  auto it = qparams_.find(v);
  return it == qparams_.end() ? nullptr : &it->second;
}

QParams Converter::MakeQParams(double scale, int64_t zero_point, absl::string_view hint) {
  QParams q;
  q.scale_value = scale;
  q.zero_point_value = zero_point;
  q.scale = FloatScalar(absl::StrCat(hint, "_scale"), scale);
  q.zero_point =
      AddInitializer(absl::StrCat(hint, "_zero_point"), at::scalar_tensor(zero_point, at::kLong).to(at::kByte));
  return q;
}

std::string Converter::Quantize(const std::string& x, const QParams& q, absl::string_view hint) {
  return Op("QuantizeLinear", {x, q.scale, q.zero_point}, hint);
}

bool IsFloatLayer(const torch::jit::Node* n) {
  static const auto* kinds = new absl::flat_hash_set<std::string>{
      "aten::conv1d", "aten::conv2d", "aten::conv3d", "aten::_convolution", "aten::conv_transpose2d", "aten::linear",
      "aten::addmm",  "aten::matmul", "aten::mm"};
  return kinds->contains(n->kind().toQualString());
}

std::string Converter::DequantizeByArithmetic(const std::string& x, const QParams& q, absl::string_view hint) {
  onnx::NodeProto* cast = nullptr;
  std::string f = Op("Cast", {x}, absl::StrCat(hint, "_float"), &cast);
  SetInt(cast, "to", onnx::TensorProto::FLOAT);
  std::string centered = Op("Sub", {f, FloatScalar("zero_point", static_cast<double>(q.zero_point_value))},
                            absl::StrCat(hint, "_centered"));
  return Op("Mul", {centered, q.scale}, hint);
}

std::string Converter::Dequantize(const std::string& x, const QParams& q, absl::string_view hint) {
  return Op("DequantizeLinear", {x, q.scale, q.zero_point}, hint);
}

onnx::NodeProto* Converter::AddNode(absl::string_view op, const std::vector<std::string>& inputs,
                                    const std::vector<std::string>& outputs) {
  onnx::NodeProto* node = graph_->add_node();
  node->set_op_type(std::string(op));
  node->set_name(Fresh(absl::StrCat(op, "_", outputs.empty() ? "" : outputs[0])));
  for (const std::string& in : inputs) node->add_input(in);
  for (const std::string& out : outputs) node->add_output(out);
  if (node_ != nullptr) node->set_doc_string(absl::StrCat(node_->kind().toQualString(), " at ", SourceLine(node_)));
  return node;
}

std::string Converter::Op(absl::string_view op, const std::vector<std::string>& inputs, absl::string_view hint,
                          onnx::NodeProto** node) {
  std::string out = Fresh(hint);
  onnx::NodeProto* n = AddNode(op, inputs, {out});
  if (node != nullptr) *node = n;
  return out;
}

std::string Converter::AddInitializer(absl::string_view hint, const at::Tensor& tensor) {
  at::Tensor t = tensor.detach().to(at::kCPU);
  if (t.scalar_type() == at::kDouble || t.scalar_type() == at::kHalf || t.scalar_type() == at::kBFloat16) {
    t = t.to(at::kFloat);
  }
  t = t.contiguous();
  std::string name = Fresh(hint);
  onnx::TensorProto* init = graph_->add_initializer();
  init->set_name(name);
  // Callers pass only the types OnnxType knows (weights, scales, shapes).
  init->set_data_type(OnnxType(t.scalar_type()).value_or(onnx::TensorProto::UNDEFINED));
  for (int64_t d : t.sizes()) init->add_dims(d);
  init->set_raw_data(std::string(static_cast<const char*>(t.data_ptr()), t.numel() * t.element_size()));
  return name;
}

std::string Converter::Int64s(absl::string_view hint, const std::vector<int64_t>& values) {
  return AddInitializer(hint, at::tensor(values, at::kLong));
}

std::string Converter::FloatScalar(absl::string_view hint, double value) {
  return AddInitializer(hint, at::scalar_tensor(value, at::kFloat));
}

namespace {

bool IsNoneValue(const torch::jit::Value* v) { return v->type()->kind() == c10::TypeKind::NoneType; }

// `v`'s tensor, or `fill` of `shape` when `v` is None.
absl::StatusOr<std::string> TensorOrFill(Converter& c, const torch::jit::Value* v, double fill,
                                         const std::vector<int64_t>& shape, absl::string_view hint) {
  if (IsNoneValue(v)) return c.AddInitializer(hint, at::full(shape, fill));
  return c.Tensor(v);
}

// The element count of a norm's per-channel parameter: from a constant weight or bias.
std::optional<int64_t> ParameterCount(const Converter& c, const torch::jit::Value* weight,
                                      const torch::jit::Value* bias) {
  for (const torch::jit::Value* v : {weight, bias}) {
    if (auto t = c.Constant(v); t.has_value() && t->isTensor()) return t->toTensor().numel();
  }
  return std::nullopt;
}

}  // namespace

absl::StatusOr<std::string> EmitBatchNorm(Converter& c, const torch::jit::Value* x, const torch::jit::Value* weight,
                                          const torch::jit::Value* bias, const torch::jit::Value* mean,
                                          const torch::jit::Value* var, const torch::jit::Value* eps,
                                          absl::string_view hint) {
  auto mean_value = c.Constant(mean);
  if (!mean_value.has_value() || !mean_value->isTensor()) return c.NodeError("the running mean must be a constant");
  const std::vector<int64_t> shape = {mean_value->toTensor().numel()};
  ASSIGN_OR_RETURN(auto input, c.FloatTensor(x));
  ASSIGN_OR_RETURN(auto scale, TensorOrFill(c, weight, 1.0, shape, "bn_ones"));
  ASSIGN_OR_RETURN(auto shift, TensorOrFill(c, bias, 0.0, shape, "bn_zeros"));
  ASSIGN_OR_RETURN(auto m, c.Tensor(mean));
  ASSIGN_OR_RETURN(auto v, c.Tensor(var));
  ASSIGN_OR_RETURN(auto epsilon, c.Double(eps));
  onnx::NodeProto* node = nullptr;
  std::string out = c.Op("BatchNormalization", {input, scale, shift, m, v}, hint, &node);
  SetFloat(node, "epsilon", static_cast<float>(epsilon));
  return out;
}

absl::StatusOr<std::string> EmitInstanceNorm(Converter& c, const torch::jit::Value* x, const torch::jit::Value* weight,
                                             const torch::jit::Value* bias, const torch::jit::Value* eps,
                                             absl::string_view hint) {
  std::optional<int64_t> channels = ParameterCount(c, weight, bias);
  if (!channels.has_value()) channels = c.StaticSize(x, 1);
  if (!channels.has_value()) return c.NodeError("instance norm needs its channel count");
  ASSIGN_OR_RETURN(auto input, c.FloatTensor(x));
  ASSIGN_OR_RETURN(auto scale, TensorOrFill(c, weight, 1.0, {*channels}, "in_ones"));
  ASSIGN_OR_RETURN(auto shift, TensorOrFill(c, bias, 0.0, {*channels}, "in_zeros"));
  ASSIGN_OR_RETURN(auto epsilon, c.Double(eps));
  onnx::NodeProto* node = nullptr;
  std::string out = c.Op("InstanceNormalization", {input, scale, shift}, hint, &node);
  SetFloat(node, "epsilon", static_cast<float>(epsilon));
  return out;
}

absl::StatusOr<std::string> EmitLayerNorm(Converter& c, const torch::jit::Value* x,
                                          const torch::jit::Value* normalized_shape, const torch::jit::Value* weight,
                                          const torch::jit::Value* bias, const torch::jit::Value* eps,
                                          absl::string_view hint) {
  ASSIGN_OR_RETURN(auto shape, c.Ints(normalized_shape));
  ASSIGN_OR_RETURN(auto input, c.FloatTensor(x));
  ASSIGN_OR_RETURN(auto scale, TensorOrFill(c, weight, 1.0, shape, "ln_ones"));
  ASSIGN_OR_RETURN(auto shift, TensorOrFill(c, bias, 0.0, shape, "ln_zeros"));
  ASSIGN_OR_RETURN(auto epsilon, c.Double(eps));
  onnx::NodeProto* node = nullptr;
  std::string out = c.Op("LayerNormalization", {input, scale, shift}, hint, &node);
  SetInt(node, "axis", -static_cast<int64_t>(shape.size()));
  SetFloat(node, "epsilon", static_cast<float>(epsilon));
  return out;
}

absl::StatusOr<std::string> EmitConcat(Converter& c, const torch::jit::Value* list, const torch::jit::Value* dim,
                                       absl::string_view hint) {
  ASSIGN_OR_RETURN(auto parts, c.ListElements(list));
  if (parts.empty()) return c.NodeError("cat of an empty list");
  std::vector<std::string> inputs;
  for (const torch::jit::Value* p : parts) {
    ASSIGN_OR_RETURN(auto name, c.FloatTensor(p));
    inputs.push_back(name);
  }
  ASSIGN_OR_RETURN(auto d, c.Int(dim));
  ASSIGN_OR_RETURN(auto axis, c.NormalizedDim(parts[0], d));
  onnx::NodeProto* node = nullptr;
  std::string out = c.Op("Concat", inputs, hint, &node);
  SetInt(node, "axis", axis);
  return out;
}

void SetInts(onnx::NodeProto* node, absl::string_view name, const std::vector<int64_t>& values) {
  onnx::AttributeProto* a = node->add_attribute();
  a->set_name(std::string(name));
  a->set_type(onnx::AttributeProto::INTS);
  for (int64_t v : values) a->add_ints(v);
}

void SetInt(onnx::NodeProto* node, absl::string_view name, int64_t value) {
  onnx::AttributeProto* a = node->add_attribute();
  a->set_name(std::string(name));
  a->set_type(onnx::AttributeProto::INT);
  a->set_i(value);
}

void SetFloat(onnx::NodeProto* node, absl::string_view name, float value) {
  onnx::AttributeProto* a = node->add_attribute();
  a->set_name(std::string(name));
  a->set_type(onnx::AttributeProto::FLOAT);
  a->set_f(value);
}

void SetString(onnx::NodeProto* node, absl::string_view name, absl::string_view value) {
  onnx::AttributeProto* a = node->add_attribute();
  a->set_name(std::string(name));
  a->set_type(onnx::AttributeProto::STRING);
  a->set_s(std::string(value));
}

}  // namespace slimfit::onnx_export
