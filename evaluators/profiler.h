// File: evaluators/profiler.h
//
// The cost evaluator: what a model costs to store and run.
//   - parameters and nonzero parameters (per layer and total);
//   - MACs per layer and in total, counted from the TorchScript graph with
//     real shapes: the inlined forward graph is instrumented to return every
//     intermediate tensor and run once on a batch-1 input, so it works on
//     models traced or scripted in Python as on zoo models. Counted ops:
//     convolutions (out elements × in_channels/groups × kernel) and linear /
//     matmul / addmm with a weight parameter (out elements × in features).
//     Transposed convolutions are listed with macs = -1 (not counted);
//     FLOPs = 2 × MACs;
//   - peak activation memory estimate: a liveness walk over the graph's
//     top-level tensors (inputs and intermediate outputs, parameters
//     excluded), with the sizes of that batch-1 run;
//   - serialized size in bytes (the saved TorchScript archive);
//   - latency: warm-up runs, then median and p90 over N timed runs at batch 1
//     and at a configured batch size, on the configured device (CPU by
//     default; int8 models always on the CPU), with a fixed intra-op thread count,
//     each on its own freshly loaded copy of the model (int8 kernels cache
//     per first input shape; a shared copy would favour one batch size).
//
// Ops inside prim::If / prim::Loop blocks cannot be instrumented; their
// layers are listed with macs = -1 and counted in `uncounted_layers`.
#ifndef SLIMFIT_EVALUATORS_PROFILER_H_
#define SLIMFIT_EVALUATORS_PROFILER_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "evaluators/evaluator.pb.h"
#include "forward_pass/forward_pass.h"
#include "model/model.h"

namespace slimfit {

struct LayerCost {
  std::string module_path;
  std::string op_type;
  std::vector<int64_t> weight_shape;
  std::vector<int64_t> output_shape;  // at batch 1; empty if unknown
  int64_t params = 0;
  int64_t nonzero_params = 0;
  int64_t macs = 0;  // -1 when not instrumentable
};

struct LatencyStats {
  std::string device = "cpu";  // where it was timed
  int64_t batch_size = 0;
  double median_ms = 0;
  double p90_ms = 0;
  int runs = 0;
};

struct CostReport {
  std::vector<LayerCost> layers;
  int64_t params = 0;
  int64_t nonzero_params = 0;
  int64_t macs = 0;
  int64_t flops = 0;
  int64_t serialized_bytes = 0;
  int64_t peak_activation_bytes = 0;
  int uncounted_layers = 0;
  std::vector<LatencyStats> latency;  // batch 1, then batch_size (empty if skipped)
  int threads = 1;
};

// `forward_pass` must be able to create random inputs (it has seen a batch,
// or InferFromMetadata succeeded). Leaves the model in eval mode.
absl::StatusOr<CostReport> ProfileModel(Model& model, ForwardPass& forward_pass,
                                        const ProfilerConfig& config);

// A per-layer table with totals.
std::string FormatCostReport(const CostReport& report);
// The report as JSON (layers and totals).
std::string CostReportToJson(const CostReport& report);

}  // namespace slimfit

#endif  // SLIMFIT_EVALUATORS_PROFILER_H_
