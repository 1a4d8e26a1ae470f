#include "data/readers/tensor_file.h"

#include <torch/csrc/jit/api/module.h>
#include <torch/csrc/jit/serialization/import.h>
#include <torch/csrc/jit/serialization/pickle.h>

#include "absl/strings/str_cat.h"
#include "common/field_error.h"
#include "common/files.h"
#include "common/status_macros.h"
#include "common/torch_status.h"
#include "data/splits.h"

namespace slimfit {
namespace {

// torch.save(list) / torch::pickle_save(list): a pickled list or tuple.
absl::StatusOr<std::vector<at::Tensor>> FromPickle(const std::string& bytes) {
  ASSIGN_OR_RETURN(c10::IValue v, TorchCallOr("", [&] {
                     return torch::jit::pickle_load(std::vector<char>(bytes.begin(), bytes.end()));
                   }));
  std::vector<c10::IValue> items;
  if (v.isTensor()) {
    items.push_back(v);
  } else if (v.isList()) {
    for (const auto& e : v.toListRef()) items.push_back(e);
  } else if (v.isTuple()) {
    for (const auto& e : v.toTupleRef().elements()) items.push_back(e);
  } else {
    return absl::InvalidArgumentError(absl::StrCat(
        "holds a ", v.tagKind(), ", not a list or tuple of tensors"));
  }
  std::vector<at::Tensor> out;
  for (size_t i = 0; i < items.size(); ++i) {
    if (!items[i].isTensor()) {
      return absl::InvalidArgumentError(
          absl::StrCat("element ", i, " is a ", items[i].tagKind(), ", not a tensor"));
    }
    out.push_back(items[i].toTensor());
  }
  return out;
}

// torch::save(std::vector<Tensor>): a TorchScript archive whose attributes
// are named "0", "1", ...
absl::StatusOr<std::vector<at::Tensor>> FromArchive(const std::string& path) {
  return TorchCallOr("", [&] {
    torch::jit::Module m = torch::jit::load(path);
    std::vector<at::Tensor> out;
    for (int i = 0; m.hasattr(std::to_string(i)); ++i) {
      out.push_back(m.attr(std::to_string(i)).toTensor());
    }
    return out;
  });
}

absl::StatusOr<std::shared_ptr<const Dataset>> LoadSplitFile(const std::string& path,
                                                             const std::string& name) {
  ASSIGN_OR_RETURN(std::vector<at::Tensor> tensors, ReadTensorFile(path));
  ASSIGN_OR_RETURN(auto ds, TensorDataset::Create(std::move(tensors), name),
                   absl::StrCat("\"", path, "\""));
  return std::shared_ptr<const Dataset>(std::move(ds));
}

absl::StatusOr<Splits> LoadTensorFiles(const DataConfig& config) {
  const auto& c = config.tensor_file();
  if (c.train_path().empty()) return FieldError("train_path", "required", "\"\"", "a file saved by torch.save");
  Splits s;
  ASSIGN_OR_RETURN(s.train, LoadSplitFile(c.train_path(), c.train_path()), AtField("train_path"));
  if (!c.val_path().empty()) {
    ASSIGN_OR_RETURN(s.val, LoadSplitFile(c.val_path(), c.val_path()), AtField("val_path"));
  }
  if (!c.test_path().empty()) {
    ASSIGN_OR_RETURN(s.test, LoadSplitFile(c.test_path(), c.test_path()), AtField("test_path"));

  } else {
    const double fraction = config.val_fraction() == 0 ? 0.1 : config.val_fraction();
    ASSIGN_OR_RETURN(auto parts, CarveSplit(s.train, fraction, config.seed() + 1,
                                            c.train_path() + "[test]"));
    s.train = parts.first;
    s.test = parts.second;
  }
  return s;
}

const Registration<DatasetSource> kRegistration(DatasetRegistry(), "tensor_file",
                                                &LoadTensorFiles);

}  // namespace

absl::StatusOr<std::vector<at::Tensor>> ReadTensorFile(const std::string& path) {
  ASSIGN_OR_RETURN(std::string bytes, ReadFileToString(path));
  if (bytes.empty()) {
    return absl::InvalidArgumentError(absl::StrCat("\"", path, "\": the file is empty"));
  }
  auto pickled = FromPickle(bytes);
  if (pickled.ok()) return pickled;
  auto archived = FromArchive(path);
  if (archived.ok() && !archived->empty()) return archived;
  return absl::InvalidArgumentError(absl::StrCat(
      "\"", path, "\" is not a list of tensors saved by torch.save / torch::save "
      "(as a pickle: ", pickled.status().message(), "; as a C++ archive: ",
      archived.ok() ? "no tensors named 0, 1, ..." : archived.status().message(), ")"));
}

}  // namespace slimfit
