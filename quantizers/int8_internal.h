// File: quantizers/int8_internal.h
//
// Internal to //quantizers:int8 (not in its hdrs): the pieces
// Int8Quantizer (quantizers/int8.h) is built from, one file each:
//   int8_observers.cc  the slimfit::observe op and its table, the observer
//                      modules inserted into the graph
//   int8_graph.cc      reading and fixing the graph: layers, observer calls,
//                      re-parameterized weights, ReLU fusion, printable
//                      constants, tuple outputs
//   int8_config.cc     the QuantizationConfig: validation, layer selection,
//                      the quantized engine
//   int8_qat.cc        quantization-aware training
//   int8.cc            Create, calibration, parameters, conversion, tables
//   weight_only.cc     weight-only storage
#ifndef SLIMFIT_QUANTIZERS_INT8_INTERNAL_H_
#define SLIMFIT_QUANTIZERS_INT8_INTERNAL_H_

#include <torch/csrc/jit/api/module.h>
#include <torch/csrc/jit/ir/ir.h>

#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "quantizers/int8.h"
#include "quantizers/observer.h"

namespace slimfit {

struct Int8Quantizer::Slot {
  std::string name;  // "_observer_3" on the root module
  bool weight = false;
  int layer = -1;                    // weight slots: the layer
  int producer_layer = -1;           // activation slots: the layer computing it
  std::vector<int> consumer_layers;  // layers reading it (as input)
  bool other_consumers = false;      // read by anything else (add, cat, return, ...)
  int64_t id = 0;
  std::unique_ptr<Observer> observer;
  QuantParams params;
  bool has_params = false;
  bool from_qat = false;
};

namespace int8_internal {

using torch::jit::Graph;
using torch::jit::Node;
using torch::jit::Value;

inline constexpr char kWeightPrefix[] = "quant_w_";
inline constexpr char kBiasPrefix[] = "quant_b_";

// Modes of the observer modules.
inline constexpr int64_t kModeObserve = 0;  // calibration (activation) / identity (weight)
inline constexpr int64_t kModeSte = 1;      // QAT: moving-average ranges, straight-through
inline constexpr int64_t kModeLsq = 2;      // QAT: learned step sizes

// ---- int8_observers.cc ----
// The calibration op: observer modules call slimfit::observe(x, id), which
// hands x to the C++ observer registered under id (if any) and returns x.
struct ObserveTable {
  std::mutex mu;
  std::map<int64_t, Observer*> observers;
  std::map<int64_t, absl::Status> errors;
};

ObserveTable& Table();
int64_t NextObserverId();
// An observer module (activation: unsigned per tensor; weight: symmetric,
// per channel or per tensor), in kModeObserve.
torch::jit::Module MakeObserverModule(bool weight, bool per_channel, int64_t qmin, int64_t qmax);
// A fresh copy of the observed module (never run, so its graph may be
// edited). Throws like torch::jit::load; call inside TorchCall.
torch::jit::Module LoadObservedModule(const std::string& bytes);

// ---- int8_graph.cc ----
bool IsLayerKind(const Node* n);
std::string CallPath(const Node* n);
// The root-level observer call nodes, by observer name.
std::map<std::string, Node*> ObserverCalls(Graph& graph);
// The layer index of a node that reads `quant_w_<i>` as its weight.
int LayerOfNode(const Node* n);
// Each top-level conv / linear with a constant float weight becomes a layer;
// its weight (and bias) become parameters quant_w_<i> (quant_b_<i>) of the
// root module, read through GetAttr.
absl::Status Reparameterize(torch::jit::Module& frozen, std::vector<QuantLayer>* layers,
                            std::map<std::string, at::Tensor>* weights);
// A top-level 1x1 convolution with stride s > 1 and no padding reads a
// strided slice of its input (x[:, :, ::s, ::s]) and runs with stride 1:
// the same values, and LibTorch 2.11's onednn int8 kernel for 1x1 stride-2
// convolutions (a residual downsample) returns wrong values, different on
// every call, on 2 or more threads on CPUs without AVX-512 (int8_test's
// StridedPointwise test).
absl::Status SliceStridedPointwiseConvs(Graph& graph);
// An observer between a conv / linear and its only user, a ReLU, moves after
// the ReLU (or goes, if the ReLU's output is observed already), so that
// conversion fuses conv+relu / linear+relu.
absl::Status MoveObserversAfterRelu(Graph& graph);
// Integral float constants move to the next representable double (they would
// print as ints, which quantized ops refuse).
void MakeFloatConstantsPrintable(Graph& graph);
// Dequantizes a returned tuple's tensor elements (not the tuple).
void DequantizeTupleElements(Graph& graph);

// ---- int8_config.cc ----
// op_types, module_regex, exclude, then keep_first / keep_last.
void SelectLayers(const QuantizationConfig& config, std::vector<QuantLayer>* layers);

}  // namespace int8_internal
}  // namespace slimfit

#endif  // SLIMFIT_QUANTIZERS_INT8_INTERNAL_H_
