// File: tools/cli.h
//
// Helpers shared by the command-line tools: what --model names, and paths
// given relative to where the user typed `bazel run`.
#ifndef SLIMFIT_TOOLS_CLI_H_
#define SLIMFIT_TOOLS_CLI_H_

#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "model/model.h"
#include "model/zoo/zoo.h"

namespace slimfit {

// `path` as the user meant it: `bazel run` starts tools in their runfiles
// directory, so a relative path is taken relative to BUILD_WORKING_DIRECTORY
// (where `bazel run` was typed) when Bazel sets it.
std::string ResolveUserPath(const std::string& path);

// What a --model flag names: a TorchScript file, or a zoo model name (built
// fresh, untrained). A path (anything with '/' or ending ".pt", or an existing file) is loaded;
// otherwise `spec` must be a zoo name, built with `zoo_options`.
absl::StatusOr<Model> LoadModelOrZoo(const std::string& spec, const ZooOptions& zoo_options = {});

// The per-sample input shape an --input_shape flag gives ("3,224,224"), as
// the model's first input: [1, 3, 224, 224] float32. Errors name
// --input_shape.
absl::StatusOr<TensorSpec> InputShapeFlag(const std::string& flag);

// Saves `model` where a tool's --out flag says, or (flag empty) to
// runs/<tool>/<model name>/model.pt, creating directories; returns the path.
absl::StatusOr<std::string> SaveToolOutput(const Model& model, absl::string_view tool, const std::string& spec,
                                           const std::string& out_flag);

// Whether the command line handed to RunTool names flag `name` (as --name,
// --name=..., -name or --noname), so explicit flags can override a config
// file while their defaults do not.
bool FlagGiven(absl::string_view name);

// A tool's main(): sets the usage text, parses flags, runs `run`, prints a
// failure as "<tool>: CODE: message" on stderr. Returns the exit code (0/1).
int RunTool(int argc, char** argv, const char* tool, const char* usage,
            absl::Status (*run)());

// For benchmarks: parses flags, moves to the workspace root (under `bazel
// run`, so relative paths name checked-in files and runs/), runs `run`, and
// prints its error as "<name>: <status>" (exit 1).
int RunFromWorkspace(int argc, char** argv, const char* name, absl::Status (*run)());

// A path relative to the directory the program started in (under `bazel
// run`, its runfiles: where a data dependency such as //third_party:python
// lies), made absolute; RunFromWorkspace leaves that directory. Absolute
// paths come back unchanged.
std::string StartDirectoryPath(const std::string& path);

}  // namespace slimfit

#endif  // SLIMFIT_TOOLS_CLI_H_
