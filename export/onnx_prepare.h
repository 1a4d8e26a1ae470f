// File: export/onnx_prepare.h (internal to //export:onnx)
//
// What the exporter does to a frozen graph before converting it: shapes
// specialized (batch left symbolic), checks dropped, static sizes recorded.
#ifndef SLIMFIT_EXPORT_ONNX_PREPARE_H_
#define SLIMFIT_EXPORT_ONNX_PREPARE_H_

#include <ATen/core/ivalue.h>
#include <torch/csrc/jit/api/module.h>
#include <torch/csrc/jit/ir/ir.h>

#include <cstdint>
#include <memory>
#include <vector>

#include "absl/container/flat_hash_map.h"

namespace slimfit::onnx_export {

// Specializes `graph` to the input shapes (the batch dimension symbolic
// unless `fixed_batch`): shape analysis, the peepholes it enables, checks
// that only raise dropped, dead code removed.
void Specialize(std::shared_ptr<torch::jit::Graph>& graph, const std::vector<std::vector<int64_t>>& shapes,
                bool fixed_batch);

// Every tensor's shape on one node-by-node run of `graph` on `inputs`
// (best-effort: stops at control flow or an op it cannot run alone).
absl::flat_hash_map<const torch::jit::Value*, std::vector<int64_t>> RecordShapes(
    const torch::jit::Graph& graph, const torch::jit::Module& module, const std::vector<c10::IValue>& inputs);

}  // namespace slimfit::onnx_export

#endif  // SLIMFIT_EXPORT_ONNX_PREPARE_H_
