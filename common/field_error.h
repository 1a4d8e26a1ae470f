// File: common/field_error.h
//
// One grammar for every error about a field of a configuration (an
// experiment, a proto message, a command-line flag):
//
//     <path>: <problem>[, got <value>][; valid: <what would be>]
//
//   full_trainer.optimizer.lr: not positive, got -0.1; valid: > 0
//   data.splits[1].fraction: out of range, got 1.5; valid: (0, 1]
//   --data: not a known dataset, got "mnits"; valid: cifar10, fashion_mnist, ...
//
// <path> is dotted from the outermost message down, with [i] for an element of
// a repeated field, and "--name" for a flag. A validator names fields relative
// to the message it was given; its caller, which knows where that message sits,
// roots the error with AtField:
//
//   absl::Status CheckOptimizer(const OptimizerConfig& c) {
//     if (!(c.lr() > 0)) return FieldError("lr", "not positive", c.lr(), "> 0");
//     ...
//   }
//   RETURN_IF_ERROR(CheckOptimizer(c.optimizer()), AtField("full_trainer.optimizer"));
//   // -> "full_trainer.optimizer.lr: not positive, got -0.1; valid: > 0"
//
// The path travels in a payload beside the message. Any other error under
// AtField("x") becomes a field error of "x" whose problem is its message
// ("x: <message>"), so an outer AtField extends that path too.
#ifndef SLIMFIT_COMMON_FIELD_ERROR_H_
#define SLIMFIT_COMMON_FIELD_ERROR_H_

#include <functional>
#include <initializer_list>
#include <optional>
#include <string>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "common/status_macros.h"

namespace slimfit {

// "<path>: <problem>", InvalidArgument, with the path as a payload. An empty
// path names the message the validator was given; its caller's AtField fills
// it in.

absl::Status FieldError(absl::string_view path, absl::string_view problem);
// "<path>: <problem>, got <got>".
absl::Status FieldError(absl::string_view path, absl::string_view problem, const absl::AlphaNum& got);
// "<path>: <problem>, got <got>; valid: <valid>".
absl::Status FieldError(absl::string_view path, absl::string_view problem, const absl::AlphaNum& got,
                        absl::string_view valid);
// The same with another code (NotFound for a missing file, FailedPrecondition
// for a field that contradicts the model, ...). An empty `got` or `valid` is
// left out.
absl::Status FieldErrorWithCode(absl::StatusCode code, absl::string_view path, absl::string_view problem,
                                absl::string_view got, absl::string_view valid);

// For a struct of required pointers (a library's *Deps, *Context): OK when
// none is null, else InvalidArgument "<owner>: <first null member> is null;
// <needs>", e.g.
//   RETURN_IF_ERROR(RequireNonNull("TrainerDeps", {{"loss", deps.loss}, {"train", deps.train}},
//                                  "the trainer needs a loss and a train loader"));
struct Member {
  absl::string_view name;
  const void* pointer;
};
absl::Status RequireNonNull(absl::string_view owner, std::initializer_list<Member> members, absl::string_view needs);

// A path root for RETURN_IF_ERROR / ASSIGN_OR_RETURN's context argument.
struct AtField {
  explicit AtField(absl::string_view p) : path(p) {}
  std::string path;
};

// `status` under `field.path`: a field error's path gets the root in front
// ("lr" under "full_trainer.optimizer" is "full_trainer.optimizer.lr");
// any other error becomes the field error "<path>: <message>", code and
// payloads kept. OK stays OK.

absl::Status WithContext(const absl::Status& status, const AtField& field);

// `status` with a field error's path replaced by rename(path), e.g. an option
// struct's field by the flag that sets it ("timeout_seconds" ->
// "--dist_timeout_seconds"); any other status as it is.
absl::Status RenameField(const absl::Status& status, const std::function<std::string(absl::string_view)>& rename);
// RenameField for an options struct whose fields are named as the flags that
// set them: "quality" -> "--quality".
absl::Status AsFlagError(const absl::Status& status);

// The path a field error names, if `status` is one.
std::optional<std::string> FieldPathOf(const absl::Status& status);

// "parent.child"; "parent[i]" when child is "[i]"; either part alone when the
// other is empty; a flag ("--name") alone, as flags are roots.

std::string JoinFieldPath(absl::string_view parent, absl::string_view child);
// "field[i]".
std::string IndexedField(absl::string_view field, int index);
// A user's string quoted as it would be written in a text proto: "name".
std::string Quoted(absl::string_view text);

}  // namespace slimfit

#endif  // SLIMFIT_COMMON_FIELD_ERROR_H_
