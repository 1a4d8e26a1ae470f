// File: optimizers/factories.h
//
// Optimizers and schedulers are made per model variant: the engine never
// reuses an optimizer across a pruned model's new parameters. A factory is
// validated once (from its config) and called for each variant.
//
//   ASSIGN_OR_RETURN(auto opt_factory, MakeOptimizerFactory(config.optimizer()));
//   ASSIGN_OR_RETURN(auto sched_factory, MakeSchedulerFactory(config.scheduler()));
//   ASSIGN_OR_RETURN(auto optimizer, opt_factory->Make(variant));
//   ASSIGN_OR_RETURN(auto scheduler, sched_factory->Make(*optimizer));
//
// Users can implement NativeOptimizerFactory / NativeSchedulerFactory instead
// of configuring by name.
#ifndef SLIMFIT_OPTIMIZERS_FACTORIES_H_
#define SLIMFIT_OPTIMIZERS_FACTORIES_H_

#include <functional>
#include <memory>
#include <optional>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "common/registry.h"
#include "model/model.h"
#include "optimizers/optimizer.pb.h"

namespace torch::optim {
class Optimizer;
}  // namespace torch::optim

namespace slimfit {

// Sets learning rates on an optimizer's groups.
class Scheduler {
 public:
  virtual ~Scheduler() = default;
  // One step of the scheduler's interval. Eval-based schedulers need
  // `metric` (InvalidArgument without it).
  virtual absl::Status Step(std::optional<double> metric = std::nullopt) = 0;
  // The interval it wants to be stepped at (never DEFAULT).
  virtual SchedulerConfig::Interval interval() const = 0;
  virtual bool eval_based() const = 0;
  // Current learning rate of the first parameter group.
  double lr() const;

 protected:
  explicit Scheduler(torch::optim::Optimizer& optimizer) : optimizer_(optimizer) {}
  torch::optim::Optimizer& optimizer_;
};

class NativeOptimizerFactory {
 public:
  virtual ~NativeOptimizerFactory() = default;
  virtual absl::StatusOr<std::unique_ptr<torch::optim::Optimizer>> Make(Model& model) = 0;
};

class NativeSchedulerFactory {
 public:
  virtual ~NativeSchedulerFactory() = default;
  virtual absl::StatusOr<std::unique_ptr<Scheduler>> Make(torch::optim::Optimizer& optimizer) = 0;
};

// Registered by the oneof names: sgd, adam, adamw, rmsprop, adagrad.
// Validates the config now. Errors name fields relative to `config`
// ("lr: ...", common/field_error.h); the caller roots them with AtField.
absl::StatusOr<std::unique_ptr<NativeOptimizerFactory>> MakeOptimizerFactory(const OptimizerConfig& config);

// step, multistep, exponential, multiplicative, cosine, one_cycle,
// reduce_on_plateau. An empty config makes a factory of constant-lr
// schedulers. Errors name fields relative to `config`, as above.

absl::StatusOr<std::unique_ptr<NativeSchedulerFactory>> MakeSchedulerFactory(const SchedulerConfig& config);

// The registries behind the two functions above (for the "every name is
// registered" check and for extensions).
using OptimizerMaker = std::function<absl::StatusOr<std::unique_ptr<NativeOptimizerFactory>>(
    const OptimizerConfig&)>;
using SchedulerMaker = std::function<absl::StatusOr<std::unique_ptr<NativeSchedulerFactory>>(
    const SchedulerConfig&)>;
Registry<OptimizerMaker>& OptimizerRegistry();
Registry<SchedulerMaker>& SchedulerRegistry();

}  // namespace slimfit

#endif  // SLIMFIT_OPTIMIZERS_FACTORIES_H_
