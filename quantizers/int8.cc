#include "quantizers/int8.h"

#include <ATen/ATen.h>
#include <ATen/core/grad_mode.h>
#include <torch/csrc/jit/api/module.h>
#include <torch/csrc/jit/frontend/resolver.h>
#include <torch/csrc/jit/frontend/sugared_value.h>
#include <torch/csrc/jit/ir/ir.h>
#include <torch/csrc/jit/passes/constant_propagation.h>
#include <torch/csrc/jit/passes/dead_code_elimination.h>
#include <torch/csrc/jit/passes/quantization/finalize.h>
#include <torch/csrc/jit/passes/quantization/insert_observers.h>
#include <torch/csrc/jit/passes/quantization/insert_quant_dequant.h>
#include <torch/csrc/jit/serialization/import.h>
#include <torch/library.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <limits>
#include <mutex>
#include <optional>
#include <sstream>
#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "common/status_macros.h"
#include "common/torch_status.h"
#include "graph/freeze.h"
#include "graph/layer_table.h"
#include "re2/re2.h"

namespace slimfit {

using torch::jit::Graph;
using torch::jit::Node;
using torch::jit::Value;

// ---------------------------------------------------------------------------
// The calibration op: observer modules call slimfit::observe(x, id), which
// hands x to the C++ observer registered under id (if any) and returns x.
namespace {

struct ObserveTable {
  std::mutex mu;
  std::map<int64_t, Observer*> observers;
  std::map<int64_t, absl::Status> errors;
};

ObserveTable& Table() {
  static auto* table = new ObserveTable;
  return *table;
}

std::atomic<int64_t> next_observer_id{1};

at::Tensor ObserveKernel(const at::Tensor& x, int64_t id) {
  ObserveTable& t = Table();
  std::lock_guard<std::mutex> lock(t.mu);
  auto it = t.observers.find(id);
  if (it != t.observers.end()) {
    absl::Status s = it->second->Observe(x.detach());
    if (!s.ok() && t.errors[id].ok()) t.errors[id] = s;
  }
  return x;
}

}  // namespace

TORCH_LIBRARY(slimfit, m) { m.def("observe(Tensor(a) x, int id) -> Tensor(a)", ObserveKernel); }

// ---------------------------------------------------------------------------
struct Int8Quantizer::Slot {
  std::string name;                  // "_observer_3" on the root module
  bool weight = false;
  int layer = -1;                    // weight slots: the layer
  int producer_layer = -1;           // activation slots: the layer computing it
  std::vector<int> consumer_layers;  // layers reading it (as input)
  bool other_consumers = false;      // read by anything else (add, cat, return, ...)
  int64_t id = 0;
  std::unique_ptr<Observer> observer;
  QuantParams params;
  bool has_params = false;
  bool from_qat = false;
};

namespace {

constexpr char kWeightPrefix[] = "quant_w_";
constexpr char kBiasPrefix[] = "quant_b_";

// Modes of the observer modules.
constexpr int64_t kModeObserve = 0;  // calibration (activation) / identity (weight)
constexpr int64_t kModeSte = 1;      // QAT: moving-average ranges, straight-through
constexpr int64_t kModeLsq = 2;      // QAT: learned step sizes

constexpr char kActivationObserverSource[] = R"JIT(
def forward(self, x: Tensor) -> Tensor:
    if self.mode == 0:
        return slimfit_ops.observe(x, self.obs_id)
    if self.mode == 1:
        return torch.fused_moving_avg_obs_fake_quant(x, self.observer_on, self.fake_quant_on, self.running_min, self.running_max, self.fq_scale, self.fq_zero_point, self.averaging_constant, self.quant_min, self.quant_max, -1, False, False)
    return torch._fake_quantize_learnable_per_tensor_affine(x, self.lsq_scale, self.lsq_zero_point, self.quant_min, self.quant_max, float(x.numel() * self.quant_max) ** -0.5)

def calculate_qparams(self) -> Tuple[Tensor, Tensor]:
    return self.scale, self.zero_point
)JIT";

constexpr char kWeightObserverSource[] = R"JIT(
def forward(self, w: Tensor) -> Tensor:
    if self.mode == 0:
        return w
    if self.mode == 1:
        if self.ch_axis >= 0:
            s = torch.clamp_min(w.detach().abs().flatten(1).amax(1) / self.quant_max, 1e-12)
        else:
            s = torch.clamp_min(w.detach().abs().amax() / self.quant_max, 1e-12).expand(w.size(0)).contiguous()
        return torch.fake_quantize_per_channel_affine(w, s, torch.zeros_like(s, dtype=3), 0, self.quant_min, self.quant_max)
    g = float(w.numel() * self.quant_max) ** -0.5
    if self.ch_axis >= 0:
        return torch._fake_quantize_learnable_per_channel_affine(w, self.lsq_scale, self.lsq_zero_point, 0, self.quant_min, self.quant_max, g)
    return torch._fake_quantize_learnable_per_tensor_affine(w, self.lsq_scale, self.lsq_zero_point, self.quant_min, self.quant_max, g)

def calculate_qparams(self) -> Tuple[Tensor, Tensor]:
    return self.scale, self.zero_point
)JIT";

// Resolves `slimfit_ops.<op>` to the slimfit:: operators (the C++ frontend's
// `torch.ops` is not a namespace lookup); everything else as usual.
struct SlimfitOpsResolver : public torch::jit::Resolver {
  std::shared_ptr<torch::jit::SugaredValue> resolveValue(const std::string& name, torch::jit::GraphFunction& m,
                                                         const torch::jit::SourceRange& loc) override {
    if (name == "slimfit_ops") return std::make_shared<torch::jit::BuiltinModule>("slimfit");
    return torch::jit::nativeResolver()->resolveValue(name, m, loc);
  }
  c10::TypePtr resolveType(const std::string& name, const torch::jit::SourceRange& loc) override {
    return torch::jit::nativeResolver()->resolveType(name, loc);
  }
};

torch::jit::Module MakeObserverModule(bool weight, bool per_channel, int64_t qmin, int64_t qmax) {
  torch::jit::Module m(
      c10::QualifiedName(weight ? "__torch__.slimfit.quantizers.WeightObserver"
                                : "__torch__.slimfit.quantizers.ActivationObserver"),
      std::make_shared<torch::jit::CompilationUnit>(), /*shouldMangle=*/true);
  m.register_attribute("training", c10::BoolType::get(), false);
  m.register_attribute("dtype", c10::IntType::get(),
                       static_cast<int64_t>(weight ? c10::ScalarType::QInt8 : c10::ScalarType::QUInt8));
  const at::QScheme scheme = !weight      ? at::kPerTensorAffine
                             : per_channel ? at::kPerChannelSymmetric
                                           : at::kPerTensorSymmetric;
  m.register_attribute("qscheme", c10::IntType::get(), static_cast<int64_t>(scheme));
  m.register_attribute("ch_axis", c10::IntType::get(), static_cast<int64_t>(per_channel ? 0 : -1));
  m.register_attribute("mode", c10::IntType::get(), kModeObserve);
  m.register_attribute("obs_id", c10::IntType::get(), static_cast<int64_t>(0));
  m.register_attribute("quant_min", c10::IntType::get(), qmin);
  m.register_attribute("quant_max", c10::IntType::get(), qmax);
  m.register_attribute("averaging_constant", c10::FloatType::get(), 0.01);
  m.register_buffer("scale", at::ones({1}));
  m.register_buffer("zero_point", at::zeros({1}, at::kLong));
  m.register_buffer("observer_on", at::ones({1}, at::kLong));
  m.register_buffer("fake_quant_on", at::ones({1}, at::kLong));
  m.register_buffer("running_min", at::zeros({1}));
  m.register_buffer("running_max", at::zeros({1}));
  m.register_buffer("fq_scale", at::ones({1}));
  m.register_buffer("fq_zero_point", at::zeros({1}, at::kInt));
  m.register_parameter("lsq_scale", at::ones({1}), /*is_buffer=*/false);
  m.register_buffer("lsq_zero_point", at::zeros({1}));
  m.define(weight ? kWeightObserverSource : kActivationObserverSource, std::make_shared<SlimfitOpsResolver>());
  return m;
}

bool IsLayerKind(const Node* n) {
  const std::string kind = n->kind().toQualString();
  return kind == "aten::conv1d" || kind == "aten::conv2d" || kind == "aten::linear";
}

std::string CallPath(const Node* n) {
  auto cs = n->callstack();
  if (!cs) return "";
  std::vector<std::string> parts;
  for (const auto& entry : (*cs)->vec()) {
    const auto& info = std::get<2>(entry);
    if (info) parts.push_back(info->instance_name());
  }
  return absl::StrJoin(parts, ".");
}

// The root-level observer call nodes, by observer name.
std::map<std::string, Node*> ObserverCalls(Graph& graph) {
  std::map<std::string, Node*> out;
  for (Node* n : graph.nodes()) {
    if (n->kind() != c10::prim::CallMethod || n->s(c10::attr::name) != "forward") continue;
    Node* get = n->input(0)->node();
    if (get->kind() != c10::prim::GetAttr || get->input(0) != graph.inputs()[0]) continue;
    const std::string& name = get->s(c10::attr::name);
    if (absl::StartsWith(name, "_observer_")) out[name] = n;
  }
  return out;
}

// The layer index of a node that reads `quant_w_<i>` as its weight.
int LayerOfNode(const Node* n) {
  if (!IsLayerKind(n) || n->inputs().size() < 2) return -1;
  const Value* w = n->input(1);
  // Through a weight observer call.
  if (w->node()->kind() == c10::prim::CallMethod) w = w->node()->input(1);
  if (w->node()->kind() != c10::prim::GetAttr) return -1;
  const std::string& name = w->node()->s(c10::attr::name);
  if (!absl::StartsWith(name, kWeightPrefix)) return -1;
  int index = -1;
  if (!absl::SimpleAtoi(name.substr(sizeof(kWeightPrefix) - 1), &index)) return -1;
  return index;
}

// Each top-level conv / linear with a constant float weight becomes a layer;
// its weight (and bias) become parameters quant_w_<i> (quant_b_<i>) of the
// root module, read through GetAttr.
absl::Status Reparameterize(torch::jit::Module& frozen, std::vector<QuantLayer>* layers,
                            std::map<std::string, at::Tensor>* weights) {
  auto graph = frozen.get_method("forward").graph();
  std::vector<Node*> nodes;
  for (Node* n : graph->nodes()) {
    if (IsLayerKind(n)) nodes.push_back(n);
  }
  for (Node* n : nodes) {
    auto w = ConstantTensor(n->input(1));
    if (!w || !w->is_floating_point()) continue;
    const int index = static_cast<int>(layers->size());
    QuantLayer layer;
    layer.module_path = CallPath(n);
    layer.op_type = LayerOpType(n, w->sizes().vec());
    layer.weight_shape = w->sizes().vec();
    layer.weight_param = absl::StrCat(kWeightPrefix, index);
    RETURN_IF_ERROR(TorchCall("re-parameterizing a layer", [&] {
      torch::jit::WithInsertPoint guard(n);
      frozen.register_parameter(layer.weight_param, w->detach().clone(), false);
      n->replaceInput(1, graph->insertGetAttr(graph->inputs()[0], layer.weight_param));
      (*weights)[layer.weight_param] = w->detach().clone();
      if (auto b = ConstantTensor(n->input(2))) {
        const std::string bname = absl::StrCat(kBiasPrefix, index);
        frozen.register_parameter(bname, b->detach().clone(), false);
        n->replaceInput(2, graph->insertGetAttr(graph->inputs()[0], bname));
        (*weights)[bname] = b->detach().clone();
      }
    }));
    layers->push_back(std::move(layer));
  }
  torch::jit::EliminateDeadCode(graph);
  return absl::OkStatus();
}

// op_types, module_regex, exclude, then keep_first / keep_last.
void SelectLayers(const QuantizationConfig& config, std::vector<QuantLayer>* layers) {
  std::vector<int> selected;
  for (size_t i = 0; i < layers->size(); ++i) {
    QuantLayer& l = (*layers)[i];
    l.selected = true;
    if (!config.op_types().empty() &&
        std::find(config.op_types().begin(), config.op_types().end(), l.op_type) == config.op_types().end()) {
      l.selected = false;
      l.reason = absl::StrCat("op type ", l.op_type, " not in op_types");
    } else if (!config.module_regex().empty() && !RE2::FullMatch(l.module_path, config.module_regex())) {
      l.selected = false;
      l.reason = "module_regex does not match";
    } else {
      for (const std::string& e : config.exclude()) {
        if (RE2::FullMatch(l.module_path, e)) {
          l.selected = false;
          l.reason = absl::StrCat("exclude '", e, "'");
          break;
        }
      }
    }
    if (l.selected) selected.push_back(static_cast<int>(i));
  }
  if (config.keep_first() && !selected.empty()) {
    (*layers)[selected.front()].selected = false;
    (*layers)[selected.front()].reason = "keep_first";
  }
  if (config.keep_last() && !selected.empty()) {
    (*layers)[selected.back()].selected = false;
    (*layers)[selected.back()].reason = "keep_last";
  }
}

// An observer between a conv / linear and its only user, a ReLU, moves after
// the ReLU (or goes, if the ReLU's output is observed already), so that
// conversion fuses conv+relu / linear+relu.
absl::Status MoveObserversAfterRelu(Graph& graph) {
  for (auto& observed : ObserverCalls(graph)) {
    Node* call = observed.second;  // (a structured binding cannot be captured in C++17)
    Value* in = call->input(1);
    Value* out = call->output();
    if (!IsLayerKind(in->node())) continue;
    if (in->uses().size() != 1 || out->uses().size() != 1) continue;
    Node* relu = out->uses()[0].user;
    const std::string kind = relu->kind().toQualString();
    if (kind != "aten::relu" && kind != "aten::relu_") continue;
    bool relu_observed = false;
    for (const auto& u : relu->output()->uses()) {
      if (u.user->kind() == c10::prim::CallMethod) relu_observed = true;
    }
    RETURN_IF_ERROR(TorchCall("moving an observer after a ReLU", [&] {
      relu->replaceInput(0, in);
      if (relu_observed) {
        out->replaceAllUsesWith(in);
        call->destroy();
      } else {
        call->moveAfter(relu);
        relu->output()->replaceAllUsesWith(out);
        call->replaceInput(1, relu->output());
      }
    }));
  }
  return absl::OkStatus();
}

// Scales become float literals in the saved code; an integral one (a huge
// range: every float32 >= 2^24 is integral) is printed without a decimal
// point and reloads as an int, which quantized ops refuse. Integral float
// constants move to the next representable double.
void MakeFloatConstantsPrintable(Graph& graph) {
  for (Node* n : graph.nodes()) {
    for (size_t i = 0; i < n->inputs().size(); ++i) {
      Value* v = n->input(i);
      if (v->node()->kind() != c10::prim::Constant || !v->type()->isSubtypeOf(*c10::FloatType::get())) continue;
      const double d = torch::jit::toIValue(v)->toDouble();
      if (std::floor(d) != d || std::isinf(d)) continue;
      torch::jit::WithInsertPoint guard(n);
      n->replaceInput(i, graph.insertConstant(std::nextafter(d, std::numeric_limits<double>::infinity())));
    }
  }
}

// LibTorch's InsertQuantDeQuant dequantizes a returned tuple (a scripted
// model's NamedTuple output holding a quantized tensor) as a whole, which
// fails at run time; dequantize its tensor elements instead.
void DequantizeTupleElements(Graph& graph) {
  std::vector<Node*> todo;
  for (Node* n : graph.nodes()) {
    if (n->kind() == c10::Symbol::fromQualString("aten::dequantize") &&
        n->input(0)->node()->kind() == c10::prim::TupleConstruct) {
      todo.push_back(n);
    }
  }
  for (Node* n : todo) {
    Node* tuple = n->input(0)->node();
    torch::jit::WithInsertPoint guard(n);
    std::vector<Value*> elements;
    for (Value* e : tuple->inputs()) {
      if (e->type()->isSubtypeOf(*c10::TensorType::get())) {
        Node* d = graph.create(c10::Symbol::fromQualString("aten::dequantize"), {e});
        d->output()->setType(c10::TensorType::get());
        graph.insertNode(d);
        elements.push_back(d->output());
      } else {
        elements.push_back(e);
      }
    }
    c10::TupleTypePtr type = tuple->output()->type()->cast<c10::TupleType>();
    Node* rebuilt = graph.createTuple(elements, type && type->schema() ? type : nullptr);
    graph.insertNode(rebuilt);
    n->output()->replaceAllUsesWith(rebuilt->output());
    n->destroy();
  }
  torch::jit::EliminateDeadCode(graph.block());
}

// A fresh copy of the observed module (never run, so its graph may be
// edited). Throws like torch::jit::load; call inside TorchCall.
torch::jit::Module LoadObservedModule(const std::string& bytes) {
  std::istringstream in(bytes);
  return torch::jit::load(in);
}

absl::Status CheckObserver(const ObserverConfig& c, const std::string& field) {
  ASSIGN_OR_RETURN(auto observer, MakeObserver(c, field));
  (void)observer;
  return absl::OkStatus();
}

}  // namespace

absl::Status ValidateQuantizationConfig(const QuantizationConfig& c) {
  if (c.has_activation()) {
    RETURN_IF_ERROR(CheckObserver(c.activation(), "activation"));
    if (c.activation().bits() != 0 && c.activation().bits() != 8) {
      return absl::InvalidArgumentError(absl::StrCat("activation.bits: ", c.activation().bits(),
                                                     "; int8 kernels take 8-bit activations (use 8)"));
    }
    if (c.activation().per_channel()) {
      return absl::InvalidArgumentError(
          "activation.per_channel: true; int8 kernels take one scale per activation tensor (use false)");
    }
  }
  if (c.has_weight()) RETURN_IF_ERROR(CheckObserver(c.weight(), "weight"));
  if (c.has_weight() && c.weight().per_channel() && c.weight().channel_axis() != 0) {
    return absl::InvalidArgumentError(absl::StrCat("weight.channel_axis: ", c.weight().channel_axis(),
                                                   "; conv / linear weights are quantized per output channel (0)"));
  }
  if (c.calibration_batches() < 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("calibration_batches: ", c.calibration_batches(), "; must be >= 0 (0 = default 32)"));
  }
  static const std::set<std::string> kTypes = {"Conv1d", "Conv2d", "DepthwiseConv2d", "Linear"};
  for (const std::string& t : c.op_types()) {
    if (!kTypes.count(t)) {
      return absl::InvalidArgumentError(absl::StrCat("op_types: '", t, "' is not one of ", absl::StrJoin(kTypes, ", ")));
    }
  }
  auto check_regex = [](const std::string& field, const std::string& pattern) -> absl::Status {
    RE2 re(pattern, RE2::Quiet);
    if (!re.ok()) return absl::InvalidArgumentError(absl::StrCat(field, ": '", pattern, "' is not a valid RE2: ", re.error()));
    return absl::OkStatus();
  };
  if (!c.module_regex().empty()) RETURN_IF_ERROR(check_regex("module_regex", c.module_regex()));
  for (const std::string& e : c.exclude()) RETURN_IF_ERROR(check_regex("exclude", e));
  if (c.mixed_precision().max_drop() < 0) {
    return absl::InvalidArgumentError(absl::StrCat("mixed_precision.max_drop: ", c.mixed_precision().max_drop(),
                                                   "; must be >= 0 (metric units; 0 = off)"));
  }
  if (c.mixed_precision().eval_batches() < 0 || c.mixed_precision().max_fp32_layers() < 0) {
    return absl::InvalidArgumentError("mixed_precision.eval_batches / max_fp32_layers: must be >= 0");
  }
  if (c.qat().epochs() < 0) {
    return absl::InvalidArgumentError(absl::StrCat("qat.epochs: ", c.qat().epochs(), "; must be >= 0"));
  }
  if (c.qat().freeze_observers_step() < 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("qat.freeze_observers_step: ", c.qat().freeze_observers_step(), "; must be >= 0"));
  }
  if (c.qat().averaging_constant() < 0 || c.qat().averaging_constant() > 1) {
    return absl::InvalidArgumentError(absl::StrCat("qat.averaging_constant: ", c.qat().averaging_constant(),
                                                   "; must be in (0, 1] (0 = default 0.01)"));
  }
  if (c.weight_only().bits() != 0 && c.weight_only().bits() != 8 && c.weight_only().bits() != 4) {
    return absl::InvalidArgumentError(
        absl::StrCat("weight_only.bits: ", c.weight_only().bits(), "; must be 8 or 4 (0 = off)"));
  }
  return absl::OkStatus();
}

std::string QuantizedEngineName(QuantizationConfig::Engine engine) {
  return absl::AsciiStrToLower(QuantizationConfig::Engine_Name(engine));
}

absl::StatusOr<QuantizationConfig::Engine> QuantizedEngineFromName(const std::string& field,
                                                                   const std::string& name) {
  QuantizationConfig::Engine engine;
  if (QuantizationConfig::Engine_Parse(absl::AsciiStrToUpper(name), &engine)) return engine;
  std::vector<std::string> names;
  for (int i = 0; i < QuantizationConfig::Engine_descriptor()->value_count(); ++i) {
    names.push_back(QuantizedEngineName(
        static_cast<QuantizationConfig::Engine>(QuantizationConfig::Engine_descriptor()->value(i)->number())));
  }
  return absl::InvalidArgumentError(
      absl::StrCat(field, ": '", name, "'; one of ", absl::StrJoin(names, ", ")));
}

absl::Status SetQuantizedEngine(QuantizationConfig::Engine engine) {
  at::QEngine want;
  switch (engine) {
    case QuantizationConfig::QNNPACK: want = at::QEngine::QNNPACK; break;
    case QuantizationConfig::X86: want = at::QEngine::X86; break;
    case QuantizationConfig::FBGEMM: want = at::QEngine::FBGEMM; break;
    default: want = at::QEngine::ONEDNN; break;
  }
  const auto& supported = at::globalContext().supportedQEngines();
  if (std::find(supported.begin(), supported.end(), want) == supported.end()) {
    std::vector<std::string> names;
    for (at::QEngine e : supported) names.push_back(c10::toString(e));
    return absl::FailedPreconditionError(absl::StrCat("engine: ", c10::toString(want),
                                                      " is not in this LibTorch; it has: ", absl::StrJoin(names, ", ")));
  }
  return TorchCall("setting the quantized engine", [&] { at::globalContext().setQEngine(want); });
}

Int8Quantizer::Int8Quantizer() = default;

Int8Quantizer::~Int8Quantizer() {
  ObserveTable& t = Table();
  std::lock_guard<std::mutex> lock(t.mu);
  for (const auto& s : slots_) {
    t.observers.erase(s->id);
    t.errors.erase(s->id);
  }
}

absl::StatusOr<std::unique_ptr<Int8Quantizer>> Int8Quantizer::Create(const Model& model,
                                                                     const QuantizationConfig& config) {
  RETURN_IF_ERROR(ValidateQuantizationConfig(config));
  RETURN_IF_ERROR(SetQuantizedEngine(config.engine()));
  std::unique_ptr<Int8Quantizer> q(new Int8Quantizer());
  q->config_ = config;
  if (!q->config_.has_activation()) q->config_.mutable_activation()->mutable_mse();
  if (!q->config_.has_weight()) {
    q->config_.mutable_weight()->mutable_minmax();
    q->config_.mutable_weight()->set_per_channel(true);
  }
  q->config_.mutable_weight()->set_symmetric(true);  // onednn / qnnpack need zero weight zero points
  q->config_.mutable_activation()->set_per_channel(false);
  const ObserverConfig& wc = q->config_.weight();
  const int wbits = wc.bits() == 0 ? 8 : wc.bits();

  // 1. Freeze and fold; weights and biases become root parameters again.
  ASSIGN_OR_RETURN(torch::jit::Module frozen, FreezeAndFold(model));
  RETURN_IF_ERROR(Reparameterize(frozen, &q->layers_, &q->weights_));
  if (q->layers_.empty()) {
    return absl::FailedPreconditionError(
        "the model has no conv1d / conv2d / linear layer at the top level of its forward graph: nothing to quantize");
  }
  SelectLayers(config, &q->layers_);

  q->prepared_ = std::make_unique<Model>(frozen, model.metadata());
  // 2. Observers (LibTorch's InsertObservers decides where).
  torch::jit::Module observed;
  RETURN_IF_ERROR(TorchCall("inserting observers", [&] {
    const int64_t wq = (int64_t{1} << (wbits - 1)) - 1;
    torch::jit::Module act = MakeObserverModule(false, false, 0, 255);
    torch::jit::Module wt = MakeObserverModule(true, wc.per_channel(), -wq, wq);
    torch::jit::QConfigDict dict;
    dict[""] = std::make_tuple(act, wt);
    // inplace=true inserts nothing on LibTorch 1.13 (the clone path works).
    observed = torch::jit::InsertObservers(frozen, "forward", dict, /*inplace=*/false, torch::jit::QuantType::STATIC);
  }));
  auto graph = observed.get_method("forward").graph();
  RETURN_IF_ERROR(MoveObserversAfterRelu(*graph));
  torch::jit::EliminateDeadCode(graph);
  std::map<std::string, Node*> calls = ObserverCalls(*graph);
  // Slots.
  for (auto& [name, call] : calls) {
    auto s = std::make_unique<Slot>();
    s->name = name;
    s->id = next_observer_id++;
    torch::jit::Module obs = observed.attr(name).toModule();
    s->weight = obs.attr("dtype").toInt() == static_cast<int64_t>(c10::ScalarType::QInt8);
    if (s->weight) {
      for (const auto& u : call->output()->uses()) {
        if (u.offset == 1) s->layer = LayerOfNode(u.user);
      }
    } else {
      s->producer_layer = LayerOfNode(call->input(1)->node());
      for (const auto& u : call->output()->uses()) {
        const int l = u.offset == 0 ? LayerOfNode(u.user) : -1;
        if (l >= 0) {
          s->consumer_layers.push_back(l);
        } else {
          s->other_consumers = true;
        }
      }
      ObserverConfig ac = q->config_.activation();
      ASSIGN_OR_RETURN(s->observer, MakeObserver(ac, "activation"));
    }
    RETURN_IF_ERROR(TorchCall("numbering observers", [&] { obs.setattr("obs_id", s->id); }));
    q->slots_.push_back(std::move(s));
  }
  // 3. The never-run observed module, and a copy that calibrates.
  RETURN_IF_ERROR(TorchCall("saving the observed model", [&] {
    std::stringstream buffer;
    observed.save(buffer);
    q->observed_bytes_ = buffer.str();
  }));
  ASSIGN_OR_RETURN(torch::jit::Module calib, TorchCallOr("loading the observed model", [&] {
                     torch::jit::Module m = LoadObservedModule(q->observed_bytes_);
                     m.eval();
                     return m;
                   }));
  q->calibration_ = std::make_unique<Model>(calib, model.metadata());
  {
    ObserveTable& t = Table();
    std::lock_guard<std::mutex> lock(t.mu);
    for (const auto& s : q->slots_) {
      if (s->observer) t.observers[s->id] = s->observer.get();
    }
  }
  return q;
}

absl::Status Int8Quantizer::Observe(const std::vector<c10::IValue>& inputs) {
  RETURN_IF_ERROR(TorchCall("calibration forward", [&] {
    at::NoGradGuard no_grad;
    std::vector<c10::IValue> in = inputs;
    calibration_->module().forward(in);
  }));
  ObserveTable& t = Table();
  std::lock_guard<std::mutex> lock(t.mu);
  for (const auto& s : slots_) {
    auto it = t.errors.find(s->id);
    if (it != t.errors.end() && !it->second.ok()) {
      return absl::Status(it->second.code(), absl::StrCat("observer ", s->name, ": ", it->second.message()));
    }
  }
  ++batches_;
  params_ready_ = false;
  return absl::OkStatus();
}

absl::StatusOr<int> Int8Quantizer::Calibrate(DataLoader& loader, ForwardPass& forward_pass, int batches) {
  return ForBatches(loader, batches, [&](const Batch& batch) -> absl::Status {
    ASSIGN_OR_RETURN(ModelInputs in, forward_pass.ExtractModelInputs(batch));
    return Observe(in);
  });
}

absl::Status Int8Quantizer::ComputeParams() const {
  if (params_ready_) return absl::OkStatus();
  for (auto& s : slots_) {
    if (s->from_qat) continue;
    if (s->weight) {
      if (s->layer < 0) return absl::InternalError(absl::StrCat("weight observer ", s->name, " has no layer"));
      ASSIGN_OR_RETURN(s->params,
                       ComputeQuantParams(config_.weight(), weights_.at(layers_[s->layer].weight_param), "weight"));
    } else {
      if (s->observer->observed_batches() == 0) {
        return absl::FailedPreconditionError(absl::StrCat(
            "observer ", s->name, " saw no data: call Observe with calibration batches before converting",
            batches_ == 0 ? "" : " (the value is never computed on these inputs)"));
      }
      ASSIGN_OR_RETURN(s->params, s->observer->Compute());
      if (s->params.symmetric) {  // quint8 codes: shift the signed range
        s->params.zero_point = s->params.zero_point + 128;
        s->params.qmin += 128;
        s->params.qmax += 128;
      }
    }
    s->has_params = true;
  }
  params_ready_ = true;
  return absl::OkStatus();
}

absl::StatusOr<Model> Int8Quantizer::Build(const std::set<int>& fp32, bool debug) const {
  for (int l : fp32) {
    if (l < 0 || l >= static_cast<int>(layers_.size())) {
      return absl::InvalidArgumentError(
          absl::StrCat("fp32 layer ", l, " is out of range; the model has ", layers_.size(), " layers"));
    }
  }
  auto is_int8 = [&](int l) { return l >= 0 && layers_[l].selected && !fp32.count(l); };
  ASSIGN_OR_RETURN(torch::jit::Module m, TorchCallOr("converting to int8", [&] {
                     torch::jit::Module mod = LoadObservedModule(observed_bytes_);
                     for (const auto& [name, t] : weights_) mod.setattr(name, t.detach().clone());
                     auto graph = mod.get_method("forward").graph();
                     std::map<std::string, Node*> calls = ObserverCalls(*graph);
                     for (const auto& s : slots_) {
                       Node* call = calls.at(s->name);
                       bool remove = false;
                       if (s->weight) {
                         remove = !is_int8(s->layer);
                       } else {
                         bool feeds_int8 = s->other_consumers || is_int8(s->producer_layer);
                         for (int l : s->consumer_layers) feeds_int8 = feeds_int8 || is_int8(l);
                         remove = !feeds_int8;
                       }
                       if (remove) {
                         call->output()->replaceAllUsesWith(call->input(1));
                         call->destroy();
                         continue;
                       }
                       torch::jit::Module obs = mod.attr(s->name).toModule();
                       obs.setattr("scale", s->params.scale.to(at::kFloat));
                       obs.setattr("zero_point", s->params.zero_point.to(at::kLong));
                     }
                     torch::jit::EliminateDeadCode(graph);
                     mod.eval();
                     torch::jit::Module qm = torch::jit::InsertQuantDeQuant(mod, "forward", /*inplace=*/true, debug,
                                                                            torch::jit::QuantType::STATIC);
                     if (!debug) qm = torch::jit::Finalize(qm, torch::jit::QuantType::STATIC, {});
                     auto g = qm.get_method("forward").graph();
                     DequantizeTupleElements(*g);
                     MakeFloatConstantsPrintable(*g);
                     torch::jit::ConstantPropagation(g);
                     torch::jit::EliminateDeadCode(g);
                     return qm;
                   }));
  return Model(m, prepared_->metadata());
}

absl::StatusOr<Model> Int8Quantizer::Convert(const std::set<int>& fp32) const {
  RETURN_IF_ERROR(ComputeParams());
  return Build(fp32, /*debug=*/false);
}

absl::StatusOr<Model> Int8Quantizer::Simulate(const std::set<int>& fp32) const {
  RETURN_IF_ERROR(ComputeParams());
  return Build(fp32, /*debug=*/true);
}

absl::StatusOr<Model> Int8Quantizer::MakeQatModel(const QatConfig& qat) const {
  RETURN_IF_ERROR(ComputeParams());
  const double averaging = qat.averaging_constant() > 0 ? qat.averaging_constant() : 0.01;
  ASSIGN_OR_RETURN(torch::jit::Module m, TorchCallOr("building the QAT model", [&] {
                     torch::jit::Module mod = LoadObservedModule(observed_bytes_);
                     for (const auto& [name, t] : weights_) mod.setattr(name, t.detach().clone().set_requires_grad(true));
                     for (const auto& s : slots_) {
                       torch::jit::Module obs = mod.attr(s->name).toModule();
                       const QuantParams& p = s->params;
                       obs.setattr("mode", qat.lsq() ? kModeLsq : kModeSte);
                       obs.setattr("averaging_constant", averaging);
                       at::Tensor scale = p.scale.to(at::kFloat);
                       at::Tensor zp = p.zero_point.to(at::kFloat);
                       if (!s->weight) {
                         obs.setattr("quant_min", p.qmin);
                         obs.setattr("quant_max", p.qmax);
                         obs.setattr("running_min", ((p.qmin - zp) * scale).reshape({1}));
                         obs.setattr("running_max", ((p.qmax - zp) * scale).reshape({1}));
                         obs.setattr("fq_scale", scale.reshape({1}).clone());
                         obs.setattr("fq_zero_point", p.zero_point.to(at::kInt).reshape({1}).clone());
                       }
                       obs.setattr("lsq_scale", scale.clone().set_requires_grad(true));
                       obs.setattr("lsq_zero_point", zp.clone());
                     }
                     mod.train(true);
                     return mod;
                   }));
  return Model(m, prepared_->metadata());
}

absl::Status Int8Quantizer::FreezeQatObservers(Model& qat_model) {
  return TorchCall("freezing QAT observers", [&] {
    for (const auto& child : qat_model.module().named_children()) {
      if (!absl::StartsWith(child.name, "_observer_")) continue;
      torch::jit::Module obs = child.value;
      obs.setattr("observer_on", at::zeros({1}, at::kLong));
    }
  });
}

absl::Status Int8Quantizer::AdoptQat(const Model& trained) {
  RETURN_IF_ERROR(ComputeParams());
  return TorchCall("reading the QAT model", [&] {
    at::NoGradGuard no_grad;
    const torch::jit::Module& mod = trained.module();
    for (auto& [name, t] : weights_) t = mod.attr(name).toTensor().detach().clone();
    for (auto& s : slots_) {
      torch::jit::Module obs = mod.attr(s->name).toModule();
      const int64_t mode = obs.attr("mode").toInt();
      QuantParams& p = s->params;
      if (s->weight) {
        if (mode == kModeLsq) {
          p.scale = obs.attr("lsq_scale").toTensor().detach().abs().clamp_min(1e-12).to(at::kDouble).clone();
          p.zero_point = at::zeros_like(p.scale, at::kLong);
        } else {  // ranges of the trained weights, as the fake quantization used
          at::Tensor w = weights_.at(layers_[s->layer].weight_param).to(at::kDouble);
          at::Tensor a = p.axis >= 0 ? w.abs().flatten(1).amax(1) : w.abs().amax().reshape({1});
          p.scale = (a / static_cast<double>(p.qmax)).clamp_min(1e-12);
          p.zero_point = at::zeros_like(p.scale, at::kLong);
        }
      } else if (mode == kModeLsq) {
        p.scale = obs.attr("lsq_scale").toTensor().detach().abs().clamp_min(1e-12).to(at::kDouble).clone();
        p.zero_point = obs.attr("lsq_zero_point").toTensor().round().clamp(p.qmin, p.qmax).to(at::kLong);
      } else {
        p.scale = obs.attr("fq_scale").toTensor().to(at::kDouble).clone();
        p.zero_point = obs.attr("fq_zero_point").toTensor().to(at::kLong).clone();
      }
      s->from_qat = true;
    }
  });
}

std::string Int8Quantizer::FormatLayers() const {
  std::string out = absl::StrFormat("%-4s %-28s %-16s %-18s %s\n", "#", "module", "type", "weight", "int8");
  for (size_t i = 0; i < layers_.size(); ++i) {
    const QuantLayer& l = layers_[i];
    out += absl::StrFormat("%-4d %-28s %-16s %-18s %s\n", i, l.module_path.empty() ? "(root)" : l.module_path,
                           l.op_type, absl::StrJoin(l.weight_shape, "x"),
                           l.selected ? "yes" : absl::StrCat("no (", l.reason, ")"));
  }
  return out;
}

std::string Int8Quantizer::FormatRanges() const {
  std::string out;
  for (const auto& s : slots_) {
    if (!s->has_params) continue;
    const QuantParams& p = s->params;
    std::string what = s->weight ? absl::StrCat("weight of layer ", s->layer)
                                 : absl::StrCat("activation", s->producer_layer >= 0
                                                                  ? absl::StrCat(" after layer ", s->producer_layer)
                                                                  : std::string());
    if (p.scale.numel() == 1) {
      const double scale = p.scale.item<double>();
      const int64_t zp = p.zero_point.item<int64_t>();
      out += absl::StrFormat("%-14s %-28s scale %.6g zero point %d  range [%.4g, %.4g]\n", s->name, what, scale, zp,
                             (p.qmin - zp) * scale, (p.qmax - zp) * scale);
    } else {
      out += absl::StrFormat("%-14s %-28s %d channels, scale %.4g..%.4g\n", s->name, what, p.scale.numel(),
                             p.scale.min().item<double>(), p.scale.max().item<double>());
    }
  }
  return out;
}

}  // namespace slimfit
