#include "trainer/trainable.h"

#include <torch/csrc/jit/api/function_impl.h>
#include <torch/csrc/jit/api/module.h>
#include <torch/csrc/jit/ir/constants.h>
#include <torch/csrc/jit/ir/ir.h>

#include <functional>
#include <map>
#include <set>
#include <stdexcept>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "common/status_macros.h"
#include "common/torch_status.h"

namespace slimfit {
namespace {

using torch::jit::Node;
using torch::jit::Value;

// Which input of `n` is its training flag, or -1.
int TrainingInput(const Node* n) {
  const std::string kind = n->kind().toQualString();
  if (kind == "aten::batch_norm") return 5;
  // instance_norm's input 5 is use_input_stats: eager passes
  // `training or not track_running_stats`, so it follows `training` only
  // when there are running statistics (input 3); without them it stays true.
  if (kind == "aten::instance_norm") {
    return n->inputs().size() > 3 && n->input(3)->type()->kind() != c10::TypeKind::NoneType ? 5 : -1;
  }
  if (kind == "aten::dropout" || kind == "aten::dropout_" || kind == "aten::feature_dropout" ||
      kind == "aten::feature_dropout_" || kind == "aten::alpha_dropout" ||
      kind == "aten::alpha_dropout_" || kind == "aten::feature_alpha_dropout") {
    return 2;
  }
  return -1;
}

int Rewire(torch::jit::Graph& graph, torch::jit::Block* block, Value* self) {
  int count = 0;
  for (Node* n : block->nodes()) {
    for (torch::jit::Block* b : n->blocks()) count += Rewire(graph, b, self);
    const int i = TrainingInput(n);
    if (i < 0 || static_cast<size_t>(i) >= n->inputs().size()) continue;
    if (n->input(i)->node()->kind() != c10::prim::Constant) continue;
    torch::jit::WithInsertPoint guard(n);
    Value* flag = graph.insertGetAttr(self, "training");
    n->replaceInput(i, flag);
    ++count;
  }
  return count;
}

// Producers of a fresh tensor whose backward reads their inputs, never
// their output, so the output may be overwritten after them (a max pool's
// backward reads its input and the indices of the maxima).
bool FreshOutputKeptOutOfBackward(const Node* n) {
  static const std::set<std::string> kKinds = {"aten::batch_norm", "aten::_convolution", "aten::conv1d",
                                               "aten::conv2d",     "aten::conv3d",       "aten::linear",
                                               "aten::addmm",      "aten::add",          "aten::sub",
                                               "aten::max_pool1d", "aten::max_pool2d",   "aten::max_pool3d"};
  if (!kKinds.count(n->kind().toQualString())) return false;
  // add / sub: the Tensor-Tensor overloads only (a Scalar other, or the
  // in-place / out= forms, are other schemas).
  if (n->kind() == c10::aten::add || n->kind() == c10::aten::sub) {
    return n->inputs().size() == 3 && n->input(0)->type()->isSubtypeOf(*c10::TensorType::get()) &&
           n->input(1)->type()->isSubtypeOf(*c10::TensorType::get());
  }
  return true;
}

// The graph a prim::CallMethod or prim::CallFunction node runs, or null.
// Its inputs are the node's from `*first_argument` on (a method's self is
// input 0 of both; a function call's input 0 is the function).
std::shared_ptr<torch::jit::Graph> CalleeGraph(const Node* n, size_t* first_argument) {
  torch::jit::Function* fn = nullptr;
  *first_argument = 0;
  if (n->kind() == c10::prim::CallMethod) {
    const auto cls = n->input(0)->type()->cast<c10::ClassType>();
    if (cls != nullptr) fn = cls->findMethod(n->s(c10::attr::name));
  } else if (n->kind() == c10::prim::CallFunction) {
    const auto type = n->input(0)->type()->cast<c10::FunctionType>();
    if (type != nullptr) fn = type->function();
    *first_argument = 1;
  }
  if (fn == nullptr || !fn->isGraphFunction()) return nullptr;
  return torch::jit::toGraphFunction(*fn).graph();
}

// Is `v` such a fresh output: made by one of those producers in the graph
// that returns it, or returned by a submodule's method (a module's
// forward calling its batch norm's) or a function (scripted F.batch_norm)
// whose own return is one, and read by nothing else there?
bool FreshValue(const Value* v, int depth = 0) {
  const Node* n = v->node();
  if (FreshOutputKeptOutOfBackward(n)) return true;
  if (depth > 8) return false;
  size_t first_argument = 0;
  const std::shared_ptr<torch::jit::Graph> callee = CalleeGraph(n, &first_argument);
  if (callee == nullptr || callee->outputs().size() != n->outputs().size()) return false;
  size_t index = 0;
  while (index < n->outputs().size() && n->output(index) != v) ++index;
  const Value* returned = callee->outputs()[index];
  return returned->uses().size() == 1 && returned->node()->owningBlock() == callee->block() &&
         FreshValue(returned, depth + 1);
}

// A relu node: aten::relu / aten::relu_, a call of PyTorch's F.relu as
// scripting leaves it (prim::CallFunction(relu, x, inplace)), or a call of an
// nn.ReLU() module (prim::CallMethod[forward] on a module of PyTorch's ReLU
// class whose forward returns one of the former of its argument). `x` is
// null for any other node; `in_place` says whether it overwrites x.
struct Relu {
  Value* x = nullptr;
  bool in_place = false;
};

Relu FunctionalRelu(const Node* n) {
  if (n->kind() != c10::prim::CallFunction || n->inputs().size() != 3) return {};
  const auto fn = n->input(0)->type()->cast<c10::FunctionType>();
  if (fn == nullptr || fn->function()->qualname().qualifiedName() != "__torch__.torch.nn.functional.relu") {
    return {};
  }
  const std::optional<c10::IValue> inplace = torch::jit::toIValue(n->input(2));
  if (!inplace.has_value() || !inplace->isBool()) return {};
  return {n->input(1), inplace->toBool()};
}

Relu AtenRelu(const Node* n) {
  if (n->inputs().size() != 1) return {};
  if (n->kind() == c10::aten::relu) return {n->input(0), false};
  if (n->kind() == c10::aten::relu_) return {n->input(0), true};
  return {};
}

Relu ReluModuleCall(const Node* n) {
  if (n->kind() != c10::prim::CallMethod || n->s(c10::attr::name) != "forward" || n->inputs().size() != 2) {
    return {};
  }
  const auto cls = n->input(0)->type()->cast<c10::ClassType>();
  if (cls == nullptr || !cls->name().has_value()) return {};
  const std::string name = cls->name()->qualifiedName();
  if (!absl::StartsWith(name, "__torch__.torch.nn.modules.activation.") || !absl::EndsWith(name, ".ReLU")) {
    return {};
  }
  torch::jit::Function* fn = cls->findMethod("forward");
  if (fn == nullptr) return {};
  const std::shared_ptr<torch::jit::Graph> g = torch::jit::toGraphFunction(*fn).graph();
  if (g->inputs().size() != 2 || g->outputs().size() != 1) return {};
  const Node* r = g->outputs()[0]->node();
  Relu inner = AtenRelu(r);
  if (inner.x == nullptr) inner = FunctionalRelu(r);
  if (inner.x != g->inputs()[1]) return {};
  return {n->input(1), inner.in_place};
}

Relu AsRelu(const Node* n) {
  for (Relu (*match)(const Node*) : {&AtenRelu, &FunctionalRelu, &ReluModuleCall}) {
    const Relu r = match(n);
    if (r.x != nullptr) return r;
  }
  return {};
}

// With `apply` false, only counts.
int ReluInPlace(torch::jit::Block* block, bool apply = true) {
  int count = 0;
  std::vector<Node*> relus;  // rewritten after the walk: destroying a node ends its iterator
  for (Node* n : block->nodes()) {
    for (torch::jit::Block* b : n->blocks()) count += ReluInPlace(b, apply);
    const Relu r = AsRelu(n);
    if (r.x == nullptr || r.in_place || n->outputs().size() != 1) continue;
    if (r.x->uses().size() != 1 || r.x->node()->owningBlock() != block) continue;
    if (FreshValue(r.x)) relus.push_back(n);
  }
  for (Node* n : apply ? relus : std::vector<Node*>{}) {
    Node* in_place = block->owningGraph()->create(c10::aten::relu_, {AsRelu(n).x});
    in_place->insertBefore(n);
    in_place->output()->setType(n->output()->type());
    n->output()->replaceAllUsesWith(in_place->output());
    n->destroy();
  }
  return count + static_cast<int>(relus.size());
}

// Which input of `n` it max-pools and returns, or -1: aten::max_pool1d /
// 2d / 3d, or a call of a method (an nn.MaxPool2d module's forward) or a
// function (scripted F.max_pool2d) whose graph returns such a pool of one
// of its arguments, read by nothing else there.
int PooledInput(const Node* n, int depth = 0) {
  if (n->kind() == c10::aten::max_pool1d || n->kind() == c10::aten::max_pool2d || n->kind() == c10::aten::max_pool3d) {
    return n->outputs().size() == 1 ? 0 : -1;
  }
  if (depth > 8 || n->outputs().size() != 1) return -1;
  size_t first_argument = 0;
  const std::shared_ptr<torch::jit::Graph> callee = CalleeGraph(n, &first_argument);
  if (callee == nullptr) return -1;
  if (callee->outputs().size() != 1) return -1;
  const Node* pool = callee->outputs()[0]->node();
  if (pool->owningBlock() != callee->block()) return -1;
  const int inner = PooledInput(pool, depth + 1);
  if (inner < 0) return -1;
  const Value* pooled = pool->input(inner);
  if (pooled->uses().size() != 1) return -1;
  for (size_t i = 0; i < callee->inputs().size(); ++i) {
    if (callee->inputs()[i] == pooled && first_argument + i < n->inputs().size()) {
      return static_cast<int>(first_argument + i);
    }
  }
  return -1;
}

// relu then max pool -> max pool then relu, where the relu's only reader is
// the pool (and, for an in-place relu, the relu is its input's only reader).
// With `apply` false, only counts.
int PoolBeforeRelu(torch::jit::Block* block, bool apply = true) {
  int count = 0;
  std::vector<Node*> pools;  // rewritten after the walk
  for (Node* pool : block->nodes()) {
    for (torch::jit::Block* b : pool->blocks()) count += PoolBeforeRelu(b, apply);
    const int k = PooledInput(pool);
    if (k < 0) continue;
    const Value* relu_out = pool->input(k);
    const Node* relu_node = relu_out->node();
    const Relu r = AsRelu(relu_node);
    if (r.x == nullptr || relu_node->owningBlock() != block || relu_out->uses().size() != 1) continue;
    if (relu_node->outputs().size() != 1 || (r.in_place && r.x->uses().size() != 1)) continue;
    pools.push_back(pool);
  }
  for (Node* pool : apply ? pools : std::vector<Node*>{}) {
    const int k = PooledInput(pool);
    Node* old_relu = pool->input(k)->node();
    pool->replaceInput(k, AsRelu(old_relu).x);
    Value* pooled = pool->output();
    Node* relu = block->owningGraph()->create(c10::aten::relu, {pooled});
    relu->insertAfter(pool);
    relu->output()->setType(pooled->type());
    pooled->replaceAllUsesWith(relu->output());
    relu->replaceInput(0, pooled);
    old_relu->destroy();
  }
  return count + static_cast<int>(pools.size());
}

using GraphRewrite = std::function<int(const torch::jit::Module&, torch::jit::Graph&)>;

// `rewrite` over every method graph of `fresh` (a graph shared by several
// submodules once); how many changes it made. An edit takes effect only on
// a model whose methods have not run yet (LibTorch caches executors).
int RewriteGraphs(const Model& fresh, const GraphRewrite& rewrite) {
  int count = 0;
  std::set<const torch::jit::Graph*> done;
  for (const torch::jit::Module& sub : fresh.module().modules()) {
    for (const torch::jit::Method& method : sub.get_methods()) {
      std::shared_ptr<torch::jit::Graph> g = method.graph();
      if (!done.insert(g.get()).second) continue;
      count += rewrite(sub, *g);
    }
  }
  return count;
}

// `rewrite` on a fresh copy of `model`, which replaces `model` when it
// changed anything.
absl::StatusOr<int> RewriteCopy(Model& model, const GraphRewrite& rewrite) {
  ASSIGN_OR_RETURN(Model copy, model.Reloaded());
  const int count = RewriteGraphs(copy, rewrite);
  if (count > 0) model = std::move(copy);
  return count;
}

int ReluInPlaceGraph(const torch::jit::Module&, torch::jit::Graph& g) { return ReluInPlace(g.block()); }
int PoolBeforeReluGraph(const torch::jit::Module&, torch::jit::Graph& g) { return PoolBeforeRelu(g.block()); }
// Whether the scope's rewrites would change anything (without changing it).
int CountTrainingRelus(const torch::jit::Module&, torch::jit::Graph& g) {
  return PoolBeforeRelu(g.block(), false) + ReluInPlace(g.block(), false);
}

}  // namespace

absl::StatusOr<int> MakeReluInPlace(Model& model) {
  return TorchCallOr("making relus in place",
                     [&]() -> absl::StatusOr<int> { return RewriteCopy(model, &ReluInPlaceGraph); });
}

absl::StatusOr<int> MakePoolBeforeRelu(Model& model) {
  return TorchCallOr("moving relus after max pools",
                     [&]() -> absl::StatusOr<int> { return RewriteCopy(model, &PoolBeforeReluGraph); });
}

absl::StatusOr<std::unique_ptr<TrainingRelusScope>> TrainingRelusScope::Enter(Model& model) {
  return TorchCallOr("making relus in place", [&]() -> absl::StatusOr<std::unique_ptr<TrainingRelusScope>> {
    // Counted on the model itself first (reading its graphs changes nothing),
    // so a model with nothing to rewrite is not copied.
    if (RewriteGraphs(model, &CountTrainingRelus) == 0) {
      return std::unique_ptr<TrainingRelusScope>(new TrainingRelusScope(model, std::nullopt, 0, 0));
    }
    ASSIGN_OR_RETURN(Model copy, model.Reloaded());
    // Pools first (in every graph), so the relus they move run in place too.
    const int moved = RewriteGraphs(copy, &PoolBeforeReluGraph);
    const int in_place = RewriteGraphs(copy, &ReluInPlaceGraph);
    Model original = std::move(model);
    model = std::move(copy);
    return std::unique_ptr<TrainingRelusScope>(new TrainingRelusScope(model, std::move(original), moved, in_place));
  });
}

TrainingRelusScope::~TrainingRelusScope() {
  if (!original_.has_value()) return;  // `model_` was never replaced
  absl::Status copied = TorchCall("", [&] {
    at::NoGradGuard no_grad;
    std::map<std::string, at::Tensor> into;
    for (auto& [n, t] : original_->NamedParameters()) into[n] = t;
    for (auto& [n, t] : original_->NamedBuffers()) into[n] = t;
    std::vector<std::pair<at::Tensor, at::Tensor>> pairs;
    auto add = [&](const std::vector<std::pair<std::string, at::Tensor>>& from) {
      for (const auto& [n, t] : from) {
        auto it = into.find(n);
        if (it == into.end() || !it->second.sizes().equals(t.sizes())) {
          throw std::runtime_error("a parameter or buffer changed name or shape: " + n);
        }
        pairs.emplace_back(it->second, t);
      }
    };
    add(model_.NamedParameters());
    add(model_.NamedBuffers());
    for (auto& [to, from] : pairs) to.copy_(from);
  });
  if (!copied.ok()) return;  // the in-place model stays: it computes the same
  original_->Train(model_.is_training());
  model_ = std::move(*original_);
}

absl::StatusOr<int> MakeTrainingModeFollowModule(Model& model) {
  return TorchCallOr("making the model's training mode effective", [&]() -> absl::StatusOr<int> {
    return RewriteCopy(model, [](const torch::jit::Module& sub, torch::jit::Graph& g) {
      return sub.type()->hasAttribute("training") ? Rewire(g, g.block(), g.inputs().at(0)) : 0;
    });
  });
}

}  // namespace slimfit
