#include "model/test_models.h"

#include <torch/csrc/jit/api/module.h>

namespace slimfit::testing {

Model ScriptedTestModel(const std::string& name, const std::string& source,
                        const std::vector<std::pair<std::string, at::Tensor>>& parameters) {
  torch::jit::Module m(c10::QualifiedName("__torch__.slimfit_test." + name),
                       std::make_shared<torch::jit::CompilationUnit>(), /*shouldMangle=*/true);
  m.register_attribute("training", c10::BoolType::get(), true);
  for (const auto& [pname, t] : parameters) m.register_parameter(pname, t.detach().clone().set_requires_grad(true), false);
  m.define(source);
  return Model(m);
}

Model IdentityModel() {
  return ScriptedTestModel("Identity", "def forward(self, x: Tensor) -> Tensor:\n    return x\n");
}

}  // namespace slimfit::testing
