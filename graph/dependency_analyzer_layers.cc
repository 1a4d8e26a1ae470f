// Dependency analysis of the layers: convolutions (plain, depthwise, grouped,
// transposed), linear layers and batch norm
// (graph/dependency_analyzer.h).
#include <algorithm>
#include <numeric>

#include "absl/strings/str_cat.h"
#include "graph/dependency_analyzer.h"

namespace slimfit::dependency_internal {

void Analyzer::VisitConv(Node* n, const ConvolutionCall& conv) {
  auto wpath = TensorPath(n->input(1));
  const auto* si = ShapeOf(n->input(0));
  if (!wpath || !si) return Unknown(n, "weight is not a parameter");
  const bool transposed = conv.transposed;
  const at::Tensor& w = tensors_.at(*wpath).tensor;
  const int64_t in_c = (*si)[1];
  // A pruned model's grouped convolutions compute `groups` at run time
  // (graph/surgery.cc: input.size(1) // weight.size(1)); for any
  // non-transposed convolution it can only be that (weight.size(1) x groups
  // is the input's channels), so the run's shapes give it.
  int64_t groups = ConstantInt(n->input(conv.groups_input)).value_or(-1);
  if (groups < 1 && !transposed && w.dim() >= 3 && w.size(1) > 0 && in_c % w.size(1) == 0) {
    groups = in_c / w.size(1);
  }
  if (groups < 1) return Unknown(n, "groups is not a constant");
  std::optional<std::string> bpath = IsNone(n->input(2)) ? std::nullopt : TensorPath(n->input(2));
  if (!IsNone(n->input(2)) && !bpath) return Unknown(n, "bias is not a parameter");
  const std::string module_path = ModulePathOf(*wpath);
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
  const std::string reason = absl::StrCat("grouped convolution ", module_path, " (groups=", groups, ")");
  if (in) {
    if (in->nonzero) Block(in, absl::StrCat("non-zero-preserving op before ", module_path));
    CoupleBlocks(in->chans, groups, reason);
    AddSlot(*wpath, SlotRole::kConsumerWeight, 1, std::vector<ChannelRef>(in->chans.begin(), in->chans.begin() + ipg));
  }
  Produce(n, module_path, "GroupedConv" + dims, *wpath, 0, w.size(0), bpath);
  CoupleBlocks(SpaceChannels(out_->spaces.size() - 1), groups, reason);
}

void Analyzer::VisitLinear(Node* n, const std::string& /*kind*/) {
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
void Analyzer::Produce(Node* n, const std::string& module_path, const std::string& op_type, const std::string& weight,
                       int weight_dim, int64_t size, const std::optional<std::string>& bias, int out_dim) {
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

void Analyzer::VisitBatchNorm(Node* n, const std::string& /*kind*/) {
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

}  // namespace slimfit::dependency_internal
