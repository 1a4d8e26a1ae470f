// Optimizer factories: sgd, adam, adamw, rmsprop, adagrad, with parameter
// groups.
#include <torch/optim/adagrad.h>
#include <torch/optim/adam.h>
#include <torch/optim/adamw.h>
#include <torch/optim/rmsprop.h>
#include <torch/optim/sgd.h>

#include <set>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/field_error.h"
#include "common/regex.h"
#include "common/status_macros.h"
#include "common/text_proto.h"
#include "common/torch_status.h"
#include "graph/layer_table.h"
#include "optimizers/factories.h"

namespace slimfit {
namespace {

absl::Status Range(const std::string& field, double v, double lo, double hi, bool lo_open,
                   bool hi_open) {
  const bool ok = (lo_open ? v > lo : v >= lo) && (hi_open ? v < hi : v <= hi);
  if (ok) return absl::OkStatus();
  return FieldError(field, "out of range", v, absl::StrCat(lo_open ? "(" : "[", lo, ", ", hi, hi_open ? ")" : "]"));
}

struct GroupSpec {
  std::unique_ptr<RE2> regex;
  ParamGroupConfig::Kind kind;
  std::optional<double> weight_decay;
  double lr_scale = 1;
};

// Validated optimizer settings; Make() builds the torch optimizer.
class ConfigOptimizerFactory : public NativeOptimizerFactory {
 public:
  ConfigOptimizerFactory(OptimizerConfig config, std::vector<GroupSpec> groups)
      : config_(std::move(config)), groups_(std::move(groups)) {}

  absl::StatusOr<std::unique_ptr<torch::optim::Optimizer>> Make(Model& model) override {
    std::set<std::string> norm_params;
    bool needs_graph = false;
    for (const auto& g : groups_) needs_graph |= g.kind == ParamGroupConfig::NORM;
    if (needs_graph) {
      ASSIGN_OR_RETURN(LayerTable table, BuildLayerTable(model), AtField("param_groups"));
      for (const Layer& l : table.layers) {
        if (l.op_type == "BatchNorm" || l.op_type == "LayerNorm" || l.op_type == "GroupNorm") {
          norm_params.insert(l.parameters.begin(), l.parameters.end());
        }
      }
    }
    // Bucket each parameter into the first matching group (index groups_.size() = defaults).
    std::vector<std::vector<at::Tensor>> buckets(groups_.size() + 1);
    for (auto& [name, p] : model.NamedParameters()) {
      if (!p.requires_grad()) continue;
      const bool is_bias = name == "bias" || absl::EndsWith(name, ".bias");
      const bool is_norm = norm_params.count(name) > 0;
      size_t chosen = groups_.size();
      for (size_t i = 0; i < groups_.size(); ++i) {
        const GroupSpec& g = groups_[i];
        if (g.regex != nullptr && !FullMatch(*g.regex, name)) continue;
        if (g.kind == ParamGroupConfig::BIAS && !is_bias) continue;
        if (g.kind == ParamGroupConfig::NORM && !is_norm) continue;
        if (g.kind == ParamGroupConfig::WEIGHT && (is_bias || is_norm)) continue;
        chosen = i;
        break;
      }
      buckets[chosen].push_back(p);
    }
    return TorchCallOr("", [&]() -> absl::StatusOr<std::unique_ptr<torch::optim::Optimizer>> {
      std::vector<torch::optim::OptimizerParamGroup> param_groups;
      for (size_t i = 0; i <= groups_.size(); ++i) {
        if (buckets[i].empty()) continue;
        const double lr = config_.lr() * (i < groups_.size() ? groups_[i].lr_scale : 1.0);
        const double wd = i < groups_.size() && groups_[i].weight_decay ? *groups_[i].weight_decay
                                                                       : DefaultWeightDecay();
        param_groups.emplace_back(buckets[i], Options(lr, wd));
      }
      if (param_groups.empty()) {
        return absl::FailedPreconditionError("the model has no trainable parameters to optimize");
      }
      return MakeOptimizer(std::move(param_groups));
    });
  }

 private:
  double DefaultWeightDecay() const {
    if (config_.has_weight_decay()) return config_.weight_decay();
    return config_.has_adamw() ? 0.01 : 0.0;
  }

  std::unique_ptr<torch::optim::OptimizerOptions> Options(double lr, double wd) const {
    switch (config_.optimizer_case()) {
      case OptimizerConfig::kSgd: {
        const auto& c = config_.sgd();
        return std::make_unique<torch::optim::SGDOptions>(torch::optim::SGDOptions(lr)
                                                              .momentum(c.momentum())
                                                              .dampening(c.dampening())
                                                              .nesterov(c.nesterov())
                                                              .weight_decay(wd));
      }
      case OptimizerConfig::kAdam:
      case OptimizerConfig::kAdamw: {
        const auto& c = config_.has_adam() ? config_.adam() : config_.adamw();
        const auto betas = std::make_tuple(c.has_beta1() ? c.beta1() : 0.9, c.has_beta2() ? c.beta2() : 0.999);
        const double eps = c.has_eps() ? c.eps() : 1e-8;
        if (config_.has_adam()) {
          return std::make_unique<torch::optim::AdamOptions>(
              torch::optim::AdamOptions(lr).betas(betas).eps(eps).weight_decay(wd).amsgrad(c.amsgrad()));
        }
        return std::make_unique<torch::optim::AdamWOptions>(
            torch::optim::AdamWOptions(lr).betas(betas).eps(eps).weight_decay(wd).amsgrad(c.amsgrad()));
      }
      case OptimizerConfig::kRmsprop: {
        const auto& c = config_.rmsprop();
        return std::make_unique<torch::optim::RMSpropOptions>(torch::optim::RMSpropOptions(lr)
                                                                  .alpha(c.has_alpha() ? c.alpha() : 0.99)
                                                                  .eps(c.has_eps() ? c.eps() : 1e-8)
                                                                  .weight_decay(wd)
                                                                  .momentum(c.momentum())
                                                                  .centered(c.centered()));
      }
      case OptimizerConfig::kAdagrad: {
        const auto& c = config_.adagrad();
        return std::make_unique<torch::optim::AdagradOptions>(
            torch::optim::AdagradOptions(lr)
                .lr_decay(c.lr_decay())
                .weight_decay(wd)
                .initial_accumulator_value(c.initial_accumulator_value())
                .eps(c.has_eps() ? c.eps() : 1e-10));
      }
      case OptimizerConfig::OPTIMIZER_NOT_SET:
        break;
    }
    return nullptr;
  }

  std::unique_ptr<torch::optim::Optimizer> MakeOptimizer(
      std::vector<torch::optim::OptimizerParamGroup> groups) const {
    // The defaults passed here are unused: every group carries its options.
    switch (config_.optimizer_case()) {
      case OptimizerConfig::kSgd:
        return std::make_unique<torch::optim::SGD>(std::move(groups), torch::optim::SGDOptions(config_.lr()));
      case OptimizerConfig::kAdam:
        return std::make_unique<torch::optim::Adam>(std::move(groups));
      case OptimizerConfig::kAdamw:
        return std::make_unique<torch::optim::AdamW>(std::move(groups));
      case OptimizerConfig::kRmsprop:
        return std::make_unique<torch::optim::RMSprop>(std::move(groups));
      default:
        return std::make_unique<torch::optim::Adagrad>(std::move(groups));
    }
  }

  OptimizerConfig config_;
  std::vector<GroupSpec> groups_;
};

absl::Status ValidateSpecific(const OptimizerConfig& c) {
  switch (c.optimizer_case()) {
    case OptimizerConfig::kSgd:
      RETURN_IF_ERROR(Range("sgd.momentum", c.sgd().momentum(), 0, 1, false, true));
      RETURN_IF_ERROR(Range("sgd.dampening", c.sgd().dampening(), 0, 1, false, false));
      if (c.sgd().nesterov() && (c.sgd().momentum() <= 0 || c.sgd().dampening() != 0)) {
        return FieldError("sgd.nesterov", "needs sgd.momentum > 0 and sgd.dampening 0",
                          absl::StrCat("momentum ", c.sgd().momentum(), ", dampening ", c.sgd().dampening()),
                          "nesterov: false, or momentum > 0 with dampening 0");
      }
      return absl::OkStatus();
    case OptimizerConfig::kAdam:
    case OptimizerConfig::kAdamw: {
      const auto& a = c.has_adam() ? c.adam() : c.adamw();
      const std::string n = c.has_adam() ? "adam" : "adamw";
      if (a.has_beta1()) RETURN_IF_ERROR(Range(n + ".beta1", a.beta1(), 0, 1, false, true));
      if (a.has_beta2()) RETURN_IF_ERROR(Range(n + ".beta2", a.beta2(), 0, 1, false, true));
      if (a.has_eps() && !(a.eps() > 0)) {
        return FieldError(n + ".eps", "not positive", a.eps(), "> 0");
      }
      return absl::OkStatus();
    }
    case OptimizerConfig::kRmsprop:
      if (c.rmsprop().has_alpha()) RETURN_IF_ERROR(Range("rmsprop.alpha", c.rmsprop().alpha(), 0, 1, false, true));
      RETURN_IF_ERROR(Range("rmsprop.momentum", c.rmsprop().momentum(), 0, 1, false, true));
      return absl::OkStatus();
    case OptimizerConfig::kAdagrad:
      if (c.adagrad().lr_decay() < 0) {
        return FieldError("adagrad.lr_decay", "negative", c.adagrad().lr_decay(), ">= 0");
      }
      return absl::OkStatus();
    case OptimizerConfig::OPTIMIZER_NOT_SET:
      break;
  }
  return absl::OkStatus();
}

absl::StatusOr<std::unique_ptr<NativeOptimizerFactory>> FromConfig(const OptimizerConfig& c) {
  if (!(c.lr() > 0)) return FieldError("lr", "required, and positive", c.lr(), "> 0");
  if (c.has_weight_decay() && c.weight_decay() < 0) {
    return FieldError("weight_decay", "negative", c.weight_decay(), ">= 0");
  }
  RETURN_IF_ERROR(ValidateSpecific(c));
  std::vector<GroupSpec> groups;
  if (c.no_weight_decay_on_bias_and_norm()) {
    groups.push_back({nullptr, ParamGroupConfig::BIAS, 0.0, 1.0});
    groups.push_back({nullptr, ParamGroupConfig::NORM, 0.0, 1.0});
  }
  for (int i = 0; i < c.param_groups_size(); ++i) {
    const auto& g = c.param_groups(i);
    const std::string where = IndexedField("param_groups", i);
    GroupSpec spec;
    if (!g.name_regex().empty()) {
      ASSIGN_OR_RETURN(spec.regex, CompileUserRegex(g.name_regex(), where + ".name_regex"));
    }
    spec.kind = g.kind();
    if (g.has_weight_decay()) {
      if (g.weight_decay() < 0) {
        return FieldError(where + ".weight_decay", "negative", g.weight_decay(), ">= 0");
      }
      spec.weight_decay = g.weight_decay();
    }
    if (g.has_lr_scale()) {
      if (!(g.lr_scale() > 0)) {
        return FieldError(where + ".lr_scale", "not positive", g.lr_scale(), "> 0");
      }
      spec.lr_scale = g.lr_scale();
    }
    groups.push_back(std::move(spec));
  }
  return std::make_unique<ConfigOptimizerFactory>(c, std::move(groups));
}

const Registration<OptimizerMaker> kSgd(OptimizerRegistry(), "sgd", &FromConfig);
const Registration<OptimizerMaker> kAdam(OptimizerRegistry(), "adam", &FromConfig);
const Registration<OptimizerMaker> kAdamW(OptimizerRegistry(), "adamw", &FromConfig);
const Registration<OptimizerMaker> kRmsprop(OptimizerRegistry(), "rmsprop", &FromConfig);
const Registration<OptimizerMaker> kAdagrad(OptimizerRegistry(), "adagrad", &FromConfig);

}  // namespace

Registry<OptimizerMaker>& OptimizerRegistry() {
  static auto* registry = new Registry<OptimizerMaker>("optimizer");
  return *registry;
}

absl::StatusOr<std::unique_ptr<NativeOptimizerFactory>> MakeOptimizerFactory(const OptimizerConfig& config) {
  ASSIGN_OR_RETURN(const std::string name, RequiredOneofField(config, "optimizer", "", OptimizerRegistry().Names()));
  ASSIGN_OR_RETURN(OptimizerMaker maker, OptimizerRegistry().Get(name), AtField(name));
  return TorchCallOr("", [&] { return maker(config); });
}

}  // namespace slimfit
