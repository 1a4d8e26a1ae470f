// The slimfit::observe op and its table, and the observer modules
// (quantizers/int8_internal.h).
#include <ATen/ATen.h>
#include <torch/csrc/jit/frontend/resolver.h>
#include <torch/csrc/jit/frontend/sugared_value.h>
#include <torch/csrc/jit/serialization/import.h>
#include <torch/library.h>

#include <atomic>
#include <sstream>

#include "quantizers/int8_internal.h"

namespace slimfit {
namespace int8_internal {
namespace {

at::Tensor ObserveKernel(const at::Tensor& x, int64_t id) {
  ObserveTable& t = Table();
  std::lock_guard<std::mutex> lock(t.mu);
  auto it = t.observers.find(id);
  if (it != t.observers.end()) {
    absl::Status s = it->second->Observe(x.detach());
    if (!s.ok() && t.errors[id].ok()) t.errors[id] = s;
  }
  return x;
}

std::atomic<int64_t> next_observer_id{1};

constexpr char kActivationObserverSource[] = R"JIT(
def forward(self, x: Tensor) -> Tensor:
    if self.mode == 0:
        return slimfit_ops.observe(x, self.obs_id)
    if self.mode == 1:
        return torch.fused_moving_avg_obs_fake_quant(x, self.observer_on, self.fake_quant_on, self.running_min, self.running_max, self.fq_scale, self.fq_zero_point, self.averaging_constant, self.quant_min, self.quant_max, -1, False, False)
    return torch._fake_quantize_learnable_per_tensor_affine(x, self.lsq_scale, self.lsq_zero_point, self.quant_min, self.quant_max, float(x.numel() * self.quant_max) ** -0.5)

def calculate_qparams(self) -> Tuple[Tensor, Tensor]:
    return self.scale, self.zero_point
)JIT";

constexpr char kWeightObserverSource[] = R"JIT(
def forward(self, w: Tensor) -> Tensor:
    if self.mode == 0:
        return w
    if self.mode == 1:
        if self.ch_axis >= 0:
            s = torch.clamp_min(w.detach().abs().flatten(1).amax(1) / self.quant_max, 1e-12)
        else:
            s = torch.clamp_min(w.detach().abs().amax() / self.quant_max, 1e-12).expand(w.size(0)).contiguous()
        return torch.fake_quantize_per_channel_affine(w, s, torch.zeros_like(s, dtype=3), 0, self.quant_min, self.quant_max)
    g = float(w.numel() * self.quant_max) ** -0.5
    if self.ch_axis >= 0:
        return torch._fake_quantize_learnable_per_channel_affine(w, self.lsq_scale, self.lsq_zero_point, 0, self.quant_min, self.quant_max, g)
    return torch._fake_quantize_learnable_per_tensor_affine(w, self.lsq_scale, self.lsq_zero_point, self.quant_min, self.quant_max, g)

def calculate_qparams(self) -> Tuple[Tensor, Tensor]:
    return self.scale, self.zero_point
)JIT";

// Resolves `slimfit_ops.<op>` to the slimfit:: operators (the C++ frontend's
// `torch.ops` is not a namespace lookup); everything else as usual.
struct SlimfitOpsResolver : public torch::jit::Resolver {
  std::shared_ptr<torch::jit::SugaredValue> resolveValue(const std::string& name, torch::jit::GraphFunction& m,
                                                         const torch::jit::SourceRange& loc) override {
    if (name == "slimfit_ops") return std::make_shared<torch::jit::BuiltinModule>("slimfit");
    return torch::jit::nativeResolver()->resolveValue(name, m, loc);
  }
  c10::TypePtr resolveType(const std::string& name, const torch::jit::SourceRange& loc) override {
    return torch::jit::nativeResolver()->resolveType(name, loc);
  }
};

}  // namespace

ObserveTable& Table() {
  static auto* table = new ObserveTable;
  return *table;
}

int64_t NextObserverId() { return next_observer_id++; }

torch::jit::Module MakeObserverModule(bool weight, bool per_channel, int64_t qmin, int64_t qmax) {
  torch::jit::Module m(c10::QualifiedName(weight ? "__torch__.slimfit.quantizers.WeightObserver"
                                                 : "__torch__.slimfit.quantizers.ActivationObserver"),
                       std::make_shared<torch::jit::CompilationUnit>(), /*shouldMangle=*/true);
  m.register_attribute("training", c10::BoolType::get(), false);
  m.register_attribute("dtype", c10::IntType::get(),
                       static_cast<int64_t>(weight ? c10::ScalarType::QInt8 : c10::ScalarType::QUInt8));
  const at::QScheme scheme = !weight       ? at::kPerTensorAffine
                             : per_channel ? at::kPerChannelSymmetric
                                           : at::kPerTensorSymmetric;
  m.register_attribute("qscheme", c10::IntType::get(), static_cast<int64_t>(scheme));
  m.register_attribute("ch_axis", c10::IntType::get(), static_cast<int64_t>(per_channel ? 0 : -1));
  m.register_attribute("mode", c10::IntType::get(), kModeObserve);
  m.register_attribute("obs_id", c10::IntType::get(), static_cast<int64_t>(0));
  m.register_attribute("quant_min", c10::IntType::get(), qmin);
  m.register_attribute("quant_max", c10::IntType::get(), qmax);
  m.register_attribute("averaging_constant", c10::FloatType::get(), 0.01);
  m.register_buffer("scale", at::ones({1}));
  m.register_buffer("zero_point", at::zeros({1}, at::kLong));
  m.register_buffer("observer_on", at::ones({1}, at::kLong));
  m.register_buffer("fake_quant_on", at::ones({1}, at::kLong));
  m.register_buffer("running_min", at::zeros({1}));
  m.register_buffer("running_max", at::zeros({1}));
  m.register_buffer("fq_scale", at::ones({1}));
  m.register_buffer("fq_zero_point", at::zeros({1}, at::kInt));
  m.register_parameter("lsq_scale", at::ones({1}), /*is_buffer=*/false);
  m.register_buffer("lsq_zero_point", at::zeros({1}));
  m.define(weight ? kWeightObserverSource : kActivationObserverSource, std::make_shared<SlimfitOpsResolver>());
  return m;
}

// A fresh copy of the observed module (never run, so its graph may be
// edited). Throws like torch::jit::load; call inside TorchCall.
torch::jit::Module LoadObservedModule(const std::string& bytes) {
  std::istringstream in(bytes);
  return torch::jit::load(in);
}

}  // namespace int8_internal

TORCH_LIBRARY(slimfit, m) { m.def("observe(Tensor(a) x, int id) -> Tensor(a)", int8_internal::ObserveKernel); }

// ---------------------------------------------------------------------------

}  // namespace slimfit
