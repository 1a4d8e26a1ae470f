// File: model/archive.h
//
// Reads a TorchScript file's zip directory without running any of it: the
// pre-check Model::Load does before handing a file to torch::jit::load, and
// what `tools:inspect --archive` prints.
//
// A TorchScript archive is a zip (written by PyTorch's stored-only zip writer)
// with entries "<root>/data.pkl", "<root>/constants.pkl", "<root>/code/...".
// torch.save() files share the zip layout but have no code/ and no
// constants.pkl: that is how a state_dict is told apart from a model.
#ifndef SLIMFIT_MODEL_ARCHIVE_H_
#define SLIMFIT_MODEL_ARCHIVE_H_

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "absl/status/statusor.h"

namespace slimfit {

struct ArchiveEntry {
  std::string name;
  uint64_t uncompressed_size = 0;
};

struct ArchiveSummary {
  std::vector<ArchiveEntry> entries;
  // The operators the model's code calls, as its TorchScript source writes
  // them ("torch.conv2d", "ops.quantized.linear"), with call counts; read
  // from the code/*.py entries without compiling or running them.
  std::map<std::string, int> declared_ops;
  // Of those, the ones that deserve a look before loading, each with why:
  // operators that read files (torch.from_file) and operators outside
  // LibTorch's own namespaces (custom ops: they need a plugin library, which
  // slimfit never loads, so such a model fails to load here).
  std::map<std::string, std::string> notable_ops;
  // Code entries not read: neither stored nor deflated, over 16 MiB, or with
  // a local header or stream that disagrees with the directory.
  int num_unscanned_code_files = 0;
  int64_t file_size = 0;
  int num_code_files = 0;     // entries under <root>/code/ ending in .py
  int num_tensor_blobs = 0;   // entries under <root>/data/ or constants/
  uint64_t tensor_bytes = 0;  // their total size
  bool has_constants_pkl = false;
  bool has_data_pkl = false;
  // torch.export's .pt2 layout (<root>/archive_format, <root>/models/*.json).
  bool is_exported_program = false;
};

// Lists the zip directory of `path` and checks it is a plausible TorchScript
// archive. Errors (InvalidArgument unless the file is missing/unreadable)
// name the file and say what is wrong: empty, not a zip, truncated, an entry
// name that is absolute or has a ".." component, an entry larger than
// `max_entry_bytes`, a torch.export program (.pt2: says to save with
// torch.jit.trace / torch.jit.script instead), or no TorchScript code (a
// torch.save() file). Reads the
// zip directory and the code entries (TorchScript source, which PyTorch's
// writer deflates; at most 16 MiB each), never the tensors.
absl::StatusOr<ArchiveSummary> InspectTorchScriptArchive(
    const std::string& path, uint64_t max_entry_bytes = uint64_t{1} << 36);

}  // namespace slimfit

#endif  // SLIMFIT_MODEL_ARCHIVE_H_
