// File: graph/dependency_analyzer.h
//
// Internal to //graph:dependency_graph (not in its hdrs): the analysis behind
// BuildDependencyGraph. Analyzer walks the inlined eval-mode forward graph
// once, in node order, and labels every tensor's channel axis (Label) with
// the space channel at each index; each op kind has a handler (Handlers()
// maps kind → handler) that propagates labels, couples channels (ChannelSets,
// a union-find over every space's channels) or keeps them (blocks them, with
// a reason). The rules are listed in graph/dependency_graph.h.
//
// Where the handlers live:
//   dependency_analyzer.cc              bookkeeping, dispatch, control flow, groups and units
//   dependency_analyzer_layers.cc       conv (plain, depthwise, grouped, transposed), linear, batch / instance norm
//   dependency_analyzer_elementwise.cc  unary ops, PReLU, binary ops (add, mul, ...), reductions
//   dependency_analyzer_shapes.cc       lists and cat, flatten, view, channel shuffles, chunk, permute,
//                                       slice / select, squeeze / unsqueeze
#ifndef SLIMFIT_GRAPH_DEPENDENCY_ANALYZER_H_
#define SLIMFIT_GRAPH_DEPENDENCY_ANALYZER_H_

#include <torch/csrc/jit/ir/ir.h>

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <unordered_map>
#include <vector>

#include "absl/container/flat_hash_set.h"
#include "absl/status/status.h"
#include "graph/dependency_graph.h"
#include "graph/layer_table.h"
#include "model/model.h"

namespace slimfit::dependency_internal {

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

// Op tables.
const std::set<std::string>& ZeroPreservingOps();  // f(0) = 0, channel axis kept: labels pass
const std::set<std::string>& ActivationOps();      // outputs activation-based pruners look at
const std::set<std::string>& NonZeroUnaryOps();    // labels pass, removed channels become non-zero
const std::set<std::string>& MetadataOps();        // read a tensor's metadata only

// Optional attributes holding None (scripted nn.Conv2d(bias=False)'s
// `self.bias`) are None constants here: BuildLayerGraph folds them.
bool IsNone(const Value* v);
// Axis `d` of a rank-`rank` tensor, negative counting from the end.
inline int64_t Axis(int64_t d, int64_t rank) { return d < 0 ? d + rank : d; }
// Entry `i` of a view's shape argument: its constant value, -1 for
// "inferred", or nullopt when computed at run time (from sizes).
std::optional<int64_t> ShapeEntry(const Value* shape, size_t i);

// Union-find over every channel of every space; a channel's id is its
// space's offset plus its index.
class ChannelSets {
 public:
  void AddSpace(int64_t size);  // `size` new singleton sets
  int64_t Id(const ChannelRef& r) const { return offset_[r.space] + r.channel; }
  int64_t Find(int64_t x);
  void Join(int64_t x, int64_t y);
  int64_t size() const { return static_cast<int64_t>(parent_.size()); }
  int64_t offset(int space) const { return offset_[space]; }

 private:
  std::vector<int64_t> offset_;
  std::vector<int64_t> parent_;
};

class Analyzer {
 public:
  Analyzer(Model& model, DependencyGraph* out) : model_(model), out_(out) {}
  // Runs the model once on `inputs` for shapes, then fills `out`.
  absl::Status Run(const std::vector<c10::IValue>& inputs);

 private:
  struct NamedTensor {
    at::Tensor tensor;
    bool is_parameter;
  };
  using Handler = void (Analyzer::*)(Node*, const std::string& kind);
  static const std::unordered_map<std::string, Handler>& Handlers();

  // ---- bookkeeping (dependency_analyzer.cc) ----
  int NewSpace(const std::string& module_path, const std::string& op_type, const std::string& weight, int weight_dim,
               int64_t size);
  void BlockChannel(const ChannelRef& r, const std::string& reason);
  void Union(const ChannelRef& a, const ChannelRef& b, const std::string& reason);
  // `chans` as `blocks` equal blocks (groups, chunks, rows of a split):
  // position j of every block is coupled.
  void CoupleBlocks(const std::vector<ChannelRef>& chans, int64_t blocks, const std::string& reason);
  void Block(const LabelPtr& l, const std::string& reason);
  void BlockValue(const Value* v, const std::string& reason);
  LabelPtr LabelOf(const Value* v) const;
  const std::vector<int64_t>* ShapeOf(const Value* v) const;
  std::optional<std::string> TensorPath(const Value* v) const;
  void AddSlot(const std::string& tensor, SlotRole role, int dim, std::vector<ChannelRef> chans, int64_t block = 1);
  std::vector<ChannelRef> SpaceChannels(int space) const;
  std::string Where(const Node* n) const;
  void Unknown(Node* n, const std::string& why);
  void SetLabel(const Value* v, Label l);
  void Tap(Value* v, const Label& l);
  void Visit(Node* n);
  void VisitControlFlow(Node* n);
  void VisitContainer(Node* n, const std::string& kind);
  void Finish();

  // ---- layers (dependency_analyzer_layers.cc) ----
  void VisitConv(Node* n, const ConvolutionCall& conv);
  void VisitLinear(Node* n, const std::string& kind);
  void Produce(Node* n, const std::string& module_path, const std::string& op_type, const std::string& weight,
               int weight_dim, int64_t size, const std::optional<std::string>& bias, int out_dim = 1);
  void VisitBatchNorm(Node* n, const std::string& kind);

  // ---- element-wise ops and reductions (dependency_analyzer_elementwise.cc) ----
  void VisitUnary(Node* n, const std::string& kind);
  void VisitBinary(Node* n, const std::string& kind);
  void VisitReduce(Node* n, const std::string& kind);
  void VisitPReLU(Node* n, const std::string& kind);

  // ---- shapes (dependency_analyzer_shapes.cc) ----
  void VisitList(Node* n, const std::string& kind);
  static bool ListUseUnderstood(const torch::jit::Use& u);
  void VisitAppend(Node* n, const std::string& kind);
  void VisitCat(Node* n, const std::string& kind);
  void VisitFlatten(Node* n, const std::string& kind);
  void VisitView(Node* n, const std::string& kind);
  bool ReadsSplitLabel(const Node* n) const;
  void SplitChannels(Node* n, const Label& l, const std::vector<int64_t>& si, const std::vector<int64_t>& so);
  void VisitSplit(Node* n, const std::string& kind);
  void VisitChunk(Node* n, const std::string& kind);
  void VisitUnpack(Node* n, const std::string& kind);
  void VisitPermute(Node* n, const std::string& kind);
  void VisitIndex(Node* n, const std::string& kind);
  void VisitSqueeze(Node* n, const std::string& kind);

  Model& model_;
  DependencyGraph* out_;
  const Value* self_ = nullptr;
  std::unordered_map<std::string, NamedTensor> tensors_;
  std::unordered_map<const Value*, std::vector<int64_t>> shapes_;
  std::unordered_map<const Value*, LabelPtr> labels_;
  ChannelSets sets_;
  std::map<std::string, int> space_of_weight_;
  std::map<int, Value*> producer_output_;
  absl::flat_hash_set<int64_t> tapped_;
  std::set<std::string> reported_;
  std::unordered_map<const Value*, std::shared_ptr<std::vector<const Value*>>> lists_;
  std::unordered_map<const Value*, std::vector<Label>> chunks_;  // chunk lists → their parts' labels
};

}  // namespace slimfit::dependency_internal

#endif  // SLIMFIT_GRAPH_DEPENDENCY_ANALYZER_H_
