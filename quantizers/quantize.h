// File: quantizers/quantize.h
//
// Quantize: a QuantizationConfig end to end — post-training calibration,
// optional quantization-aware training, optional mixed precision under a
// metric budget, conversion to a real int8 TorchScript model (or weight-only
// 8/4-bit storage).
//
//   QuantizeDeps deps{.forward_pass = fp.get(), .calibration = train.get()};
//   deps.evaluator = evaluator.get();  deps.eval = val.get();   // mixed precision
//   deps.loss = loss.get();  deps.train = train.get();  deps.trainer = &tc;  // QAT
//   ASSIGN_OR_RETURN(QuantizeResult r, Quantize(model, config, deps));
//   RETURN_IF_ERROR(r.model.Save("int8.pt"));
//
// Contract:
// - Calibration uses `calibration_batches` batches of deps.calibration
//   (required except for weight-only).
// - QAT (qat.epochs > 0) needs loss, train and trainer (its optimizer and
//   scheduler factories make a fresh optimizer for the QAT model; its epochs
//   are replaced by qat.epochs). Observers freeze after
//   qat.freeze_observers_step steps (default: one epoch).
// - Mixed precision (mixed_precision.max_drop > 0) needs evaluator and eval;
//   the drop is measured on the eval_key metric of deps.eval against the
//   float model, and the chosen fp32 layers and every layer's sensitivity
//   are in the result. With weight_only.bits 4 it keeps the most sensitive
//   layers' weights at 8 bits instead (eight_bit_layers).
// - The returned model is in eval mode; the quantized engine is set
//   process-wide (a process that loads the file sets it the same way).
#ifndef SLIMFIT_QUANTIZERS_QUANTIZE_H_
#define SLIMFIT_QUANTIZERS_QUANTIZE_H_

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "data/data_loader.h"
#include "evaluators/evaluation_function.h"
#include "forward_pass/forward_pass.h"
#include "losses/loss_function.h"
#include "model/model.h"
#include "quantizers/int8.h"
#include "quantizers/quantizer.pb.h"
#include "trainer/trainer.pb.h"

namespace slimfit {

struct QuantizeDeps {
  ForwardPass* forward_pass = nullptr;  // required
  DataLoader* calibration = nullptr;    // required (not for weight-only)
  // Mixed precision.
  EvaluationFunction* evaluator = nullptr;
  DataLoader* eval = nullptr;
  std::string eval_key = "accuracy";
  // QAT.
  LossFunction* loss = nullptr;
  DataLoader* train = nullptr;
  const TrainerConfig* trainer = nullptr;
  // Where QAT trains (TrainerDeps::device). Calibration and the int8 model
  // stay on the CPU (LibTorch's quantized kernels are CPU-only).
  c10::Device device = c10::kCPU;
};

struct LayerSensitivity {
  int layer = -1;
  double metric = 0;  // eval_key with only this layer in int8
  double drop = 0;    // vs the float model, in the metric's units (positive = worse)
};

struct QuantizeResult {
  Model model;
  std::vector<QuantLayer> layers;
  std::vector<int> fp32_layers;               // kept float by mixed precision
  std::vector<int> eight_bit_layers;          // 4-bit weight-only: kept at 8 bits by mixed precision
  std::vector<LayerSensitivity> sensitivity;  // most sensitive first
  // Mixed precision only: eval_key of the float and of the returned model
  // on deps.eval (its first eval_batches).
  double metric_float = 0;
  double metric_quantized = 0;
  std::vector<std::string> log;               // one line per phase
  std::string ranges;                         // Int8Quantizer::FormatRanges
};

absl::StatusOr<QuantizeResult> Quantize(const Model& model, const QuantizationConfig& config,
                                        const QuantizeDeps& deps);

}  // namespace slimfit

#endif  // SLIMFIT_QUANTIZERS_QUANTIZE_H_
