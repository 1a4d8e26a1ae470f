// File: quantizers/int8.h
//
// Int8Quantizer: turns a float TorchScript model into a real int8 one that
// runs LibTorch's quantized kernels (quantized::conv2d / linear / add_relu
// on the onednn or qnnpack engine) and loads anywhere with torch.jit.load.
//
//   ASSIGN_OR_RETURN(auto q, Int8Quantizer::Create(model, config));
//   for (each calibration batch) RETURN_IF_ERROR(q->Observe(inputs));
//   ASSIGN_OR_RETURN(Model int8, q->Convert());            // all selected layers
//   ASSIGN_OR_RETURN(Model sim, q->Simulate());            // same, quantize→dequantize in fp32
//   ASSIGN_OR_RETURN(Model mixed, q->Convert({3, 7}));     // layers 3 and 7 stay fp32
//
// How (which LibTorch passes do the work, which are ours):
//  1. Prepare (ours + LibTorch): clone, eval, torch::jit::freeze_module
//     (inlines everything, folds attributes and `training`), dropout
//     removed, traced `aten::_convolution` rewritten to conv1d/2d (ours:
//     the quantization patterns only know those), then LibTorch's
//     FoldFrozenConvBatchnorm / ConvAddOrSub / ConvMulOrDiv fold batch norm
//     and constant scalings into the convolutions. Each conv/linear weight
//     and bias becomes a parameter of the root module again (ours) so QAT
//     can train them and conversion can swap in trained values.
//  2. LibTorch's InsertObservers decides which values are observed (op
//     inputs/outputs, weights; ops that share their input's range, like
//     max pooling and flatten, are not) with slimfit's observer modules.
//     Ours on top: an observer between conv/linear and a following ReLU is
//     moved after the ReLU, so conversion fuses conv+ReLU
//     (quantized::conv2d_relu) — LibTorch only fuses module-level
//     Conv2d→ReLU patterns, which an inlined graph no longer has.
//  3. Calibration (ours): the observer modules call an op that streams each
//     batch's tensors into slimfit's C++ observers (quantizers/observer.h:
//     minmax, moving average, percentile, MSE, histogram/KL); weight ranges
//     come straight from the weights.
//  4. Convert: layers kept fp32 lose their weight observer (and input
//     observers that feed only fp32 layers), every int8 layer's bias is
//     rounded to whole steps of input scale x weight scale (the int32 grid
//     ONNX QDQ stores biases on; too large for int32: left as is), then LibTorch's
//     InsertQuantDeQuant (quantize/dequantize from our ranges) and Finalize
//     (pattern fusion into quantized ops, weight prepacking, freezing).
//
// Contract: layers are aten::conv1d / conv2d / linear calls of the forward
// graph's top level (traced `_convolution` included), named by the module
// path they were called from; ops inside prim::If / prim::Loop stay fp32.
// Activations are quint8 per tensor, calibrated onto 7-bit codes [0, 127]
// by default on the x86 engines (onednn, x86, fbgemm) and 8-bit on qnnpack:
// x86 CPUs without VNNI multiply uint8 by int8 with an instruction that
// saturates a pair of products at 32767 (255 x 127 x 2 does not fit; 127 x
// 127 x 2 does), so 8-bit codes make LibTorch's int8 results depend on the
// CPU, and ONNX Runtime's (export/onnx.h) differ from LibTorch's there
// (`activation.bits: 8` opts in where every deployment CPU has VNNI).
// Symmetric activation ranges use the middle code as zero point. Weights
// are qint8 per channel or per tensor, symmetric (onednn needs zero weight
// zero points), on a 2^bits grid. Every error is a Status; the
// LibTorch engine is set process-wide (at::globalContext().setQEngine).
#ifndef SLIMFIT_QUANTIZERS_INT8_H_
#define SLIMFIT_QUANTIZERS_INT8_H_

#include <ATen/core/Tensor.h>
#include <ATen/core/ivalue.h>

#include <cstdint>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "data/data_loader.h"
#include "forward_pass/forward_pass.h"
#include "model/model.h"
#include "quantizers/observer.h"
#include "quantizers/quantizer.pb.h"

namespace slimfit {

struct QuantLayer {
  std::string module_path;          // "layer1.b0.conv1" ("" for the root)
  std::string op_type;              // Conv1d, Conv2d, DepthwiseConv2d, Linear
  std::vector<int64_t> weight_shape;
  bool selected = false;            // chosen by the config
  std::string reason;               // why not, when not selected
  std::string weight_param;         // root parameter holding the weight
};

// Checks every field (errors name the field, the value and what is valid).
absl::Status ValidateQuantizationConfig(const QuantizationConfig& config);

// Sets LibTorch's quantized engine (process-wide); FailedPrecondition when
// this LibTorch lacks it.
absl::Status SetQuantizedEngine(QuantizationConfig::Engine engine);

// "onednn", "qnnpack", "x86", "fbgemm": the name PyTorch gives the engine
// (torch.backends.quantized.engine), also what tools take as --engine.
std::string QuantizedEngineName(QuantizationConfig::Engine engine);
// The engine of that name; InvalidArgument naming `field` and the valid names.
absl::StatusOr<QuantizationConfig::Engine> QuantizedEngineFromName(const std::string& field,
                                                                   const std::string& name);

class Int8Quantizer {
 public:
  static absl::StatusOr<std::unique_ptr<Int8Quantizer>> Create(const Model& model,
                                                               const QuantizationConfig& config);
  ~Int8Quantizer();

  const std::vector<QuantLayer>& layers() const { return layers_; }
  // The frozen float model every variant starts from (batch norm folded).
  const Model& prepared() const { return *prepared_; }

  // Feeds one batch (the model's forward inputs) to the activation
  // observers. Call at least once before Convert / Simulate.
  absl::Status Observe(const std::vector<c10::IValue>& inputs);
  int64_t observed_batches() const { return batches_; }
  // Observe on up to `batches` batches of a fresh pass of `loader` (the
  // forward pass picks the model's inputs from each); returns how many.
  absl::StatusOr<int> Calibrate(DataLoader& loader, ForwardPass& forward_pass, int batches);

  // The int8 model: selected layers minus `fp32` (indices into layers()).
  absl::StatusOr<Model> Convert(const std::set<int>& fp32 = {}) const;
  // The same quantization simulated in float (quantize→dequantize pairs,
  // LibTorch's debug conversion): the reference the int8 model tracks.
  absl::StatusOr<Model> Simulate(const std::set<int>& fp32 = {}) const;

  // Quantization-aware training. MakeQatModel returns a trainable model that
  // fake-quantizes (straight-through gradients) the same values with the
  // calibrated ranges as a start: activations by moving-average ranges that
  // stop at `freeze_observers_step` steps, or learned step sizes (LSQ);
  // weights per channel. Train it (any trainer), call FreezeQatObservers()
  // on it when the step count is reached, then AdoptQat(trained) takes the
  // trained weights and ranges for Convert / Simulate.
  absl::StatusOr<Model> MakeQatModel(const QatConfig& qat) const;
  static absl::Status FreezeQatObservers(Model& qat_model);
  absl::Status AdoptQat(const Model& trained);

  // Weight-only quantization (quantizers/weight_only.cc): the prepared
  // float model with each selected layer's weight stored as int8 (bits 8)
  // or two 4-bit codes per byte (bits 4), per-channel symmetric from the
  // weight observer, plus its scales; a method of the model dequantizes it
  // at run time with plain aten ops (no quantized kernels needed). With
  // bits 4, the layers in `eight_bit` (indices into layers()) keep 8-bit
  // codes (mixed precision).
  absl::StatusOr<Model> WeightOnly(int bits, const std::set<int>& eight_bit = {}) const;

  // Observed tensors and their ranges, one line each (for reports).
  std::string FormatRanges() const;
  // Layers, selection and reasons as a table.
  std::string FormatLayers() const;

  struct Slot;  // one observed value (internal)

 private:
  Int8Quantizer();
  absl::StatusOr<Model> Build(const std::set<int>& fp32, bool debug) const;
  // Ranges from the observers (cached until the next Observe / AdoptQat).
  absl::Status ComputeParams() const;

  QuantizationConfig config_;
  std::unique_ptr<Model> prepared_;
  std::string observed_bytes_;          // serialized observed module, never run
  std::unique_ptr<Model> calibration_;  // loaded copy that runs calibration
  std::vector<QuantLayer> layers_;
  std::vector<std::unique_ptr<Slot>> slots_;
  std::map<std::string, at::Tensor> weights_;  // re-parameterized weights/biases
  int64_t batches_ = 0;
  mutable bool params_ready_ = false;
};

}  // namespace slimfit

#endif  // SLIMFIT_QUANTIZERS_INT8_H_
