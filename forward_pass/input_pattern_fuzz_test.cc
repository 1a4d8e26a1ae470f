// Fuzz target: InputPattern::Parse on arbitrary text (experiment files and
// flags carry patterns like "(1, 0, '_', 2)"). Never crashes; whatever
// parses prints back to text that parses to the same pattern.
#include <cstdint>
#include <cstdlib>
#include <string>

#include "absl/strings/string_view.h"
#include "forward_pass/input_pattern.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const absl::string_view text(reinterpret_cast<const char*>(data), size);
  absl::StatusOr<slimfit::InputPattern> p = slimfit::InputPattern::Parse(text);
  if (!p.ok()) return 0;
  const std::string printed = p->ToString();
  absl::StatusOr<slimfit::InputPattern> again = slimfit::InputPattern::Parse(printed);
  if (!again.ok() || again->ToString() != printed) std::abort();  // the round trip must hold
  return 0;
}
