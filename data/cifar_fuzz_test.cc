// Fuzz target: the CIFAR binary reader on arbitrary bytes, as CIFAR-10,
// CIFAR-100 fine and CIFAR-100 coarse (the first input byte picks). Never
// crashes; what it accepts has one label per image, every label in range.
#include <ATen/ATen.h>

#include <cstdint>
#include <cstdlib>
#include <string>

#include "bazel/fuzz_input.h"
#include "data/readers/cifar.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  const int variant = data[0] % 3;
  const int num_classes = variant == 0 ? 10 : 100;
  const bool coarse = variant == 2;
  const std::string path = slimfit::WriteFuzzInput(data + 1, size - 1, ".bin");
  if (path.empty()) return 0;
  auto ds = slimfit::ReadCifarFiles({path}, num_classes, coarse, "fuzz");
  if (!ds.ok()) return 0;
  const at::Tensor images = (*ds)->fields()[0];
  const at::Tensor labels = (*ds)->fields()[1];
  const int64_t classes = coarse ? 20 : num_classes;
  if (images.size(0) != labels.size(0)) std::abort();
  if (labels.numel() > 0 && (labels.min().item<int64_t>() < 0 || labels.max().item<int64_t>() >= classes)) {
    std::abort();
  }
  return 0;
}
