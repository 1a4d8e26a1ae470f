// File: common/torch_status.h
//
// The LibTorch boundary. LibTorch reports errors by throwing c10::Error
// (TORCH_CHECK) and friends; slimfit's API never lets an exception escape.
// Every call into LibTorch that can throw goes through one of these, which
// catches c10::Error and std::exception and returns a Status carrying torch's
// message (first line of it: torch appends a C++ backtrace) after our context.
//
//   absl::Status s = TorchCall("loading model.pt", [&] { m = torch::jit::load(p); });
//   absl::StatusOr<at::Tensor> y =
//       TorchCallOr("conv1 forward", [&] { return at::conv2d(x, w); });
//
// Codes: c10::IndexError / std::out_of_range -> kOutOfRange;
// c10::ValueError / c10::TypeError / std::invalid_argument -> kInvalidArgument;
// c10::NotImplementedError -> kUnimplemented; std::bad_alloc ->
// kResourceExhausted; everything else -> kInternal.
#ifndef SLIMFIT_COMMON_TORCH_STATUS_H_
#define SLIMFIT_COMMON_TORCH_STATUS_H_

#include <exception>
#include <string>
#include <type_traits>
#include <utility>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace slimfit {

// Turns the exception currently being handled into a Status with `context`.
// Call only inside a catch block.
absl::Status StatusFromCurrentException(absl::string_view context);

// Runs `fn` (returning void); any exception becomes a Status.
template <typename Fn>
absl::Status TorchCall(absl::string_view context, Fn&& fn) {
  try {
    std::forward<Fn>(fn)();
    return absl::OkStatus();
  } catch (...) {
    return StatusFromCurrentException(context);
  }
}

// Runs `fn` (returning T); any exception becomes a Status.
template <typename Fn, typename T = std::invoke_result_t<Fn>>
absl::StatusOr<T> TorchCallOr(absl::string_view context, Fn&& fn) {
  try {
    return std::forward<Fn>(fn)();
  } catch (...) {
    return StatusFromCurrentException(context);
  }
}

}  // namespace slimfit

#endif  // SLIMFIT_COMMON_TORCH_STATUS_H_
