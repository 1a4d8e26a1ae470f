#include "evaluators/profiler.h"

#include <ATen/ATen.h>
#include <c10/core/GradMode.h>
#include <torch/csrc/jit/api/module.h>
#include <torch/csrc/jit/ir/ir.h>

#include <algorithm>
#include <chrono>
#include <map>
#include <sstream>
#include <unordered_map>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "common/field_error.h"
#include "common/status_macros.h"
#include "common/threads.h"
#include "common/torch_status.h"
#include "graph/capture.h"
#include "graph/layer_table.h"
#include "model/device.h"

namespace slimfit {
namespace {

using torch::jit::Node;
using torch::jit::Value;

// The top-level node that contains `n` (itself if at top level).
const Node* TopLevel(const Node* n, const torch::jit::Block* top) {
  while (n->owningBlock() != top) n = n->owningBlock()->owningNode();
  return n;
}

int64_t LayerMacs(const Layer& layer, const at::Tensor& out) {
  const auto& w = layer.weight_shape;
  const std::string& k = layer.op_kind;
  if (k == "aten::conv1d" || k == "aten::conv2d" || k == "aten::conv3d" || k == "aten::_convolution") {
    if (layer.op_type.rfind("ConvTranspose", 0) == 0) {
      // Each input element meets every weight of its group once.
      return -1;  // output-based formula does not apply; see note in header
    }
    int64_t per_out = 1;
    for (size_t i = 1; i < w.size(); ++i) per_out *= w[i];  // in/groups × kernel
    return out.numel() * per_out;
  }
  if (k == "aten::linear" || k == "aten::matmul" || k == "aten::addmm") {
    if (w.size() != 2) return 0;
    // linear: weight [out, in]; addmm/matmul with a parameter: [in, out] or [out, in].
    const int64_t in = k == "aten::linear" ? w[1] : (out.size(-1) == w[1] ? w[0] : w[1]);
    return out.numel() * in;
  }
  return 0;  // norms, embeddings: no multiply-accumulates counted
}

// Times `model` where it is (its inputs are moved there).
absl::StatusOr<LatencyStats> TimeForward(Model& model, ForwardPass& fp, int64_t batch, int warmup,
                                         int runs) {
  ASSIGN_OR_RETURN(ModelInputs inputs, fp.CreateRandomModelInputs(batch));
  const c10::Device device = model.device();
  return TorchCallOr(absl::StrCat("latency at batch ", batch), [&]() -> absl::StatusOr<LatencyStats> {
    c10::NoGradGuard no_grad;
    for (c10::IValue& v : inputs) {
      if (v.isTensor()) v = v.toTensor().to(device);
    }
    for (int i = 0; i < warmup; ++i) model.module().forward(inputs);
    RETURN_IF_ERROR(SynchronizeDevice(device));
    std::vector<double> ms;
    for (int i = 0; i < runs; ++i) {
      auto t = std::chrono::steady_clock::now();
      model.module().forward(inputs);
      RETURN_IF_ERROR(SynchronizeDevice(device));
      ms.push_back(std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t).count());
    }
    std::sort(ms.begin(), ms.end());
    LatencyStats s;
    s.device = DeviceName(device);
    s.batch_size = batch;
    s.runs = runs;
    s.median_ms = ms[ms.size() / 2];
    s.p90_ms = ms[std::min(ms.size() - 1, (ms.size() * 9) / 10)];
    return s;
  });
}

}  // namespace

absl::StatusOr<CostReport> ProfileModel(Model& model, ForwardPass& fp, const ProfilerConfig& config) {
  const int64_t batch = config.batch_size() == 0 ? 64 : config.batch_size();
  const int runs = config.runs() == 0 ? 50 : config.runs();
  const int warmup = config.warmup_runs() == 0 ? 5 : config.warmup_runs();
  const int threads = config.threads() == 0 ? 1 : config.threads();
  if (batch < 1) return FieldError("batch_size", "negative", batch, ">= 1 (0 = 64)");
  if (runs < 1) return FieldError("runs", "negative", runs, ">= 1 (0 = 50)");
  if (warmup < 0) return FieldError("warmup_runs", "negative", warmup, ">= 0 (0 = 5)");
  if (threads < 1) return FieldError("threads", "negative", threads, ">= 1 (0 = 1)");

  model.Eval();
  CostReport report;
  ASSIGN_OR_RETURN(LayerGraph lg, BuildLayerGraph(model));
  std::map<std::string, at::Tensor> params;
  for (auto& [name, p] : model.NamedParameters()) {
    params.emplace(name, p);
    report.params += p.numel();
  }
  ASSIGN_OR_RETURN(ModelInputs one, fp.CreateRandomModelInputs(1));

  torch::jit::Graph& g = *lg.graph;
  torch::jit::Block* top = g.block();
  // Every top-level tensor value, in definition order (inputs first).
  const std::vector<Value*> values = TopLevelTensorValues(g);
  ASSIGN_OR_RETURN(Captured captured, RunAndCapture(model, g, values, one));
  std::unordered_map<const Value*, at::Tensor> tensor_of;
  for (size_t i = 0; i < values.size(); ++i) {
    if (captured.tensors[i].defined()) tensor_of[values[i]] = captured.tensors[i];
  }
  const Value* model_output = g.outputs()[0];

  RETURN_IF_ERROR(TorchCall("measuring the forward graph", [&]() -> absl::Status {
    // Per-layer costs.
    for (size_t i = 0; i < lg.table.layers.size(); ++i) {
      const Layer& l = lg.table.layers[i];
      LayerCost c;
      c.module_path = l.module_path;
      c.op_type = l.op_type;
      c.weight_shape = l.weight_shape;
      c.params = l.num_params;
      for (const auto& p : l.parameters) c.nonzero_params += params.at(p).count_nonzero().item<int64_t>();
      const Node* node = lg.nodes[i];
      auto it = node->owningBlock() == top ? tensor_of.find(node->output(0)) : tensor_of.end();
      if (it == tensor_of.end()) {
        c.macs = -1;
        ++report.uncounted_layers;
      } else {
        c.output_shape = it->second.sizes().vec();
        c.macs = LayerMacs(l, it->second);
        if (c.macs < 0) ++report.uncounted_layers;
      }
      if (c.macs > 0) report.macs += c.macs;
      report.layers.push_back(std::move(c));
    }
    for (const auto& [name, p] : params) report.nonzero_params += p.count_nonzero().item<int64_t>();
    report.flops = 2 * report.macs;

    // Liveness: a value is live from its definition to its last top-level use.
    std::unordered_map<const Value*, size_t> last_use;
    std::vector<const Node*> order(top->nodes().begin(), top->nodes().end());
    std::unordered_map<const Node*, size_t> index_of;
    for (size_t i = 0; i < order.size(); ++i) index_of[order[i]] = i;
    for (const Value* v : values) {
      auto def = index_of.find(v->node());
      size_t last = def == index_of.end() ? 0 : def->second;  // unused: dies where defined
      for (const torch::jit::Use& u : v->uses()) {
        const Node* user = TopLevel(u.user, top);
        auto f = index_of.find(user);
        if (f != index_of.end()) last = std::max(last, f->second);
      }
      if (v == model_output) last = order.size();  // the model's output lives to the end
      last_use[v] = last;
    }
    int64_t live = 0, peak = 0;
    std::multimap<size_t, int64_t> frees;
    for (Value* in : g.inputs()) {
      if (tensor_of.count(in)) {
        const at::Tensor& t = tensor_of[in];
        live += t.numel() * t.element_size();
        frees.emplace(last_use[in], t.numel() * t.element_size());
      }
    }
    peak = live;
    for (size_t i = 0; i < order.size(); ++i) {
      for (const Value* o : order[i]->outputs()) {
        auto f = tensor_of.find(o);
        if (f == tensor_of.end()) continue;
        const int64_t bytes = f->second.numel() * f->second.element_size();
        live += bytes;
        frees.emplace(last_use[o], bytes);
      }
      peak = std::max(peak, live);
      for (auto r = frees.equal_range(i); r.first != r.second; ++r.first) live -= r.first->second;
      frees.erase(i);
    }
    report.peak_activation_bytes = peak;
    return absl::OkStatus();
  }));

  RETURN_IF_ERROR(TorchCall("measuring the serialized size", [&] {
    std::ostringstream out;
    model.module().save(out);
    report.serialized_bytes = static_cast<int64_t>(out.str().size());
  }));

  report.threads = threads;
  if (!config.skip_latency()) {
    ASSIGN_OR_RETURN(const c10::Device device, ResolveDevice(config.device()), AtField("device"));
    absl::StatusOr<LatencyStats> b1, bn;
    // Each batch size runs on its own freshly loaded copy: LibTorch 1.13's
    // onednn int8 convolutions keep fast primitives only for the first input
    // shape they see (a b1 run after b64 ones took 2.5x as long).
    auto timed = [&](int64_t b) -> absl::StatusOr<LatencyStats> {
      ASSIGN_OR_RETURN(Model fresh, model.Reloaded());
      fresh.Eval();
      if (!device.is_cpu() && !CpuOnly(fresh)) RETURN_IF_ERROR(fresh.To(device));
      return TimeForward(fresh, fp, b, warmup, runs);
    };
    {
      const ScopedThreads scoped(threads);
      b1 = timed(1);
      bn = b1.ok() ? timed(batch) : b1;
    }
    RETURN_IF_ERROR(b1.status());
    RETURN_IF_ERROR(bn.status());
    report.latency = {*b1, *bn};
  }
  return report;
}

std::string FormatCostReport(const CostReport& r) {
  size_t pw = 11, tw = 7;
  for (const auto& l : r.layers) {
    pw = std::max(pw, l.module_path.size());
    tw = std::max(tw, l.op_type.size());
  }
  std::string out = absl::StrFormat("%-*s  %-*s  %-18s  %10s  %10s  %14s\n", pw, "module path", tw,
                                    "op type", "output (batch 1)", "params", "nonzero", "MACs");
  for (const auto& l : r.layers) {
    absl::StrAppendFormat(&out, "%-*s  %-*s  %-18s  %10d  %10d  %14s\n", pw,
                          l.module_path.empty() ? "(root)" : l.module_path, tw, l.op_type,
                          absl::StrCat("[", absl::StrJoin(l.output_shape, ", "), "]"), l.params,
                          l.nonzero_params, l.macs < 0 ? "n/a" : absl::StrCat(l.macs));
  }
  absl::StrAppendFormat(&out, "total: %d params (%d nonzero), %d MACs (%.2f MFLOPs)",
                        r.params, r.nonzero_params, r.macs, r.flops / 1e6);
  if (r.uncounted_layers > 0) absl::StrAppendFormat(&out, ", %d layers not counted", r.uncounted_layers);
  absl::StrAppendFormat(&out, "\nsize: %d bytes serialized; peak activations ~%d bytes at batch 1\n",
                        r.serialized_bytes, r.peak_activation_bytes);
  for (const auto& l : r.latency) {
    absl::StrAppendFormat(&out, "latency batch %d: median %.3f ms, p90 %.3f ms (%d runs, %s%d thread%s)\n",
                          l.batch_size, l.median_ms, l.p90_ms, l.runs, l.device == "cpu" ? "" : l.device + ", ",
                          r.threads, r.threads == 1 ? "" : "s");
  }
  return out;
}

std::string CostReportToJson(const CostReport& r) {
  std::vector<std::string> layers;
  for (const auto& l : r.layers) {
    layers.push_back(absl::StrFormat(
        "{\"module_path\": \"%s\", \"op_type\": \"%s\", \"weight_shape\": [%s], \"output_shape\": [%s], "
        "\"params\": %d, \"nonzero_params\": %d, \"macs\": %d}",
        l.module_path, l.op_type, absl::StrJoin(l.weight_shape, ", "), absl::StrJoin(l.output_shape, ", "),
        l.params, l.nonzero_params, l.macs));
  }
  std::vector<std::string> lat;
  for (const auto& l : r.latency) {
    lat.push_back(
        absl::StrFormat("{\"batch_size\": %d, \"median_ms\": %.6f, \"p90_ms\": %.6f, \"runs\": %d, \"device\": \"%s\"}",
                        l.batch_size, l.median_ms, l.p90_ms, l.runs, l.device));
  }
  return absl::StrFormat(
      "{\"params\": %d, \"nonzero_params\": %d, \"macs\": %d, \"flops\": %d, \"serialized_bytes\": %d, "
      "\"peak_activation_bytes\": %d, \"uncounted_layers\": %d, \"threads\": %d,\n \"latency\": [%s],\n "
      "\"layers\": [\n  %s]}\n",
      r.params, r.nonzero_params, r.macs, r.flops, r.serialized_bytes, r.peak_activation_bytes,
      r.uncounted_layers, r.threads, absl::StrJoin(lat, ", "), absl::StrJoin(layers, ",\n  "));
}

}  // namespace slimfit
