// Fuzz target: an experiment file as users write them — strict text-proto
// parsing, then WithDefaults and ValidateExperiment (which runs before any
// work). Never crashes; WithDefaults is idempotent on whatever parses.
#include <cstdint>
#include <cstdlib>
#include <string>

#include "absl/strings/string_view.h"
#include "common/text_proto.h"
#include "search/experiment.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const absl::string_view text(reinterpret_cast<const char*>(data), size);
  slimfit::Experiment e;
  if (!slimfit::ParseTextProto(text, "fuzz.pbtxt", &e).ok()) return 0;
  const slimfit::Experiment once = slimfit::WithDefaults(e);
  const slimfit::Experiment twice = slimfit::WithDefaults(once);
  if (slimfit::ToTextProto(once) != slimfit::ToTextProto(twice)) std::abort();
  (void)slimfit::ValidateExperiment(once).ok();
  return 0;
}
