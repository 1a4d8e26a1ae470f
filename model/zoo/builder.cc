#include "model/zoo/builder.h"

#include <ATen/ATen.h>
#include <ATen/CPUGeneratorImpl.h>

#include <algorithm>
#include <cmath>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"

namespace slimfit::zoo::internal {
namespace {

void AddTrainingFlag(torch::jit::Module& m) {
  m.register_attribute("training", c10::BoolType::get(), true);
}

at::Tensor Param(at::Tensor t) { return t.set_requires_grad(true); }

}  // namespace

Builder::Builder(const std::string& model_name, uint64_t seed)
    : cu_(std::make_shared<torch::jit::CompilationUnit>()),
      prefix_(absl::StrCat("__torch__.slimfit.zoo.", model_name, ".")),
      gen_(at::detail::createCPUGenerator(seed)) {}

torch::jit::Module Builder::NewModule(const std::string& class_name) {
  torch::jit::Module m(c10::QualifiedName(prefix_ + class_name), cu_,
                       /*shouldMangle=*/true);
  AddTrainingFlag(m);
  return m;
}

torch::jit::Module Builder::Conv2d(int64_t in, int64_t out, int64_t kernel,
                                   int64_t stride, int64_t padding,
                                   int64_t groups, bool bias) {
  torch::jit::Module m = NewModule("Conv2d");
  const double fan_out = static_cast<double>(out * kernel * kernel);
  at::Tensor w = at::empty({out, in / groups, kernel, kernel});
  w.normal_(0.0, std::sqrt(2.0 / fan_out), gen_);
  m.register_parameter("weight", Param(w), /*is_buffer=*/false);
  if (bias) {
    m.register_parameter("bias", Param(at::zeros({out})), false);
  }
  m.define(absl::StrFormat(
      "def forward(self, x: Tensor) -> Tensor:\n"
      "    return torch.conv2d(x, self.weight, %s, [%d, %d], [%d, %d], [1, 1], %d)\n",
      bias ? "self.bias" : "None", stride, stride, padding, padding, groups));
  return m;
}

torch::jit::Module Builder::BatchNorm2d(int64_t channels) {
  torch::jit::Module m = NewModule("BatchNorm2d");
  m.register_parameter("weight", Param(at::ones({channels})), false);
  m.register_parameter("bias", Param(at::zeros({channels})), false);
  m.register_buffer("running_mean", at::zeros({channels}));
  m.register_buffer("running_var", at::ones({channels}));
  m.define(
      "def forward(self, x: Tensor) -> Tensor:\n"
      "    return torch.batch_norm(x, self.weight, self.bias, self.running_mean,"
      " self.running_var, self.training, 0.1, 1e-05, False)\n");
  return m;
}

torch::jit::Module Builder::Linear(int64_t in, int64_t out) {
  torch::jit::Module m = NewModule("Linear");
  const double bound = 1.0 / std::sqrt(static_cast<double>(in));
  at::Tensor w = at::empty({out, in});
  w.uniform_(-bound, bound, gen_);
  at::Tensor b = at::empty({out});
  b.uniform_(-bound, bound, gen_);
  m.register_parameter("weight", Param(w), false);
  m.register_parameter("bias", Param(b), false);
  m.define(
      "def forward(self, x: Tensor) -> Tensor:\n"
      "    return torch.linear(x, self.weight, self.bias)\n");
  return m;
}

torch::jit::Module Builder::Container(
    const std::string& class_name,
    std::vector<std::pair<std::string, torch::jit::Module>> children,
    const std::string& body) {
  torch::jit::Module m = NewModule(class_name);
  for (auto& [name, child] : children) m.register_module(name, child);
  m.define("def forward(self, x: Tensor) -> Tensor:\n" + body);
  return m;
}

int64_t Scaled(int64_t c, double mult) {
  return std::max<int64_t>(1, std::llround(static_cast<double>(c) * mult));
}

}  // namespace slimfit::zoo::internal
