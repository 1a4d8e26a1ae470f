// Dependency analysis of element-wise ops (unary, PReLU, add / sub / mul /
// div) and reductions (graph/dependency_analyzer.h).
#include <algorithm>
#include <numeric>

#include "absl/strings/str_cat.h"
#include "graph/dependency_analyzer.h"

namespace slimfit::dependency_internal {

void Analyzer::VisitUnary(Node* n, const std::string& kind) {
  bool nonzero_at_zero = NonZeroUnaryOps().count(kind) > 0;
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

void Analyzer::VisitBinary(Node* n, const std::string& kind) {
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
    if (aligned(a, la) != aligned(b, lb) || la->chans.size() != lb->chans.size() || la->block != lb->block) {
      return Unknown(n, "operands' channel axes differ");
    }
    const std::string reason = absl::StrCat(kind, " couples ", Where(a->node()));
    for (size_t i = 0; i < la->chans.size(); ++i) Union(la->chans[i], lb->chans[i], reason);
    if (is_div) Block(lb, "divides by a prunable channel");
    Label out = *la;
    out.dim = aligned(a, la);
    out.nonzero = is_add ? (la->nonzero || lb->nonzero) : (is_div ? la->nonzero : (la->nonzero && lb->nonzero));
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

void Analyzer::VisitReduce(Node* n, const std::string& /*kind*/) {
  LabelPtr l = LabelOf(n->input(0));
  if (!l) return;
  const auto* si = ShapeOf(n->input(0));
  if (n->inputs().size() < 3 || !si) return Unknown(n, "reduces every axis");
  auto dims = ConstantIntList(n->input(1));
  auto keep = torch::jit::toIValue(n->input(2));
  if (!dims || !keep || !keep->isBool() || l->block != 1) return Unknown(n, "dynamic reduction");
  const int rank = static_cast<int>(si->size());
  int before = 0;
  for (int64_t d : *dims) {
    const int64_t nd = Axis(d, rank);
    if (nd == l->dim) return Unknown(n, "reduces the channel axis");
    if (nd < l->dim) ++before;
  }
  Label out = *l;
  if (!keep->toBool()) out.dim -= before;
  SetLabel(n->output(0), out);
}

// PReLU: f(0) = 0; one slope per channel follows its channel (a single
// shared slope is just a parameter).
void Analyzer::VisitPReLU(Node* n, const std::string& /*kind*/) {
  LabelPtr l = LabelOf(n->input(0));
  if (!l) return;
  auto wpath = TensorPath(n->input(1));
  if (!wpath) return Unknown(n, "slopes are not a parameter");
  const int64_t slopes = tensors_.at(*wpath).tensor.numel();
  if (slopes != 1) {
    if (l->dim != 1 || l->block != 1 || slopes != static_cast<int64_t>(l->chans.size())) {
      return Unknown(n, "slopes do not follow the channel axis");
    }
    AddSlot(*wpath, SlotRole::kPerChannel, 0, l->chans);
  }
  Label out = *l;
  SetLabel(n->output(0), out);
  if (!out.nonzero) Tap(n->output(0), out);
}

}  // namespace slimfit::dependency_internal
