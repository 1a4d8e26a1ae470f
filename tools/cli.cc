#include "tools/cli.h"

#include <sys/stat.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "absl/flags/parse.h"
#include "absl/flags/usage.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "common/allocator.h"
#include "common/field_error.h"
#include "common/files.h"
#include "common/interrupt.h"
#include "common/status_macros.h"

namespace slimfit {

std::string ResolveUserPath(const std::string& path) {
  const char* cwd = std::getenv("BUILD_WORKING_DIRECTORY");
  if (path.empty() || path.front() == '/' || cwd == nullptr || *cwd == '\0') return path;
  return absl::StrCat(cwd, "/", path);
}

absl::StatusOr<Model> LoadModelOrZoo(const std::string& spec, const ZooOptions& zoo_options) {
  if (spec.empty()) {
    return FieldError("--model", "required", "\"\"",
                      absl::StrCat("a TorchScript .pt file, or a zoo model: ", absl::StrJoin(ZooModelNames(), ", ")));
  }
  if (ZooRegistry().Contains(spec)) return CreateZooModel(spec, zoo_options);
  const std::string path = ResolveUserPath(spec);
  struct stat st;
  const bool exists = ::stat(path.c_str(), &st) == 0;
  if (exists || absl::StrContains(spec, "/") || absl::EndsWith(spec, ".pt") ||
      absl::EndsWith(spec, ".pth")) {
    return Model::Load(path);
  }
  return FieldErrorWithCode(
      absl::StatusCode::kNotFound, "--model", "neither a file nor a zoo model", Quoted(spec),
      absl::StrCat("a TorchScript .pt file, or a zoo model: ", absl::StrJoin(ZooModelNames(), ", ")));
}

absl::StatusOr<TensorSpec> InputShapeFlag(const std::string& flag) {
  TensorSpec spec;
  spec.add_shape(1);
  for (absl::string_view part : absl::StrSplit(flag, ',')) {
    int64_t d = 0;
    if (!absl::SimpleAtoi(part, &d) || d < 1) {
      return FieldError("--input_shape", "not a list of sizes", Quoted(flag),
                        "comma-separated sizes >= 1, e.g. 3,224,224");
    }
    spec.add_shape(d);
  }
  spec.set_dtype("float32");
  return spec;
}

absl::StatusOr<std::string> SaveToolOutput(const Model& model, absl::string_view tool, const std::string& spec,
                                           const std::string& out_flag) {
  std::string out = out_flag;
  if (out.empty()) {
    std::string name = spec.substr(spec.rfind('/') == std::string::npos ? 0 : spec.rfind('/') + 1);
    if (absl::EndsWith(name, ".pt")) name.resize(name.size() - 3);
    out = absl::StrCat("runs/", tool, "/", name, "/model.pt");
  }
  out = ResolveUserPath(out);
  const size_t slash = out.rfind('/');
  if (slash != std::string::npos) RETURN_IF_ERROR(CreateDirectories(out.substr(0, slash)));
  RETURN_IF_ERROR(model.Save(out));
  return out;
}

namespace {
std::vector<std::string>& CommandLine() {
  static auto* args = new std::vector<std::string>();
  return *args;
}
}  // namespace

bool FlagGiven(absl::string_view name) {
  for (const std::string& arg : CommandLine()) {
    if (arg == "--") break;
    absl::string_view a = arg;
    if (!absl::ConsumePrefix(&a, "--")) {
      if (!absl::ConsumePrefix(&a, "-")) continue;
    }
    absl::string_view key = a.substr(0, a.find('='));
    if (key == name || key == absl::StrCat("no", name)) return true;
  }
  return false;
}

int RunTool(int argc, char** argv, const char* tool, const char* usage,
            absl::Status (*run)()) {
  CommandLine().assign(argv + 1, argv + argc);
  TuneAllocatorForTensors();
  absl::SetProgramUsageMessage(usage);
  absl::ParseCommandLine(argc, argv);
  const absl::Status s = run();
  if (!s.ok()) {
    std::fprintf(stderr, "%s: %s\n", tool, ErrorText(s).c_str());
    // Stopped by a signal it handled: the shell's convention, 128 + signal.
    return absl::IsCancelled(s) && InterruptRequested() ? 128 + InterruptSignal() : 1;
  }
  return 0;
}

namespace {
// Where the program started, read once before RunFromWorkspace's chdir.
const std::string& StartDirectory() {
  static const std::string* const dir = [] {
    char buf[4096];
    return new std::string(getcwd(buf, sizeof(buf)) != nullptr ? buf : ".");
  }();
  return *dir;
}
}  // namespace

std::string StartDirectoryPath(const std::string& path) {
  if (path.empty() || path[0] == '/') return path;
  return absl::StrCat(StartDirectory(), "/", path);
}

int RunFromWorkspace(int argc, char** argv, const char* name, absl::Status (*run)()) {
  absl::ParseCommandLine(argc, argv);
  StartDirectory();
  if (const char* wd = std::getenv("BUILD_WORKSPACE_DIRECTORY")) {
    if (chdir(wd) != 0) {
      std::fprintf(stderr, "%s: cannot enter %s\n", name, wd);
      return 1;
    }
  }
  const absl::Status s = run();
  if (!s.ok()) {
    std::fprintf(stderr, "%s: %s\n", name, ErrorText(s).c_str());
    return 1;
  }
  return 0;
}

}  // namespace slimfit
