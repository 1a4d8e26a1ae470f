// mobilenetv2_small: conv3x3(16)-bn-relu6 stem (stride 1: inputs are small);
// inverted residual blocks (t, c, n, s) = (1,16,1,1), (4,24,2,2), (4,32,2,2),
// (4,64,2,1); each block is [1x1 expand-bn-relu6 when t>1] → 3x3 depthwise
// (groups = channels)-bn-relu6 → 1x1 linear projection-bn, plus a residual add
// when stride is 1 and channels match; 1x1 conv(256)-bn-relu6 head; global
// average pool → flatten → dropout(0.2) → fc.
#include <vector>

#include "absl/strings/str_cat.h"
#include "common/field_error.h"
#include "model/zoo/builder.h"
#include "model/zoo/zoo.h"

namespace slimfit {
namespace {

using zoo::internal::Builder;
using zoo::internal::Scaled;

constexpr char kRelu6[] = "torch.hardtanh";  // nn.ReLU6 scripts to hardtanh(0, 6)

torch::jit::Module InvertedResidual(Builder& b, int64_t in, int64_t out,
                                    int64_t stride, int64_t expand) {
  const int64_t hidden = in * expand;
  std::vector<std::pair<std::string, torch::jit::Module>> children;
  std::string body;
  std::string cur = "x";
  if (expand != 1) {
    children.emplace_back("expand_conv", b.Conv2d(in, hidden, 1, 1, 0));
    children.emplace_back("expand_bn", b.BatchNorm2d(hidden));
    absl::StrAppend(&body, "    h = ", kRelu6,
                    "(self.expand_bn.forward(self.expand_conv.forward(x)), 0.0, 6.0)\n");
    cur = "h";
  }
  children.emplace_back("dw_conv", b.Conv2d(hidden, hidden, 3, stride, 1, hidden));
  children.emplace_back("dw_bn", b.BatchNorm2d(hidden));
  children.emplace_back("project_conv", b.Conv2d(hidden, out, 1, 1, 0));
  children.emplace_back("project_bn", b.BatchNorm2d(out));
  absl::StrAppend(&body, "    h = ", kRelu6, "(self.dw_bn.forward(self.dw_conv.forward(",
                  cur, ")), 0.0, 6.0)\n",
                  "    h = self.project_bn.forward(self.project_conv.forward(h))\n");
  absl::StrAppend(&body, stride == 1 && in == out ? "    return x + h\n"
                                                  : "    return h\n");
  return b.Container("InvertedResidual", std::move(children), body);
}

absl::StatusOr<Model> CreateMobileNetV2Small(const ZooOptions& o) {
  if (o.height < 4 || o.width < 4) {
    const bool height = o.height < 4;
    return FieldError(height ? "zoo.height" : "zoo.width", "too small for mobilenetv2_small",
                      height ? o.height : o.width, ">= 4");
  }
  struct Stage { int64_t t, c, n, s; };
  const std::vector<Stage> stages = {{1, 16, 1, 1}, {4, 24, 2, 2}, {4, 32, 2, 2}, {4, 64, 2, 1}};
  Builder b("mobilenetv2_small", o.seed);
  const int64_t stem = Scaled(16, o.width_multiplier);
  std::vector<std::pair<std::string, torch::jit::Module>> children = {
      {"stem_conv", b.Conv2d(o.in_channels, stem, 3, 1, 1)},
      {"stem_bn", b.BatchNorm2d(stem)},
  };
  std::string body = absl::StrCat(
      "    x = ", kRelu6, "(self.stem_bn.forward(self.stem_conv.forward(x)), 0.0, 6.0)\n");
  int64_t in = stem;
  int block = 0;
  for (const Stage& st : stages) {
    const int64_t out = Scaled(st.c, o.width_multiplier);
    for (int64_t i = 0; i < st.n; ++i) {
      const std::string name = absl::StrCat("block", block++);
      children.emplace_back(name, InvertedResidual(b, in, out, i == 0 ? st.s : 1, st.t));
      absl::StrAppend(&body, "    x = self.", name, ".forward(x)\n");
      in = out;
    }
  }
  const int64_t head = Scaled(256, o.width_multiplier);
  children.emplace_back("head_conv", b.Conv2d(in, head, 1, 1, 0));
  children.emplace_back("head_bn", b.BatchNorm2d(head));
  children.emplace_back("fc", b.Linear(head, o.num_classes));
  absl::StrAppend(&body, "    x = ", kRelu6,
                  "(self.head_bn.forward(self.head_conv.forward(x)), 0.0, 6.0)\n"
                  "    x = torch.adaptive_avg_pool2d(x, [1, 1])\n"
                  "    x = torch.flatten(x, 1)\n"
                  "    x = torch.dropout(x, 0.2, self.training)\n"
                  "    return self.fc.forward(x)\n");
  return Model(b.Container("MobileNetV2Small", std::move(children), body));
}

const Registration<ZooFactory> kRegistration(ZooRegistry(), "mobilenetv2_small",
                                             &CreateMobileNetV2Small);

}  // namespace
}  // namespace slimfit
