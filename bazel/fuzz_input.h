// For fuzz targets whose code under test reads a file: writes the input to
// one scratch file per process (under $TEST_TMPDIR, else /tmp) — a plain
// write, no fsync, so the fuzzer keeps its pace — and returns its path, or
// "" when it cannot be written.
#ifndef SLIMFIT_BAZEL_FUZZ_INPUT_H_
#define SLIMFIT_BAZEL_FUZZ_INPUT_H_

#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>

namespace slimfit {

inline std::string WriteFuzzInput(const uint8_t* data, size_t size, const char* suffix) {
  const char* tmp = std::getenv("TEST_TMPDIR");
  const std::string path = std::string(tmp != nullptr ? tmp : "/tmp") + "/fuzz_input_" +
                           std::to_string(::getpid()) + suffix;
  std::FILE* f = std::fopen(path.c_str(), "wb");
  if (f == nullptr) return "";
  const bool ok = std::fwrite(data, 1, size, f) == size;
  return std::fclose(f) == 0 && ok ? path : "";
}

}  // namespace slimfit

#endif  // SLIMFIT_BAZEL_FUZZ_INPUT_H_
