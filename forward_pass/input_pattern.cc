#include "forward_pass/input_pattern.h"

#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "common/field_error.h"

namespace slimfit {
namespace {

// A field error about the pattern with no path of its own: the caller roots
// it at the field or flag that held the pattern.
absl::Status Bad(const std::string& quoted, absl::string_view what) {
  return FieldError("", what, quoted, "a tuple with one entry per batch element: its model position or '_'");
}

// One entry: an integer, or '_' (quoted or bare).
absl::StatusOr<std::optional<int>> ParseEntry(absl::string_view raw, const std::string& quoted) {
  absl::string_view e = absl::StripAsciiWhitespace(raw);
  if (e == "_" || e == "'_'" || e == "\"_\"") return std::optional<int>();
  int v;
  if (!absl::SimpleAtoi(e, &v)) {
    return Bad(quoted, absl::StrCat("entry \"", e, "\" is neither an integer nor '_'"));
  }
  if (v < 0) return Bad(quoted, absl::StrCat("model position ", v, " is negative"));
  return std::optional<int>(v);
}

}  // namespace

InputPattern::InputPattern(std::vector<std::optional<int>> entries) : entries_(std::move(entries)) {
  int k = 0;
  for (const auto& e : entries_) k += e.has_value();
  model_positions_.assign(k, -1);
  for (size_t i = 0; i < entries_.size(); ++i) {
    if (entries_[i]) model_positions_[*entries_[i]] = static_cast<int>(i);
  }
}

InputPattern InputPattern::Default() { return InputPattern({0, std::nullopt}); }

absl::StatusOr<InputPattern> InputPattern::Build(std::vector<std::optional<int>> entries,
                                                 const std::string& quoted) {
  int k = 0;
  for (const auto& e : entries) k += e.has_value();
  if (k == 0) return Bad(quoted, "no entry goes to the model (all are '_')");
  std::vector<int> seen(k, 0);
  for (const auto& e : entries) {
    if (!e) continue;
    if (*e >= k) {
      return Bad(quoted, absl::StrCat("model position ", *e, " is out of range: with ", k,
                                      " model inputs, positions are 0..", k - 1));
    }
    if (++seen[*e] > 1) return Bad(quoted, absl::StrCat("model position ", *e, " appears twice"));
  }
  return InputPattern(std::move(entries));
}

absl::StatusOr<InputPattern> InputPattern::Parse(absl::string_view text) {
  const std::string quoted = absl::StrCat("\"", text, "\"");
  absl::string_view t = absl::StripAsciiWhitespace(text);
  if (t.size() < 2 || t.front() != '(' || t.back() != ')') {
    return Bad(quoted, "not a parenthesised tuple such as (0, '_')");
  }
  t = absl::StripAsciiWhitespace(t.substr(1, t.size() - 2));
  if (!t.empty() && t.back() == ',') t.remove_suffix(1);  // (0,)
  if (t.empty()) return Bad(quoted, "empty");
  std::vector<std::optional<int>> entries;
  for (absl::string_view part : absl::StrSplit(t, ',')) {
    auto e = ParseEntry(part, quoted);
    if (!e.ok()) return e.status();
    entries.push_back(*e);
  }
  return Build(std::move(entries), quoted);
}

absl::StatusOr<InputPattern> InputPattern::FromList(const std::vector<std::string>& list) {
  const std::string quoted = absl::StrCat("[", absl::StrJoin(list, ", "), "]");
  if (list.empty()) return Bad(quoted, "empty");
  std::vector<std::optional<int>> entries;
  for (const auto& part : list) {
    auto e = ParseEntry(part, quoted);
    if (!e.ok()) return e.status();
    entries.push_back(*e);
  }
  return Build(std::move(entries), quoted);
}

absl::StatusOr<InputPattern> InputPattern::FromConfig(const ForwardPassConfig& config) {
  if (!config.input_pattern_text().empty() && config.input_pattern_size() > 0) {
    return FieldError("input_pattern", "set beside input_pattern_text",
                      absl::StrCat("[", absl::StrJoin(config.input_pattern(), ", "), "]"),
                      "one of input_pattern_text, input_pattern");
  }
  if (!config.input_pattern_text().empty()) {
    ASSIGN_OR_RETURN(InputPattern p, Parse(config.input_pattern_text()), AtField("input_pattern_text"));
    return p;
  }

  if (config.input_pattern_size() > 0) {
    ASSIGN_OR_RETURN(InputPattern p, FromList({config.input_pattern().begin(), config.input_pattern().end()}),
                     AtField("input_pattern"));
    return p;
  }

  return Default();
}

absl::Status InputPattern::ValidateFor(size_t batch_arity) const {
  if (entries_.size() != batch_arity) {
    return absl::InvalidArgumentError(absl::StrCat(
        "input pattern ", ToString(), " has ", entries_.size(), " entries but the batch has ",
        batch_arity, " element", batch_arity == 1 ? "" : "s",
        " (one entry per batch element: its model position, or '_')"));
  }
  return absl::OkStatus();
}

std::vector<int> InputPattern::ignored() const {
  std::vector<int> out;
  for (size_t i = 0; i < entries_.size(); ++i) {
    if (!entries_[i]) out.push_back(static_cast<int>(i));
  }
  return out;
}

std::string InputPattern::ToString() const {
  std::vector<std::string> parts;
  for (const auto& e : entries_) parts.push_back(e ? std::to_string(*e) : "'_'");
  return absl::StrCat("(", absl::StrJoin(parts, ", "), parts.size() == 1 ? ",)" : ")");
}

}  // namespace slimfit
