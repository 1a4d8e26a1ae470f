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
// A callable may itself return absl::Status / absl::StatusOr<T>: its error
// passes through (with the context prepended) and the result is not nested.
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
#include "common/status_macros.h"

namespace slimfit {

// Turns the exception currently being handled into a Status with `context`.
// Call only inside a catch block.
absl::Status StatusFromCurrentException(absl::string_view context);

namespace internal_torch_status {
template <typename T>
struct Flatten {  // T → StatusOr<T>
  using type = absl::StatusOr<T>;
};
template <typename T>
struct Flatten<absl::StatusOr<T>> {  // StatusOr<T> stays StatusOr<T>
  using type = absl::StatusOr<T>;
};
}  // namespace internal_torch_status

// Runs `fn` (returning void or absl::Status); any exception becomes a Status.
// A Status that `fn` returns is passed through with `context` prepended.
template <typename Fn>
absl::Status TorchCall(absl::string_view context, Fn&& fn) {
  try {
    if constexpr (std::is_same_v<std::invoke_result_t<Fn>, absl::Status>) {
      return WithContext(std::forward<Fn>(fn)(), context);
    } else {
      std::forward<Fn>(fn)();
      return absl::OkStatus();
    }
  } catch (...) {
    return StatusFromCurrentException(context);
  }
}

// Runs `fn` (returning T, or absl::StatusOr<T>); any exception becomes a
// Status. Returns absl::StatusOr<T> either way (never a nested StatusOr).
template <typename Fn, typename R = std::invoke_result_t<Fn>,
          typename Out = typename internal_torch_status::Flatten<R>::type>
Out TorchCallOr(absl::string_view context, Fn&& fn) {
  try {
    Out out = std::forward<Fn>(fn)();
    if (out.ok() || context.empty()) return out;
    return WithContext(out.status(), context);

  } catch (...) {
    return StatusFromCurrentException(context);
  }
}

}  // namespace slimfit

#endif  // SLIMFIT_COMMON_TORCH_STATUS_H_
