// Dependency analysis of ops that move or reshape the channel axis: tensor
// lists and cat, flatten, view, channel shuffles, chunk, transpose / permute
// (graph/dependency_analyzer.h).
#include <algorithm>
#include <numeric>

#include "absl/strings/str_cat.h"
#include "graph/dependency_analyzer.h"

namespace slimfit::dependency_internal {

// Tensor lists: built by ListConstruct and grown by aten::append (scripted
// DenseNet's `features.append(new)`); top-level nodes run in order, so a
// cat reads the list's contents at that point.
void Analyzer::VisitList(Node* n, const std::string& /*kind*/) {
  bool ok = true;
  for (const torch::jit::Use& u : n->output()->uses()) ok = ok && ListUseUnderstood(u);
  if (!ok) return Unknown(n, "list passed to an op other than cat / append");
  lists_[n->output()] = std::make_shared<std::vector<const Value*>>(n->inputs().begin(), n->inputs().end());
}

bool Analyzer::ListUseUnderstood(const torch::jit::Use& u) {
  const std::string k = u.user->kind().toQualString();
  return k == "aten::cat" || k == "aten::concat" || k == "aten::len" || (k == "aten::append" && u.offset == 0);
}

void Analyzer::VisitAppend(Node* n, const std::string& /*kind*/) {
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

void Analyzer::VisitCat(Node* n, const std::string& /*kind*/) {
  auto tracked = lists_.find(n->input(0));
  const auto* so = ShapeOf(n->output(0));
  auto dim = ConstantInt(n->input(1));
  if (tracked == lists_.end() || !so || !dim) return Unknown(n, "dynamic cat");
  const std::vector<const Value*> elements = *tracked->second;
  const int rank = static_cast<int>(so->size());
  const int d = static_cast<int>(Axis(*dim, rank));
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

void Analyzer::VisitFlatten(Node* n, const std::string& /*kind*/) {
  LabelPtr l = LabelOf(n->input(0));
  if (!l) return;
  const auto* si = ShapeOf(n->input(0));
  auto start = ConstantInt(n->input(1));
  auto end = ConstantInt(n->input(2));
  if (!si || !start || !end) return Unknown(n, "dynamic flatten");
  const int rank = static_cast<int>(si->size());
  const int s = static_cast<int>(Axis(*start, rank));
  const int e = static_cast<int>(Axis(*end, rank));
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

void Analyzer::VisitView(Node* n, const std::string& /*kind*/) {
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
  for (size_t i = 1; i < so->size(); ++i) {
    auto e = ShapeEntry(n->input(1), i);
    if (e && *e != -1) return Unknown(n, absl::StrCat("constant shape entry ", *e, " (use torch.flatten(x, 1))"));
  }
  Label out = *l;
  out.block = l->block * rest;
  SetLabel(n->output(0), out);
}

bool Analyzer::ReadsSplitLabel(const Node* n) const {
  for (const Value* in : n->inputs()) {
    LabelPtr l = LabelOf(in);
    if (l && !l->split.empty()) return true;
  }
  return false;
}

// The channel axis d split into (A, B). After pruning the model computes
// one of them from the input's size; the other is a constant, so channels
// go in the same position of every A-row (A constant: the shuffle's
// groups) or in whole rows (B constant).
void Analyzer::SplitChannels(Node* n, const Label& l, const std::vector<int64_t>& si, const std::vector<int64_t>& so) {
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
  if (a_fixed) {
    CoupleBlocks(l.chans, a, reason);  // position j of every row
  } else {
    for (int64_t i = 0; i < a; ++i) {  // row i whole
      for (int64_t j = 1; j < b; ++j) Union(l.chans[i * b], l.chans[i * b + j], reason);
    }
  }
  Label out = l;
  out.split = {a, b};
  SetLabel(n->output(0), out);
}

// Ops on a split channel axis: the shuffle's transpose, contiguous copies,
// and the view (or flatten) that merges the two dims back.
void Analyzer::VisitSplit(Node* n, const std::string& kind) {
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
    if (std::minmax(Axis(*d0, rank), Axis(*d1, rank)) != std::minmax<int64_t>(d, d + 1)) {
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
    merge = s0 && s1 && Axis(*s0, rank) == d && Axis(*s1, rank) == d + 1;
  }
  if (!merge) return Unknown(n, "split channel axis");
  Label out = *l;
  out.split.clear();
  SetLabel(n->output(0), out);
}

// chunk along the channel axis: chunk i holds positions i*per .. i*per+per-1;
// after pruning each chunk still gets C'/chunks, so position j of every
// chunk goes together (ShuffleNetV2's x1, x2 = x.chunk(2, dim=1)).
void Analyzer::VisitChunk(Node* n, const std::string& kind) {
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
  const int d = static_cast<int>(Axis(*dim, rank));
  std::vector<Label> parts;
  if (d != l->dim) {
    parts.assign(*chunks, *l);  // chunks of another axis keep every channel
  } else {
    const int64_t c = static_cast<int64_t>(l->chans.size());
    if (l->block != 1 || c % *chunks != 0) return Unknown(n, "uneven chunks of the channel axis");
    const int64_t per = c / *chunks;
    const std::string reason = absl::StrCat("chunk of ", Where(n));
    CoupleBlocks(l->chans, *chunks, reason);
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

// Unpacking a chunk list; any other list's unpack is not understood.
void Analyzer::VisitUnpack(Node* n, const std::string& /*kind*/) {
  auto it = chunks_.find(n->input(0));
  if (it == chunks_.end()) return Unknown(n, "not understood");
  const std::vector<Label>& parts = it->second;
  if (n->outputs().size() != parts.size()) return Unknown(n, "unpacks a different number of chunks");
  for (size_t i = 0; i < parts.size(); ++i) SetLabel(n->output(i), parts[i]);
}

// transpose / permute move the channel axis (ConvNeXt's permute to
// channels-last and back); the next op decides whether it can follow it.
void Analyzer::VisitPermute(Node* n, const std::string& kind) {
  LabelPtr l = LabelOf(n->input(0));
  if (!l) return;
  const auto* si = ShapeOf(n->input(0));
  if (!si) return Unknown(n, "shape unknown");
  const int rank = static_cast<int>(si->size());
  std::vector<int64_t> order(rank);
  std::iota(order.begin(), order.end(), 0);
  if (kind == "aten::transpose") {
    auto d0 = ConstantInt(n->input(1)), d1 = ConstantInt(n->input(2));
    if (!d0 || !d1) return Unknown(n, "dynamic transpose");
    std::swap(order[Axis(*d0, rank)], order[Axis(*d1, rank)]);
  } else {
    auto dims = ConstantIntList(n->input(1));
    if (!dims || static_cast<int>(dims->size()) != rank) return Unknown(n, "dynamic permute");
    for (int i = 0; i < rank; ++i) order[i] = Axis((*dims)[i], rank);
  }
  if (l->block != 1) return Unknown(n, "moves a flattened channel axis");
  Label out = *l;
  out.dim = static_cast<int>(std::find(order.begin(), order.end(), l->dim) - order.begin());
  SetLabel(n->output(0), out);
}

// x[:, ...] traces to slice(dim, 0, INT64_MAX, 1): all of the axis, whatever
// its size after pruning.
static bool WholeSlice(const Node* n, int64_t size) {
  if (n->inputs().size() < 5) return false;
  auto start = torch::jit::toIValue(n->input(2));
  auto end = torch::jit::toIValue(n->input(3));
  auto step = ConstantInt(n->input(4));
  const bool from_0 = start && (start->isNone() || (start->isInt() && start->toInt() == 0));
  const bool to_end = end && (end->isNone() || (end->isInt() && end->toInt() >= size));
  return from_0 && to_end && step && *step == 1;
}

// slice / select / narrow of another axis (a crop, x[:, 0]) keep every
// channel; of the channel axis they would pin channels: kept (a slice of
// all of it excepted).
void Analyzer::VisitIndex(Node* n, const std::string& kind) {
  LabelPtr l = LabelOf(n->input(0));
  if (!l) return;
  const auto* si = ShapeOf(n->input(0));
  const auto* so = ShapeOf(n->output(0));
  auto dim = ConstantInt(n->input(1));
  if (!si || !so || !dim) return Unknown(n, "dynamic index");
  const int rank = static_cast<int>(si->size());
  const int d = static_cast<int>(Axis(*dim, rank));
  const bool select = kind == "aten::select";
  if (static_cast<int>(so->size()) != rank - (select ? 1 : 0)) return Unknown(n, "shape");
  if (d == l->dim && !(kind == "aten::slice" && WholeSlice(n, (*si)[d]))) {
    return Unknown(n, "indexes the channel axis");
  }
  if (l->block != 1) return Unknown(n, "indexes a flattened channel axis");
  Label out = *l;
  if (select && d < l->dim) out.dim -= 1;
  SetLabel(n->output(0), out);
}

// squeeze / unsqueeze move the channel axis by the size-1 axes they remove
// or insert; squeezing the channel axis itself (one channel) keeps it. (A
// squeeze() of every size-1 axis would also drop a channel axis pruned to
// one channel: the masked-vs-pruned check before any write refuses that.)
void Analyzer::VisitSqueeze(Node* n, const std::string& kind) {
  LabelPtr l = LabelOf(n->input(0));
  if (!l) return;
  const auto* si = ShapeOf(n->input(0));
  const auto* so = ShapeOf(n->output(0));
  if (!si || !so || l->block != 1) return Unknown(n, "shape");
  const int rank = static_cast<int>(si->size());
  Label out = *l;
  if (kind.rfind("aten::unsqueeze", 0) == 0) {
    auto dim = ConstantInt(n->input(1));
    if (!dim) return Unknown(n, "dynamic unsqueeze");
    const int d = static_cast<int>(Axis(*dim, rank + 1));
    if (d <= l->dim) out.dim += 1;
  } else {
    std::vector<int64_t> dims;
    if (n->inputs().size() > 1) {
      auto given = ConstantIntList(n->input(1));
      if (!given) return Unknown(n, "dynamic squeeze");
      dims = *given;
    } else {
      for (int i = 0; i < rank; ++i) dims.push_back(i);
    }
    for (int64_t d : dims) {
      const int64_t nd = Axis(d, rank);
      if (nd < 0 || nd >= rank || (*si)[nd] != 1) continue;  // not squeezed
      if (nd == l->dim) return Unknown(n, "squeezes the channel axis");
      if (nd < l->dim) out.dim -= 1;
    }
  }
  if (out.dim < 0 || out.dim >= static_cast<int>(so->size()) || (*so)[out.dim] != (*si)[l->dim]) {
    return Unknown(n, "shape");
  }
  SetLabel(n->output(0), out);
}

}  // namespace slimfit::dependency_internal
