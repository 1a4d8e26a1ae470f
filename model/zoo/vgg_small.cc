// vgg_small: [32, 32, M, 64, 64, M, 128, 128, M] of conv3x3-bn-relu, then
// flatten → fc 256 → relu → dropout(0.5) → fc classes.
#include <vector>

#include "absl/strings/str_cat.h"
#include "common/field_error.h"
#include "model/zoo/builder.h"
#include "model/zoo/zoo.h"

namespace slimfit {
namespace {

using zoo::internal::Builder;
using zoo::internal::Scaled;

absl::StatusOr<Model> CreateVggSmall(const ZooOptions& o) {
  const std::vector<int64_t> stages = {32, 64, 128};
  int64_t h = o.height, w = o.width;
  for (size_t i = 0; i < stages.size(); ++i) {
    h /= 2;
    w /= 2;
  }
  if (h < 1 || w < 1) {
    const bool height = h < 1;
    return FieldError(height ? "zoo.height" : "zoo.width", "too small for vgg_small", height ? o.height : o.width,
                      ">= 8");
  }
  Builder b("vgg_small", o.seed);
  std::vector<std::pair<std::string, torch::jit::Module>> children;
  std::string body;
  int64_t in = o.in_channels;
  int layer = 0;
  for (int64_t width : stages) {
    const int64_t c = Scaled(width, o.width_multiplier);
    for (int rep = 0; rep < 2; ++rep) {
      ++layer;
      const std::string conv = absl::StrCat("conv", layer);
      const std::string bn = absl::StrCat("bn", layer);
      children.emplace_back(conv, b.Conv2d(in, c, 3, 1, 1));
      children.emplace_back(bn, b.BatchNorm2d(c));
      absl::StrAppend(&body, "    x = torch.relu(self.", bn, ".forward(self.",
                      conv, ".forward(x)))\n");
      in = c;
    }
    absl::StrAppend(&body,
                    "    x = torch.max_pool2d(x, [2, 2], [2, 2], [0, 0], [1, 1], False)\n");
  }
  const int64_t hidden = Scaled(256, o.width_multiplier);
  children.emplace_back("fc1", b.Linear(in * h * w, hidden));
  children.emplace_back("fc2", b.Linear(hidden, o.num_classes));
  absl::StrAppend(&body,
                  "    x = torch.flatten(x, 1)\n"
                  "    x = torch.relu(self.fc1.forward(x))\n"
                  "    x = torch.dropout(x, 0.5, self.training)\n"
                  "    return self.fc2.forward(x)\n");
  return Model(b.Container("VggSmall", std::move(children), body));
}

const Registration<ZooFactory> kRegistration(ZooRegistry(), "vgg_small", &CreateVggSmall);

}  // namespace
}  // namespace slimfit
