// File: model/test_zip.h
//
// Test-only: writes a stored (uncompressed) zip with the given entries, to
// make archives that torch would never write (unsafe names, no code, absurd
// sizes) for the loader's pre-check tests.
#ifndef SLIMFIT_MODEL_TEST_ZIP_H_
#define SLIMFIT_MODEL_TEST_ZIP_H_

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

namespace slimfit::testing {

struct ZipEntry {
  std::string name;
  std::string data;
  // When nonzero, the central directory claims this uncompressed size.
  uint32_t claimed_size = 0;
};

// The bytes of a zip archive holding `entries`.
std::string MakeZip(const std::vector<ZipEntry>& entries);

}  // namespace slimfit::testing

#endif  // SLIMFIT_MODEL_TEST_ZIP_H_
