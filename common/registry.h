// File: common/registry.h
//
// A string-keyed registry of factories: how every extension point (pruners,
// losses, optimizers, datasets, zoo models, ...) is selected by name from a
// config file.
//
//   // pruners/registry.h
//   using PrunerFactory =
//       std::function<absl::StatusOr<std::unique_ptr<Pruner>>(const PrunerConfig&)>;
//   slimfit::Registry<PrunerFactory>& PrunerRegistry();   // defined in registry.cc:
//   //   static auto* r = new slimfit::Registry<PrunerFactory>("pruner"); return *r;
//
//   // pruners/fpgm/fpgm_pruner.cc, at the bottom, in an anonymous namespace:
//   const slimfit::Registration<PrunerFactory> kReg(
//       PrunerRegistry(), "fpgm", &FpgmPruner::Create);
//
//   // the driver:
//   ASSIGN_OR_RETURN(auto factory, PrunerRegistry().Get("fpgm"));
//
// Contract:
// - Registering a name twice is a programming error: the process aborts at
//   start-up with a message naming the registry and the name.
// - `Get` of an unknown name returns NotFound listing every registered name
//   (sorted), so a typo in a config is one look away from the fix.
// - Registration happens during static initialisation; lookups after main()
//   starts are thread-safe (the map is guarded by a mutex).
// - Libraries that self-register must be linked with `alwayslink = True`.
#ifndef SLIMFIT_COMMON_REGISTRY_H_
#define SLIMFIT_COMMON_REGISTRY_H_

#include <cstdio>
#include <cstdlib>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"

namespace slimfit {

template <typename Factory>
class Registry {
 public:
  // `kind` names what is registered, for messages: "pruner", "dataset".
  explicit Registry(std::string kind) : kind_(std::move(kind)) {}
  Registry(const Registry&) = delete;
  Registry& operator=(const Registry&) = delete;

  // Adds `factory` under `name`; aborts if `name` is taken or empty.
  void Register(absl::string_view name, Factory factory) {
    absl::MutexLock lock(&mu_);
    if (name.empty()) {
      std::fprintf(stderr, "slimfit: empty %s name registered\n", kind_.c_str());
      std::abort();
    }
    auto [it, inserted] =
        factories_.emplace(std::string(name), std::move(factory));
    if (!inserted) {
      std::fprintf(stderr, "slimfit: %s \"%s\" registered twice\n",
                   kind_.c_str(), std::string(name).c_str());
      std::abort();
    }
  }

  // The factory registered under `name`, or NotFound listing what is, in the
  // field-error grammar (common/field_error.h) without a path: the caller
  // names the field with AtField.
  absl::StatusOr<Factory> Get(absl::string_view name) const {
    absl::MutexLock lock(&mu_);
    auto it = factories_.find(std::string(name));
    if (it == factories_.end()) {
      return absl::NotFoundError(
          absl::StrCat("not a registered ", kind_, ", got \"", name,
                       "\"; valid: ", factories_.empty() ? "none registered" : absl::StrJoin(NamesLocked(), ", ")));
    }

    return it->second;
  }

  bool Contains(absl::string_view name) const {
    absl::MutexLock lock(&mu_);
    return factories_.count(std::string(name)) > 0;
  }

  // Every registered name, sorted.
  std::vector<std::string> Names() const {
    absl::MutexLock lock(&mu_);
    return NamesLocked();
  }

  const std::string& kind() const { return kind_; }

 private:
  std::vector<std::string> NamesLocked() const {
    std::vector<std::string> names;
    names.reserve(factories_.size());
    for (const auto& [name, unused] : factories_) names.push_back(name);
    return names;  // std::map keeps them sorted
  }

  const std::string kind_;
  mutable absl::Mutex mu_;
  std::map<std::string, Factory> factories_;
};

// Registers at construction: one line at the bottom of an implementation's .cc.
template <typename Factory>
class Registration {
 public:
  Registration(Registry<Factory>& registry, absl::string_view name,
               Factory factory) {
    registry.Register(name, std::move(factory));
  }
};

}  // namespace slimfit

#endif  // SLIMFIT_COMMON_REGISTRY_H_
