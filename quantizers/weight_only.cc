// Int8Quantizer::WeightOnly: weights stored in 8 or 4 bits, dequantized by a
// TorchScript method of the model itself (plain aten ops), so the file is
// ~4x / ~8x smaller in its weights and still loads anywhere.
#include <ATen/ATen.h>
#include <ATen/core/grad_mode.h>
#include <torch/csrc/jit/api/module.h>
#include <torch/csrc/jit/ir/ir.h>
#include <torch/csrc/jit/passes/dead_code_elimination.h>

#include "absl/strings/str_cat.h"
#include "common/status_macros.h"
#include "common/torch_status.h"
#include "quantizers/int8.h"

namespace slimfit {
namespace {

constexpr char kDequantizeSource[] = R"JIT(
def slimfit_dequantize_int8(self, q: Tensor, scale: Tensor) -> Tensor:
    shape = [-1]
    for _ in range(q.dim() - 1):
        shape.append(1)
    return q.float() * scale.view(shape)

def slimfit_dequantize_int4(self, packed: Tensor, scale: Tensor, size: List[int]) -> Tensor:
    low = torch.bitwise_and(packed, 15)
    high = torch.div(packed, 16, rounding_mode='floor')
    n = 1
    for d in size:
        n = n * d
    codes = torch.stack([low, high], 1).flatten()[:n].float() - 8.0
    shape = [-1]
    for _ in range(len(size) - 1):
        shape.append(1)
    return codes.view(size) * scale.view(shape)
)JIT";

}  // namespace

absl::StatusOr<Model> Int8Quantizer::WeightOnly(int bits) const {
  if (bits != 8 && bits != 4) {
    return absl::InvalidArgumentError(absl::StrCat("weight_only.bits: ", bits, "; must be 8 or 4"));
  }
  ASSIGN_OR_RETURN(Model out, prepared_->Reloaded());
  ObserverConfig oc = config_.weight();
  oc.set_bits(bits);
  oc.set_symmetric(true);
  RETURN_IF_ERROR(TorchCall("weight-only quantization", [&] {
    at::NoGradGuard no_grad;
    torch::jit::Module& m = out.module();
    m.define(kDequantizeSource);
    auto graph = m.get_method("forward").graph();
    std::map<std::string, torch::jit::Node*> getattrs;
    for (torch::jit::Node* n : graph->nodes()) {
      if (n->kind() == c10::prim::GetAttr && n->input(0) == graph->inputs()[0]) getattrs[n->s(c10::attr::name)] = n;
    }
    for (const QuantLayer& l : layers_) {
      if (!l.selected || !getattrs.count(l.weight_param)) continue;
      const at::Tensor w = weights_.at(l.weight_param).detach().to(at::kFloat).contiguous();
      auto observer = MakeObserver(oc, "weight");
      if (!observer.ok()) throw std::runtime_error(std::string(observer.status().message()));
      absl::Status s = (*observer)->Observe(w);
      auto p = s.ok() ? (*observer)->Compute() : absl::StatusOr<QuantParams>(s);
      if (!p.ok()) throw std::runtime_error(std::string(p.status().message()));
      at::Tensor scale = p->scale.to(at::kFloat);
      if (scale.numel() == 1) scale = scale.expand({w.size(0)}).contiguous();
      std::vector<int64_t> shape(w.dim(), 1);
      shape[0] = -1;
      const at::Tensor view_scale = scale.view(shape);
      at::Tensor codes = at::round(w / view_scale).clamp(p->qmin, p->qmax);
      torch::jit::Node* get = getattrs.at(l.weight_param);
      torch::jit::WithInsertPoint guard(get->next());
      const std::string qname = absl::StrCat(l.weight_param, "_q"), sname = absl::StrCat(l.weight_param, "_scale");
      m.register_buffer(sname, scale);
      torch::jit::Node* call = nullptr;
      if (bits == 8) {
        m.register_buffer(qname, codes.to(at::kChar));
        call = graph->create(c10::prim::CallMethod,
                             {graph->inputs()[0], graph->insertGetAttr(graph->inputs()[0], qname),
                              graph->insertGetAttr(graph->inputs()[0], sname)});
        call->s_(c10::attr::name, "slimfit_dequantize_int8");
      } else {
        at::Tensor u = (codes + 8).to(at::kByte).flatten();
        if (u.numel() % 2) u = at::cat({u, at::zeros({1}, u.options())});
        u = u.view({-1, 2});
        at::Tensor packed = at::bitwise_or(u.select(1, 0), u.select(1, 1) * 16).contiguous();
        m.register_buffer(qname, packed);
        torch::jit::Value* size = graph->insertConstant(c10::IValue(w.sizes().vec()));
        call = graph->create(c10::prim::CallMethod,
                             {graph->inputs()[0], graph->insertGetAttr(graph->inputs()[0], qname),
                              graph->insertGetAttr(graph->inputs()[0], sname), size});
        call->s_(c10::attr::name, "slimfit_dequantize_int4");
      }
      call->output()->setType(c10::TensorType::get());
      graph->insertNode(call);
      get->output()->replaceAllUsesWith(call->output());
      get->destroy();
      // The float weight leaves the model.
      m._ivalue()->unsafeRemoveAttr(l.weight_param);
      m.type()->unsafeRemoveAttribute(l.weight_param);
    }
    torch::jit::EliminateDeadCode(graph);
  }));
  // A save/load round trip checks the edited model is valid TorchScript.
  return out.Reloaded();
}

}  // namespace slimfit
