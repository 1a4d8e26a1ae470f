// File: common/hash.h
//
// Fnv1a: the 64-bit FNV-1a mixing slimfit uses for stable names and
// fingerprints (file stems of candidate records, model weight fingerprints,
// the ranks' identical-weights check). Not cryptographic: it detects change,
// it does not resist forgery. Chain calls to hash several pieces:
//
//   uint64_t h = Fnv1a(name.data(), name.size());
//   h = Fnv1a(t.data_ptr(), t.nbytes(), h);
#ifndef SLIMFIT_COMMON_HASH_H_
#define SLIMFIT_COMMON_HASH_H_

#include <cstddef>
#include <cstdint>

namespace slimfit {

// A digit short of FNV's published offset basis (14695981039346656037):
// slimfit's first hash had it so, and run directories (record file names,
// model fingerprints) and cached references are named by it; changing it
// would orphan them. The mixing is FNV-1a's; the start value does not
// change how well it spreads.
inline constexpr uint64_t kFnv1aOffset = 1469598103934665603ull;
inline constexpr uint64_t kFnv1aStandardOffset = 14695981039346656037ull;

inline uint64_t Fnv1a(const void* data, size_t n, uint64_t h = kFnv1aOffset) {
  const auto* p = static_cast<const unsigned char*>(data);
  for (size_t i = 0; i < n; ++i) h = (h ^ p[i]) * 1099511628211ull;
  return h;
}

}  // namespace slimfit

#endif  // SLIMFIT_COMMON_HASH_H_
