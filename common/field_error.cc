#include "common/field_error.h"

#include "absl/strings/cord.h"
#include "absl/strings/escaping.h"
#include "absl/strings/match.h"

namespace slimfit {
namespace {

constexpr char kPathPayload[] = "type.slimfit/field_path";

// The payload is "<path>\0<rest>": the message is rebuilt from it only while
// it still reads "<path>: <rest>" (or "<rest>" at the root).
absl::Status Make(absl::StatusCode code, absl::string_view path, absl::string_view rest) {
  absl::Status s(code, path.empty() ? std::string(rest) : absl::StrCat(path, ": ", rest));
  s.SetPayload(kPathPayload, absl::Cord(absl::StrCat(path, std::string(1, '\0'), rest)));
  return s;
}

struct Parts {
  std::string path, rest;
};

std::optional<Parts> PartsOf(const absl::Status& status) {
  if (status.ok()) return std::nullopt;
  auto payload = status.GetPayload(kPathPayload);
  if (!payload.has_value()) return std::nullopt;
  const std::string flat(*payload);
  const size_t cut = flat.find('\0');
  if (cut == std::string::npos) return std::nullopt;
  Parts p{flat.substr(0, cut), flat.substr(cut + 1)};
  const std::string expected = p.path.empty() ? p.rest : absl::StrCat(p.path, ": ", p.rest);
  // A plain context put in front since (WithContext with a string) makes it a
  // sentence, not a path.
  if (status.message() != expected) return std::nullopt;
  return p;
}

// `status` remade as the field error "<path>: <rest>", its code and other
// payloads kept.
absl::Status Remade(const absl::Status& status, absl::string_view path, absl::string_view rest) {
  absl::Status out = Make(status.code(), path, rest);
  status.ForEachPayload([&](absl::string_view url, const absl::Cord& payload) {
    if (url != kPathPayload) out.SetPayload(url, payload);
  });
  return out;
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
  std::optional<Parts> p = PartsOf(status);
  if (!p.has_value()) return std::nullopt;
  return p->path;
}

absl::Status RequireNonNull(absl::string_view owner, std::initializer_list<Member> members, absl::string_view needs) {
  for (const Member& m : members) {
    if (m.pointer == nullptr) return absl::InvalidArgumentError(absl::StrCat(owner, ": ", m.name, " is null; ", needs));
  }
  return absl::OkStatus();
}

absl::Status WithContext(const absl::Status& status, const AtField& field) {
  if (status.ok() || field.path.empty()) return status;
  // Any other error becomes one about this field, its message the problem.
  const Parts p = PartsOf(status).value_or(Parts{"", std::string(status.message())});
  return Remade(status, JoinFieldPath(field.path, p.path), p.rest);
}

absl::Status RenameField(const absl::Status& status, const std::function<std::string(absl::string_view)>& rename) {
  std::optional<Parts> p = PartsOf(status);
  if (!p.has_value()) return status;
  return Remade(status, rename(p->path), p->rest);
}

absl::Status AsFlagError(const absl::Status& status) {
  return RenameField(status, [](absl::string_view field) { return absl::StrCat("--", field); });
}

std::string JoinFieldPath(absl::string_view parent, absl::string_view child) {
  if (parent.empty()) return std::string(child);
  if (child.empty()) return std::string(parent);
  if (absl::StartsWith(child, "--")) return std::string(child);  // a flag is a root
  if (absl::StartsWith(child, "[")) return absl::StrCat(parent, child);

  return absl::StrCat(parent, ".", child);
}

std::string IndexedField(absl::string_view field, int index) { return absl::StrCat(field, "[", index, "]"); }

std::string Quoted(absl::string_view text) { return absl::StrCat("\"", absl::CEscape(text), "\""); }

}  // namespace slimfit
