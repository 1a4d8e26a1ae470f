// Fuzz target: the model loader's pre-check (InspectTorchScriptArchive) on
// arbitrary bytes — the zip directory of files users did not write. Never
// crashes or reads past the file; what it accepts has no absolute entry
// name, no ".." path component ("a..b" is a legal name) and no entry over
// the size limit.
#include <cstdint>
#include <cstdlib>
#include <string>

#include "absl/strings/match.h"
#include "absl/strings/str_split.h"
#include "bazel/fuzz_input.h"
#include "model/archive.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string path = slimfit::WriteFuzzInput(data, size, ".pt");
  if (path.empty()) return 0;
  constexpr uint64_t kLimit = uint64_t{1} << 20;
  absl::StatusOr<slimfit::ArchiveSummary> s = slimfit::InspectTorchScriptArchive(path, kLimit);
  if (!s.ok()) return 0;
  for (const slimfit::ArchiveEntry& e : s->entries) {
    bool dotdot = false;
    for (absl::string_view part : absl::StrSplit(e.name, absl::ByAnyChar("/\\"))) {
      dotdot = dotdot || part == "..";
    }
    if (absl::StartsWith(e.name, "/") || absl::StartsWith(e.name, "\\") || dotdot ||
        e.uncompressed_size > kLimit) {
      std::abort();  // the check promised to refuse these
    }
  }
  return 0;
}
