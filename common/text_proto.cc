#include "common/text_proto.h"

#include <google/protobuf/descriptor.h>
#include <google/protobuf/io/tokenizer.h>
#include <google/protobuf/message.h>
#include <google/protobuf/text_format.h>

#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/field_error.h"
#include "common/files.h"
#include "common/status_macros.h"

namespace slimfit {
namespace {

class CollectingErrors : public google::protobuf::io::ErrorCollector {
 public:
  explicit CollectingErrors(absl::string_view source) : source_(source) {}

  void AddError(int line, google::protobuf::io::ColumnNumber column,
                const std::string& message) override {
    errors_.push_back(
        absl::StrCat(source_, ":", line + 1, ":", column + 1, ": ", message));
  }
  void AddWarning(int line, google::protobuf::io::ColumnNumber column,
                  const std::string& message) override {
    // The parser warns about deprecated fields; strict parsing treats
    // warnings as what they are and keeps them out of the error list.
  }

  const std::vector<std::string>& errors() const { return errors_; }

 private:
  std::string source_;
  std::vector<std::string> errors_;
};

}  // namespace

absl::Status ParseTextProto(absl::string_view text,
                            absl::string_view source_name,
                            google::protobuf::Message* message) {
  CollectingErrors errors(source_name);
  google::protobuf::TextFormat::Parser parser;
  parser.RecordErrorsTo(&errors);
  parser.AllowUnknownField(false);
  parser.AllowUnknownExtension(false);
  const bool ok = parser.ParseFromString(std::string(text), message);
  if (ok && errors.errors().empty()) return absl::OkStatus();
  if (errors.errors().empty()) {
    return absl::InvalidArgumentError(absl::StrCat(
        source_name, ": not a valid text-format ",
        message->GetDescriptor()->full_name()));
  }
  return absl::InvalidArgumentError(absl::StrJoin(errors.errors(), "\n"));
}

absl::Status ParseTextProtoFile(const std::string& path,
                                google::protobuf::Message* message) {
  ASSIGN_OR_RETURN(std::string text, ReadFileToString(path));
  return ParseTextProto(text, path, message);
}

std::string SetOneofField(const google::protobuf::Message& message, absl::string_view oneof_name) {
  const auto* oneof = message.GetDescriptor()->FindOneofByName(std::string(oneof_name));
  if (oneof == nullptr) return "";
  const auto* field = message.GetReflection()->GetOneofFieldDescriptor(message, oneof);
  return field == nullptr ? "" : field->name();
}

std::vector<std::string> OneofFieldNames(const google::protobuf::Message& message, absl::string_view oneof_name) {
  std::vector<std::string> names;
  const auto* oneof = message.GetDescriptor()->FindOneofByName(std::string(oneof_name));
  if (oneof == nullptr) return names;
  for (int i = 0; i < oneof->field_count(); ++i) names.push_back(oneof->field(i)->name());
  return names;
}

bool SelectOneofField(google::protobuf::Message* message, absl::string_view oneof_name, absl::string_view field) {
  const auto* oneof = message->GetDescriptor()->FindOneofByName(std::string(oneof_name));
  if (oneof == nullptr) return false;
  for (int i = 0; i < oneof->field_count(); ++i) {
    if (oneof->field(i)->name() == field && oneof->field(i)->message_type() != nullptr) {
      message->GetReflection()->MutableMessage(message, oneof->field(i));
      return true;
    }
  }
  return false;
}

absl::StatusOr<std::string> RequiredOneofField(const google::protobuf::Message& message,
                                               absl::string_view oneof_name, absl::string_view context,
                                               const std::vector<std::string>& valid) {
  std::string name = SetOneofField(message, oneof_name);
  if (name.empty()) return FieldError(context, absl::StrCat("no ", oneof_name, " set"), "", absl::StrJoin(valid, ", "));

  return name;
}

std::string ToTextProto(const google::protobuf::Message& message) {
  std::string out;
  google::protobuf::TextFormat::PrintToString(message, &out);
  return out;
}

}  // namespace slimfit
