// lenet5: conv5x5(6, pad 2) relu maxpool → conv5x5(16) relu maxpool →
// flatten → fc 120 → fc 84 → fc classes. The classic flatten→linear case.
#include "absl/strings/str_cat.h"
#include "common/field_error.h"
#include "model/zoo/builder.h"
#include "model/zoo/zoo.h"

namespace slimfit {
namespace {

using zoo::internal::Builder;
using zoo::internal::ConvOut;
using zoo::internal::Scaled;

absl::StatusOr<Model> CreateLeNet5(const ZooOptions& o) {
  const int64_t c1 = Scaled(6, o.width_multiplier);
  const int64_t c2 = Scaled(16, o.width_multiplier);
  const int64_t f1 = Scaled(120, o.width_multiplier);
  const int64_t f2 = Scaled(84, o.width_multiplier);
  int64_t h = ConvOut(ConvOut(o.height, 5, 1, 2), 2, 2, 0);
  int64_t w = ConvOut(ConvOut(o.width, 5, 1, 2), 2, 2, 0);
  h = ConvOut(ConvOut(h, 5, 1, 0), 2, 2, 0);
  w = ConvOut(ConvOut(w, 5, 1, 0), 2, 2, 0);
  if (h < 1 || w < 1) {
    const bool height = h < 1;
    return FieldError(height ? "zoo.height" : "zoo.width", "too small for lenet5", height ? o.height : o.width,
                      ">= 12");
  }
  Builder b("lenet5", o.seed);
  return Model(b.Container(
      "LeNet5",
      {{"conv1", b.Conv2d(o.in_channels, c1, 5, 1, 2, 1, /*bias=*/true)},
       {"conv2", b.Conv2d(c1, c2, 5, 1, 0, 1, /*bias=*/true)},
       {"fc1", b.Linear(c2 * h * w, f1)},
       {"fc2", b.Linear(f1, f2)},
       {"fc3", b.Linear(f2, o.num_classes)}},
      "    x = torch.relu(self.conv1.forward(x))\n"
      "    x = torch.max_pool2d(x, [2, 2], [2, 2], [0, 0], [1, 1], False)\n"
      "    x = torch.relu(self.conv2.forward(x))\n"
      "    x = torch.max_pool2d(x, [2, 2], [2, 2], [0, 0], [1, 1], False)\n"
      "    x = torch.flatten(x, 1)\n"
      "    x = torch.relu(self.fc1.forward(x))\n"
      "    x = torch.relu(self.fc2.forward(x))\n"
      "    return self.fc3.forward(x)\n"));
}

const Registration<ZooFactory> kRegistration(ZooRegistry(), "lenet5", &CreateLeNet5);

}  // namespace
}  // namespace slimfit
