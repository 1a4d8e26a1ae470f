// File: search/widths.h
//
// Channel widths the kernels run fastest at: pure functions (no models, no
// timing) behind the search's width rounding (compression.tuning.round_to).
// CPU convolution kernels work in blocks of channels (oneDNN on AVX-512: 16
// floats), so a layer cut from 32 to 20 channels may run no faster than at
// 32; the search measures each candidate's variants and keeps the one with
// the most channels among those as fast as the fastest.
//
//   std::map<std::string, double> up = RoundKeptUp(ratios, channels, 16);
//   size_t pick = PickWidthVariant({{1, 1.00, 900}, {16, 0.98, 1200}});  // 1
//
// Ratios follow the pruners' convention: a group of n channels at ratio r
// loses round(r x n) of them. Groups missing from `ratios` keep every channel.
#ifndef SLIMFIT_SEARCH_WIDTHS_H_
#define SLIMFIT_SEARCH_WIDTHS_H_

#include <cstdint>
#include <map>
#include <string>
#include <vector>

namespace slimfit {

// Each group's kept count rounded up to a multiple of `multiple` (never
// above the group's channels: a group rounded up to all of them is not cut,
// ratio 0). `multiple` <= 1 rounds nothing. The result has exactly the
// groups in `channels` (0 for those `ratios` leaves out; paths that are
// not groups are dropped).
std::map<std::string, double> RoundKeptUp(const std::map<std::string, double>& ratios,
                                          const std::map<std::string, int64_t>& channels, int multiple);

// One variant of a candidate: the multiple its widths were rounded to (1:
// none), its measured latency (any unit, lower is faster) and its MACs.
struct WidthVariant {
  int multiple = 1;
  double latency = 0;
  int64_t macs = 0;
};

// The variant with the most MACs (channels kept) among those whose latency
// is within `tolerance` (a fraction) of the fastest; ties go to the earlier
// variant. Requires a non-empty list.
size_t PickWidthVariant(const std::vector<WidthVariant>& variants, double tolerance = 0.03);

}  // namespace slimfit

#endif  // SLIMFIT_SEARCH_WIDTHS_H_
