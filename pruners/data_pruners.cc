// Data-driven pruners: taylor (gradients), apoz and activation_mean
// (activations) over training batches, and slim (batch-norm scales after a
// sparsity-training phase).
#include <ATen/ATen.h>
#include <ATen/core/grad_mode.h>

#include "absl/strings/str_cat.h"
#include "common/field_error.h"
#include "common/registry.h"
#include "common/status_macros.h"
#include "common/torch_status.h"
#include "graph/capture.h"
#include "model/device.h"
#include "pruners/pruner.h"

namespace slimfit {
namespace {

constexpr int kDefaultBatches = 8;

absl::Status RequireData(const Pruner& p, const PrunerContext& ctx, bool loss) {
  if (ctx.data == nullptr || ctx.forward_pass == nullptr || (loss && ctx.loss == nullptr)) {
    return absl::FailedPreconditionError(absl::StrCat(
        "pruner \"", p.name(), "\" scores channels on training batches: give it data (and a loss)"));
  }
  return absl::OkStatus();
}

// Molchanov et al. 2019: the loss change when a channel's group of weights is
// removed, to first order: (Σ_group w · ∂L/∂w)², summed over batches. The
// group is every parameter slot of the channel (filter, bias, bn γ and β).
class TaylorPruner : public Pruner {
 public:
  explicit TaylorPruner(int batches) : Pruner("taylor"), batches_(batches) {}
  bool needs_data() const override { return true; }
  absl::StatusOr<ChannelScores> ScoreChannels(Model& model, const PrunerContext& ctx) override {
    RETURN_IF_ERROR(RequireData(*this, ctx, /*loss=*/true));
    const DependencyGraph& g = *ctx.graph;
    ChannelScores scores = EmptyScores(g);
    // Where the loss runs (a trainer may have moved it to a CUDA device):
    // the model goes there for the scoring and comes back after it.
    ASSIGN_OR_RETURN(ModelOnDevice on_device, ModelOnDevice::Enter(model, ctx.loss->device()), "taylor");
    std::map<std::string, at::Tensor> params;
    for (auto& [n, t] : model.NamedParameters()) params.emplace(n, t);
    // Eval mode: gradients without touching batch-norm running statistics.
    const bool was_training = model.is_training();
    model.Eval();
    absl::StatusOr<int> s = ForBatches(*ctx.data, batches_, [&](const Batch& batch) -> absl::Status {
      for (auto& [n, t] : params) {
        if (t.grad().defined()) t.mutable_grad().zero_();
      }
      ASSIGN_OR_RETURN(LossTerms terms, (*ctx.loss)(model, batch));
      return TorchCall("taylor: backward", [&] {
        at::AutoGradMode grad(true);
        terms.Total().backward();
        ChannelScores batch_sum = EmptyScores(g);
        for (const TensorSlot& slot : g.slots) {
          if (slot.role == SlotRole::kConsumerWeight || slot.role == SlotRole::kNormStat) continue;
          auto it = params.find(slot.tensor);
          if (it == params.end() || !it->second.grad().defined()) continue;
          at::Tensor wg = (it->second.detach() * it->second.grad()).to(at::kCPU, at::kDouble);
          at::Tensor per = wg.movedim(slot.dim, 0).reshape({wg.size(slot.dim), -1}).sum(1);
          auto acc = per.accessor<double, 1>();
          for (size_t i = 0; i < slot.channels.size(); ++i) {
            const ChannelRef& c = slot.channels[i];
            if (c.space >= 0) batch_sum[c.space][c.channel] += acc[i];
          }
        }
        for (size_t sp = 0; sp < scores.size(); ++sp) {
          for (size_t c = 0; c < scores[sp].size(); ++c) scores[sp][c] += batch_sum[sp][c] * batch_sum[sp][c];
        }
      });
    });
    for (auto& [n, t] : params) {
      if (t.grad().defined()) t.mutable_grad().zero_();
    }
    model.Train(was_training);
    RETURN_IF_ERROR(s.status());
    return scores;
  }

 private:
  int batches_;
};

// Activation statistics at the graph's taps (post-activation tensors):
// apoz scores 1 - (fraction of zeros), activation_mean scores mean |a|.
class ActivationPruner : public Pruner {
 public:
  ActivationPruner(std::string name, bool apoz, int batches)
      : Pruner(std::move(name)), apoz_(apoz), batches_(batches) {}
  bool needs_data() const override { return true; }
  absl::StatusOr<ChannelScores> ScoreChannels(Model& model, const PrunerContext& ctx) override {
    RETURN_IF_ERROR(RequireData(*this, ctx, /*loss=*/false));
    const DependencyGraph& g = *ctx.graph;
    ChannelScores scores = EmptyScores(g);
    std::vector<torch::jit::Value*> values;
    for (const auto& tap : g.taps) values.push_back(tap.value);
    ASSIGN_OR_RETURN(TensorCapture capture, TensorCapture::Create(*g.graph, values));  // compiled once
    const bool was_training = model.is_training();
    model.Eval();
    absl::StatusOr<int> seen = ForBatches(*ctx.data, batches_, [&](const Batch& batch) -> absl::Status {
      ASSIGN_OR_RETURN(ModelInputs inputs, ctx.forward_pass->ExtractModelInputs(batch));
      ASSIGN_OR_RETURN(Captured c, capture.Run(model, inputs));
      return TorchCall(name(), [&] {
        for (size_t t = 0; t < g.taps.size(); ++t) {
          const auto& tap = g.taps[t];
          if (!c.tensors[t].defined()) continue;
          at::Tensor a = c.tensors[t].detach().to(at::kDouble).movedim(tap.dim, 0);
          a = a.reshape({a.size(0), -1});
          at::Tensor per = apoz_ ? 1.0 - a.eq(0).to(at::kDouble).mean(1) : a.abs().mean(1);
          auto acc = per.accessor<double, 1>();
          for (size_t i = 0; i < tap.channels.size(); ++i) {
            const ChannelRef& ch = tap.channels[i];
            if (ch.space >= 0) scores[ch.space][ch.channel] += acc[i];
          }
        }
      });
    });
    model.Train(was_training);
    RETURN_IF_ERROR(seen.status());
    if (*seen == 0) return absl::FailedPreconditionError(absl::StrCat(name(), ": the data loader is empty"));
    return scores;
  }

 private:
  bool apoz_;
  int batches_;
};

// Liu et al. 2017 (network slimming): |γ| of every batch norm the channel
// passes through, after training with lambda * Σ|γ| (see prune.h).
class SlimPruner : public Pruner {
 public:
  SlimPruner(double lambda, int epochs) : Pruner("slim"), lambda_(lambda), epochs_(epochs) {}
  absl::Status CheckApplicable(const DependencyGraph& graph) const override {
    for (const TensorSlot& s : graph.slots) {
      if (s.role == SlotRole::kNormWeight) return absl::OkStatus();
    }
    return absl::FailedPreconditionError(
        "pruner \"slim\" scores channels by batch-norm scales, and this model has no batch norm after a "
        "prunable layer");
  }
  absl::StatusOr<ChannelScores> ScoreChannels(Model& model, const PrunerContext& ctx) override {
    RETURN_IF_ERROR(CheckApplicable(*ctx.graph));
    return TorchCallOr(name(), [&] {
      // Raw |γ|, not mean-normalised: slimming compares scales across layers.
      ChannelScores out = EmptyScores(*ctx.graph);
      std::map<std::string, at::Tensor> params;
      for (auto& [n, t] : model.NamedParameters()) params.emplace(n, t);
      for (const TensorSlot& slot : ctx.graph->slots) {
        if (slot.role != SlotRole::kNormWeight || !params.count(slot.tensor)) continue;
        at::Tensor g = params[slot.tensor].detach().to(at::kDouble).abs();
        auto acc = g.accessor<double, 1>();
        for (size_t i = 0; i < slot.channels.size(); ++i) {
          const ChannelRef& c = slot.channels[i];
          if (c.space >= 0) out[c.space][c.channel] += acc[i];
        }
      }
      return out;
    });
  }
  bool normalize_per_space() const override { return false; }
  ExtraTerm SparsityTerm() const override { return BatchNormL1Term(lambda_); }
  int sparsity_epochs() const override { return epochs_; }

 private:
  double lambda_;
  int epochs_;
};

absl::Status CheckBatches(const std::string& field, int batches) {
  if (batches < 0) {
    return FieldError(field, "negative", batches, ">= 1 (0 = 8)");
  }
  return absl::OkStatus();
}

const Registration<PrunerFactory> kTaylor(
    PrunerRegistry(), "taylor", [](const PruningConfig& c) -> absl::StatusOr<std::unique_ptr<Pruner>> {
      RETURN_IF_ERROR(CheckBatches("pruning.taylor.batches", c.taylor().batches()));
      return std::unique_ptr<Pruner>(new TaylorPruner(c.taylor().batches() ? c.taylor().batches() : kDefaultBatches));
    });
const Registration<PrunerFactory> kApoz(
    PrunerRegistry(), "apoz", [](const PruningConfig& c) -> absl::StatusOr<std::unique_ptr<Pruner>> {
      RETURN_IF_ERROR(CheckBatches("pruning.apoz.batches", c.apoz().batches()));
      return std::unique_ptr<Pruner>(
          new ActivationPruner("apoz", true, c.apoz().batches() ? c.apoz().batches() : kDefaultBatches));
    });
const Registration<PrunerFactory> kActivationMean(
    PrunerRegistry(), "activation_mean", [](const PruningConfig& c) -> absl::StatusOr<std::unique_ptr<Pruner>> {
      const int b = c.activation_mean().batches();
      RETURN_IF_ERROR(CheckBatches("pruning.activation_mean.batches", b));
      return std::unique_ptr<Pruner>(new ActivationPruner("activation_mean", false, b ? b : kDefaultBatches));
    });
const Registration<PrunerFactory> kSlim(
    PrunerRegistry(), "slim", [](const PruningConfig& c) -> absl::StatusOr<std::unique_ptr<Pruner>> {
      const double lambda = c.slim().l1_lambda() == 0 ? 1e-4 : c.slim().l1_lambda();
      if (lambda < 0 || lambda > 1) {
        return FieldError("pruning.slim.l1_lambda", "out of range", c.slim().l1_lambda(), "(0, 1] (0 = 1e-4)");
      }
      if (c.slim().sparsity_epochs() < 0) {
        return FieldError("pruning.slim.sparsity_epochs", "negative", c.slim().sparsity_epochs(), ">= 0");
      }

      return std::unique_ptr<Pruner>(
          new SlimPruner(lambda, c.slim().has_sparsity_epochs() ? c.slim().sparsity_epochs() : 2));
    });

}  // namespace
}  // namespace slimfit
