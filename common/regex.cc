#include "common/regex.h"

#include "absl/strings/str_cat.h"
#include "common/field_error.h"

namespace slimfit {

absl::StatusOr<std::unique_ptr<RE2>> CompileUserRegex(absl::string_view pattern,
                                                      absl::string_view field) {
  RE2::Options options;
  options.set_log_errors(false);
  // Bound the compiled program (default 8 MiB) so a huge pattern is refused.
  options.set_max_mem(8 << 20);
  auto re = std::make_unique<RE2>(re2::StringPiece(pattern.data(), pattern.size()), options);
  if (!re->ok()) {
    return FieldError(field, absl::StrCat("not an RE2 regex (", re->error(), ")"), Quoted(pattern));
  }
  return re;
}

bool FullMatch(const RE2& re, absl::string_view text) {
  return RE2::FullMatch(re2::StringPiece(text.data(), text.size()), re);
}

}  // namespace slimfit
