#include "tools/python_flag.h"

#include <unistd.h>

#include "absl/flags/flag.h"
#include "absl/strings/str_cat.h"
#include "tools/cli.h"

ABSL_FLAG(std::string, python, "", "a Python with torch (bazel run passes //third_party:python, the venv's)");

namespace slimfit {

absl::StatusOr<std::string> TorchPython() {
  const std::string given = absl::GetFlag(FLAGS_python);
  if (given.empty()) {
    return absl::InvalidArgumentError(
        "--python: not set; `bazel run` passes //third_party:python, or give a Python with torch");
  }
  const std::string path = StartDirectoryPath(given);
  if (::access(path.c_str(), X_OK) != 0) {
    return absl::InvalidArgumentError(absl::StrCat("--python: \"", given, "\" is not an executable file (", path,
                                                   "); a Python with torch, e.g. ~/.cache/slimfit/torch-*/bin/python"));
  }
  return path;
}

}  // namespace slimfit
