// File: graph/dependency_graph.h
//
// DependencyGraph: which channels of a TorchScript model must be removed
// together, found by propagating channel identities through the inlined
// forward graph with the real tensor shapes of one run.
//
// Every convolution / linear layer whose weight is a model parameter creates
// a channel *space* (its output channels). Each tensor in the graph carries a
// label: which space channel sits at each index of its channel axis. Labels
// flow through the graph:
//   conv/linear out → batch norm → zero-preserving activations (relu, relu6,
//   hardtanh, silu, hardswish, gelu, ...), pooling, dropout, padding;
//   residual add/sub/mul couple both operands channel by channel;
//   cat along the channel axis concatenates labels (channel offsets), also of
//   tensor lists grown by aten::append (followed in graph order);
//   depthwise convs pass their input's channels through (a channel multiplier
//   m couples input c with outputs c*m..c*m+m-1); other grouped convs
//   (ResNeXt, RegNet) couple position j of every group, on the input side
//   and on the output side, so each group keeps the same positions and the
//   weight stays rectangular;
//   flatten / view to [N, C*H*W] makes channel c own a block of H*W features
//   of the next linear layer; mean / adaptive pooling over spatial dims keep
//   the channel axis; so do slices, selects and squeezes of other axes
//   (crops, `.squeeze(-1)` after pooling) and unsqueeze; instance norm is
//   per channel like batch norm, PReLU's slopes follow their channels.
// Channels coupled by these rules form a *unit* (removed together); spaces
// linked by units form a *group*. A channel is blocked (kept, with a reason)
// when it reaches the model's output, an op this analysis does not know,
// a view whose shape is a traced constant, or any op inside a prim::If /
// prim::Loop block: an unknown op never produces a wrong model, only a less
// pruned one.
//
// Every tensor that a channel indexes is a *slot* (parameter or buffer name,
// dimension, and the channel at each index): producer weights and biases,
// batch-norm weights / biases / running statistics, consumer weights (input
// channel dimension, with blocks after a flatten). Surgery (graph/surgery.h)
// removes channels through the slots.
//
//   ASSIGN_OR_RETURN(ModelInputs x, fp.CreateRandomModelInputs(2));
//   ASSIGN_OR_RETURN(DependencyGraph dg, BuildDependencyGraph(model, x));
//   std::cout << FormatDependencyGroups(dg);
#ifndef SLIMFIT_GRAPH_DEPENDENCY_GRAPH_H_
#define SLIMFIT_GRAPH_DEPENDENCY_GRAPH_H_

#include <ATen/core/ivalue.h>

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "model/model.h"

namespace torch::jit {
struct Graph;
struct Value;
}  // namespace torch::jit

namespace slimfit {

// A channel of a space; space -1 marks a channel no space owns (a model
// input, an opaque op's output): never removable.
struct ChannelRef {
  int space = -1;
  int64_t channel = 0;
  bool operator==(const ChannelRef& o) const { return space == o.space && channel == o.channel; }
};

struct ChannelSpace {
  int id = 0;
  std::string module_path;   // the producing layer ("layer1.0.conv1")
  std::string op_type;       // "Conv2d", "Linear", "DepthwiseConv2d" (multiplier), ...
  std::string weight;        // the producer's weight parameter
  int weight_dim = 0;        // its output-channel dimension
  int64_t size = 0;          // output channels
  int group = -1;            // index into DependencyGraph::groups
  std::vector<bool> blocked; // per channel
  std::string blocked_reason;  // why (first reason), if any channel is blocked
};

enum class SlotRole {
  kProducerWeight,  // conv/linear weight, output-channel dim
  kProducerBias,
  kConsumerWeight,  // conv/linear weight, input-channel dim
  kNormWeight,      // batch-norm scale (γ)
  kNormBias,        // batch-norm shift (β)
  kNormStat,        // running mean / running var
  kPerChannel,      // a per-channel parameter of an element-wise op (PReLU's slopes)
};

struct TensorSlot {
  std::string tensor;  // parameter or buffer path ("layer1.0.bn1.weight")
  bool is_parameter = true;
  SlotRole role = SlotRole::kProducerWeight;
  int dim = 0;
  std::vector<ChannelRef> channels;  // the channel at each index / block of `dim`
  int64_t block = 1;                 // elements of `dim` per channel (after a flatten)
};

// Channels removed together: one per member space, or several when
// couplings (cat + add, depthwise multipliers) map one channel to many.
struct ChannelUnit {
  std::vector<ChannelRef> members;
  bool blocked = false;
};

struct ChannelGroup {
  std::vector<int> spaces;
  std::vector<ChannelUnit> units;
  int64_t prunable_units() const;
};

struct DependencyGraph {
  std::vector<ChannelSpace> spaces;
  std::vector<ChannelGroup> groups;
  std::vector<TensorSlot> slots;
  // Ops the analysis did not understand that touched labelled channels
  // ("aten::pixel_shuffle at ...: blocks layer4.conv2"), for reports.
  std::vector<std::string> unhandled_ops;

  // Activation taps for data-driven pruners: a top-level value of `graph`
  // and the channel at each index of its axis `dim` (post-activation when
  // the model has one after the channel's producer, else the producer's
  // output). Every space channel appears in at most one tap.
  struct Tap {
    torch::jit::Value* value = nullptr;
    int dim = 1;
    std::vector<ChannelRef> channels;
  };
  std::vector<Tap> taps;
  // The inlined eval-mode forward graph the taps refer to (run it with the
  // model in eval mode).
  std::shared_ptr<torch::jit::Graph> graph;

  // The space produced by the layer at `module_path`, or -1.
  int SpaceOf(const std::string& module_path) const;
};

// `example_inputs` are the model's inputs for one run (batch >= 2, so the
// batch axis is told apart from channel axes); the model runs once in eval
// mode. Fails only when the graph cannot be read or run.
absl::StatusOr<DependencyGraph> BuildDependencyGraph(Model& model,
                                                     const std::vector<c10::IValue>& example_inputs);

// One line per group: its spaces (layer and channels), units, blocked units
// and reasons; then the unhandled ops.
std::string FormatDependencyGroups(const DependencyGraph& graph);

}  // namespace slimfit

#endif  // SLIMFIT_GRAPH_DEPENDENCY_GRAPH_H_
