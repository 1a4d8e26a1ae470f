// File: common/status_macros.h
//
// RETURN_IF_ERROR / ASSIGN_OR_RETURN for absl::Status and absl::StatusOr
// (Debian's Abseil 20220623 has neither).
//
//   absl::Status Load(const std::string& path) {
//     RETURN_IF_ERROR(CheckExists(path));
//     ASSIGN_OR_RETURN(std::string bytes, ReadFile(path));
//     ASSIGN_OR_RETURN(auto model, Parse(bytes), "while loading " + path);
//     ...
//   }
//
// The optional last argument of either macro is context prepended to the
// error's message ("context: original message"), outermost first, so an error
// reads from where it was caught down to where it began.
#ifndef SLIMFIT_COMMON_STATUS_MACROS_H_
#define SLIMFIT_COMMON_STATUS_MACROS_H_

#include <string>
#include <utility>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/cord.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"

namespace slimfit {

// Returns `status` with `context + ": "` prepended to its message, payloads
// kept; OK stays OK. (common/field_error.h overloads it for field paths.)
inline absl::Status WithContext(const absl::Status& status,
                                absl::string_view context) {
  if (status.ok() || context.empty()) return status;
  absl::Status out(status.code(), absl::StrCat(context, ": ", status.message()));
  status.ForEachPayload([&](absl::string_view url, const absl::Cord& payload) { out.SetPayload(url, payload); });
  return out;
}

// "CODE: message" for people to read: Status::ToString without the payloads
// (a field error's path payload, common/field_error.h, repeats the message).
inline std::string ErrorText(const absl::Status& status) {
  return status.ToString(absl::StatusToStringMode::kWithNoExtraData);
}

namespace internal_status_macros {

inline const absl::Status& AsStatus(const absl::Status& s) { return s; }
template <typename T>
const absl::Status& AsStatus(const absl::StatusOr<T>& s) {
  return s.status();
}
}  // namespace internal_status_macros

}  // namespace slimfit

#define SLIMFIT_STATUS_CONCAT_INNER(a, b) a##b
#define SLIMFIT_STATUS_CONCAT(a, b) SLIMFIT_STATUS_CONCAT_INNER(a, b)

#define SLIMFIT_RIE_1(expr)                                              \
  do {                                                                   \
    const ::absl::Status _slimfit_status =                               \
        ::slimfit::internal_status_macros::AsStatus(expr);               \
    if (!_slimfit_status.ok()) return _slimfit_status;                   \
  } while (0)
#define SLIMFIT_RIE_2(expr, context)                                     \
  do {                                                                   \
    const ::absl::Status _slimfit_status =                               \
        ::slimfit::internal_status_macros::AsStatus(expr);               \
    if (!_slimfit_status.ok())                                           \
      return ::slimfit::WithContext(_slimfit_status, (context));         \
  } while (0)
#define SLIMFIT_GET_MACRO_3(_1, _2, NAME, ...) NAME

// RETURN_IF_ERROR(expr) or RETURN_IF_ERROR(expr, context): expr is a Status
// or a StatusOr.
#define RETURN_IF_ERROR(...) \
  SLIMFIT_GET_MACRO_3(__VA_ARGS__, SLIMFIT_RIE_2, SLIMFIT_RIE_1)(__VA_ARGS__)

#define SLIMFIT_AOR_IMPL(tmp, lhs, rexpr, context)                      \
  auto tmp = (rexpr);                                                   \
  if (!tmp.ok())                                                        \
    return ::slimfit::WithContext(std::move(tmp).status(), (context));  \
  lhs = std::move(tmp).value()

#define SLIMFIT_AOR_2(lhs, rexpr) \
  SLIMFIT_AOR_IMPL(SLIMFIT_STATUS_CONCAT(_slimfit_or_, __LINE__), lhs, rexpr, "")
#define SLIMFIT_AOR_3(lhs, rexpr, context)                                  \
  SLIMFIT_AOR_IMPL(SLIMFIT_STATUS_CONCAT(_slimfit_or_, __LINE__), lhs, rexpr, \
                   context)
#define SLIMFIT_GET_MACRO_4(_1, _2, _3, NAME, ...) NAME

// ASSIGN_OR_RETURN(lhs, expr) or ASSIGN_OR_RETURN(lhs, expr, context).
// `lhs` may declare a variable (`auto x`, `std::string s`) or name one.
// A comma inside `lhs` (e.g. `std::pair<int, int> p`) needs parentheses.
#define ASSIGN_OR_RETURN(...)                                   \
  SLIMFIT_GET_MACRO_4(__VA_ARGS__, SLIMFIT_AOR_3, SLIMFIT_AOR_2, \
                      unused)(__VA_ARGS__)

#endif  // SLIMFIT_COMMON_STATUS_MACROS_H_
