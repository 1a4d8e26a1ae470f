#include "model/weight_layout.h"

#include <ATen/ATen.h>
#include <c10/core/GradMode.h>

#include "common/torch_status.h"

namespace slimfit {
namespace {

bool IsConvWeightLike(const at::Tensor& t) { return t.dim() == 4 && at::isFloatingType(t.scalar_type()); }

}  // namespace

at::MemoryFormat PreferredWeightFormat(const Model& model) {
  bool any = false;
  for (auto& [name, p] : model.NamedParameters()) {
    if (!IsConvWeightLike(p)) continue;
    if (!p.device().is_cpu()) return at::MemoryFormat::Contiguous;
    // oneDNN's NHWC kernels want channel counts in multiples of 8; at
    // others (pruned widths: 5, 11, 12, ...) they ran 1.2-2.5x slower than
    // NCHW (measured per width in model/weight_layout.h). A stem reading 1-4
    // image channels, or a depthwise conv (1 per group), is fine.
    const int64_t out = p.size(0), in = p.size(1);
    if (out % 8 != 0 || (in > 4 && in % 8 != 0)) return at::MemoryFormat::Contiguous;
    any = true;
  }
  return any ? at::MemoryFormat::ChannelsLast : at::MemoryFormat::Contiguous;
}

std::string MemoryFormatName(at::MemoryFormat format) {
  return format == at::MemoryFormat::ChannelsLast ? "channels-last" : "contiguous";
}

absl::Status WeightLayout::Apply(Model& model, at::MemoryFormat format) {
  Restore();
  if (format == at::MemoryFormat::Contiguous) return absl::OkStatus();
  format_ = format;
  return TorchCall("laying out the weights " + MemoryFormatName(format), [&] {
    c10::NoGradGuard no_grad;
    for (auto& [name, p] : model.NamedParameters()) {
      // Only NCHW-contiguous ones (a tied weight comes twice and is changed
      // once). Not `p.contiguous(format)`: it returns a weight contiguous in
      // both layouts as it is, with strides a convolution reads as NCHW.
      if (!IsConvWeightLike(p) || !p.is_contiguous() || p.suggest_memory_format() == format) continue;
      std::vector<int64_t> strides = p.strides().vec();
      p.set_data(p.clone(format));
      changed_.emplace_back(p, std::move(strides));
    }
  });
}

void WeightLayout::Restore() {
  if (changed_.empty()) return;
  c10::NoGradGuard no_grad;
  for (auto& [p, strides] : changed_) {
    // Runs in a destructor: nothing may escape. A copy that cannot be made
    // (out of memory) leaves that weight channels-last: the same values.
    try {
      at::Tensor back = at::empty_strided(p.sizes(), strides, p.options());
      back.copy_(p);
      p.set_data(back);
    } catch (...) {
    }
  }
  changed_.clear();
}

}  // namespace slimfit
