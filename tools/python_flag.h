// File: tools/python_flag.h
//
// --python: the Python with torch that a benchmark runs its PyTorch half
// with. Bazel passes //third_party:python (the venv bootstrap.sh made, or
// the SLIMFIT_PYTHON a user set: third_party/libtorch.bzl) as
// --python=$(rootpath //third_party:python); a path given by hand is taken
// from the directory the command started in.
//
//   ASSIGN_OR_RETURN(std::string out, RunTorchPython("OMP_NUM_THREADS=1", "half.py 4"));
//
// Contract: TorchPython is InvalidArgument naming --python when it is unset
// or names no executable file.
#ifndef SLIMFIT_TOOLS_PYTHON_FLAG_H_
#define SLIMFIT_TOOLS_PYTHON_FLAG_H_

#include <string>

#include "absl/flags/declare.h"
#include "absl/status/statusor.h"

ABSL_DECLARE_FLAG(std::string, python);

namespace slimfit {

// The absolute path of --python.
absl::StatusOr<std::string> TorchPython();

// Runs `<env> <--python> <args> 2>&1` through the shell and returns what it
// printed (the caller parses it); Internal if it cannot be started.
absl::StatusOr<std::string> RunTorchPython(const std::string& env, const std::string& args);

}  // namespace slimfit

#endif  // SLIMFIT_TOOLS_PYTHON_FLAG_H_
