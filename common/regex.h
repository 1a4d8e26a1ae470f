// File: common/regex.h
//
// Regexes from users' configs (module-path selectors, excludes) are RE2:
// linear-time matching, so a pathological pattern cannot hang a run, and a
// bad pattern is an error naming the config field, not a crash.
//
//   ASSIGN_OR_RETURN(auto re, CompileUserRegex(sel.module_regex(),
//                                              "pruning.layers[2].module_regex"));
//   if (FullMatch(*re, "layer1.0.conv1")) ...
#ifndef SLIMFIT_COMMON_REGEX_H_
#define SLIMFIT_COMMON_REGEX_H_

#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "re2/re2.h"

namespace slimfit {

// InvalidArgument "<field>: invalid regex "<pattern>": <RE2's reason>" when
// the pattern does not compile or exceeds RE2's program-size limit.
absl::StatusOr<std::unique_ptr<RE2>> CompileUserRegex(absl::string_view pattern,
                                                      absl::string_view field);

// Whole-string match (module paths are matched whole, as in a config list).
bool FullMatch(const RE2& re, absl::string_view text);

}  // namespace slimfit

#endif  // SLIMFIT_COMMON_REGEX_H_
