#include "graph/dependency_graph.h"

#include <torch/csrc/jit/api/module.h>
#include <torch/csrc/jit/ir/ir.h>

#include <algorithm>
#include <map>
#include <numeric>
#include <optional>
#include <set>
#include <unordered_map>

#include "absl/container/flat_hash_set.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "common/status_macros.h"
#include "common/torch_status.h"
#include "graph/capture.h"
#include "graph/layer_table.h"

namespace slimfit {
namespace {

using torch::jit::Node;
using torch::jit::Value;

// What a tensor's channel axis holds.
struct Label {
  int dim = 1;
  std::vector<ChannelRef> chans;
  int64_t block = 1;
  // Removed channels may hold non-zero values here (after sigmoid, or an add
  // of an unlabelled tensor): such channels cannot simply be dropped by the
  // next consumer.
  bool nonzero = false;
  // {A, B} while a view splits the channel axis into dims dim and dim + 1 of
  // sizes A and B (a channel shuffle); `chans` is then row-major over them.
  std::vector<int64_t> split;
};
using LabelPtr = std::shared_ptr<const Label>;

const std::set<std::string>& ZeroPreservingOps() {
  static const auto* ops = new std::set<std::string>{
      "aten::relu", "aten::relu_", "aten::relu6", "aten::relu6_", "aten::hardtanh",
      "aten::hardtanh_", "aten::leaky_relu", "aten::leaky_relu_", "aten::elu", "aten::elu_",
      "aten::selu", "aten::selu_", "aten::celu", "aten::gelu", "aten::silu", "aten::silu_",
      "aten::hardswish", "aten::hardswish_", "aten::mish", "aten::tanh", "aten::tanh_",
      "aten::softsign", "aten::hardshrink", "aten::softshrink", "aten::dropout", "aten::dropout_",
      "aten::feature_dropout", "aten::feature_dropout_", "aten::alpha_dropout",
      "aten::feature_alpha_dropout", "aten::max_pool1d", "aten::max_pool2d", "aten::max_pool3d",
      "aten::max_pool2d_with_indices", "aten::avg_pool1d", "aten::avg_pool2d", "aten::avg_pool3d",
      "aten::adaptive_avg_pool1d", "aten::adaptive_avg_pool2d", "aten::adaptive_avg_pool3d",
      "aten::adaptive_max_pool1d", "aten::adaptive_max_pool2d", "aten::adaptive_max_pool3d",
      "aten::upsample_nearest1d", "aten::upsample_nearest2d", "aten::upsample_nearest3d",
      "aten::upsample_bilinear2d", "aten::upsample_linear1d", "aten::upsample_bicubic2d",
      "aten::contiguous", "aten::clone", "aten::detach", "aten::to", "aten::type_as",
      "aten::constant_pad_nd", "aten::pad", "aten::reflection_pad2d", "aten::replication_pad2d",
      "aten::neg", "aten::abs", "aten::square", "aten::sqrt", "aten::zero_pad2d",
      "aten::channel_shuffle_identity"};
  return *ops;
}

// Activations whose outputs are what activation-based pruners look at.
const std::set<std::string>& ActivationOps() {
  static const auto* ops = new std::set<std::string>{
      "aten::relu",  "aten::relu_",  "aten::relu6",     "aten::relu6_",     "aten::hardtanh",
      "aten::hardtanh_", "aten::leaky_relu", "aten::leaky_relu_", "aten::elu", "aten::elu_",
      "aten::gelu",  "aten::silu",   "aten::silu_",     "aten::hardswish",  "aten::hardswish_",
      "aten::mish",  "aten::tanh",   "aten::selu",      "aten::celu"};
  return *ops;
}

// Ops whose f(0) != 0: labels pass, but removed channels become non-zero.
const std::set<std::string>& NonZeroUnaryOps() {
  static const auto* ops = new std::set<std::string>{
      "aten::sigmoid", "aten::sigmoid_", "aten::hardsigmoid", "aten::hardsigmoid_", "aten::exp",
      "aten::cos", "aten::softplus", "aten::log_sigmoid"};
  return *ops;
}

// Ops that read a tensor's metadata only.
const std::set<std::string>& MetadataOps() {
  static const auto* ops = new std::set<std::string>{
      "aten::size", "aten::dim", "aten::len", "prim::shape", "prim::device", "prim::dtype",
      "prim::layout", "aten::__is__", "aten::__isnot__", "aten::is_floating_point", "prim::is_cuda",
      "aten::numel", "prim::NumToTensor", "aten::Int", "prim::unchecked_cast", "aten::__not__",
      "prim::requires_grad", "prim::grad"};
  return *ops;
}

std::optional<std::vector<int64_t>> ConstIntList(const Value* v) {
  auto iv = torch::jit::toIValue(v);
  if (iv && iv->isIntList()) return iv->toIntVector();
  if (iv && iv->isInt()) return std::vector<int64_t>{iv->toInt()};
  return std::nullopt;
}

// (Optional attributes holding None, like scripted nn.Conv2d(bias=False)'s
// `self.bias`, are None constants here: BuildLayerGraph folds them.)
bool IsNone(const Value* v) { return v->type()->kind() == c10::TypeKind::NoneType; }

class Analyzer {
 public:
  Analyzer(Model& model, DependencyGraph* out) : model_(model), out_(out) {}

  absl::Status Run(const std::vector<c10::IValue>& inputs) {
    // The eval-mode graph, and shapes of every top-level tensor from one run.
    const bool was_training = model_.is_training();
    model_.Eval();
    auto built = BuildLayerGraph(model_);
    if (!built.ok()) model_.Train(was_training);
    ASSIGN_OR_RETURN(LayerGraph lg, std::move(built));
    out_->graph = lg.graph;
    for (const auto& [name, t] : model_.NamedParameters()) tensors_[name] = {t, true};
    for (const auto& [name, t] : model_.NamedBuffers()) tensors_[name] = {t, false};
    std::vector<Value*> values = TopLevelTensorValues(*lg.graph);
    auto captured = RunAndCapture(model_, *lg.graph, values, inputs);
    model_.Train(was_training);
    RETURN_IF_ERROR(captured.status());
    for (size_t i = 0; i < values.size(); ++i) {
      if (captured->tensors[i].defined()) shapes_[values[i]] = captured->tensors[i].sizes().vec();
    }
    self_ = lg.graph->inputs().at(0);
    return TorchCall("analysing channel dependencies", [&] {
      for (Node* n : lg.graph->block()->nodes()) Visit(n);
      for (Value* o : lg.graph->outputs()) BlockValue(o, "reaches the model output");
      Finish();
    });
  }

 private:
  struct NamedTensor {
    at::Tensor tensor;
    bool is_parameter;
  };

  // ---- channel bookkeeping ----
  int NewSpace(const std::string& module_path, const std::string& op_type, const std::string& weight,
               int weight_dim, int64_t size) {
    ChannelSpace s;
    s.id = static_cast<int>(out_->spaces.size());
    s.module_path = module_path;
    s.op_type = op_type;
    s.weight = weight;
    s.weight_dim = weight_dim;
    s.size = size;
    s.blocked.assign(size, false);
    offset_.push_back(static_cast<int64_t>(parent_.size()));
    for (int64_t c = 0; c < size; ++c) parent_.push_back(static_cast<int64_t>(parent_.size()));
    out_->spaces.push_back(std::move(s));
    return out_->spaces.back().id;
  }
  int64_t Id(const ChannelRef& r) const { return offset_[r.space] + r.channel; }
  int64_t Find(int64_t x) {
    while (parent_[x] != x) x = parent_[x] = parent_[parent_[x]];
    return x;
  }
  void BlockChannel(const ChannelRef& r, const std::string& reason) {
    if (r.space < 0) return;
    ChannelSpace& s = out_->spaces[r.space];
    s.blocked[r.channel] = true;
    if (s.blocked_reason.empty()) s.blocked_reason = reason;
  }
  void Union(const ChannelRef& a, const ChannelRef& b, const std::string& reason) {
    if (a.space < 0 || b.space < 0) {
      // Coupled with a channel nobody can remove.
      BlockChannel(a, reason);
      BlockChannel(b, reason);
      return;
    }
    int64_t x = Find(Id(a)), y = Find(Id(b));
    if (x != y) parent_[x] = y;
  }
  void Block(const LabelPtr& l, const std::string& reason) {
    if (!l) return;
    for (const ChannelRef& r : l->chans) BlockChannel(r, reason);
  }
  void BlockValue(const Value* v, const std::string& reason) { Block(LabelOf(v), reason); }

  LabelPtr LabelOf(const Value* v) const {
    auto it = labels_.find(v);
    return it == labels_.end() ? nullptr : it->second;
  }
  const std::vector<int64_t>* ShapeOf(const Value* v) const {
    auto it = shapes_.find(v);
    return it == shapes_.end() ? nullptr : &it->second;
  }
  std::optional<std::string> TensorPath(const Value* v) const {
    auto path = AttrPath(v, self_);
    if (path && tensors_.count(*path)) return path;
    return std::nullopt;
  }
  void AddSlot(const std::string& tensor, SlotRole role, int dim, std::vector<ChannelRef> chans,
               int64_t block = 1) {
    TensorSlot s;
    s.tensor = tensor;
    s.is_parameter = tensors_.at(tensor).is_parameter;
    s.role = role;
    s.dim = dim;
    s.channels = std::move(chans);
    s.block = block;
    out_->slots.push_back(std::move(s));
  }
  std::vector<ChannelRef> SpaceChannels(int space) const {
    std::vector<ChannelRef> c(out_->spaces[space].size);
    for (int64_t i = 0; i < static_cast<int64_t>(c.size()); ++i) c[i] = {space, i};
    return c;
  }
  std::string Where(const Node* n) const {
    // The module path of the first parameter the op reads, else its kind.
    for (const Value* in : n->inputs()) {
      auto p = TensorPath(in);
      if (p) return ModulePathOf(*p);
    }
    return "";
  }
  void Unknown(Node* n, const std::string& why) {
    bool touched = false;
    for (const Value* in : n->inputs()) {
      if (LabelOf(in)) touched = true;
    }
    if (!touched) return;
    const std::string kind = n->kind().toQualString();
    std::string where = Where(n);
    std::string reason = absl::StrCat(kind, where.empty() ? "" : absl::StrCat(" (", where, ")"),
                                      why.empty() ? "" : absl::StrCat(": ", why));
    for (const Value* in : n->inputs()) BlockValue(in, reason);
    if (reported_.insert(reason).second) out_->unhandled_ops.push_back(reason);
  }
  void SetLabel(const Value* v, Label l) { labels_[v] = std::make_shared<const Label>(std::move(l)); }
  void Tap(Value* v, const Label& l) {
    DependencyGraph::Tap t;
    t.value = v;
    t.dim = l.dim;
    bool any = false;
    for (const ChannelRef& r : l.chans) {
      if (r.space >= 0 && tapped_.insert(Id(r)).second) {
        t.channels.push_back(r);
        any = true;
      } else {
        t.channels.push_back({-1, 0});
      }
    }
    if (any && l.block == 1) out_->taps.push_back(std::move(t));
  }

  // ---- ops ----
  void Visit(Node* n) {
    const std::string kind = n->kind().toQualString();
    if (n->kind() == c10::prim::GetAttr || n->kind() == c10::prim::Constant) return;
    if (!n->blocks().empty()) return VisitControlFlow(n);
    if (MetadataOps().count(kind)) return;
    if (ReadsSplitLabel(n)) return VisitSplit(n, kind);
    if (auto conv = AsConvolution(n)) return VisitConv(n, *conv);
    if (kind == "aten::linear") return VisitLinear(n);
    if (kind == "aten::batch_norm") return VisitBatchNorm(n);
    if (ZeroPreservingOps().count(kind) || NonZeroUnaryOps().count(kind)) {
      return VisitUnary(n, kind, NonZeroUnaryOps().count(kind) > 0);
    }
    if (kind == "aten::add" || kind == "aten::add_" || kind == "aten::sub" || kind == "aten::sub_" ||
        kind == "aten::mul" || kind == "aten::mul_" || kind == "aten::div" || kind == "aten::div_") {
      return VisitBinary(n, kind);
    }
    if (kind == "aten::cat" || kind == "aten::concat") return VisitCat(n);
    if (kind == "prim::ListConstruct") return VisitList(n);
    if (kind == "aten::append") return VisitAppend(n);
    if (kind == "aten::flatten") return VisitFlatten(n);
    if (kind == "aten::view" || kind == "aten::reshape") return VisitView(n);
    if (kind == "aten::chunk" || kind == "aten::unsafe_chunk" || kind == "prim::ConstantChunk") {
      return VisitChunk(n, kind);
    }
    if (kind == "prim::ListUnpack" && chunks_.count(n->input(0))) return VisitUnpack(n);
    if (kind == "aten::transpose" || kind == "aten::permute") return VisitPermute(n, kind);
    if (kind == "aten::mean" || kind == "aten::sum" || kind == "aten::amax") return VisitReduce(n);
    if (kind == "prim::TupleConstruct" || kind == "prim::DictConstruct") {
      for (const Value* in : n->inputs()) BlockValue(in, "reaches the model output or a container");
      return;
    }
    Unknown(n, "not understood");
  }

  void VisitControlFlow(Node* n) {
    // Uses inside blocks (the blocks see outer values directly).
    std::vector<Node*> stack = {n};
    while (!stack.empty()) {
      Node* m = stack.back();
      stack.pop_back();
      const std::string kind = m->kind().toQualString();
      if (m != n && MetadataOps().count(kind)) continue;
      for (const Value* in : m->inputs()) {
        BlockValue(in, absl::StrCat("used inside ", n->kind().toQualString(), " (", kind, ")"));
      }
      for (torch::jit::Block* b : m->blocks()) {
        for (Node* inner : b->nodes()) stack.push_back(inner);
        for (const Value* o : b->outputs()) {
          BlockValue(o, absl::StrCat("returned from ", n->kind().toQualString()));
        }
      }
    }
  }

  void VisitUnary(Node* n, const std::string& kind, bool nonzero_at_zero) {
    LabelPtr l = LabelOf(n->input(0));
    if (!l || n->outputs().empty()) return;
    const auto* si = ShapeOf(n->input(0));
    const auto* so = ShapeOf(n->output(0));
    if (!si || !so || si->size() != so->size() || (*si)[l->dim] != (*so)[l->dim]) {
      return Unknown(n, "changes the channel axis");
    }
    if (kind == "aten::constant_pad_nd" || kind == "aten::pad") {
      // Padding with a non-zero value makes removed channels non-zero.
      if (n->inputs().size() > 2) {
        auto value = torch::jit::toIValue(n->input(n->inputs().size() - 1));
        if (value && value->isDouble() && value->toDouble() != 0.0) nonzero_at_zero = true;
      }
    }
    Label out = *l;
    out.nonzero = l->nonzero || nonzero_at_zero;
    SetLabel(n->output(0), out);
    if (ActivationOps().count(kind) && !out.nonzero) Tap(n->output(0), out);
  }

  void VisitConv(Node* n, const ConvolutionCall& conv) {
    auto wpath = TensorPath(n->input(1));
    const auto* si = ShapeOf(n->input(0));
    if (!wpath || !si) return Unknown(n, "weight is not a parameter");
    const bool transposed = conv.transposed;
    const int64_t groups = ConstantInt(n->input(conv.groups_input)).value_or(-1);
    if (groups < 1) return Unknown(n, "groups is not a constant");
    const at::Tensor& w = tensors_.at(*wpath).tensor;
    std::optional<std::string> bpath = IsNone(n->input(2)) ? std::nullopt : TensorPath(n->input(2));
    if (!IsNone(n->input(2)) && !bpath) return Unknown(n, "bias is not a parameter");
    const std::string module_path = ModulePathOf(*wpath);
    const int64_t in_c = (*si)[1];
    LabelPtr in = LabelOf(n->input(0));
    if (in && (in->dim != 1 || in->block != 1)) return Unknown(n, "channel axis is not 1");
    const std::string dims = absl::StrCat(w.dim() - 2, "d");
    if (transposed) {
      if (groups != 1) return Unknown(n, "grouped transposed convolution");
      if (in) {
        if (in->nonzero) Block(in, absl::StrCat("non-zero-preserving op before ", module_path));
        AddSlot(*wpath, SlotRole::kConsumerWeight, 0, in->chans);
      }
      return Produce(n, module_path, absl::StrCat("ConvTranspose", dims), *wpath, 1, w.size(1), bpath);
    }
    if (groups == 1) {
      if (in) {
        if (in->nonzero) Block(in, absl::StrCat("non-zero-preserving op before ", module_path));
        AddSlot(*wpath, SlotRole::kConsumerWeight, 1, in->chans);
      }
      return Produce(n, module_path, absl::StrCat("Conv", dims), *wpath, 0, w.size(0), bpath);
    }
    if (groups == in_c && w.size(1) == 1) {
      // Depthwise: output channel o reads input channel o / m.
      const int64_t m = w.size(0) / in_c;
      if (!in) {
        Label opaque;
        opaque.chans.assign(w.size(0), ChannelRef{});
        return SetLabel(n->output(0), opaque);
      }
      if (in->nonzero) Block(in, absl::StrCat("non-zero-preserving op before ", module_path));
      if (m == 1) {
        AddSlot(*wpath, SlotRole::kProducerWeight, 0, in->chans);
        if (bpath) AddSlot(*bpath, SlotRole::kProducerBias, 0, in->chans);
        Label out = *in;
        out.nonzero = false;
        return SetLabel(n->output(0), out);
      }
      Produce(n, module_path, "DepthwiseConv" + dims, *wpath, 0, w.size(0), bpath);
      const int space = out_->spaces.size() - 1;
      for (int64_t c = 0; c < in_c; ++c) {
        for (int64_t j = 0; j < m; ++j) {
          Union(in->chans[c], {space, c * m + j}, absl::StrCat("depthwise multiplier in ", module_path));
        }
      }
      return;
    }
    // Grouped (ResNeXt, RegNet): output o of group g = o / opg reads inputs
    // g*ipg .. g*ipg+ipg-1 through weight columns 0 .. ipg-1. Removing input
    // position j (or output position k) of *every* group keeps the groups
    // equal and the weight rectangular: column j goes, and `groups` stays
    // input.size(1) // weight.size(1). So position j of each group is one
    // unit, on either side (Torch-Pruning couples grouped channels the same
    // way).
    const int64_t ipg = w.size(1);
    const int64_t opg = w.size(0) / groups;
    const std::string reason = absl::StrCat("grouped convolution ", module_path, " (groups=", groups, ")");
    if (in) {
      if (in->nonzero) Block(in, absl::StrCat("non-zero-preserving op before ", module_path));
      for (int64_t g = 1; g < groups; ++g) {
        for (int64_t j = 0; j < ipg; ++j) Union(in->chans[j], in->chans[g * ipg + j], reason);
      }
      AddSlot(*wpath, SlotRole::kConsumerWeight, 1,
              std::vector<ChannelRef>(in->chans.begin(), in->chans.begin() + ipg));
    }
    Produce(n, module_path, "GroupedConv" + dims, *wpath, 0, w.size(0), bpath);
    const int space = out_->spaces.size() - 1;
    for (int64_t g = 1; g < groups; ++g) {
      for (int64_t k = 0; k < opg; ++k) Union({space, k}, {space, g * opg + k}, reason);
    }
  }

  void VisitLinear(Node* n) {
    auto wpath = TensorPath(n->input(1));
    const auto* si = ShapeOf(n->input(0));
    const auto* so = ShapeOf(n->output(0));
    if (!wpath || !si || !so) return Unknown(n, "weight is not a parameter");
    std::optional<std::string> bpath = IsNone(n->input(2)) ? std::nullopt : TensorPath(n->input(2));
    if (!IsNone(n->input(2)) && !bpath) return Unknown(n, "bias is not a parameter");
    const at::Tensor& w = tensors_.at(*wpath).tensor;
    const std::string module_path = ModulePathOf(*wpath);
    LabelPtr in = LabelOf(n->input(0));
    if (in) {
      if (in->dim != static_cast<int>(si->size()) - 1 ||
          static_cast<int64_t>(in->chans.size()) * in->block != w.size(1)) {
        return Unknown(n, "channel axis is not the feature axis");
      }
      if (in->nonzero) Block(in, absl::StrCat("non-zero-preserving op before ", module_path));
      AddSlot(*wpath, SlotRole::kConsumerWeight, 1, in->chans, in->block);
    }
    Produce(n, module_path, "Linear", *wpath, 0, w.size(0), bpath, static_cast<int>(so->size()) - 1);
  }

  // A new space for the producer `n`, labelling its output.
  void Produce(Node* n, const std::string& module_path, const std::string& op_type,
               const std::string& weight, int weight_dim, int64_t size,
               const std::optional<std::string>& bias, int out_dim = 1) {
    const int space = NewSpace(module_path, op_type, weight, weight_dim, size);
    AddSlot(weight, SlotRole::kProducerWeight, weight_dim, SpaceChannels(space));
    if (bias) AddSlot(*bias, SlotRole::kProducerBias, 0, SpaceChannels(space));
    // A weight used by several calls: their output channels are the same rows.
    auto [it, fresh] = space_of_weight_.emplace(weight, space);
    if (!fresh) {
      for (int64_t c = 0; c < size; ++c) Union({it->second, c}, {space, c}, "shared weight");
    }
    Label out;
    out.dim = out_dim;
    out.chans = SpaceChannels(space);
    SetLabel(n->output(0), out);
    producer_output_[space] = n->output(0);
  }

  void VisitBatchNorm(Node* n) {
    LabelPtr in = LabelOf(n->input(0));
    if (!in) return;
    if (in->dim != 1 || in->block != 1) return Unknown(n, "channel axis is not 1");
    bool affine = true;
    static const SlotRole kRoles[] = {SlotRole::kNormWeight, SlotRole::kNormBias, SlotRole::kNormStat,
                                      SlotRole::kNormStat};
    for (int i = 1; i <= 4; ++i) {
      if (IsNone(n->input(i))) {
        if (i <= 2) affine = false;
        continue;
      }
      auto path = TensorPath(n->input(i));
      if (!path) return Unknown(n, "statistics are not module tensors");
    }
    for (int i = 1; i <= 4; ++i) {
      if (IsNone(n->input(i))) continue;
      AddSlot(*TensorPath(n->input(i)), kRoles[i - 1], 0, in->chans);
    }
    Label out = *in;
    // Masking zeroes γ and β (and the running mean): removed channels are 0.
    out.nonzero = affine ? false : in->nonzero;
    SetLabel(n->output(0), out);
  }

  void VisitBinary(Node* n, const std::string& kind) {
    const bool is_add = kind.rfind("aten::add", 0) == 0 || kind.rfind("aten::sub", 0) == 0;
    const bool is_div = kind.rfind("aten::div", 0) == 0;
    Value* a = n->input(0);
    Value* b = n->input(1);
    LabelPtr la = LabelOf(a);
    LabelPtr lb = IsTensorValue(b) ? LabelOf(b) : nullptr;
    const auto* so = ShapeOf(n->output(0));
    if (!IsTensorValue(b)) {  // tensor op scalar
      if (!la) return;
      Label out = *la;
      if (is_add) {
        auto c = torch::jit::toIValue(b);
        const bool zero = c && ((c->isDouble() && c->toDouble() == 0) || (c->isInt() && c->toInt() == 0));
        out.nonzero = out.nonzero || !zero;
      }
      return SetLabel(n->output(0), out);
    }
    if (!la && !lb) return;
    if (!so) return Unknown(n, "shape unknown");
    const int out_rank = static_cast<int>(so->size());
    auto aligned = [&](const Value* v, const LabelPtr& l) {
      return l->dim + out_rank - static_cast<int>(ShapeOf(v) ? ShapeOf(v)->size() : out_rank);
    };
    if (la && lb) {
      if (aligned(a, la) != aligned(b, lb) || la->chans.size() != lb->chans.size() ||
          la->block != lb->block) {
        return Unknown(n, "operands' channel axes differ");
      }
      const std::string reason = absl::StrCat(kind, " couples ", Where(a->node()));
      for (size_t i = 0; i < la->chans.size(); ++i) Union(la->chans[i], lb->chans[i], reason);
      if (is_div) Block(lb, "divides by a prunable channel");
      Label out = *la;
      out.dim = aligned(a, la);
      out.nonzero = is_add ? (la->nonzero || lb->nonzero)
                           : (is_div ? la->nonzero : (la->nonzero && lb->nonzero));
      return SetLabel(n->output(0), out);
    }
    // One labelled operand; the other must broadcast along the channel axis.
    const Value* lv = la ? a : b;
    const Value* ov = la ? b : a;
    LabelPtr l = la ? la : lb;
    if (!la && is_div) return Unknown(n, "divides by a prunable channel");
    const auto* sv = ShapeOf(ov);
    const int pos = aligned(lv, l) - (out_rank - static_cast<int>(sv ? sv->size() : 0));
    if (!sv || (pos >= 0 && (*sv)[pos] != 1)) {
      return Unknown(n, "other operand has a channel axis no layer produces");
    }
    Label out = *l;
    out.dim = aligned(lv, l);
    out.nonzero = is_add ? true : l->nonzero;
    SetLabel(n->output(0), out);
  }

  // Tensor lists: built by ListConstruct and grown by aten::append (scripted
  // DenseNet's `features.append(new)`); top-level nodes run in order, so a
  // cat reads the list's contents at that point.
  void VisitList(Node* n) {
    bool ok = true;
    for (const torch::jit::Use& u : n->output()->uses()) ok = ok && ListUseUnderstood(u);
    if (!ok) return Unknown(n, "list passed to an op other than cat / append");
    lists_[n->output()] = std::make_shared<std::vector<const Value*>>(n->inputs().begin(), n->inputs().end());
  }

  static bool ListUseUnderstood(const torch::jit::Use& u) {
    const std::string k = u.user->kind().toQualString();
    return k == "aten::cat" || k == "aten::concat" || k == "aten::len" || (k == "aten::append" && u.offset == 0);
  }

  void VisitAppend(Node* n) {
    auto it = lists_.find(n->input(0));
    bool ok = it != lists_.end();
    for (const torch::jit::Use& u : n->output()->uses()) ok = ok && ListUseUnderstood(u);
    if (!ok) {
      // The list escapes: whatever it holds keeps its channels.
      if (it != lists_.end()) {
        for (const Value* v : *it->second) BlockValue(v, "in a list passed to an op other than cat");
      }
      return Unknown(n, "appends to a list this analysis does not follow");
    }
    it->second->push_back(n->input(1));
    lists_[n->output()] = it->second;
  }

  void VisitCat(Node* n) {
    auto tracked = lists_.find(n->input(0));
    const auto* so = ShapeOf(n->output(0));
    auto dim = ConstantInt(n->input(1));
    if (tracked == lists_.end() || !so || !dim) return Unknown(n, "dynamic cat");
    const std::vector<const Value*> elements = *tracked->second;
    const int rank = static_cast<int>(so->size());
    const int d = static_cast<int>(*dim < 0 ? *dim + rank : *dim);
    bool any = false, along = false;
    for (const Value* v : elements) {
      LabelPtr l = LabelOf(v);
      if (!l) continue;
      any = true;
      if (l->dim == d) along = true;
    }
    if (!any) return;
    if (along) {
      Label out;
      out.dim = d;
      for (const Value* v : elements) {
        LabelPtr l = LabelOf(v);
        const auto* s = ShapeOf(v);
        if (!s) return Unknown(n, "shape unknown");
        if (!l) {
          out.chans.insert(out.chans.end(), (*s)[d], ChannelRef{});
          continue;
        }
        if (l->dim != d || l->block != 1) return Unknown(n, "inputs' channel axes differ");
        out.chans.insert(out.chans.end(), l->chans.begin(), l->chans.end());
        out.nonzero = out.nonzero || l->nonzero;
      }
      return SetLabel(n->output(0), out);
    }
    // Concatenated along another axis: every input's channels line up.
    LabelPtr first;
    for (const Value* v : elements) {
      LabelPtr l = LabelOf(v);
      if (!l) return Unknown(n, "concatenates unlabelled tensors along another axis");
      if (!first) {
        first = l;
        continue;
      }
      if (l->dim != first->dim || l->chans.size() != first->chans.size() || l->block != first->block) {
        return Unknown(n, "inputs' channel axes differ");
      }
      for (size_t i = 0; i < l->chans.size(); ++i) Union(first->chans[i], l->chans[i], "cat");
    }
    SetLabel(n->output(0), *first);
  }

  void VisitFlatten(Node* n) {
    LabelPtr l = LabelOf(n->input(0));
    if (!l) return;
    const auto* si = ShapeOf(n->input(0));
    auto start = ConstantInt(n->input(1));
    auto end = ConstantInt(n->input(2));
    if (!si || !start || !end) return Unknown(n, "dynamic flatten");
    const int rank = static_cast<int>(si->size());
    const int s = static_cast<int>(*start < 0 ? *start + rank : *start);
    const int e = static_cast<int>(*end < 0 ? *end + rank : *end);
    Label out = *l;
    if (l->dim < s) return SetLabel(n->output(0), out);
    if (l->dim > e) {
      out.dim = l->dim - (e - s);
      return SetLabel(n->output(0), out);
    }
    if (l->dim != s) return Unknown(n, "flattens dims before the channel axis into it");
    for (int i = s + 1; i <= e; ++i) out.block *= (*si)[i];
    SetLabel(n->output(0), out);
  }

  void VisitView(Node* n) {
    LabelPtr l = LabelOf(n->input(0));
    if (!l) return;
    const auto* si = ShapeOf(n->input(0));
    const auto* so = ShapeOf(n->output(0));
    if (!si || !so) return Unknown(n, "shape unknown");
    if (*si == *so) return SetLabel(n->output(0), *l);
    const int d = l->dim;
    if (l->block == 1 && so->size() == si->size() + 1) return SplitChannels(n, *l, *si, *so);
    // [N, ..., C, rest...] → [N, ..., C*prod(rest)]: a flatten from d.
    bool flatten = static_cast<int>(so->size()) == d + 1;
    for (int i = 0; flatten && i < d; ++i) flatten = (*si)[i] == (*so)[i];
    int64_t rest = 1;
    for (size_t i = d + 1; i < si->size(); ++i) rest *= (*si)[i];
    flatten = flatten && (*so)[d] == (*si)[d] * rest;
    if (!flatten) return Unknown(n, "reshapes the channel axis");
    // The shape argument must not pin the channel extent to a constant.
    const Value* shape = n->input(1);
    if (shape->node()->kind() == c10::prim::ListConstruct) {
      for (size_t i = 1; i < shape->node()->inputs().size(); ++i) {
        auto c = ConstantInt(shape->node()->input(i));
        if (c && *c != -1) {
          return Unknown(n, absl::StrCat("constant shape entry ", *c, " (use torch.flatten(x, 1))"));
        }
      }
    } else if (auto c = ConstIntList(shape)) {
      for (size_t i = 1; i < c->size(); ++i) {
        if ((*c)[i] != -1) {
          return Unknown(n, absl::StrCat("constant shape entry ", (*c)[i], " (use torch.flatten(x, 1))"));
        }
      }
    }
    Label out = *l;
    out.block = l->block * rest;
    SetLabel(n->output(0), out);
  }

  // ---- channel shuffles: view [.., C, ..] → [.., A, B, ..], transpose, view back ----

  bool ReadsSplitLabel(const Node* n) const {
    for (const Value* in : n->inputs()) {
      LabelPtr l = LabelOf(in);
      if (l && !l->split.empty()) return true;
    }
    return false;
  }

  // Shape entry `i` of a view's shape argument: its constant value, -1 for
  // "inferred", or nullopt when computed at run time (from sizes).
  static std::optional<int64_t> ShapeEntry(const Value* shape, size_t i) {
    if (shape->node()->kind() == c10::prim::ListConstruct) {
      if (i >= shape->node()->inputs().size()) return std::nullopt;
      return ConstantInt(shape->node()->input(i));
    }
    auto c = ConstIntList(shape);
    if (c && i < c->size()) return (*c)[i];
    return std::nullopt;
  }

  // The channel axis d split into (A, B). After pruning the model computes
  // one of them from the input's size; the other is a constant, so channels
  // go in the same position of every A-row (A constant: the shuffle's
  // groups) or in whole rows (B constant).
  void SplitChannels(Node* n, const Label& l, const std::vector<int64_t>& si, const std::vector<int64_t>& so) {
    const int d = l.dim;
    bool split = true;
    for (int i = 0; i < d; ++i) split = split && si[i] == so[i];
    for (size_t i = d + 1; i < si.size(); ++i) split = split && si[i] == so[i + 1];
    split = split && so[d] * so[d + 1] == si[d] && static_cast<int64_t>(l.chans.size()) == si[d];
    if (!split) return Unknown(n, "reshapes the channel axis");
    const int64_t a = so[d], b = so[d + 1];
    auto ea = ShapeEntry(n->input(1), d), eb = ShapeEntry(n->input(1), d + 1);
    const bool a_fixed = ea && *ea != -1, b_fixed = eb && *eb != -1;
    if (a_fixed == b_fixed) {
      return Unknown(n, a_fixed ? "splits the channel axis into constant sizes"
                                : "splits the channel axis into sizes that are both computed");
    }
    const std::string reason = absl::StrCat("channel split (", a, ", ", b, ") at ", Where(n));
    for (int64_t i = 0; i < a; ++i) {
      for (int64_t j = 0; j < b; ++j) {
        // a fixed: position j of row 0 with position j of row i; b fixed: row i whole.
        Union(l.chans[a_fixed ? j : i * b], l.chans[i * b + j], reason);
      }
    }
    Label out = l;
    out.split = {a, b};
    SetLabel(n->output(0), out);
  }

  // Ops on a split channel axis: the shuffle's transpose, contiguous copies,
  // and the view (or flatten) that merges the two dims back.
  void VisitSplit(Node* n, const std::string& kind) {
    LabelPtr l = LabelOf(n->input(0));
    const auto* si = ShapeOf(n->input(0));
    const auto* so = n->outputs().empty() ? nullptr : ShapeOf(n->output(0));
    if (!l || l->split.empty() || !si || !so) return Unknown(n, "split channel axis");
    for (size_t i = 1; i < n->inputs().size(); ++i) {
      if (LabelOf(n->input(i))) return Unknown(n, "split channel axis");
    }
    const int d = l->dim;
    const int64_t a = l->split[0], b = l->split[1];
    if (kind == "aten::contiguous" || kind == "aten::clone" || kind == "aten::detach") {
      if (*si != *so) return Unknown(n, "split channel axis");
      return SetLabel(n->output(0), *l);
    }
    if (kind == "aten::transpose") {
      auto d0 = ConstantInt(n->input(1)), d1 = ConstantInt(n->input(2));
      const int rank = static_cast<int>(si->size());
      if (!d0 || !d1) return Unknown(n, "dynamic transpose of a split channel axis");
      const int64_t x = *d0 < 0 ? *d0 + rank : *d0, y = *d1 < 0 ? *d1 + rank : *d1;
      if (std::minmax(x, y) != std::minmax<int64_t>(d, d + 1)) {
        return Unknown(n, "transposes a split channel axis with another axis");
      }
      Label out = *l;
      out.split = {b, a};
      for (int64_t i = 0; i < a; ++i) {
        for (int64_t j = 0; j < b; ++j) out.chans[j * a + i] = l->chans[i * b + j];
      }
      return SetLabel(n->output(0), out);
    }
    const bool view = kind == "aten::view" || kind == "aten::reshape";
    bool merge = (view || kind == "aten::flatten") && so->size() + 1 == si->size() && (*so)[d] == a * b;
    for (int i = 0; merge && i < d; ++i) merge = (*si)[i] == (*so)[i];
    for (size_t i = d + 1; merge && i < so->size(); ++i) merge = (*si)[i + 1] == (*so)[i];
    if (merge && view) {
      auto e = ShapeEntry(n->input(1), d);
      if (e && *e != -1) return Unknown(n, absl::StrCat("constant shape entry ", *e, " for the channel axis"));
    }
    if (merge && !view) {
      auto s0 = ConstantInt(n->input(1)), s1 = ConstantInt(n->input(2));
      const int rank = static_cast<int>(si->size());
      merge = s0 && s1 && (*s0 < 0 ? *s0 + rank : *s0) == d && (*s1 < 0 ? *s1 + rank : *s1) == d + 1;
    }
    if (!merge) return Unknown(n, "split channel axis");
    Label out = *l;
    out.split.clear();
    SetLabel(n->output(0), out);
  }

  // chunk along the channel axis: chunk i holds positions i*per .. i*per+per-1;
  // after pruning each chunk still gets C'/chunks, so position j of every
  // chunk goes together (ShuffleNetV2's x1, x2 = x.chunk(2, dim=1)).
  void VisitChunk(Node* n, const std::string& kind) {
    LabelPtr l = LabelOf(n->input(0));
    if (!l) return;
    const auto* si = ShapeOf(n->input(0));
    std::optional<int64_t> chunks, dim;
    if (kind == "prim::ConstantChunk") {
      chunks = n->i(c10::attr::chunks);
      dim = n->i(c10::attr::dim);
    } else {
      chunks = ConstantInt(n->input(1));
      dim = ConstantInt(n->input(2));
      for (const torch::jit::Use& u : n->output()->uses()) {
        if (u.user->kind() != c10::prim::ListUnpack) return Unknown(n, "chunks used as a list");
      }
    }
    if (!si || !chunks || !dim || *chunks < 1) return Unknown(n, "dynamic chunk");
    const int rank = static_cast<int>(si->size());
    const int d = static_cast<int>(*dim < 0 ? *dim + rank : *dim);
    std::vector<Label> parts;
    if (d != l->dim) {
      parts.assign(*chunks, *l);  // chunks of another axis keep every channel
    } else {
      const int64_t c = static_cast<int64_t>(l->chans.size());
      if (l->block != 1 || c % *chunks != 0) return Unknown(n, "uneven chunks of the channel axis");
      const int64_t per = c / *chunks;
      const std::string reason = absl::StrCat("chunk of ", Where(n));
      for (int64_t i = 1; i < *chunks; ++i) {
        for (int64_t j = 0; j < per; ++j) Union(l->chans[j], l->chans[i * per + j], reason);
      }
      for (int64_t i = 0; i < *chunks; ++i) {
        Label part = *l;
        part.chans.assign(l->chans.begin() + i * per, l->chans.begin() + (i + 1) * per);
        parts.push_back(std::move(part));
      }
    }
    if (kind == "prim::ConstantChunk") {
      if (n->outputs().size() != parts.size()) return Unknown(n, "chunk count");
      for (size_t i = 0; i < parts.size(); ++i) SetLabel(n->output(i), parts[i]);
      return;
    }
    chunks_[n->output()] = std::move(parts);
  }

  void VisitUnpack(Node* n) {
    const std::vector<Label>& parts = chunks_.at(n->input(0));
    if (n->outputs().size() != parts.size()) return Unknown(n, "unpacks a different number of chunks");
    for (size_t i = 0; i < parts.size(); ++i) SetLabel(n->output(i), parts[i]);
  }

  // transpose / permute move the channel axis (ConvNeXt's permute to
  // channels-last and back); the next op decides whether it can follow it.
  void VisitPermute(Node* n, const std::string& kind) {
    LabelPtr l = LabelOf(n->input(0));
    if (!l) return;
    const auto* si = ShapeOf(n->input(0));
    if (!si) return Unknown(n, "shape unknown");
    const int rank = static_cast<int>(si->size());
    auto norm = [&](int64_t x) { return x < 0 ? x + rank : x; };
    std::vector<int64_t> order(rank);
    std::iota(order.begin(), order.end(), 0);
    if (kind == "aten::transpose") {
      auto d0 = ConstantInt(n->input(1)), d1 = ConstantInt(n->input(2));
      if (!d0 || !d1) return Unknown(n, "dynamic transpose");
      std::swap(order[norm(*d0)], order[norm(*d1)]);
    } else {
      auto dims = ConstIntList(n->input(1));
      if (!dims || static_cast<int>(dims->size()) != rank) return Unknown(n, "dynamic permute");
      for (int i = 0; i < rank; ++i) order[i] = norm((*dims)[i]);
    }
    if (l->block != 1) return Unknown(n, "moves a flattened channel axis");
    Label out = *l;
    out.dim = static_cast<int>(std::find(order.begin(), order.end(), l->dim) - order.begin());
    SetLabel(n->output(0), out);
  }

  void VisitReduce(Node* n) {
    LabelPtr l = LabelOf(n->input(0));
    if (!l) return;
    const auto* si = ShapeOf(n->input(0));
    if (n->inputs().size() < 3 || !si) return Unknown(n, "reduces every axis");
    auto dims = ConstIntList(n->input(1));
    auto keep = torch::jit::toIValue(n->input(2));
    if (!dims || !keep || !keep->isBool() || l->block != 1) return Unknown(n, "dynamic reduction");
    const int rank = static_cast<int>(si->size());
    int before = 0;
    for (int64_t d : *dims) {
      const int64_t nd = d < 0 ? d + rank : d;
      if (nd == l->dim) return Unknown(n, "reduces the channel axis");
      if (nd < l->dim) ++before;
    }
    Label out = *l;
    if (!keep->toBool()) out.dim -= before;
    SetLabel(n->output(0), out);
  }

  void Finish() {
    // Taps for channels no activation covered: the producer's output.
    for (const auto& [space, value] : producer_output_) {
      Label l;
      l.dim = LabelOf(value)->dim;
      l.chans = SpaceChannels(space);
      Tap(value, l);
    }
    // Groups: spaces joined by unions.
    const int n = static_cast<int>(out_->spaces.size());
    std::vector<int> space_parent(n);
    std::iota(space_parent.begin(), space_parent.end(), 0);
    std::function<int(int)> find = [&](int x) {
      return space_parent[x] == x ? x : space_parent[x] = find(space_parent[x]);
    };
    std::vector<int> space_of_id(parent_.size());
    for (int s = 0; s < n; ++s) {
      for (int64_t c = 0; c < out_->spaces[s].size; ++c) space_of_id[offset_[s] + c] = s;
    }
    for (int64_t id = 0; id < static_cast<int64_t>(parent_.size()); ++id) {
      int a = find(space_of_id[id]), b = find(space_of_id[Find(id)]);
      if (a != b) space_parent[a] = b;
    }
    std::map<int, int> group_of_root;
    for (int s = 0; s < n; ++s) {
      auto [it, fresh] = group_of_root.emplace(find(s), static_cast<int>(out_->groups.size()));
      if (fresh) out_->groups.emplace_back();
      out_->groups[it->second].spaces.push_back(s);
      out_->spaces[s].group = it->second;
    }
    // Units: channel components, in order of first appearance.
    std::map<int64_t, std::pair<int, size_t>> unit_of_root;  // root id → (group, unit index)
    for (int s = 0; s < n; ++s) {
      ChannelGroup& g = out_->groups[out_->spaces[s].group];
      for (int64_t c = 0; c < out_->spaces[s].size; ++c) {
        const int64_t root = Find(offset_[s] + c);
        auto [it, fresh] = unit_of_root.emplace(root, std::make_pair(out_->spaces[s].group, g.units.size()));
        if (fresh) g.units.emplace_back();
        ChannelUnit& u = g.units[it->second.second];
        u.members.push_back({s, c});
        u.blocked = u.blocked || out_->spaces[s].blocked[c];
      }
    }
  }

  Model& model_;
  DependencyGraph* out_;
  const Value* self_ = nullptr;
  std::unordered_map<std::string, NamedTensor> tensors_;
  std::unordered_map<const Value*, std::vector<int64_t>> shapes_;
  std::unordered_map<const Value*, LabelPtr> labels_;
  std::vector<int64_t> offset_;
  std::vector<int64_t> parent_;
  std::map<std::string, int> space_of_weight_;
  std::map<int, Value*> producer_output_;
  absl::flat_hash_set<int64_t> tapped_;
  std::set<std::string> reported_;
  std::unordered_map<const Value*, std::shared_ptr<std::vector<const Value*>>> lists_;
  std::unordered_map<const Value*, std::vector<Label>> chunks_;  // chunk lists → their parts' labels
};

}  // namespace

int64_t ChannelGroup::prunable_units() const {
  int64_t n = 0;
  for (const ChannelUnit& u : units) n += u.blocked ? 0 : 1;
  return n;
}

int DependencyGraph::SpaceOf(const std::string& module_path) const {
  for (const ChannelSpace& s : spaces) {
    if (s.module_path == module_path) return s.id;
  }
  return -1;
}

absl::StatusOr<DependencyGraph> BuildDependencyGraph(Model& model,
                                                     const std::vector<c10::IValue>& example_inputs) {
  DependencyGraph out;
  Analyzer a(model, &out);
  RETURN_IF_ERROR(a.Run(example_inputs));
  return out;
}

std::string FormatDependencyGroups(const DependencyGraph& graph) {
  std::string out;
  for (size_t g = 0; g < graph.groups.size(); ++g) {
    const ChannelGroup& group = graph.groups[g];
    std::vector<std::string> members;
    std::string reason;
    for (int s : group.spaces) {
      const ChannelSpace& sp = graph.spaces[s];
      members.push_back(absl::StrCat(sp.module_path.empty() ? "(root)" : sp.module_path, " (", sp.op_type,
                                     ", ", sp.size, ")"));
      if (reason.empty() && !sp.blocked_reason.empty()) reason = sp.blocked_reason;
    }
    const int64_t prunable = group.prunable_units();
    absl::StrAppendFormat(&out, "group %d: %d units, %d prunable: %s%s\n", g, group.units.size(), prunable,
                          absl::StrJoin(members, ", "),
                          prunable < static_cast<int64_t>(group.units.size())
                              ? absl::StrCat("\n    kept: ", reason)
                              : "");
  }
  if (!graph.unhandled_ops.empty()) {
    absl::StrAppend(&out, "ops that keep channels:\n");
    for (const std::string& op : graph.unhandled_ops) absl::StrAppend(&out, "  ", op, "\n");
  }
  return out;
}

}  // namespace slimfit
