// Learning-rate schedulers: step, multistep, exponential, multiplicative,
// cosine (with warm-up), one_cycle, reduce_on_plateau. Each sets the lr of
// every optimizer group from that group's initial lr, like PyTorch's.
#include <torch/optim/optimizer.h>

#include <cmath>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/field_error.h"
#include "common/status_macros.h"
#include "common/text_proto.h"
#include "common/torch_status.h"
#include "optimizers/factories.h"

namespace slimfit {
namespace {

std::vector<double> GroupLrs(torch::optim::Optimizer& o) {
  std::vector<double> lrs;
  for (auto& g : o.param_groups()) lrs.push_back(g.options().get_lr());
  return lrs;
}

void SetLrs(torch::optim::Optimizer& o, const std::function<double(size_t, double)>& f) {
  size_t i = 0;
  for (auto& g : o.param_groups()) {
    g.options().set_lr(f(i, g.options().get_lr()));
    ++i;
  }
}

// lr_i(t) = base_i * factor(t) (or an absolute lr when `absolute`).
class FactorScheduler : public Scheduler {
 public:
  FactorScheduler(torch::optim::Optimizer& o, SchedulerConfig::Interval interval,
                  std::function<double(int64_t t, double base)> lr_at)
      : Scheduler(o), interval_(interval), lr_at_(std::move(lr_at)), base_(GroupLrs(o)) {
    Apply();
  }
  absl::Status Step(std::optional<double>) override {
    ++t_;
    Apply();
    return absl::OkStatus();
  }
  SchedulerConfig::Interval interval() const override { return interval_; }
  bool eval_based() const override { return false; }

 private:
  void Apply() {
    SetLrs(optimizer_, [&](size_t i, double) { return lr_at_(t_, base_[i]); });
  }
  SchedulerConfig::Interval interval_;
  std::function<double(int64_t, double)> lr_at_;
  std::vector<double> base_;
  int64_t t_ = 0;
};

class MultiplicativeScheduler : public Scheduler {
 public:
  MultiplicativeScheduler(torch::optim::Optimizer& o, SchedulerConfig::Interval interval, double factor)
      : Scheduler(o), interval_(interval), factor_(factor) {}
  absl::Status Step(std::optional<double>) override {
    SetLrs(optimizer_, [&](size_t, double lr) { return lr * factor_; });
    return absl::OkStatus();
  }
  SchedulerConfig::Interval interval() const override { return interval_; }
  bool eval_based() const override { return false; }

 private:
  SchedulerConfig::Interval interval_;
  double factor_;
};

// PyTorch's ReduceLROnPlateau (threshold_mode "rel").
class PlateauScheduler : public Scheduler {
 public:
  PlateauScheduler(torch::optim::Optimizer& o, SchedulerConfig::Interval interval,
                   const ReduceOnPlateauConfig& c)
      : Scheduler(o),
        interval_(interval),
        max_mode_(c.mode() == ReduceOnPlateauConfig::MAX),
        factor_(c.factor() == 0 ? 0.1 : c.factor()),
        patience_(c.has_patience() ? c.patience() : 10),
        threshold_(c.has_threshold() ? c.threshold() : 1e-4),
        min_lr_(c.min_lr()),
        cooldown_(c.cooldown()) {}

  absl::Status Step(std::optional<double> metric) override {
    if (!metric) {
      return absl::InvalidArgumentError("reduce_on_plateau: stepped without the eval metric (its interval is EVAL)");
    }
    const double m = *metric;
    const bool better = !best_ || (max_mode_ ? m > *best_ * (1 + threshold_) : m < *best_ * (1 - threshold_));
    if (better) {
      best_ = m;
      bad_ = 0;
    } else {
      ++bad_;
    }
    if (cooldown_left_ > 0) {
      --cooldown_left_;
      bad_ = 0;
    }
    if (bad_ > patience_) {
      SetLrs(optimizer_, [&](size_t, double lr) {
        const double next = std::max(lr * factor_, min_lr_);
        return lr - next > 1e-8 ? next : lr;
      });
      cooldown_left_ = cooldown_;
      bad_ = 0;
    }
    return absl::OkStatus();
  }
  SchedulerConfig::Interval interval() const override { return interval_; }
  bool eval_based() const override { return true; }

 private:
  SchedulerConfig::Interval interval_;
  bool max_mode_;
  double factor_;
  int patience_;
  double threshold_, min_lr_;
  int cooldown_, cooldown_left_ = 0, bad_ = 0;
  std::optional<double> best_;
};

using Builder = std::function<std::unique_ptr<Scheduler>(torch::optim::Optimizer&, SchedulerConfig::Interval)>;

class ConfigSchedulerFactory : public NativeSchedulerFactory {
 public:
  explicit ConfigSchedulerFactory(Builder build, SchedulerConfig::Interval interval)
      : build_(std::move(build)), interval_(interval) {}
  absl::StatusOr<std::unique_ptr<Scheduler>> Make(torch::optim::Optimizer& o) override {
    return TorchCallOr("scheduler", [&] { return build_(o, interval_); });
  }

 private:
  Builder build_;
  SchedulerConfig::Interval interval_;
};

absl::Status Positive(const std::string& field, double v) {
  if (v > 0) return absl::OkStatus();
  return FieldError(field, "not positive", v, "> 0");
}

absl::StatusOr<Builder> BuilderFor(const SchedulerConfig& c) {
  switch (c.scheduler_case()) {
    case SchedulerConfig::kStep: {
      const int step = c.step().step_size();
      const double gamma = c.step().gamma() == 0 ? 0.1 : c.step().gamma();
      if (step < 1) return FieldError("step.step_size", "required", step, ">= 1");
      return Builder([=](torch::optim::Optimizer& o, SchedulerConfig::Interval iv) {
        return std::make_unique<FactorScheduler>(
            o, iv, [=](int64_t t, double base) { return base * std::pow(gamma, t / step); });
      });
    }
    case SchedulerConfig::kMultistep: {
      std::vector<int> ms(c.multistep().milestones().begin(), c.multistep().milestones().end());
      if (ms.empty()) return FieldError("multistep.milestones", "required", "[]", "increasing steps >= 1");
      for (size_t i = 0; i < ms.size(); ++i) {
        if (ms[i] < 1 || (i > 0 && ms[i] <= ms[i - 1])) {
          return FieldError(IndexedField("multistep.milestones", static_cast<int>(i)),
                            ms[i] < 1 ? "below 1" : "not above the milestone before it",
                            absl::StrCat("[", absl::StrJoin(ms, ", "), "]"), "increasing steps >= 1");
        }
      }
      const double gamma = c.multistep().gamma() == 0 ? 0.1 : c.multistep().gamma();
      return Builder([=](torch::optim::Optimizer& o, SchedulerConfig::Interval iv) {
        return std::make_unique<FactorScheduler>(o, iv, [=](int64_t t, double base) {
          int passed = 0;
          for (int m : ms) passed += t >= m;
          return base * std::pow(gamma, passed);
        });
      });
    }
    case SchedulerConfig::kExponential: {
      const double gamma = c.exponential().gamma();
      RETURN_IF_ERROR(Positive("exponential.gamma", gamma));
      return Builder([=](torch::optim::Optimizer& o, SchedulerConfig::Interval iv) {
        return std::make_unique<FactorScheduler>(
            o, iv, [=](int64_t t, double base) { return base * std::pow(gamma, static_cast<double>(t)); });
      });
    }
    case SchedulerConfig::kMultiplicative: {
      const double factor = c.multiplicative().factor();
      RETURN_IF_ERROR(Positive("multiplicative.factor", factor));
      return Builder([=](torch::optim::Optimizer& o, SchedulerConfig::Interval iv) {
        return std::make_unique<MultiplicativeScheduler>(o, iv, factor);
      });
    }
    case SchedulerConfig::kCosine: {
      const auto& k = c.cosine();
      const int64_t t_max = k.t_max(), warm = k.warmup_steps();
      const double eta_min = k.eta_min();
      const double start = k.has_warmup_start_factor() ? k.warmup_start_factor() : 0.1;
      if (warm < 0) return FieldError("cosine.warmup_steps", "negative", warm, ">= 0");
      if (t_max <= warm) {
        return FieldError("cosine.t_max", "required, and above cosine.warmup_steps", t_max, absl::StrCat("> ", warm));
      }
      if (!(start > 0 && start <= 1)) {
        return FieldError("cosine.warmup_start_factor", "out of range", start, "(0, 1]");
      }
      return Builder([=](torch::optim::Optimizer& o, SchedulerConfig::Interval iv) {
        return std::make_unique<FactorScheduler>(o, iv, [=](int64_t t, double base) {
          if (t < warm) return base * (start + (1 - start) * static_cast<double>(t) / warm);
          const double p = std::min<double>(1.0, static_cast<double>(t - warm) / (t_max - warm));
          return eta_min + (base - eta_min) * 0.5 * (1 + std::cos(M_PI * p));
        });
      });
    }
    case SchedulerConfig::kOneCycle: {
      const auto& k = c.one_cycle();
      const int64_t total = k.total_steps();
      const double pct = k.has_pct_start() ? k.pct_start() : 0.3;
      const double div = k.has_div_factor() ? k.div_factor() : 25.0;
      const double final_div = k.has_final_div_factor() ? k.final_div_factor() : 1e4;
      const double max_lr = k.max_lr();
      if (total < 2) return FieldError("one_cycle.total_steps", "required", total, ">= 2");
      if (!(pct > 0 && pct < 1)) return FieldError("one_cycle.pct_start", "out of range", pct, "(0, 1)");
      RETURN_IF_ERROR(Positive("one_cycle.div_factor", div));
      RETURN_IF_ERROR(Positive("one_cycle.final_div_factor", final_div));
      if (max_lr < 0) return FieldError("one_cycle.max_lr", "negative", max_lr, ">= 0 (0 = the optimizer's lr)");
      return Builder([=](torch::optim::Optimizer& o, SchedulerConfig::Interval iv) {
        return std::make_unique<FactorScheduler>(o, iv, [=](int64_t t, double base) {
          const double peak = max_lr > 0 ? max_lr : base;
          const double initial = peak / div, min_lr = initial / final_div;
          const double up_end = pct * total - 1, down_end = total - 1;
          auto cos_anneal = [](double a, double b, double p) { return b + (a - b) / 2 * (std::cos(M_PI * p) + 1); };
          const double s = static_cast<double>(std::min<int64_t>(t, total - 1));
          if (s <= up_end) return cos_anneal(initial, peak, s / up_end);
          return cos_anneal(peak, min_lr, (s - up_end) / (down_end - up_end));
        });
      });
    }
    case SchedulerConfig::kReduceOnPlateau: {
      const auto& k = c.reduce_on_plateau();
      if (k.factor() != 0 && !(k.factor() > 0 && k.factor() < 1)) {
        return FieldError("reduce_on_plateau.factor", "out of range", k.factor(), "(0, 1)");
      }
      if (k.has_patience() && k.patience() < 0) {
        return FieldError("reduce_on_plateau.patience", "negative", k.patience(), ">= 0");
      }
      if (k.cooldown() < 0) return FieldError("reduce_on_plateau.cooldown", "negative", k.cooldown(), ">= 0");
      if (k.min_lr() < 0) return FieldError("reduce_on_plateau.min_lr", "negative", k.min_lr(), ">= 0");
      return Builder([k](torch::optim::Optimizer& o, SchedulerConfig::Interval iv) {
        return std::make_unique<PlateauScheduler>(o, iv, k);
      });
    }
    case SchedulerConfig::SCHEDULER_NOT_SET:
      break;
  }
  // No scheduler: constant learning rates.
  return Builder([](torch::optim::Optimizer& o, SchedulerConfig::Interval iv) {
    return std::make_unique<FactorScheduler>(o, iv, [](int64_t, double base) { return base; });
  });
}

absl::StatusOr<std::unique_ptr<NativeSchedulerFactory>> FromConfig(const SchedulerConfig& c) {
  const bool plateau = c.has_reduce_on_plateau();
  SchedulerConfig::Interval interval = c.interval();
  if (interval == SchedulerConfig::DEFAULT) interval = plateau ? SchedulerConfig::EVAL : SchedulerConfig::EPOCH;
  if (plateau && interval != SchedulerConfig::EVAL) {
    return FieldError("interval", "reduce_on_plateau is stepped with the eval metric",
                      SchedulerConfig::Interval_Name(interval), "EVAL");
  }
  if (c.eval_based() && !plateau) {
    return FieldError("eval_based", "only reduce_on_plateau uses the eval metric", "true",
                      "false, or a reduce_on_plateau scheduler");
  }
  ASSIGN_OR_RETURN(Builder b, BuilderFor(c));
  return std::make_unique<ConfigSchedulerFactory>(std::move(b), interval);
}

const char* const kNames[] = {"step", "multistep", "exponential", "multiplicative",
                              "cosine", "one_cycle", "reduce_on_plateau"};
const bool kRegistered = [] {
  for (const char* n : kNames) SchedulerRegistry().Register(n, &FromConfig);
  return true;
}();

}  // namespace

double Scheduler::lr() const {
  auto& groups = optimizer_.param_groups();
  return groups.empty() ? 0.0 : groups[0].options().get_lr();
}

Registry<SchedulerMaker>& SchedulerRegistry() {
  static auto* registry = new Registry<SchedulerMaker>("scheduler");
  return *registry;
}

absl::StatusOr<std::unique_ptr<NativeSchedulerFactory>> MakeSchedulerFactory(const SchedulerConfig& config) {
  const std::string name = SetOneofField(config, "scheduler");
  if (name.empty()) return TorchCallOr("", [&] { return FromConfig(config); });
  ASSIGN_OR_RETURN(SchedulerMaker maker, SchedulerRegistry().Get(name), AtField(name));
  return TorchCallOr("", [&] { return maker(config); });
}

}  // namespace slimfit
