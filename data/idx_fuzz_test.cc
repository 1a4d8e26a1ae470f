// Fuzz target: the IDX reader (MNIST-family files, raw or gzip) on arbitrary
// bytes. Never crashes; a tensor it returns has exactly the element count
// its header declares, and no more bytes than the file could hold.
#include <ATen/core/Tensor.h>

#include <cstdint>
#include <cstdlib>
#include <string>

#include "bazel/fuzz_input.h"
#include "data/readers/idx.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string path = slimfit::WriteFuzzInput(data, size, ".idx");
  if (path.empty()) return 0;
  absl::StatusOr<at::Tensor> t = slimfit::ReadIdxFile(path);
  if (!t.ok()) return 0;
  int64_t n = 1;
  for (int64_t d : t->sizes()) n *= d;
  if (n != t->numel()) std::abort();
  // gzip compresses at most ~1032:1, so a valid file cannot hold more.
  if (static_cast<double>(t->numel()) > 1100.0 * static_cast<double>(size) + 1e6) std::abort();
  return 0;
}
