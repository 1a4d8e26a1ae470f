#include "distributed/data_parallel.h"

#include <ATen/ATen.h>
#include <c10/core/GradMode.h>

#include <chrono>
#include <cstring>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_split.h"
#include "common/hash.h"
#include "common/status_macros.h"
#include "common/torch_status.h"

namespace slimfit {
namespace {

using Clock = std::chrono::steady_clock;

// Parameters and buffers, in the module's order (the same on every rank of
// one program).
std::vector<std::pair<std::string, at::Tensor>> State(Model& model) {
  std::vector<std::pair<std::string, at::Tensor>> out = model.NamedParameters();
  for (auto& [name, b] : model.NamedBuffers()) out.emplace_back(name, b);
  return out;
}

// FNV-1a over the tensor's bytes, masked to be non-negative (compared with
// max over ranks of x and of -x).
int64_t Fingerprint(const at::Tensor& t) {
  at::Tensor c = t.detach().contiguous().cpu();
  return static_cast<int64_t>(Fnv1a(c.data_ptr(), c.numel() * c.element_size()) & 0x3fffffffffffffffull);
}

}  // namespace

absl::Status DataParallel::BroadcastModel(Model& model) {
  if (group_.world_size() == 1) return absl::OkStatus();
  std::vector<at::Tensor> all;
  for (auto& [name, t] : State(model)) all.push_back(t.detach());
  // Tensors that are views or not contiguous are broadcast through a copy.
  std::vector<at::Tensor> flat;
  for (auto& t : all) flat.push_back(t.is_contiguous() ? t : t.contiguous());
  RETURN_IF_ERROR(group_.Broadcast(flat, 0), "data-parallel: broadcasting rank 0's weights");
  return TorchCall("data-parallel: broadcasting rank 0's weights", [&] {
    c10::NoGradGuard no_grad;
    for (size_t i = 0; i < all.size(); ++i) {
      if (!all[i].is_same(flat[i])) all[i].copy_(flat[i]);
    }
  });
}

absl::StatusOr<StepSync> DataParallel::Sync(Model& model, const StepReport& mine) {
  const auto t0 = Clock::now();
  const int world = group_.world_size();
  StepSync out;
  // Gradients weighted by this rank's rows, then the floating buffers, in
  // buckets; the step's numbers in a small float64 tensor of their own.
  std::vector<at::Tensor> grads, buffers;
  RETURN_IF_ERROR(TorchCall("data-parallel: collecting gradients", [&] {
    for (auto& [name, p] : model.NamedParameters()) {
      if (!p.requires_grad()) continue;
      if (!p.grad().defined()) p.mutable_grad() = at::zeros_like(p);
      grads.push_back(p.grad());
    }
    for (auto& [name, b] : model.NamedBuffers()) {
      if (at::isFloatingType(b.scalar_type())) buffers.push_back(b);
    }
  }));
  const double weight = mine.nonfinite ? 0.0 : static_cast<double>(mine.rows);
  std::vector<at::Tensor> buckets;
  std::vector<std::vector<at::Tensor>> members;  // the live tensors of each bucket
  std::vector<bool> is_grad_bucket;
  RETURN_IF_ERROR(TorchCall("data-parallel: filling buckets", [&] {
    auto fill = [&](const std::vector<at::Tensor>& ts, bool grad) {
      std::vector<at::Tensor> cur;
      int64_t bytes = 0;
      auto flush = [&] {
        if (cur.empty()) return;
        std::vector<at::Tensor> flat;
        for (auto& t : cur) flat.push_back(t.detach().reshape({-1}).to(at::kFloat));
        at::Tensor b = at::cat(flat);
        if (grad) b.mul_(weight);
        buckets.push_back(b);
        members.push_back(cur);
        is_grad_bucket.push_back(grad);
        cur.clear();
        bytes = 0;
      };
      for (const at::Tensor& t : ts) {
        cur.push_back(t);
        bytes += t.numel() * 4;
        if (bytes >= bucket_bytes_) flush();
      }
      flush();
    };
    fill(grads, true);
    fill(buffers, false);
    buckets.push_back(at::tensor(std::vector<double>{static_cast<double>(mine.rows), weight,
                                                     mine.nonfinite ? 0.0 : mine.loss_sum,
                                                     mine.nonfinite ? 1.0 : 0.0, mine.stop ? 1.0 : 0.0},
                                 at::kDouble));
  }));
  RETURN_IF_ERROR(group_.AllReduceSum(buckets), "data-parallel: all-reducing gradients");
  const at::Tensor step = buckets.back();
  const double* s = step.data_ptr<double>();
  out.rows = std::llround(s[0]);
  const double weights = s[1];
  out.loss = weights > 0 ? s[2] / weights : 0;
  out.nonfinite = s[3] > 0;
  out.stop = s[4] > 0;
  if (mine.global_rows > 0 && out.rows != mine.global_rows) {
    return absl::FailedPreconditionError(absl::StrFormat(
        "data-parallel: the ranks' shards add up to %d rows but the global batch has %d (every rank must run "
        "the same loader: same data, batch size and seed, sharded with data/sharded_loader.h)",
        out.rows, mine.global_rows));
  }
  RETURN_IF_ERROR(TorchCall("data-parallel: writing back gradients", [&] {
    c10::NoGradGuard no_grad;
    for (size_t k = 0; k + 1 < buckets.size(); ++k) {
      at::Tensor b = buckets[k];
      if (is_grad_bucket[k]) {
        b.div_(weights > 0 ? weights : 1.0);
      } else {
        b.div_(world);
      }
      int64_t at = 0;
      for (at::Tensor& t : members[k]) {
        const int64_t n = t.numel();
        t.copy_(b.narrow(0, at, n).view(t.sizes()));
        at += n;
      }
    }
  }));
  sync_seconds_ += std::chrono::duration<double>(Clock::now() - t0).count();
  ++syncs_;
  return out;
}

absl::Status DataParallel::CheckIdentical(Model& model, const std::string& when) {
  if (group_.world_size() == 1) return absl::OkStatus();
  std::vector<std::pair<std::string, at::Tensor>> state = State(model);
  std::vector<int64_t> fp;
  RETURN_IF_ERROR(TorchCall("data-parallel: fingerprinting", [&] {
    for (auto& [name, t] : state) fp.push_back(Fingerprint(t));
  }));
  at::Tensor mine = at::tensor(fp, at::kLong);
  std::vector<at::Tensor> both{mine.clone(), mine.neg()};
  RETURN_IF_ERROR(group_.AllReduceMax(both), "data-parallel: comparing weights");
  for (size_t i = 0; i < state.size(); ++i) {
    const int64_t hi = both[0][i].item<int64_t>(), lo = -both[1][i].item<int64_t>();
    if (hi != lo) {
      return absl::FailedPreconditionError(absl::StrFormat(
          "data-parallel: %s of the ranks differ %s (rank %d's fingerprint %d; range over ranks [%d, %d]): "
          "every rank must hold the same weights, buffers and pruning masks — a non-deterministic op, or "
          "ranks built from different code or data",
          state[i].first, when, group_.rank(), fp[i], lo, hi));
    }
  }
  return absl::OkStatus();
}

absl::StatusOr<Metrics> BroadcastMetrics(const Metrics& mine, Collective& group) {
  std::string text;
  for (const auto& [name, m] : mine.values()) {
    absl::StrAppend(&text, name, "\t", m.higher_is_better ? 1 : 0, "\t", absl::StrFormat("%.17g", m.value), "\n");
  }
  ASSIGN_OR_RETURN(std::vector<std::string> all, group.AllGather(text), "sharing rank 0's metrics");
  Metrics out;
  for (absl::string_view line : absl::StrSplit(all[0], '\n', absl::SkipEmpty())) {
    std::vector<std::string> f = absl::StrSplit(line, '\t');
    double v = 0;
    if (f.size() != 3 || !absl::SimpleAtod(f[2], &v)) {
      return absl::InternalError(absl::StrCat("rank 0 sent a malformed metric line: ", line));
    }
    out.Set(f[0], v, f[1] == "1");
  }
  for (const auto& [name, t] : mine.tensors()) out.tensors()[name] = t;  // local (not shared)
  return out;
}

absl::StatusOr<Metrics> EvaluateAcrossRanks(EvaluationFunction& evaluator, Model& model, DataLoader& full,
                                            DataLoader* shard, Collective& group) {
  if (group.world_size() == 1) return evaluator.Apply(model, full);
  auto* metrics = dynamic_cast<MetricsEvaluator*>(&evaluator);
  if (shard != nullptr && metrics != nullptr && metrics->Additive()) {
    return metrics->ApplyReduced(model, *shard, [&](std::vector<double>& state) -> absl::Status {
      // Same length on every rank first (a rank with no batch has less).
      at::Tensor len = at::full({2}, 0.0, at::kDouble);
      len[0] = static_cast<double>(state.size());
      len[1] = -static_cast<double>(state.size());
      std::vector<at::Tensor> l{len};
      RETURN_IF_ERROR(group.AllReduceMax(l));
      if (len[0].item<double>() != -len[1].item<double>()) {
        return absl::FailedPreconditionError(absl::StrFormat(
            "the ranks' metric states differ in length (%g vs %g): a rank saw no evaluation batch; use an "
            "eval split with at least as many samples as ranks",
            len[0].item<double>(), -len[1].item<double>()));
      }
      std::vector<at::Tensor> t{at::tensor(state, at::kDouble)};
      RETURN_IF_ERROR(group.AllReduceSum(t));
      std::memcpy(state.data(), t[0].data_ptr<double>(), state.size() * sizeof(double));
      return absl::OkStatus();
    });
  }
  ASSIGN_OR_RETURN(Metrics mine, evaluator.Apply(model, full));
  return BroadcastMetrics(mine, group);
}

}  // namespace slimfit
