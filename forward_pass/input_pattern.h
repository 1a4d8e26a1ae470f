// File: forward_pass/input_pattern.h
//
// InputPattern: which elements of a loader's tuple go to the model, and in
// which order — Neutrino's `(1, 0, '_', 2)`. One entry per tuple element:
// an integer is that element's position in the model call, '_' ignores it.
//
//   ASSIGN_OR_RETURN(InputPattern p, InputPattern::Parse("(1, 0, '_', 2)"));
//   p.model_positions()  -> {1, 0, 3}: model(batch[1], batch[0], batch[3])
//   p.ignored()          -> {2}
//
// Valid patterns: the integers are exactly 0..k-1 (each once), k >= 1.
// Errors are field errors without a path (common/field_error.h) that quote the
// pattern: `model position 0 appears twice, got "(0, 0)"; valid: ...`; the
// caller roots them at the field or flag that held it (FromConfig does:
// "input_pattern_text: ..."). ValidateFor(arity) checks the pattern against a
// batch.

#ifndef SLIMFIT_FORWARD_PASS_INPUT_PATTERN_H_
#define SLIMFIT_FORWARD_PASS_INPUT_PATTERN_H_

#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "forward_pass/forward_pass.pb.h"

namespace slimfit {

class InputPattern {
 public:
  // (0, '_').
  static InputPattern Default();
  // Text form: "(0, '_')", "(1, 0, \"_\", 2)", "(0,)"; bare _ is accepted.
  static absl::StatusOr<InputPattern> Parse(absl::string_view text);
  // List form: {"1", "0", "_", "2"}.
  static absl::StatusOr<InputPattern> FromList(const std::vector<std::string>& entries);
  // From ForwardPassConfig (text or list; neither = Default()).
  static absl::StatusOr<InputPattern> FromConfig(const ForwardPassConfig& config);

  // InvalidArgument when the pattern has more or fewer entries than the
  // batch has elements; the message quotes the pattern and the arity.
  absl::Status ValidateFor(size_t batch_arity) const;

  // Batch positions in model-call order.
  const std::vector<int>& model_positions() const { return model_positions_; }
  // Batch positions marked '_'.
  std::vector<int> ignored() const;
  size_t arity() const { return entries_.size(); }
  std::string ToString() const;

 private:
  explicit InputPattern(std::vector<std::optional<int>> entries);
  static absl::StatusOr<InputPattern> Build(std::vector<std::optional<int>> entries,
                                            const std::string& quoted);
  std::vector<std::optional<int>> entries_;  // nullopt = '_'
  std::vector<int> model_positions_;
};

}  // namespace slimfit

#endif  // SLIMFIT_FORWARD_PASS_INPUT_PATTERN_H_
