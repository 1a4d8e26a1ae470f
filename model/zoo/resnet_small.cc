// resnet_small: conv3x3(16)-bn-relu stem; three stages of two BasicBlocks
// (16, 32, 64 channels; stages 2 and 3 start with stride 2 and a 1x1
// conv+bn downsample shortcut); global average pool → flatten → fc.
#include <vector>

#include "absl/strings/str_cat.h"
#include "common/field_error.h"
#include "model/zoo/builder.h"
#include "model/zoo/zoo.h"

namespace slimfit {
namespace {

using zoo::internal::Builder;
using zoo::internal::Scaled;

torch::jit::Module BasicBlock(Builder& b, int64_t in, int64_t out, int64_t stride) {
  std::vector<std::pair<std::string, torch::jit::Module>> children = {
      {"conv1", b.Conv2d(in, out, 3, stride, 1)},
      {"bn1", b.BatchNorm2d(out)},
      {"conv2", b.Conv2d(out, out, 3, 1, 1)},
      {"bn2", b.BatchNorm2d(out)},
  };
  std::string shortcut = "x";
  if (stride != 1 || in != out) {
    children.emplace_back(
        "downsample",
        b.Container("Downsample",
                    {{"conv", b.Conv2d(in, out, 1, stride, 0)},
                     {"bn", b.BatchNorm2d(out)}},
                    "    return self.bn.forward(self.conv.forward(x))\n"));
    shortcut = "self.downsample.forward(x)";
  }
  return b.Container(
      "BasicBlock", std::move(children),
      absl::StrCat("    out = torch.relu(self.bn1.forward(self.conv1.forward(x)))\n"
                   "    out = self.bn2.forward(self.conv2.forward(out))\n"
                   "    out = out + ", shortcut, "\n"
                   "    return torch.relu(out)\n"));
}

absl::StatusOr<Model> CreateResNetSmall(const ZooOptions& o) {
  if (o.height < 4 || o.width < 4) {
    const bool height = o.height < 4;
    return FieldError(height ? "zoo.height" : "zoo.width", "too small for resnet_small", height ? o.height : o.width,
                      ">= 4");
  }
  Builder b("resnet_small", o.seed);
  const int64_t stem = Scaled(16, o.width_multiplier);
  std::vector<std::pair<std::string, torch::jit::Module>> children = {
      {"conv1", b.Conv2d(o.in_channels, stem, 3, 1, 1)},
      {"bn1", b.BatchNorm2d(stem)},
  };
  std::string body = "    x = torch.relu(self.bn1.forward(self.conv1.forward(x)))\n";
  int64_t in = stem;
  const std::vector<int64_t> widths = {16, 32, 64};
  for (size_t s = 0; s < widths.size(); ++s) {
    const int64_t out = Scaled(widths[s], o.width_multiplier);
    const int64_t stride = s == 0 ? 1 : 2;
    const std::string name = absl::StrCat("layer", s + 1);
    children.emplace_back(
        name, b.Container("Stage",
                          {{"b0", BasicBlock(b, in, out, stride)},
                           {"b1", BasicBlock(b, out, out, 1)}},
                          "    return self.b1.forward(self.b0.forward(x))\n"));
    absl::StrAppend(&body, "    x = self.", name, ".forward(x)\n");
    in = out;
  }
  children.emplace_back("fc", b.Linear(in, o.num_classes));
  absl::StrAppend(&body,
                  "    x = torch.adaptive_avg_pool2d(x, [1, 1])\n"
                  "    x = torch.flatten(x, 1)\n"
                  "    return self.fc.forward(x)\n");
  return Model(b.Container("ResNetSmall", std::move(children), body));
}

const Registration<ZooFactory> kRegistration(ZooRegistry(), "resnet_small",
                                             &CreateResNetSmall);

}  // namespace
}  // namespace slimfit
