// File: model/test_models.h
//
// Test-only: tiny TorchScript models written inline.
//
//   Model identity = ScriptedTestModel("Identity",
//       "def forward(self, x: Tensor) -> Tensor:\n    return x\n");
//   Model linear = ScriptedTestModel("Linear", src, {{"w", w}, {"b", b}});
#ifndef SLIMFIT_MODEL_TEST_MODELS_H_
#define SLIMFIT_MODEL_TEST_MODELS_H_

#include <ATen/core/Tensor.h>

#include <string>
#include <utility>
#include <vector>

#include "model/model.h"

namespace slimfit::testing {

// A module of class "__torch__.slimfit_test.<name>" (mangled, so names may
// repeat) with a `training` attribute, the given parameters (requires_grad
// set) and `source` compiled as its methods.
Model ScriptedTestModel(const std::string& name, const std::string& source,
                        const std::vector<std::pair<std::string, at::Tensor>>& parameters = {});

// forward(x) = x.
Model IdentityModel();

}  // namespace slimfit::testing

#endif  // SLIMFIT_MODEL_TEST_MODELS_H_
