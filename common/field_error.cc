#include "common/field_error.h"

#include "absl/strings/cord.h"
#include "absl/strings/match.h"
#include "absl/strings/escaping.h"

namespace slimfit {
namespace {

constexpr char kPathPayload[] = "type.slimfit/field_path";

absl::Status Make(absl::StatusCode code, absl::string_view path, absl::string_view rest) {
  absl::Status s(code, absl::StrCat(path, ": ", rest));
  s.SetPayload(kPathPayload, absl::Cord(path));
  return s;
}

std::string Rest(absl::string_view problem, absl::string_view got, absl::string_view valid) {
  std::string rest(problem);
  if (!got.empty()) absl::StrAppend(&rest, ", got ", got);
  if (!valid.empty()) absl::StrAppend(&rest, "; valid: ", valid);
  return rest;
}

}  // namespace

absl::Status FieldError(absl::string_view path, absl::string_view problem) {
  return Make(absl::StatusCode::kInvalidArgument, path, problem);
}

absl::Status FieldError(absl::string_view path, absl::string_view problem, const absl::AlphaNum& got) {
  return Make(absl::StatusCode::kInvalidArgument, path, Rest(problem, got.Piece(), ""));
}

absl::Status FieldError(absl::string_view path, absl::string_view problem, const absl::AlphaNum& got,
                        absl::string_view valid) {
  return Make(absl::StatusCode::kInvalidArgument, path, Rest(problem, got.Piece(), valid));
}

absl::Status FieldErrorWithCode(absl::StatusCode code, absl::string_view path, absl::string_view problem,
                                absl::string_view got, absl::string_view valid) {
  return Make(code, path, Rest(problem, got, valid));
}

std::optional<std::string> FieldPathOf(const absl::Status& status) {
  if (status.ok()) return std::nullopt;
  auto path = status.GetPayload(kPathPayload);
  if (!path.has_value()) return std::nullopt;
  std::string p(*path);
  // Only while the message still starts with it: a plain context put in front
  // since (WithContext with a string) makes it a sentence, not a path.
  if (!absl::StartsWith(status.message(), absl::StrCat(p, ": "))) return std::nullopt;
  return p;
}

absl::Status WithContext(const absl::Status& status, const AtField& field) {
  if (status.ok() || field.path.empty()) return status;
  std::optional<std::string> path = FieldPathOf(status);
  if (!path.has_value()) return WithContext(status, absl::string_view(field.path));
  const std::string joined = JoinFieldPath(field.path, *path);
  absl::Status out = Make(status.code(), joined, status.message().substr(path->size() + 2));
  status.ForEachPayload([&](absl::string_view url, const absl::Cord& payload) {
    if (url != kPathPayload) out.SetPayload(url, payload);
  });
  return out;
}

std::string JoinFieldPath(absl::string_view parent, absl::string_view child) {
  if (parent.empty()) return std::string(child);
  if (child.empty()) return std::string(parent);
  if (absl::StartsWith(child, "[")) return absl::StrCat(parent, child);
  return absl::StrCat(parent, ".", child);
}

std::string IndexedField(absl::string_view field, int index) { return absl::StrCat(field, "[", index, "]"); }

std::string Quoted(absl::string_view text) { return absl::StrCat("\"", absl::CEscape(text), "\""); }

}  // namespace slimfit
