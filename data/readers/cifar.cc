// CIFAR-10 / CIFAR-100 binary files: the "cifar" dataset source.
//   CIFAR-10 record:  <1 byte label><3072 bytes: 1024 R, 1024 G, 1024 B>
//   CIFAR-100 record: <1 byte coarse label><1 byte fine label><3072 bytes>
// Files: data_batch_{1..5}.bin + test_batch.bin, or train.bin + test.bin.
#include "data/readers/cifar.h"

#include <ATen/ATen.h>

#include <cstring>
#include <vector>

#include "absl/strings/str_cat.h"
#include "common/field_error.h"
#include "common/files.h"
#include "common/status_macros.h"
#include "common/torch_status.h"
#include "data/splits.h"

namespace slimfit {
namespace {

constexpr int64_t kImageBytes = 3 * 32 * 32;

}  // namespace

absl::StatusOr<std::shared_ptr<TensorDataset>> ReadCifarFiles(
    const std::vector<std::string>& paths, int num_classes, bool coarse, const std::string& name) {
  const int64_t label_bytes = num_classes == 10 ? 1 : 2;
  const int64_t record = label_bytes + kImageBytes;
  const int label_offset = num_classes == 10 ? 0 : (coarse ? 0 : 1);
  const int64_t classes = num_classes == 100 && coarse ? 20 : num_classes;
  std::vector<std::string> contents;
  int64_t total = 0;
  for (const auto& path : paths) {
    ASSIGN_OR_RETURN(std::string bytes, ReadFileToString(path));
    if (bytes.empty() || bytes.size() % record != 0) {
      return absl::DataLossError(absl::StrCat(
          "\"", path, "\": ", bytes.size(), " bytes is not a whole number of ", record,
          "-byte CIFAR-", num_classes, " records (truncated, or the wrong CIFAR variant?)"));
    }
    total += static_cast<int64_t>(bytes.size()) / record;
    contents.push_back(std::move(bytes));
  }
  at::Tensor images = at::empty({total, 3, 32, 32}, at::kByte);
  at::Tensor labels = at::empty({total}, at::kLong);
  auto* img = images.data_ptr<uint8_t>();
  auto* lab = labels.data_ptr<int64_t>();
  int64_t i = 0;
  for (size_t f = 0; f < contents.size(); ++f) {
    const auto* p = reinterpret_cast<const uint8_t*>(contents[f].data());
    const int64_t n = static_cast<int64_t>(contents[f].size()) / record;
    for (int64_t r = 0; r < n; ++r, ++i) {
      const uint8_t* rec = p + r * record;
      const int64_t label = rec[label_offset];
      if (label >= classes) {
        return absl::InvalidArgumentError(absl::StrCat(
            "\"", paths[f], "\": label ", label, " at record ", r, " is out of range [0, ",
            classes, ")"));
      }
      lab[i] = label;
      std::memcpy(img + i * kImageBytes, rec + label_bytes, kImageBytes);
    }
  }
  return TensorDataset::Create({images, labels}, name);
}

namespace {

absl::StatusOr<Splits> LoadCifar(const DataConfig& config) {
  const auto& c = config.cifar();
  if (c.directory().empty()) {
    return FieldError("directory", "required", "\"\"", "the folder of the CIFAR binary version's .bin files");
  }
  if (c.num_classes() != 10 && c.num_classes() != 100) {
    return FieldError("num_classes", "not a CIFAR variant", c.num_classes(), "10, 100");
  }
  if (c.coarse_labels() && c.num_classes() != 100) {
    return FieldError("coarse_labels", "only CIFAR-100 has coarse labels", "true", "false, or num_classes: 100");
  }

  std::vector<std::string> train_files, test_files;
  if (c.num_classes() == 10) {
    for (int b = 1; b <= 5; ++b) train_files.push_back(absl::StrCat(c.directory(), "/data_batch_", b, ".bin"));
    test_files.push_back(c.directory() + "/test_batch.bin");
  } else {
    train_files.push_back(c.directory() + "/train.bin");
    test_files.push_back(c.directory() + "/test.bin");
  }
  Splits s;
  ASSIGN_OR_RETURN(s.train, ReadCifarFiles(train_files, c.num_classes(), c.coarse_labels(),
                                           c.directory() + "/train"));
  ASSIGN_OR_RETURN(s.test, ReadCifarFiles(test_files, c.num_classes(), c.coarse_labels(),
                                          c.directory() + "/test"));
  return s;
}

const Registration<DatasetSource> kRegistration(DatasetRegistry(), "cifar", &LoadCifar);

}  // namespace
}  // namespace slimfit
