#include "kernels/lsq_fake_quant.h"

#include <ATen/ATen.h>
#include <c10/cuda/CUDAGuard.h>

#include <cmath>
#include <tuple>

#include "absl/strings/str_cat.h"
#include "common/field_error.h"
#include "common/status_macros.h"
#include "common/torch_status.h"
#include "kernels/cuda_kernels.h"
#include "kernels/cuda_launch.h"

namespace slimfit {
namespace {

using kernels::LsqShape;

absl::StatusOr<LsqShape> Check(const at::Tensor* dy, const at::Tensor& x, const at::Tensor& scale,
                               const at::Tensor& zero_point, const LsqParams& p) {
  const c10::Device device = x.defined() ? x.device() : c10::Device(c10::kCPU);
  RETURN_IF_ERROR(kernels::CheckFloatTensor("x", x, device));
  if (p.axis < 0 || p.axis >= x.dim()) {
    return FieldError("axis", "not a dimension of x", p.axis, absl::StrCat("[0, ", x.dim(), ")"));
  }
  const int64_t channels = x.size(p.axis);
  for (const auto& [name, t] :
       {std::pair<const char*, const at::Tensor&>{"scale", scale}, {"zero_point", zero_point}}) {
    RETURN_IF_ERROR(kernels::CheckFloatTensor(name, t, device));
    if (t.dim() != 1 || t.size(0) != channels) {
      return FieldError(name, "not one value per channel", c10::str(t.sizes()),
                        absl::StrCat("[", channels, "] (x.size(axis))"));
    }
  }
  if (dy != nullptr) {
    RETURN_IF_ERROR(kernels::CheckFloatTensor("dy", *dy, device));
    if (dy->sizes() != x.sizes()) {
      return FieldError("dy", "not x's shape", c10::str(dy->sizes()), c10::str(x.sizes()));
    }
  }
  if (p.quant_min >= p.quant_max) {
    return FieldError("quant_min", "not below quant_max", p.quant_min, absl::StrCat("< quant_max = ", p.quant_max));
  }
  if (!std::isfinite(p.grad_factor)) return FieldError("grad_factor", "not finite", p.grad_factor, "a finite number");
  LsqShape s;
  s.channels = channels;
  for (int64_t d = 0; d < p.axis; ++d) s.outer *= x.size(d);
  for (int64_t d = p.axis + 1; d < x.dim(); ++d) s.inner *= x.size(d);
  s.quant_min = static_cast<int>(p.quant_min);
  s.quant_max = static_cast<int>(p.quant_max);
  return s;
}

float RoundedZeroPoint(float z, const LsqShape& s) {
  return std::fmin(std::fmax(std::nearbyint(z), static_cast<float>(s.quant_min)), static_cast<float>(s.quant_max));
}

// The CPU reference of both passes, element by element as the kernels.
at::Tensor ForwardReference(const at::Tensor& x, const at::Tensor& scale, const at::Tensor& zero_point,
                            const LsqShape& s) {
  const at::Tensor xc = x.contiguous(), sc = scale.contiguous(), zc = zero_point.contiguous();
  at::Tensor y = at::empty_like(xc);
  const float *px = xc.data_ptr<float>(), *ps = sc.data_ptr<float>(), *pz = zc.data_ptr<float>();
  float* py = y.data_ptr<float>();
  const float qmin = static_cast<float>(s.quant_min), qmax = static_cast<float>(s.quant_max);
  for (int64_t o = 0; o < s.outer; ++o) {
    for (int64_t c = 0; c < s.channels; ++c) {
      const float scale_c = ps[c], inv = 1.0f / scale_c, z = RoundedZeroPoint(pz[c], s);
      for (int64_t j = 0; j < s.inner; ++j) {
        const int64_t i = (o * s.channels + c) * s.inner + j;
        const float q = std::fmin(std::fmax(z + std::nearbyint(px[i] * inv), qmin), qmax);
        py[i] = (q - z) * scale_c;
      }
    }
  }
  return y;
}

LsqGradients BackwardReference(const at::Tensor& dy, const at::Tensor& x, const at::Tensor& scale,
                               const at::Tensor& zero_point, const LsqShape& s, float grad_factor) {
  const at::Tensor xc = x.contiguous(), gc = dy.contiguous(), sc = scale.contiguous(), zc = zero_point.contiguous();
  LsqGradients out{at::empty_like(xc), at::zeros_like(sc), at::zeros_like(sc)};
  const float *px = xc.data_ptr<float>(), *pg = gc.data_ptr<float>(), *ps = sc.data_ptr<float>(),
              *pz = zc.data_ptr<float>();
  float *pdx = out.dx.data_ptr<float>(), *pds = out.dscale.data_ptr<float>(), *pdz = out.dzero_point.data_ptr<float>();
  const float qmin = static_cast<float>(s.quant_min), qmax = static_cast<float>(s.quant_max);
  for (int64_t c = 0; c < s.channels; ++c) {
    const float scale_c = ps[c], inv = 1.0f / scale_c, z = RoundedZeroPoint(pz[c], s);
    float ds = 0.f, dz = 0.f;
    for (int64_t o = 0; o < s.outer; ++o) {
      for (int64_t j = 0; j < s.inner; ++j) {
        const int64_t i = (o * s.channels + c) * s.inner + j;
        const float q = z + std::nearbyint(px[i] * inv);
        if (q < qmin || q > qmax) {
          pdx[i] = 0.f;
          ds += pg[i] * ((q < qmin ? qmin : qmax) - z);
          dz -= pg[i] * scale_c;
        } else {
          pdx[i] = pg[i];
          ds += pg[i] * ((q - z) * scale_c - px[i]) * inv;
        }
      }
    }
    pds[c] = ds * grad_factor;
    pdz[c] = dz * grad_factor;
  }
  return out;
}

}  // namespace

absl::StatusOr<at::Tensor> LsqFakeQuantize(const at::Tensor& x, const at::Tensor& scale, const at::Tensor& zero_point,
                                           const LsqParams& params) {
  ASSIGN_OR_RETURN(const LsqShape s, Check(nullptr, x, scale, zero_point, params));
  if (!x.is_cuda()) {
    return TorchCallOr("LSQ fake quantisation", [&] { return ForwardReference(x, scale, zero_point, s); });
  }
  return TorchCallOr("LSQ fake quantisation on CUDA", [&]() -> absl::StatusOr<at::Tensor> {
    c10::cuda::CUDAGuard guard(x.device());
    const at::Tensor xc = x.contiguous(), sc = scale.contiguous(), zc = zero_point.contiguous();
    at::Tensor y = at::empty_like(xc);
    RETURN_IF_ERROR(
        kernels::CudaStatus(kernels::LaunchLsqForward(xc.data_ptr<float>(), sc.data_ptr<float>(), zc.data_ptr<float>(),
                                                      s, y.data_ptr<float>(), kernels::CurrentStream(x.device())),
                            "LSQ forward kernel"));
    return y;
  });
}

absl::StatusOr<LsqGradients> LsqFakeQuantizeBackward(const at::Tensor& dy, const at::Tensor& x, const at::Tensor& scale,
                                                     const at::Tensor& zero_point, const LsqParams& params) {
  ASSIGN_OR_RETURN(const LsqShape s, Check(&dy, x, scale, zero_point, params));
  const float grad_factor = static_cast<float>(params.grad_factor);
  if (!x.is_cuda()) {
    return TorchCallOr("LSQ backward", [&] { return BackwardReference(dy, x, scale, zero_point, s, grad_factor); });
  }
  return TorchCallOr("LSQ backward on CUDA", [&]() -> absl::StatusOr<LsqGradients> {
    c10::cuda::CUDAGuard guard(x.device());
    const at::Tensor xc = x.contiguous(), gc = dy.contiguous(), sc = scale.contiguous(), zc = zero_point.contiguous();
    LsqGradients out{at::empty_like(xc), at::empty_like(sc), at::empty_like(sc)};
    RETURN_IF_ERROR(
        kernels::CudaStatus(kernels::LaunchLsqBackward(gc.data_ptr<float>(), xc.data_ptr<float>(), sc.data_ptr<float>(),
                                                       zc.data_ptr<float>(), s, grad_factor, out.dx.data_ptr<float>(),
                                                       out.dscale.data_ptr<float>(), out.dzero_point.data_ptr<float>(),
                                                       kernels::CurrentStream(x.device())),
                            "LSQ backward kernel"));
    return out;
  });
}

absl::StatusOr<at::Tensor> LsqFakeQuantizeComposed(const at::Tensor& x, const at::Tensor& scale,
                                                   const at::Tensor& zero_point, const LsqParams& params) {
  RETURN_IF_ERROR(Check(nullptr, x, scale, zero_point, params).status());
  return TorchCallOr("torch._fake_quantize_learnable_per_channel_affine", [&] {
    return at::_fake_quantize_learnable_per_channel_affine(x, scale, zero_point, params.axis, params.quant_min,
                                                           params.quant_max, params.grad_factor);
  });
}

absl::StatusOr<LsqGradients> LsqFakeQuantizeBackwardComposed(const at::Tensor& dy, const at::Tensor& x,
                                                             const at::Tensor& scale, const at::Tensor& zero_point,
                                                             const LsqParams& params) {
  RETURN_IF_ERROR(Check(&dy, x, scale, zero_point, params).status());
  return TorchCallOr("torch._fake_quantize_learnable_per_channel_affine_backward", [&] {
    auto [dx, dscale, dzero_point] = at::_fake_quantize_learnable_per_channel_affine_backward(
        dy, x, scale, zero_point, params.axis, params.quant_min, params.quant_max, params.grad_factor);
    return LsqGradients{dx, dscale, dzero_point};
  });
}

}  // namespace slimfit
