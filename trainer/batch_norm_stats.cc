#include "trainer/batch_norm_stats.h"

#include <ATen/ATen.h>
#include <ATen/core/grad_mode.h>

#include <map>
#include <string>
#include <utility>

#include "absl/strings/match.h"
#include "common/status_macros.h"
#include "common/torch_status.h"
#include "trainer/trainable.h"

namespace slimfit {
namespace {

// One batch norm's buffers and what the update gathers.
struct Norm {
  at::Tensor mean, var, tracked;     // the module's buffers (tracked may be undefined)
  at::Tensor saved_mean, saved_var;  // to restore
  int64_t saved_tracked = 0;
  double momentum = 0;           // measured on the first batch; 0: never updated
  at::Tensor sum_mean, sum_var;  // of the batch statistics, in double
};

std::map<std::string, Norm> FindNorms(const Model& model) {
  std::map<std::string, Norm> norms;
  auto prefix_of = [](const std::string& name, const std::string& leaf) -> std::pair<bool, std::string> {
    if (name == leaf) return {true, ""};
    if (absl::EndsWith(name, "." + leaf)) return {true, name.substr(0, name.size() - leaf.size() - 1)};
    return {false, ""};
  };
  for (const auto& [name, t] : model.NamedBuffers()) {
    if (auto [is, p] = prefix_of(name, "running_mean"); is) norms[p].mean = t;
    if (auto [is, p] = prefix_of(name, "running_var"); is) norms[p].var = t;
    if (auto [is, p] = prefix_of(name, "num_batches_tracked"); is) norms[p].tracked = t;
  }
  // A removed residual block's norms keep empty buffers (graph/depth.h):
  // nothing reads them, nothing to update.
  for (auto it = norms.begin(); it != norms.end();) {
    const Norm& n = it->second;
    const bool live = n.mean.defined() && n.var.defined() && n.mean.numel() > 0;
    it = live ? std::next(it) : norms.erase(it);
  }
  return norms;
}

void ZeroStatistics(std::map<std::string, Norm>& norms) {
  for (auto& [path, n] : norms) {
    n.mean.zero_();
    n.var.zero_();
    if (n.tracked.defined()) n.tracked.zero_();
  }
}

}  // namespace

absl::StatusOr<int> UpdateBatchNorm(Model& model, DataLoader& loader, int batches, ForwardPass& forward_pass) {
  if (batches <= 0 || FindNorms(model).empty()) return 0;
  RETURN_IF_ERROR(MakeTrainingModeFollowModule(model).status());
  std::map<std::string, Norm> norms = FindNorms(model);  // the copy's buffers
  RETURN_IF_ERROR(TorchCall("saving batch-norm statistics", [&] {
    for (auto& [path, n] : norms) {
      n.saved_mean = n.mean.clone();
      n.saved_var = n.var.clone();
      n.saved_tracked = n.tracked.defined() ? n.tracked.item<int64_t>() : 0;
      n.sum_mean = at::zeros(n.mean.sizes(), n.mean.options().dtype(at::kDouble));
      n.sum_var = at::zeros(n.var.sizes(), n.var.options().dtype(at::kDouble));
    }
  }));
  const bool was_training = model.is_training();
  model.Train();
  at::NoGradGuard no_grad;
  bool first = true;
  auto seen = ForBatches(loader, batches, [&](const Batch& batch) -> absl::Status {
    RETURN_IF_ERROR(TorchCall("zeroing batch-norm statistics", [&] { ZeroStatistics(norms); }));
    RETURN_IF_ERROR(forward_pass.Forward(model, batch, model.device()).status());
    if (first) {
      first = false;
      // From zero: r1 = m v; the same batch again from r1: r2 = m v (2 - m).
      std::map<std::string, std::pair<at::Tensor, at::Tensor>> r1;
      RETURN_IF_ERROR(TorchCall("measuring batch-norm momentum", [&] {
        for (auto& [path, n] : norms) {
          r1[path] = {n.mean.clone(), n.var.clone()};
          if (n.tracked.defined()) n.tracked.zero_();
        }
      }));
      RETURN_IF_ERROR(forward_pass.Forward(model, batch, model.device()).status());
      RETURN_IF_ERROR(TorchCall("measuring batch-norm momentum", [&] {
        for (auto& [path, n] : norms) {
          const double s1 = r1[path].second.sum().item<double>();
          const double s2 = n.var.sum().item<double>();
          n.momentum = s1 > 0 ? 2 - s2 / s1 : 0;
          if (!(n.momentum > 1e-6 && n.momentum <= 1 + 1e-6)) n.momentum = 0;  // never updated
          n.mean.copy_(r1[path].first);
          n.var.copy_(r1[path].second);
        }
      }));
    }
    return TorchCall("gathering batch-norm statistics", [&] {
      for (auto& [path, n] : norms) {
        if (n.momentum == 0) continue;
        n.sum_mean.add_(n.mean.to(at::kDouble), 1 / n.momentum);
        n.sum_var.add_(n.var.to(at::kDouble), 1 / n.momentum);
      }
    });
  });
  model.Train(was_training);
  const int count = seen.ok() ? *seen : 0;
  const absl::Status written = TorchCall("setting batch-norm statistics", [&] {
    for (auto& [path, n] : norms) {
      if (!seen.ok() || count == 0 || n.momentum == 0) {
        n.mean.copy_(n.saved_mean);
        n.var.copy_(n.saved_var);
        if (n.tracked.defined()) n.tracked.fill_(n.saved_tracked);
        continue;
      }
      n.mean.copy_(n.sum_mean / count);
      n.var.copy_(n.sum_var / count);
      if (n.tracked.defined()) n.tracked.fill_(n.saved_tracked + count);
    }
  });
  RETURN_IF_ERROR(seen.status());
  RETURN_IF_ERROR(written);
  return count;
}

}  // namespace slimfit
