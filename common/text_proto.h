// File: common/text_proto.h
//
// Strict protobuf text-format parsing for experiment and config files.
//
//   MyConfig config;
//   RETURN_IF_ERROR(ParseTextProtoFile("experiments/fashion.pbtxt", &config));
//
// Contract:
// - Unknown fields and unknown enum values are errors (never skipped).
// - Every error the parser reports is returned, each as "file:line:col: what",
//   with 1-based line and column, joined by "\n", in one InvalidArgument.
//   (protobuf's column is that of the token after the offending one, e.g.
//   the ':' after an unknown field name.)
// - A missing or unreadable file is NotFound / PermissionDenied naming it.
// - On error `message` is left in an unspecified (but valid) state.
#ifndef SLIMFIT_COMMON_TEXT_PROTO_H_
#define SLIMFIT_COMMON_TEXT_PROTO_H_

#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace google::protobuf {
class Message;
}  // namespace google::protobuf

namespace slimfit {

// Parses `text`; `source_name` names it in errors (a file name, "<flag>").
absl::Status ParseTextProto(absl::string_view text,
                            absl::string_view source_name,
                            google::protobuf::Message* message);

// Reads and parses the file at `path`.
absl::Status ParseTextProtoFile(const std::string& path,
                                google::protobuf::Message* message);

// The message in text format (for reports and for writing resolved configs).
std::string ToTextProto(const google::protobuf::Message& message);

// The name of the field set in `message`'s oneof `oneof_name` — the name
// implementations are registered under — or "" when none is set.
std::string SetOneofField(const google::protobuf::Message& message, absl::string_view oneof_name);

// The field names of `message`'s oneof `oneof_name`, in declaration order
// (the names implementations register under); empty for an unknown oneof.
std::vector<std::string> OneofFieldNames(const google::protobuf::Message& message, absl::string_view oneof_name);

// Selects (sets to its default message) the field `field` of oneof
// `oneof_name`; false, and nothing changed, when the oneof has no such field.
bool SelectOneofField(google::protobuf::Message* message, absl::string_view oneof_name, absl::string_view field);

// The same as SetOneofField, but an unset oneof is the field error
// "<context>: no <oneof_name> set; valid: <valid, comma-separated>"
// (common/field_error.h; an empty context names the message itself).

absl::StatusOr<std::string> RequiredOneofField(const google::protobuf::Message& message,
                                               absl::string_view oneof_name, absl::string_view context,
                                               const std::vector<std::string>& valid);

}  // namespace slimfit

#endif  // SLIMFIT_COMMON_TEXT_PROTO_H_
