// Weight-magnitude pruners: l1_filter, l2_filter and fpgm (structured), and
// level (unstructured). Each scores every producer slot of a channel: the
// layer's own filter and, for channels that pass through depthwise
// convolutions, the depthwise filters too.
#include <ATen/ATen.h>

#include "common/registry.h"
#include "common/torch_status.h"
#include "pruners/pruner.h"

namespace slimfit {
namespace {

// Rows of `t` along `dim`, flattened: [t.size(dim), rest].
at::Tensor Rows(const at::Tensor& t, int dim) { return t.movedim(dim, 0).reshape({t.size(dim), -1}); }

class NormPruner : public Pruner {
 public:
  NormPruner(std::string name, int p) : Pruner(std::move(name)), p_(p) {}
  absl::StatusOr<ChannelScores> ScoreChannels(Model& model, const PrunerContext& ctx) override {
    return TorchCallOr(name(), [&] {
      return ScoreSlots(model, *ctx.graph, {SlotRole::kProducerWeight}, [&](const at::Tensor& t, int dim) {
        return Rows(t.to(at::kDouble), dim).norm(p_, {1});
      });
    });
  }

 private:
  int p_;
};

// FPGM (He et al. 2019): a filter close to the geometric median of its
// layer's filters is the most replaceable; its score is the sum of its
// distances to all other filters.
class FpgmPruner : public Pruner {
 public:
  FpgmPruner() : Pruner("fpgm") {}
  absl::StatusOr<ChannelScores> ScoreChannels(Model& model, const PrunerContext& ctx) override {
    return TorchCallOr(name(), [&] {
      return ScoreSlots(model, *ctx.graph, {SlotRole::kProducerWeight}, [](const at::Tensor& t, int dim) {
        at::Tensor rows = Rows(t.to(at::kDouble), dim);
        return at::cdist(rows, rows).sum(1);
      });
    });
  }
};

// Unstructured magnitude: |w|.
class LevelPruner : public Pruner {
 public:
  LevelPruner() : Pruner("level") {}
  bool structured() const override { return false; }
  absl::StatusOr<std::map<std::string, at::Tensor>> ScoreWeights(Model& model,
                                                                 const std::set<std::string>& weights,
                                                                 const PrunerContext& ctx) override {
    return TorchCallOr(name(), [&] {
      std::map<std::string, at::Tensor> out;
      for (auto& [n, t] : model.NamedParameters()) {
        if (weights.count(n)) out[n] = t.detach().abs();
      }
      return out;
    });
  }
};

template <typename T, typename... Args>
PrunerFactory Make(Args... args) {
  return [=](const PruningConfig&) -> absl::StatusOr<std::unique_ptr<Pruner>> {
    return std::unique_ptr<Pruner>(new T(args...));
  };
}

const Registration<PrunerFactory> kL1(PrunerRegistry(), "l1_filter", Make<NormPruner>("l1_filter", 1));
const Registration<PrunerFactory> kL2(PrunerRegistry(), "l2_filter", Make<NormPruner>("l2_filter", 2));
const Registration<PrunerFactory> kFpgm(PrunerRegistry(), "fpgm", Make<FpgmPruner>());
const Registration<PrunerFactory> kLevel(PrunerRegistry(), "level", Make<LevelPruner>());

}  // namespace
}  // namespace slimfit
