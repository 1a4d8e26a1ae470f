// File: model/zoo/builder.h
//
// Internal to model/zoo: builds TorchScript modules in C++ without Python.
// Each layer is a module of its own class (mangled, so every instance may bake
// different constants into its forward) with registered parameters/buffers, a
// `training` attribute, and a forward compiled from TorchScript source — the
// same ops a Python nn.Conv2d / nn.BatchNorm2d / nn.Linear script to, so
// graph passes see zoo models as they see users' scripted models.
//
// Initialisation follows torchvision: convs Kaiming-normal (fan_out, ReLU),
// linears PyTorch's default uniform(±1/sqrt(fan_in)), batch norms γ=1, β=0.
// All randomness comes from one seeded generator: same seed, same weights.
#ifndef SLIMFIT_MODEL_ZOO_BUILDER_H_
#define SLIMFIT_MODEL_ZOO_BUILDER_H_

#include <ATen/core/Generator.h>
#include <torch/csrc/jit/api/module.h>

#include <cstdint>
#include <memory>
#include <string>
#include <utility>
#include <vector>

namespace slimfit::zoo::internal {

class Builder {
 public:
  Builder(const std::string& model_name, uint64_t seed);

  // An empty module of a fresh class "__torch__.slimfit.zoo.<model>.<name>".
  torch::jit::Module NewModule(const std::string& class_name);

  torch::jit::Module Conv2d(int64_t in, int64_t out, int64_t kernel,
                            int64_t stride, int64_t padding, int64_t groups = 1,
                            bool bias = false);
  torch::jit::Module BatchNorm2d(int64_t channels);
  torch::jit::Module Linear(int64_t in, int64_t out);

  // A module holding `children` (registered in order) whose forward is
  // "def forward(self, x: Tensor) -> Tensor:\n" + `body` (indented lines that
  // reach children as self.<name>.forward(...)).
  torch::jit::Module Container(
      const std::string& class_name,
      std::vector<std::pair<std::string, torch::jit::Module>> children,
      const std::string& body);

 private:
  std::shared_ptr<torch::jit::CompilationUnit> cu_;
  std::string prefix_;
  at::Generator gen_;
};

// `c * mult` rounded, at least 1.
int64_t Scaled(int64_t c, double mult);

// Output size of a conv/pool along one axis.
inline int64_t ConvOut(int64_t size, int64_t kernel, int64_t stride, int64_t pad) {
  return (size + 2 * pad - kernel) / stride + 1;
}

}  // namespace slimfit::zoo::internal

#endif  // SLIMFIT_MODEL_ZOO_BUILDER_H_
