#include "trainer/trainable.h"

#include <torch/csrc/jit/api/module.h>
#include <torch/csrc/jit/ir/ir.h>

#include <set>

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

}  // namespace

absl::StatusOr<int> MakeTrainingModeFollowModule(Model& model) {
  return TorchCallOr("making the model's training mode effective", [&]() -> absl::StatusOr<int> {
    ASSIGN_OR_RETURN(Model copy, model.Reloaded());
    torch::jit::Module fresh = copy.module();
    int count = 0;
    std::set<const torch::jit::Graph*> done;  // classes shared by several submodules
    for (const torch::jit::Module& sub : fresh.modules()) {
      const auto type = sub.type();
      if (!type->hasAttribute("training")) continue;
      for (const torch::jit::Method& method : sub.get_methods()) {
        std::shared_ptr<torch::jit::Graph> g = method.graph();
        if (!done.insert(g.get()).second) continue;
        count += Rewire(*g, g->block(), g->inputs().at(0));
      }
    }
    if (count > 0) model = std::move(copy);
    return count;
  });
}

}  // namespace slimfit
