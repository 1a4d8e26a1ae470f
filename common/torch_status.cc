#include "common/torch_status.h"

#include <c10/util/Exception.h>

#include <new>
#include <stdexcept>

#include "absl/strings/str_cat.h"
#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_split.h"

namespace slimfit {
namespace {

// The TorchScript interpreter's error: a header, the serialized code's
// traceback, often the original Python traceback, and the error itself on
// the last line. Kept: the error and the innermost serialized frame.
std::string CondenseInterpreterError(absl::string_view msg) {
  std::vector<absl::string_view> lines = absl::StrSplit(msg, '\n', absl::SkipWhitespace());
  if (lines.empty()) return std::string(msg);
  absl::string_view error = absl::StripAsciiWhitespace(lines.back());
  absl::string_view frame;
  for (absl::string_view line : lines) {
    if (absl::StartsWith(line, "Traceback of TorchScript, original code")) break;
    absl::string_view l = absl::StripAsciiWhitespace(line);
    if (absl::StartsWith(l, "File \"")) frame = l;
  }
  if (frame.empty()) return std::string(error);
  return absl::StrCat(error, " (TorchScript ", frame, ")");
}

// torch's what() carries a C++ backtrace after the message; keep the message.
std::string TrimTorchMessage(const char* what) {
  absl::string_view msg(what == nullptr ? "" : what);
  // c10::Error::what_without_backtrace() is preferred where available (see
  // the caller); this handles plain std::exception text.
  while (!msg.empty() && (msg.back() == '\n' || msg.back() == ' ')) {
    msg.remove_suffix(1);
  }
  if (absl::StartsWith(msg, "The following operation failed in the TorchScript interpreter.")) {
    return CondenseInterpreterError(msg);
  }
  return std::string(msg);
}

absl::Status Make(absl::StatusCode code, absl::string_view context,
                  absl::string_view message) {
  if (context.empty()) return absl::Status(code, message);
  return absl::Status(code, absl::StrCat(context, ": ", message));
}

}  // namespace

absl::Status StatusFromCurrentException(absl::string_view context) {
  try {
    throw;
  } catch (const c10::IndexError& e) {
    return Make(absl::StatusCode::kOutOfRange, context,
                TrimTorchMessage(e.what_without_backtrace()));
  } catch (const c10::ValueError& e) {
    return Make(absl::StatusCode::kInvalidArgument, context,
                TrimTorchMessage(e.what_without_backtrace()));
  } catch (const c10::TypeError& e) {
    return Make(absl::StatusCode::kInvalidArgument, context,
                TrimTorchMessage(e.what_without_backtrace()));
  } catch (const c10::NotImplementedError& e) {
    return Make(absl::StatusCode::kUnimplemented, context,
                TrimTorchMessage(e.what_without_backtrace()));
  } catch (const c10::Error& e) {
    return Make(absl::StatusCode::kInternal, context,
                TrimTorchMessage(e.what_without_backtrace()));
  } catch (const std::bad_alloc& e) {
    return Make(absl::StatusCode::kResourceExhausted, context,
                absl::StrCat("out of memory (", e.what(), ")"));
  } catch (const std::out_of_range& e) {
    return Make(absl::StatusCode::kOutOfRange, context, TrimTorchMessage(e.what()));
  } catch (const std::invalid_argument& e) {
    return Make(absl::StatusCode::kInvalidArgument, context,
                TrimTorchMessage(e.what()));
  } catch (const std::exception& e) {
    return Make(absl::StatusCode::kInternal, context, TrimTorchMessage(e.what()));
  } catch (...) {
    return Make(absl::StatusCode::kUnknown, context, "unknown exception");
  }
}

}  // namespace slimfit
