// The analysis behind BuildDependencyGraph: op tables, bookkeeping, the
// op-kind dispatch, control flow, and the groups and units at the end
// (graph/dependency_analyzer.h).
#include "graph/dependency_analyzer.h"

#include <torch/csrc/jit/api/module.h>

#include <functional>
#include <numeric>

#include "absl/strings/str_cat.h"
#include "common/status_macros.h"
#include "common/torch_status.h"
#include "graph/capture.h"

namespace slimfit::dependency_internal {

// Op tables: many names a line.
// clang-format off
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

const std::set<std::string>& ActivationOps() {
  static const auto* ops = new std::set<std::string>{
      "aten::relu",  "aten::relu_",  "aten::relu6",     "aten::relu6_",     "aten::hardtanh",
      "aten::hardtanh_", "aten::leaky_relu", "aten::leaky_relu_", "aten::elu", "aten::elu_",
      "aten::gelu",  "aten::silu",   "aten::silu_",     "aten::hardswish",  "aten::hardswish_",
      "aten::mish",  "aten::tanh",   "aten::selu",      "aten::celu"};
  return *ops;
}

const std::set<std::string>& NonZeroUnaryOps() {
  static const auto* ops = new std::set<std::string>{
      "aten::sigmoid", "aten::sigmoid_", "aten::hardsigmoid", "aten::hardsigmoid_", "aten::exp",
      "aten::cos", "aten::softplus", "aten::log_sigmoid"};
  return *ops;
}

const std::set<std::string>& MetadataOps() {
  static const auto* ops = new std::set<std::string>{
      "aten::size", "aten::dim", "aten::len", "prim::shape", "prim::device", "prim::dtype",
      "prim::layout", "aten::__is__", "aten::__isnot__", "aten::is_floating_point", "prim::is_cuda",
      "aten::numel", "prim::NumToTensor", "aten::Int", "prim::unchecked_cast", "aten::__not__",
      "prim::requires_grad", "prim::grad"};
  return *ops;
}
// clang-format on

bool IsNone(const Value* v) { return v->type()->kind() == c10::TypeKind::NoneType; }

std::optional<int64_t> ShapeEntry(const Value* shape, size_t i) {
  if (shape->node()->kind() == c10::prim::ListConstruct) {
    if (i >= shape->node()->inputs().size()) return std::nullopt;
    return ConstantInt(shape->node()->input(i));
  }
  auto c = ConstantIntList(shape);
  if (c && i < c->size()) return (*c)[i];
  return std::nullopt;
}

void ChannelSets::AddSpace(int64_t size) {
  offset_.push_back(static_cast<int64_t>(parent_.size()));
  for (int64_t c = 0; c < size; ++c) parent_.push_back(static_cast<int64_t>(parent_.size()));
}

int64_t ChannelSets::Find(int64_t x) {
  while (parent_[x] != x) x = parent_[x] = parent_[parent_[x]];
  return x;
}

void ChannelSets::Join(int64_t x, int64_t y) {
  x = Find(x);
  y = Find(y);
  if (x != y) parent_[x] = y;
}

const std::unordered_map<std::string, Analyzer::Handler>& Analyzer::Handlers() {
  static const auto* handlers = [] {
    auto* h = new std::unordered_map<std::string, Handler>{
        {"aten::linear", &Analyzer::VisitLinear},
        {"aten::batch_norm", &Analyzer::VisitBatchNorm},
        {"aten::instance_norm", &Analyzer::VisitBatchNorm},  // same first five inputs, per channel too
        {"aten::prelu", &Analyzer::VisitPReLU},
        {"aten::slice", &Analyzer::VisitIndex},
        {"aten::select", &Analyzer::VisitIndex},
        {"aten::narrow", &Analyzer::VisitIndex},
        {"aten::squeeze", &Analyzer::VisitSqueeze},
        {"aten::squeeze_", &Analyzer::VisitSqueeze},
        {"aten::unsqueeze", &Analyzer::VisitSqueeze},
        {"aten::unsqueeze_", &Analyzer::VisitSqueeze},
        {"aten::cat", &Analyzer::VisitCat},
        {"aten::concat", &Analyzer::VisitCat},
        {"prim::ListConstruct", &Analyzer::VisitList},
        {"aten::append", &Analyzer::VisitAppend},
        {"aten::flatten", &Analyzer::VisitFlatten},
        {"aten::view", &Analyzer::VisitView},
        {"aten::reshape", &Analyzer::VisitView},
        {"aten::chunk", &Analyzer::VisitChunk},
        {"aten::unsafe_chunk", &Analyzer::VisitChunk},
        {"prim::ConstantChunk", &Analyzer::VisitChunk},
        {"prim::ListUnpack", &Analyzer::VisitUnpack},
        {"aten::transpose", &Analyzer::VisitPermute},
        {"aten::permute", &Analyzer::VisitPermute},
        {"aten::mean", &Analyzer::VisitReduce},
        {"aten::sum", &Analyzer::VisitReduce},
        {"aten::amax", &Analyzer::VisitReduce},
        {"prim::TupleConstruct", &Analyzer::VisitContainer},
        {"prim::DictConstruct", &Analyzer::VisitContainer},
    };
    for (const char* k :
         {"aten::add", "aten::add_", "aten::sub", "aten::sub_", "aten::mul", "aten::mul_", "aten::div", "aten::div_"}) {
      h->emplace(k, &Analyzer::VisitBinary);
    }
    for (const std::string& k : ZeroPreservingOps()) h->emplace(k, &Analyzer::VisitUnary);
    for (const std::string& k : NonZeroUnaryOps()) h->emplace(k, &Analyzer::VisitUnary);
    return h;
  }();
  return *handlers;
}

void Analyzer::Visit(Node* n) {
  const std::string kind = n->kind().toQualString();
  if (n->kind() == c10::prim::GetAttr || n->kind() == c10::prim::Constant) return;
  if (!n->blocks().empty()) return VisitControlFlow(n);
  if (MetadataOps().count(kind)) return;
  if (ReadsSplitLabel(n)) return VisitSplit(n, kind);
  if (auto conv = AsConvolution(n)) return VisitConv(n, *conv);
  auto it = Handlers().find(kind);
  if (it == Handlers().end()) return Unknown(n, "not understood");
  (this->*(it->second))(n, kind);
}

void Analyzer::VisitContainer(Node* n, const std::string& /*kind*/) {
  for (const Value* in : n->inputs()) BlockValue(in, "reaches the model output or a container");
}

const std::vector<int64_t>* Analyzer::ShapeOf(const Value* v) const {
  auto it = shapes_.find(v);
  return it == shapes_.end() ? nullptr : &it->second;
}

absl::Status Analyzer::Run(const std::vector<c10::IValue>& inputs) {
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

int Analyzer::NewSpace(const std::string& module_path, const std::string& op_type, const std::string& weight,
                       int weight_dim, int64_t size) {
  ChannelSpace s;
  s.id = static_cast<int>(out_->spaces.size());
  s.module_path = module_path;
  s.op_type = op_type;
  s.weight = weight;
  s.weight_dim = weight_dim;
  s.size = size;
  s.blocked.assign(size, false);
  sets_.AddSpace(size);
  out_->spaces.push_back(std::move(s));
  return out_->spaces.back().id;
}

void Analyzer::BlockChannel(const ChannelRef& r, const std::string& reason) {
  if (r.space < 0) return;
  ChannelSpace& s = out_->spaces[r.space];
  s.blocked[r.channel] = true;
  if (s.blocked_reason.empty()) s.blocked_reason = reason;
}

void Analyzer::Union(const ChannelRef& a, const ChannelRef& b, const std::string& reason) {
  if (a.space < 0 || b.space < 0) {
    // Coupled with a channel nobody can remove.
    BlockChannel(a, reason);
    BlockChannel(b, reason);
    return;
  }
  sets_.Join(sets_.Id(a), sets_.Id(b));
}

void Analyzer::CoupleBlocks(const std::vector<ChannelRef>& chans, int64_t blocks, const std::string& reason) {
  const int64_t per = static_cast<int64_t>(chans.size()) / blocks;
  for (int64_t b = 1; b < blocks; ++b) {
    for (int64_t j = 0; j < per; ++j) Union(chans[j], chans[b * per + j], reason);
  }
}

void Analyzer::Block(const LabelPtr& l, const std::string& reason) {
  if (!l) return;
  for (const ChannelRef& r : l->chans) BlockChannel(r, reason);
}

void Analyzer::BlockValue(const Value* v, const std::string& reason) { Block(LabelOf(v), reason); }

LabelPtr Analyzer::LabelOf(const Value* v) const {
  auto it = labels_.find(v);
  return it == labels_.end() ? nullptr : it->second;
}

std::optional<std::string> Analyzer::TensorPath(const Value* v) const {
  auto path = AttrPath(v, self_);
  if (path && tensors_.count(*path)) return path;
  return std::nullopt;
}

void Analyzer::AddSlot(const std::string& tensor, SlotRole role, int dim, std::vector<ChannelRef> chans,
                       int64_t block) {
  TensorSlot s;
  s.tensor = tensor;
  s.is_parameter = tensors_.at(tensor).is_parameter;
  s.role = role;
  s.dim = dim;
  s.channels = std::move(chans);
  s.block = block;
  out_->slots.push_back(std::move(s));
}

std::vector<ChannelRef> Analyzer::SpaceChannels(int space) const {
  std::vector<ChannelRef> c(out_->spaces[space].size);
  for (int64_t i = 0; i < static_cast<int64_t>(c.size()); ++i) c[i] = {space, i};
  return c;
}

std::string Analyzer::Where(const Node* n) const {
  // The module path of the first parameter the op reads, else its kind.
  for (const Value* in : n->inputs()) {
    auto p = TensorPath(in);
    if (p) return ModulePathOf(*p);
  }
  return "";
}

void Analyzer::Unknown(Node* n, const std::string& why) {
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

void Analyzer::SetLabel(const Value* v, Label l) { labels_[v] = std::make_shared<const Label>(std::move(l)); }

void Analyzer::Tap(Value* v, const Label& l) {
  DependencyGraph::Tap t;
  t.value = v;
  t.dim = l.dim;
  bool any = false;
  for (const ChannelRef& r : l.chans) {
    if (r.space >= 0 && tapped_.insert(sets_.Id(r)).second) {
      t.channels.push_back(r);
      any = true;
    } else {
      t.channels.push_back({-1, 0});
    }
  }
  if (any && l.block == 1) out_->taps.push_back(std::move(t));
}

void Analyzer::VisitControlFlow(Node* n) {
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

void Analyzer::Finish() {
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
  std::vector<int> space_of_id(sets_.size());
  for (int s = 0; s < n; ++s) {
    for (int64_t c = 0; c < out_->spaces[s].size; ++c) space_of_id[sets_.offset(s) + c] = s;
  }
  for (int64_t id = 0; id < sets_.size(); ++id) {
    int a = find(space_of_id[id]), b = find(space_of_id[sets_.Find(id)]);
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
      const int64_t root = sets_.Find(sets_.offset(s) + c);
      auto [it, fresh] = unit_of_root.emplace(root, std::make_pair(out_->spaces[s].group, g.units.size()));
      if (fresh) g.units.emplace_back();
      ChannelUnit& u = g.units[it->second.second];
      u.members.push_back({s, c});
      u.blocked = u.blocked || out_->spaces[s].blocked[c];
    }
  }
}

}  // namespace slimfit::dependency_internal
