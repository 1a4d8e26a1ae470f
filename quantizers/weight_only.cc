// Int8Quantizer::WeightOnly: weights stored in 8 or 4 bits, dequantized by a
// TorchScript method of the model itself (plain aten ops), so the file is
// ~4x / ~8x smaller in its weights and still loads anywhere.
#include <ATen/ATen.h>
#include <torch/csrc/jit/api/module.h>
#include <torch/csrc/jit/ir/ir.h>
#include <torch/csrc/jit/passes/dead_code_elimination.h>

#include "absl/strings/str_cat.h"
#include "common/field_error.h"
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

absl::StatusOr<Model> Int8Quantizer::WeightOnly(int bits, const std::set<int>& eight_bit) const {
  if (bits != 8 && bits != 4) {
    return FieldError("weight_only.bits", "not a supported width", bits, "8, 4");
  }
  ASSIGN_OR_RETURN(Model out, prepared_->Reloaded());
  // Codes and scales first (errors as Status), then the graph edit.
  struct Packed {
    const QuantLayer* layer;
    int bits;
    at::Tensor codes;  // int8 codes, or packed 4-bit pairs (uint8)
    at::Tensor scale;  // float [out_channels]
  };
  std::vector<Packed> packed;
  for (size_t i = 0; i < layers_.size(); ++i) {
    const QuantLayer& l = layers_[i];
    if (!l.selected) continue;
    const int layer_bits = bits == 4 && eight_bit.count(static_cast<int>(i)) ? 8 : bits;
    ObserverConfig oc = config_.weight();
    oc.set_bits(layer_bits);
    oc.set_symmetric(true);
    const at::Tensor w = weights_.at(l.weight_param).detach().to(at::kFloat).contiguous();
    ASSIGN_OR_RETURN(QuantParams p, ComputeQuantParams(oc, w, "weight"));
    at::Tensor scale = p.scale.to(at::kFloat).reshape({-1});
    if (scale.numel() == 1) scale = scale.expand({w.size(0)}).contiguous();
    std::vector<int64_t> shape(w.dim(), 1);
    shape[0] = -1;
    at::Tensor codes = at::round(w / scale.view(shape)).clamp(p.qmin, p.qmax);
    if (layer_bits == 8) {
      codes = codes.to(at::kChar);
    } else {
      at::Tensor u = (codes + 8).to(at::kByte).flatten();
      if (u.numel() % 2) u = at::cat({u, at::zeros({1}, u.options())});
      u = u.view({-1, 2});
      codes = at::bitwise_or(u.select(1, 0), u.select(1, 1) * 16).contiguous();
    }
    packed.push_back({&l, layer_bits, codes, scale});
  }
  RETURN_IF_ERROR(TorchCall("weight-only quantization", [&] {
    torch::jit::Module& m = out.module();
    m.define(kDequantizeSource);
    auto graph = m.get_method("forward").graph();
    std::map<std::string, torch::jit::Node*> getattrs;
    for (torch::jit::Node* n : graph->nodes()) {
      if (n->kind() == c10::prim::GetAttr && n->input(0) == graph->inputs()[0]) getattrs[n->s(c10::attr::name)] = n;
    }
    torch::jit::Value* self = graph->inputs()[0];
    for (const Packed& p : packed) {
      const QuantLayer& l = *p.layer;
      if (!getattrs.count(l.weight_param)) continue;
      torch::jit::Node* get = getattrs.at(l.weight_param);
      torch::jit::WithInsertPoint guard(get->next());
      const std::string qname = absl::StrCat(l.weight_param, "_q"), sname = absl::StrCat(l.weight_param, "_scale");
      m.register_buffer(qname, p.codes);
      m.register_buffer(sname, p.scale);
      std::vector<torch::jit::Value*> args = {self, graph->insertGetAttr(self, qname), graph->insertGetAttr(self, sname)};
      if (p.bits == 4) args.push_back(graph->insertConstant(c10::IValue(l.weight_shape)));
      torch::jit::Node* call = graph->create(c10::prim::CallMethod, args);
      call->s_(c10::attr::name, p.bits == 8 ? "slimfit_dequantize_int8" : "slimfit_dequantize_int4");
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
