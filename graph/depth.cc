#include "graph/depth.h"

#include <ATen/Functions.h>
#include <torch/csrc/jit/api/function_impl.h>
#include <torch/csrc/jit/api/module.h>
#include <torch/csrc/jit/ir/ir.h>
#include <torch/csrc/jit/passes/dead_code_elimination.h>

#include <algorithm>
#include <map>
#include <optional>
#include <set>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "common/status_macros.h"
#include "common/torch_status.h"
#include "graph/layer_table.h"

namespace slimfit {
namespace {

using torch::jit::Block;
using torch::jit::Graph;
using torch::jit::Node;
using torch::jit::Value;

// A block found in a graph: the add to drop and what replaces it.
struct Found {
  ResidualBlock block;
  Node* add = nullptr;
  size_t skip_input = 0;      // which of the add's inputs is the shortcut
  std::vector<Node*> branch;  // the branch's nodes, in graph order
};

bool IsOne(const Value* v) {
  auto iv = torch::jit::toIValue(v);
  if (!iv) return false;
  if (iv->isInt()) return iv->toInt() == 1;
  if (iv->isDouble()) return iv->toDouble() == 1.0;
  return false;
}

bool IsTensorAdd(const Node* n) {
  const c10::Symbol k = n->kind();
  return (k == c10::aten::add || k == c10::aten::add_) && n->inputs().size() == 3 && IsTensorValue(n->input(0)) &&
         IsTensorValue(n->input(1)) && IsOne(n->input(2));
}

bool IsInPlace(const Node* n) {
  const std::string name = n->kind().toUnqualString();
  return !name.empty() && name.back() == '_';
}

// "a.b.c", "a.b.d" → "a.b".
std::string CommonPrefix(const std::vector<std::string>& paths) {
  std::vector<std::string> common = absl::StrSplit(paths.front(), '.');
  for (const std::string& p : paths) {
    std::vector<std::string> parts = absl::StrSplit(p, '.');
    size_t i = 0;
    while (i < common.size() && i < parts.size() && common[i] == parts[i]) ++i;
    common.resize(i);
  }
  return absl::StrJoin(common, ".");
}

// Whether `v` is defined inside one of `n`'s sub-blocks.
bool DefinedWithin(const Value* v, const Node* n) {
  for (const Block* b = v->node()->owningBlock(); b != nullptr && b->owningNode() != nullptr;
       b = b->owningNode()->owningBlock()) {
    if (b->owningNode() == n) return true;
  }
  return false;
}

// The node of `block` that holds `n` (itself, or the If / Loop it is
// nested in), or null when `n` is not inside `block`.
Node* HolderIn(Node* n, const Block* block) {
  while (n != nullptr && n->owningBlock() != block) {
    n = n->owningBlock()->owningNode();
  }
  return n;
}

// Every node nested in `n`'s sub-blocks.
void Nested(Node* n, std::vector<Node*>* out) {
  for (Block* b : n->blocks()) CollectNodes(b, out);
}

// What `n` reads: its inputs and, for an If / Loop, the values its
// sub-blocks read from outside it (scripted layers branch on flags such as
// `self.training` or `padding_mode`).
std::vector<Value*> Reads(Node* n) {
  std::vector<Value*> out(n->inputs().begin(), n->inputs().end());
  std::vector<Node*> inner;
  Nested(n, &inner);
  for (Node* m : inner) {
    for (Value* v : m->inputs()) {
      if (!DefinedWithin(v, n)) out.push_back(v);
    }
  }
  return out;
}

// The block whose shortcut is `skip` and branch `branch` at `add`, if the
// branch is computed from `skip` alone and used only by `add`.
std::optional<Found> BranchOf(Node* add, Value* skip, Value* branch, const Value* self) {
  Block* here = add->owningBlock();
  if (branch == skip || branch->uses().size() != 1 || branch->node()->owningBlock() != here) return std::nullopt;
  std::set<Node*> slice;
  std::vector<Node*> stack{branch->node()};
  bool reached = false;
  while (!stack.empty()) {
    Node* n = stack.back();
    stack.pop_back();
    if (slice.count(n)) continue;
    if (n->owningBlock() != here || n->kind() == c10::prim::Param || n->hasSideEffects()) return std::nullopt;
    // The branch must not change its shortcut's tensor in place.
    if (IsInPlace(n) && !n->inputs().empty() && n->input(0) == skip) return std::nullopt;
    slice.insert(n);
    for (Value* v : Reads(n)) {
      if (v == skip) {
        reached = true;
        continue;
      }
      if (v == self) continue;
      Node* p = v->node();
      if (p->kind() == c10::prim::Constant) continue;
      if (p->kind() == c10::prim::GetAttr) {
        if (!AttrPath(v, self)) return std::nullopt;
        continue;
      }
      // A value of an enclosing block (an If around the whole block, as in
      // torchvision's `if self.use_res_connect`) other than the shortcut:
      // the branch reads more than its shortcut.
      Node* holder = HolderIn(p, here);
      if (holder == nullptr) return std::nullopt;
      stack.push_back(holder);
    }
  }
  if (!reached) return std::nullopt;
  // Statements that only consume the branch's values belong to it: scripted
  // layers check their input (batch norm's batch-size check) or update their
  // own state (`num_batches_tracked`) in an If with no outputs.
  auto reads_only_the_branch = [&](Node* h) {
    for (const Value* o : h->outputs()) {
      if (o->hasUses()) return false;
    }
    for (Value* v : Reads(h)) {
      if (v == skip || v == self) continue;
      const Node* p = v->node();
      if (p->kind() == c10::prim::Constant || (p->kind() == c10::prim::GetAttr && AttrPath(v, self))) continue;
      if (!slice.count(HolderIn(v->node(), here))) return false;
    }
    return true;
  };
  for (bool grew = true; grew;) {
    grew = false;
    for (Node* n : std::vector<Node*>(slice.begin(), slice.end())) {
      for (Value* o : n->outputs()) {
        if (o == branch) continue;
        for (const torch::jit::Use& u : o->uses()) {
          Node* h = HolderIn(u.user, here);
          if (h == nullptr || slice.count(h)) continue;
          if (!reads_only_the_branch(h)) return std::nullopt;
          slice.insert(h);
          grew = true;
        }
      }
    }
  }
  // Nothing the branch computes is used outside it (but its result, by the add).
  for (Node* n : slice) {
    for (Value* o : n->outputs()) {
      for (const torch::jit::Use& u : o->uses()) {
        if (o == branch ? u.user != add : !slice.count(HolderIn(u.user, here))) return std::nullopt;
      }
    }
  }
  // Its parameterised layers (the modules of the tensors it reads), in
  // graph order.
  std::vector<std::string> layers;
  std::set<std::string> seen;
  std::vector<Node*> ordered;
  for (Node* n : here->nodes()) {
    if (!slice.count(n)) continue;
    ordered.push_back(n);
    std::vector<Node*> all{n};
    Nested(n, &all);
    for (Node* m : all) {
      for (Value* v : m->inputs()) {
        if (v->node()->kind() != c10::prim::GetAttr || !IsTensorValue(v)) continue;
        std::optional<std::string> path = AttrPath(v, self);
        if (!path) continue;
        const std::string module = ModulePathOf(*path);
        if (seen.insert(module).second) layers.push_back(module);
      }
    }
  }
  if (layers.empty()) return std::nullopt;
  Found f;
  f.block.layers = std::move(layers);
  f.block.path = CommonPrefix(f.block.layers);
  if (f.block.path.empty()) f.block.path = absl::StrCat(f.block.layers.front(), "..", f.block.layers.back());
  f.add = add;
  f.skip_input = add->input(0) == skip ? 0 : 1;
  f.branch = std::move(ordered);
  return f;
}

// A branch condition's value for this module: 1 true, 0 false, -1 unknown
// (data-dependent, or the train/eval flag, which changes).
int ConditionValue(const Value* cond, const torch::jit::Module& module, const Value* self) {
  if (auto c = torch::jit::toIValue(cond); c && c->isBool()) return c->toBool() ? 1 : 0;
  if (cond->node()->kind() != c10::prim::GetAttr) return -1;
  std::optional<std::string> path = AttrPath(cond, self);
  if (!path || cond->node()->s(c10::attr::name) == "training") return -1;
  const std::optional<c10::IValue> v = AttrAt(module, *path);
  return v && v->isBool() ? (v->toBool() ? 1 : 0) : -1;
}

// Whether `n` runs for this module: every If around it takes its side on a
// flag of the module (torchvision's `if self.use_res_connect`); an add
// under a loop or a data-dependent branch is not offered.
bool Runs(const Node* n, const torch::jit::Module& module, const Value* self) {
  for (const Block* b = n->owningBlock(); b->owningNode() != nullptr; b = b->owningNode()->owningBlock()) {
    const Node* owner = b->owningNode();
    if (owner->kind() != c10::prim::If) return false;
    const int taken = ConditionValue(owner->input(0), module, self);
    if (taken < 0 || (owner->blocks()[0] == b) != (taken == 1)) return false;
  }
  return true;
}

void FindIn(Block* block, const torch::jit::Module& module, const Value* self, std::vector<Found>* out) {
  for (Node* n : block->nodes()) {
    for (Block* sub : n->blocks()) FindIn(sub, module, self, out);
    if (!IsTensorAdd(n) || !Runs(n, module, self)) continue;
    // Either operand may be the shortcut of `a + b`; an in-place add
    // (`out += identity`, torchvision's blocks) must write into the
    // branch's result, never into the shortcut's tensor.
    std::optional<Found> f;
    if (n->kind() == c10::aten::add_) {
      f = BranchOf(n, n->input(1), n->input(0), self);
    } else {
      f = BranchOf(n, n->input(0), n->input(1), self);
      if (!f) f = BranchOf(n, n->input(1), n->input(0), self);
    }
    if (f) out->push_back(*std::move(f));
  }
}

// Every block of `graph` (inlined), named uniquely in graph order.
std::vector<Found> FindAll(Graph& graph, const torch::jit::Module& module) {
  std::vector<Found> out;
  FindIn(graph.block(), module, graph.inputs().at(0), &out);
  std::map<std::string, int> count;
  for (Found& f : out) {
    if (++count[f.block.path] > 1) absl::StrAppend(&f.block.path, "#", count[f.block.path]);
  }
  return out;
}

}  // namespace

absl::StatusOr<std::vector<ResidualBlock>> FindResidualBlocks(const Model& model) {
  return TorchCallOr("finding residual blocks", [&]() -> absl::StatusOr<std::vector<ResidualBlock>> {
    std::shared_ptr<Graph> g = model.module().get_method("forward").graph()->copy();
    InlineAllLevels(*g);
    std::vector<ResidualBlock> out;
    for (Found& f : FindAll(*g, model.module())) out.push_back(std::move(f.block));
    return out;
  });
}

absl::StatusOr<Model> RemoveBlocks(const Model& model, const std::vector<std::string>& paths) {
  // Through bytes: a loaded copy has types and methods of its own, so
  // editing its forward cannot reach the model's (a deep copy shares them).
  ASSIGN_OR_RETURN(std::string bytes, model.ToBytes(), "removing residual blocks");
  ASSIGN_OR_RETURN(Model copy, Model::FromBytes(bytes), "removing residual blocks");
  RETURN_IF_ERROR(TorchCall("removing residual blocks", [&]() -> absl::Status {
    torch::jit::GraphFunction& forward = torch::jit::toGraphFunction(copy.module().get_method("forward").function());
    std::shared_ptr<Graph> g = forward.graph();
    InlineAllLevels(*g);
    std::vector<Found> found = FindAll(*g, copy.module());
    std::vector<const Found*> cut;
    std::set<std::string> taken;  // a path listed twice is removed once
    for (const std::string& path : paths) {
      if (!taken.insert(path).second) continue;
      auto it = std::find_if(found.begin(), found.end(), [&](const Found& f) { return f.block.path == path; });
      if (it == found.end()) {
        std::vector<std::string> names;
        for (const Found& f : found) names.push_back(f.block.path);
        return absl::NotFoundError(absl::StrCat("residual block \"", path,
                                                "\": not a removable block of this model; the removable ones are: ",
                                                names.empty() ? "none" : absl::StrJoin(names, ", ")));
      }
      cut.push_back(&*it);
    }
    // The shortcut is read when its add goes: one block's shortcut may be
    // the output of another block removed just before.
    for (const Found* f : cut) {
      f->add->output()->replaceAllUsesWith(f->add->input(f->skip_input));
      f->add->destroy();
    }
    // The branches go explicitly: dead-code elimination keeps their
    // statements that update state (batch norm's counter) or may raise.
    for (const Found* f : cut) {
      for (auto it = f->branch.rbegin(); it != f->branch.rend(); ++it) (*it)->destroy();
    }
    torch::jit::EliminateDeadCode(g);
    // The removed layers' tensors that nothing reads any more become empty:
    // the model's parameter count and file lose them (a layer another part
    // of the graph still reads, a shared one, keeps its tensors).
    std::set<std::string> read;
    std::vector<Node*> all;
    CollectNodes(g->block(), &all);
    for (Node* n : all) {
      for (Value* v : n->inputs()) {
        if (v->node()->kind() != c10::prim::GetAttr) continue;
        if (std::optional<std::string> path = AttrPath(v, g->inputs().at(0))) read.insert(*path);
      }
    }
    for (const Found* f : cut) {
      for (const std::string& layer : f->block.layers) {
        const std::optional<c10::IValue> owner = AttrAt(copy.module(), layer);
        if (!owner || !owner->isObject()) continue;
        torch::jit::Module sub(owner->toObject());
        auto emptied = [&](const at::Tensor& t) { return at::empty({0}, t.options()); };
        for (const auto& p : sub.named_parameters(/*recurse=*/false)) {
          if (read.count(absl::StrCat(layer, ".", p.name))) continue;
          at::Tensor e = emptied(p.value);
          e.set_requires_grad(p.value.requires_grad());
          sub.register_parameter(p.name, e, /*is_buffer=*/false);
        }
        for (const auto& b : sub.named_buffers(/*recurse=*/false)) {
          if (!read.count(absl::StrCat(layer, ".", b.name))) sub.register_buffer(b.name, emptied(b.value));
        }
      }
    }
    return absl::OkStatus();
  }));
  return copy;
}

}  // namespace slimfit
