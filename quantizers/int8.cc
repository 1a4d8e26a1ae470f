// Int8Quantizer: Create, calibration, quantization parameters, conversion
// and its tables; the other parts are listed in quantizers/int8_internal.h.
#include "quantizers/int8.h"

#include <ATen/ATen.h>
#include <ATen/core/grad_mode.h>
#include <torch/csrc/jit/api/module.h>
#include <torch/csrc/jit/ir/ir.h>
#include <torch/csrc/jit/passes/constant_propagation.h>
#include <torch/csrc/jit/passes/dead_code_elimination.h>
#include <torch/csrc/jit/passes/quantization/finalize.h>
#include <torch/csrc/jit/passes/quantization/insert_observers.h>
#include <torch/csrc/jit/passes/quantization/insert_quant_dequant.h>

#include <algorithm>
#include <functional>
#include <map>
#include <mutex>
#include <sstream>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "common/status_macros.h"
#include "common/torch_status.h"
#include "graph/freeze.h"
#include "graph/layer_table.h"
#include "quantizers/int8_internal.h"

namespace slimfit {

using namespace int8_internal;  // NOLINT(build/namespaces): this file implements them

Int8Quantizer::Int8Quantizer() = default;

Int8Quantizer::~Int8Quantizer() {
  ObserveTable& t = Table();
  std::lock_guard<std::mutex> lock(t.mu);
  for (const auto& s : slots_) {
    t.observers.erase(s->id);
    t.errors.erase(s->id);
  }
}

absl::StatusOr<std::unique_ptr<Int8Quantizer>> Int8Quantizer::Create(const Model& model,
                                                                     const QuantizationConfig& config) {
  RETURN_IF_ERROR(ValidateQuantizationConfig(config));
  RETURN_IF_ERROR(SetQuantizedEngine(config.engine()));
  std::unique_ptr<Int8Quantizer> q(new Int8Quantizer());
  q->config_ = config;
  if (!q->config_.has_activation()) q->config_.mutable_activation()->mutable_mse();
  if (!q->config_.has_weight()) {
    q->config_.mutable_weight()->mutable_minmax();
    q->config_.mutable_weight()->set_per_channel(true);
  }
  q->config_.mutable_weight()->set_symmetric(true);  // onednn / qnnpack need zero weight zero points
  q->config_.mutable_activation()->set_per_channel(false);
  if (q->config_.activation().bits() == 0) {  // int8.h: 7-bit codes keep x86 int8 products clear of saturation
    q->config_.mutable_activation()->set_bits(config.engine() == QuantizationConfig::QNNPACK ? 8 : 7);
  }
  const int64_t aq = (int64_t{1} << q->config_.activation().bits()) - 1;
  const ObserverConfig& wc = q->config_.weight();
  const int wbits = wc.bits() == 0 ? 8 : wc.bits();

  // 1. Freeze and fold; weights and biases become root parameters again.
  ASSIGN_OR_RETURN(torch::jit::Module frozen, FreezeAndFold(model));
  RETURN_IF_ERROR(SliceStridedPointwiseConvs(*frozen.get_method("forward").graph()));
  RETURN_IF_ERROR(Reparameterize(frozen, &q->layers_, &q->weights_));
  if (q->layers_.empty()) {
    return absl::FailedPreconditionError(
        "the model has no conv1d / conv2d / linear layer at the top level of its forward graph: nothing to quantize");
  }
  SelectLayers(config, &q->layers_);

  q->prepared_ = std::make_unique<Model>(frozen, model.metadata());
  // 2. Observers (LibTorch's InsertObservers decides where).
  torch::jit::Module observed;
  RETURN_IF_ERROR(TorchCall("inserting observers", [&] {
    const int64_t wq = (int64_t{1} << (wbits - 1)) - 1;
    torch::jit::Module act = MakeObserverModule(false, false, 0, aq);
    torch::jit::Module wt = MakeObserverModule(true, wc.per_channel(), -wq, wq);
    torch::jit::QConfigDict dict;
    dict[""] = std::make_tuple(act, wt);
    // inplace=true inserts nothing on LibTorch 1.13 (the clone path works).
    observed = torch::jit::InsertObservers(frozen, "forward", dict, /*inplace=*/false, torch::jit::QuantType::STATIC);
  }));
  auto graph = observed.get_method("forward").graph();
  RETURN_IF_ERROR(MoveObserversAfterRelu(*graph));
  torch::jit::EliminateDeadCode(graph);
  std::map<std::string, Node*> calls = ObserverCalls(*graph);
  // Slots.
  for (auto& [name, call] : calls) {
    auto s = std::make_unique<Slot>();
    s->name = name;
    s->id = NextObserverId();
    torch::jit::Module obs = observed.attr(name).toModule();
    s->weight = obs.attr("dtype").toInt() == static_cast<int64_t>(c10::ScalarType::QInt8);
    if (s->weight) {
      for (const auto& u : call->output()->uses()) {
        if (u.offset == 1) s->layer = LayerOfNode(u.user);
      }
    } else {
      s->producer_layer = LayerOfNode(call->input(1)->node());
      for (const auto& u : call->output()->uses()) {
        const int l = u.offset == 0 ? LayerOfNode(u.user) : -1;
        if (l >= 0) {
          s->consumer_layers.push_back(l);
        } else {
          s->other_consumers = true;
        }
      }
      ObserverConfig ac = q->config_.activation();
      ASSIGN_OR_RETURN(s->observer, MakeObserver(ac, "activation"));
    }
    RETURN_IF_ERROR(TorchCall("numbering observers", [&] { obs.setattr("obs_id", s->id); }));
    q->slots_.push_back(std::move(s));
  }
  // 3. The never-run observed module, and a copy that calibrates.
  RETURN_IF_ERROR(TorchCall("saving the observed model", [&] {
    std::stringstream buffer;
    observed.save(buffer);
    q->observed_bytes_ = buffer.str();
  }));
  ASSIGN_OR_RETURN(torch::jit::Module calib, TorchCallOr("loading the observed model", [&] {
                     torch::jit::Module m = LoadObservedModule(q->observed_bytes_);
                     m.eval();
                     return m;
                   }));
  q->calibration_ = std::make_unique<Model>(calib, model.metadata());
  {
    ObserveTable& t = Table();
    std::lock_guard<std::mutex> lock(t.mu);
    for (const auto& s : q->slots_) {
      if (s->observer) t.observers[s->id] = s->observer.get();
    }
  }
  return q;
}

absl::Status Int8Quantizer::Observe(const std::vector<c10::IValue>& inputs) {
  RETURN_IF_ERROR(TorchCall("calibration forward", [&] {
    at::NoGradGuard no_grad;
    std::vector<c10::IValue> in = inputs;
    calibration_->module().forward(in);
  }));
  ObserveTable& t = Table();
  std::lock_guard<std::mutex> lock(t.mu);
  for (const auto& s : slots_) {
    auto it = t.errors.find(s->id);
    if (it != t.errors.end() && !it->second.ok()) {
      return absl::Status(it->second.code(), absl::StrCat("observer ", s->name, ": ", it->second.message()));
    }
  }
  ++batches_;
  params_ready_ = false;
  return absl::OkStatus();
}

absl::StatusOr<int> Int8Quantizer::Calibrate(DataLoader& loader, ForwardPass& forward_pass, int batches) {
  return ForBatches(loader, batches, [&](const Batch& batch) -> absl::Status {
    ASSIGN_OR_RETURN(ModelInputs in, forward_pass.ExtractModelInputs(batch));
    return Observe(in);
  });
}

absl::Status Int8Quantizer::ComputeParams() const {
  if (params_ready_) return absl::OkStatus();
  for (auto& s : slots_) {
    if (s->from_qat) continue;
    if (s->weight) {
      if (s->layer < 0) return absl::InternalError(absl::StrCat("weight observer ", s->name, " has no layer"));
      ASSIGN_OR_RETURN(s->params,
                       ComputeQuantParams(config_.weight(), weights_.at(layers_[s->layer].weight_param), "weight"));
    } else {
      if (s->observer->observed_batches() == 0) {
        return absl::FailedPreconditionError(
            absl::StrCat("observer ", s->name, " saw no data: call Observe with calibration batches before converting",
                         batches_ == 0 ? "" : " (the value is never computed on these inputs)"));
      }
      ASSIGN_OR_RETURN(s->params, s->observer->Compute());
      if (s->params.symmetric) {  // quint8 codes: shift the signed range to start at 0
        const int64_t shift = int64_t{1} << (s->params.bits - 1);
        s->params.zero_point = s->params.zero_point + shift;
        s->params.qmin += shift;
        s->params.qmax += shift;
      }
    }
    s->has_params = true;
  }
  params_ready_ = true;
  return absl::OkStatus();
}

// An int8 layer's bias becomes a multiple of input scale x weight scale (per
// output channel): the int32 grid every int8 format stores biases on (ONNX
// QDQ, TFLite, TensorRT). LibTorch's kernels add the float bias exactly, so
// without this an exported model's biases differ from LibTorch's by up to
// half a grid step — a systematic shift per channel that flipped 0.4 % of
// one mobilenetv2 layer's output codes and 1.9 % of its test predictions
// (7-bit activation codes; int8.h). Biases too large for int32 on the grid
// (an input with a vanishing range) stay as they are; export/onnx.h adds
// those in float.
namespace {

void SnapBiasesToTheInt32Grid(const std::vector<std::unique_ptr<Int8Quantizer::Slot>>& slots,
                              const std::map<std::string, Node*>& calls,
                              const std::map<std::string, at::Tensor>& weights, const std::function<bool(int)>& is_int8,
                              Graph& graph, torch::jit::Module& mod) {
  std::map<const Node*, const Int8Quantizer::Slot*> slot_of_call;
  std::map<int, const Int8Quantizer::Slot*> weight_slot;
  for (const auto& s : slots) {
    slot_of_call[calls.at(s->name)] = s.get();
    if (s->weight) weight_slot[s->layer] = s.get();
  }
  for (Node* n : graph.nodes()) {
    const int l = LayerOfNode(n);
    if (l < 0 || !is_int8(l) || !weight_slot.count(l)) continue;
    const std::string bias = absl::StrCat(kBiasPrefix, l);
    if (!weights.count(bias)) continue;
    // The input's range: its observer, or the one before ops that keep the
    // quantization parameters of their input (relu6, pooling, flatten, ...).
    const Int8Quantizer::Slot* input = nullptr;
    for (Value* v = n->input(0); v != nullptr && input == nullptr;) {
      const Node* p = v->node();
      if (slot_of_call.count(p)) {
        input = slot_of_call.at(p);
      } else if (!p->inputs().empty() && p->input(0)->type()->kind() == c10::TypeKind::TensorType) {
        v = p->input(0);
      } else {
        v = nullptr;
      }
    }
    if (input == nullptr || input->weight || input->params.scale.numel() != 1) continue;
    const at::Tensor b = weights.at(bias).to(at::kDouble);
    // The scales as the model stores them (float32, Build below).
    auto stored = [](const at::Tensor& scale) { return scale.to(at::kFloat).to(at::kDouble); };
    const at::Tensor unit =
        (stored(weight_slot.at(l)->params.scale) * stored(input->params.scale).item<double>()).expand({b.numel()});
    const at::Tensor q = at::round(b / unit);
    if (q.abs().max().item<double>() > 2147483647.0) continue;
    mod.setattr(bias, (q * unit).to(weights.at(bias).scalar_type()));
  }
}

}  // namespace

absl::StatusOr<Model> Int8Quantizer::Build(const std::set<int>& fp32, bool debug) const {
  for (int l : fp32) {
    if (l < 0 || l >= static_cast<int>(layers_.size())) {
      return absl::InvalidArgumentError(
          absl::StrCat("fp32 layer ", l, " is out of range; the model has ", layers_.size(), " layers"));
    }
  }
  auto is_int8 = [&](int l) { return l >= 0 && layers_[l].selected && !fp32.count(l); };
  ASSIGN_OR_RETURN(torch::jit::Module m, TorchCallOr("converting to int8", [&] {
                     torch::jit::Module mod = LoadObservedModule(observed_bytes_);
                     for (const auto& [name, t] : weights_) mod.setattr(name, t.detach().clone());
                     auto graph = mod.get_method("forward").graph();
                     std::map<std::string, Node*> calls = ObserverCalls(*graph);
                     SnapBiasesToTheInt32Grid(slots_, calls, weights_, is_int8, *graph, mod);
                     for (const auto& s : slots_) {
                       Node* call = calls.at(s->name);
                       bool remove = false;
                       if (s->weight) {
                         remove = !is_int8(s->layer);
                       } else {
                         bool feeds_int8 = s->other_consumers || is_int8(s->producer_layer);
                         for (int l : s->consumer_layers) feeds_int8 = feeds_int8 || is_int8(l);
                         remove = !feeds_int8;
                       }
                       if (remove) {
                         call->output()->replaceAllUsesWith(call->input(1));
                         call->destroy();
                         continue;
                       }
                       torch::jit::Module obs = mod.attr(s->name).toModule();
                       obs.setattr("scale", s->params.scale.to(at::kFloat));
                       obs.setattr("zero_point", s->params.zero_point.to(at::kLong));
                     }
                     torch::jit::EliminateDeadCode(graph);
                     mod.eval();
                     torch::jit::Module qm = torch::jit::InsertQuantDeQuant(mod, "forward", /*inplace=*/true, debug,
                                                                            torch::jit::QuantType::STATIC);
                     if (!debug) qm = torch::jit::Finalize(qm, torch::jit::QuantType::STATIC, {});
                     auto g = qm.get_method("forward").graph();
                     DequantizeTupleElements(*g);
                     MakeFloatConstantsPrintable(*g);
                     torch::jit::ConstantPropagation(g);
                     torch::jit::EliminateDeadCode(g);
                     return qm;
                   }));
  return Model(m, prepared_->metadata());
}

absl::StatusOr<Model> Int8Quantizer::Convert(const std::set<int>& fp32) const {
  RETURN_IF_ERROR(ComputeParams());
  return Build(fp32, /*debug=*/false);
}

absl::StatusOr<Model> Int8Quantizer::Simulate(const std::set<int>& fp32) const {
  RETURN_IF_ERROR(ComputeParams());
  return Build(fp32, /*debug=*/true);
}

std::string Int8Quantizer::FormatLayers() const {
  std::string out = absl::StrFormat("%-4s %-28s %-16s %-18s %s\n", "#", "module", "type", "weight", "int8");
  for (size_t i = 0; i < layers_.size(); ++i) {
    const QuantLayer& l = layers_[i];
    out +=
        absl::StrFormat("%-4d %-28s %-16s %-18s %s\n", i, l.module_path.empty() ? "(root)" : l.module_path, l.op_type,
                        absl::StrJoin(l.weight_shape, "x"), l.selected ? "yes" : absl::StrCat("no (", l.reason, ")"));
  }
  return out;
}

std::string Int8Quantizer::FormatRanges() const {
  std::string out;
  for (const auto& s : slots_) {
    if (!s->has_params) continue;
    const QuantParams& p = s->params;
    std::string what =
        s->weight ? absl::StrCat("weight of layer ", s->layer)
                  : absl::StrCat("activation", s->producer_layer >= 0 ? absl::StrCat(" after layer ", s->producer_layer)
                                                                      : std::string());
    if (p.scale.numel() == 1) {
      const double scale = p.scale.item<double>();
      const int64_t zp = p.zero_point.item<int64_t>();
      out += absl::StrFormat("%-14s %-28s scale %.6g zero point %d  range [%.4g, %.4g]\n", s->name, what, scale, zp,
                             (p.qmin - zp) * scale, (p.qmax - zp) * scale);
    } else {
      out += absl::StrFormat("%-14s %-28s %d channels, scale %.4g..%.4g\n", s->name, what, p.scale.numel(),
                             p.scale.min().item<double>(), p.scale.max().item<double>());
    }
  }
  return out;
}

}  // namespace slimfit
