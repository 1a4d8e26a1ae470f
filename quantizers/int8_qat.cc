// Int8Quantizer's quantization-aware training (quantizers/int8.h).
#include <ATen/ATen.h>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "common/status_macros.h"
#include "common/torch_status.h"
#include "quantizers/int8_internal.h"

namespace slimfit {

using namespace int8_internal;  // NOLINT(build/namespaces): this file implements them

absl::StatusOr<Model> Int8Quantizer::MakeQatModel(const QatConfig& qat) const {
  RETURN_IF_ERROR(ComputeParams());
  const double averaging = qat.averaging_constant() > 0 ? qat.averaging_constant() : 0.01;
  ASSIGN_OR_RETURN(torch::jit::Module m, TorchCallOr("building the QAT model", [&] {
                     torch::jit::Module mod = LoadObservedModule(observed_bytes_);
                     for (const auto& [name, t] : weights_)
                       mod.setattr(name, t.detach().clone().set_requires_grad(true));
                     for (const auto& s : slots_) {
                       torch::jit::Module obs = mod.attr(s->name).toModule();
                       const QuantParams& p = s->params;
                       obs.setattr("mode", qat.lsq() ? kModeLsq : kModeSte);
                       obs.setattr("averaging_constant", averaging);
                       at::Tensor scale = p.scale.to(at::kFloat);
                       at::Tensor zp = p.zero_point.to(at::kFloat);
                       if (!s->weight) {
                         obs.setattr("quant_min", p.qmin);
                         obs.setattr("quant_max", p.qmax);
                         obs.setattr("running_min", ((p.qmin - zp) * scale).reshape({1}));
                         obs.setattr("running_max", ((p.qmax - zp) * scale).reshape({1}));
                         obs.setattr("fq_scale", scale.reshape({1}).clone());
                         obs.setattr("fq_zero_point", p.zero_point.to(at::kInt).reshape({1}).clone());
                       }
                       obs.setattr("lsq_scale", scale.clone().set_requires_grad(true));
                       obs.setattr("lsq_zero_point", zp.clone());
                     }
                     mod.train(true);
                     return mod;
                   }));
  return Model(m, prepared_->metadata());
}

absl::Status Int8Quantizer::FreezeQatObservers(Model& qat_model) {
  return TorchCall("freezing QAT observers", [&] {
    for (const auto& child : qat_model.module().named_children()) {
      if (!absl::StartsWith(child.name, "_observer_")) continue;
      torch::jit::Module obs = child.value;
      obs.setattr("observer_on", at::zeros({1}, at::kLong));
    }
  });
}

absl::Status Int8Quantizer::AdoptQat(const Model& trained) {
  RETURN_IF_ERROR(ComputeParams());
  return TorchCall("reading the QAT model", [&] {
    at::NoGradGuard no_grad;
    const torch::jit::Module& mod = trained.module();
    for (auto& [name, t] : weights_) t = mod.attr(name).toTensor().detach().clone();
    for (auto& s : slots_) {
      torch::jit::Module obs = mod.attr(s->name).toModule();
      const int64_t mode = obs.attr("mode").toInt();
      QuantParams& p = s->params;
      if (s->weight) {
        if (mode == kModeLsq) {
          p.scale = obs.attr("lsq_scale").toTensor().detach().abs().clamp_min(1e-12).to(at::kDouble).clone();
          p.zero_point = at::zeros_like(p.scale, at::kLong);
        } else {  // ranges of the trained weights, as the fake quantization used
          at::Tensor w = weights_.at(layers_[s->layer].weight_param).to(at::kDouble);
          at::Tensor a = p.axis >= 0 ? w.abs().flatten(1).amax(1) : w.abs().amax().reshape({1});
          p.scale = (a / static_cast<double>(p.qmax)).clamp_min(1e-12);
          p.zero_point = at::zeros_like(p.scale, at::kLong);
        }
      } else if (mode == kModeLsq) {
        p.scale = obs.attr("lsq_scale").toTensor().detach().abs().clamp_min(1e-12).to(at::kDouble).clone();
        p.zero_point = obs.attr("lsq_zero_point").toTensor().round().clamp(p.qmin, p.qmax).to(at::kLong);
      } else {
        p.scale = obs.attr("fq_scale").toTensor().to(at::kDouble).clone();
        p.zero_point = obs.attr("fq_zero_point").toTensor().to(at::kLong).clone();
      }
      s->from_qat = true;
    }
  });
}

}  // namespace slimfit
