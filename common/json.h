// JSON text for the files slimfit writes by hand (report.json, metrics.jsonl,
// --json outputs): strings escaped per RFC 8259, numbers that stay valid JSON.
//
//   absl::StrCat("{\"name\": ", JsonString(name), ", \"value\": ", JsonNumber(v), "}")
#ifndef SLIMFIT_COMMON_JSON_H_
#define SLIMFIT_COMMON_JSON_H_

#include <string>

#include "absl/strings/string_view.h"

namespace slimfit {

// `s` as a quoted JSON string: `"` and `\` escaped, \n \t \r as such, other
// control characters as \u00XX. Bytes >= 0x80 pass through (UTF-8 stays UTF-8).
std::string JsonString(absl::string_view s);

// `v` with 6 significant digits; NaN and infinities (not JSON) become null.
std::string JsonNumber(double v);

}  // namespace slimfit

#endif  // SLIMFIT_COMMON_JSON_H_
