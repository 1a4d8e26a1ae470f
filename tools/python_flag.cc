#include "tools/python_flag.h"

#include <unistd.h>

#include <array>
#include <cstdio>
#include <memory>

#include "absl/flags/flag.h"
#include "absl/strings/str_cat.h"
#include "common/field_error.h"
#include "tools/cli.h"

ABSL_FLAG(std::string, python, "", "a Python with torch (bazel run passes //third_party:python, the venv's)");

namespace slimfit {

absl::StatusOr<std::string> TorchPython() {
  const std::string given = absl::GetFlag(FLAGS_python);
  if (given.empty()) {
    return FieldError("--python", "not set (`bazel run` passes //third_party:python)", "\"\"", "a Python with torch");
  }
  const std::string path = StartDirectoryPath(given);
  if (::access(path.c_str(), X_OK) != 0) {
    return FieldError("--python", absl::StrCat("not an executable file (", path, ")"), Quoted(given),
                      "a Python with torch, e.g. ~/.cache/slimfit/torch-*/bin/python");
  }
  return path;
}

absl::StatusOr<std::string> RunTorchPython(const std::string& env, const std::string& args) {
  absl::StatusOr<std::string> python = TorchPython();
  if (!python.ok()) return python.status();
  const std::string cmd = absl::StrCat(env, env.empty() ? "" : " ", *python, " ", args, " 2>&1");
  std::unique_ptr<FILE, int (*)(FILE*)> pipe(popen(cmd.c_str(), "r"), pclose);
  if (!pipe) return absl::InternalError(absl::StrCat("cannot start: ", cmd));
  std::string out;
  std::array<char, 256> buf;
  while (fgets(buf.data(), buf.size(), pipe.get()) != nullptr) out += buf.data();
  return out;
}

}  // namespace slimfit
