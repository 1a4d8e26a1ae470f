#include "data/readers/idx.h"

#include <ATen/ATen.h>
#include <sys/stat.h>
#include <zlib.h>

#include <cstring>

#include "absl/strings/str_cat.h"
#include "common/field_error.h"
#include "common/status_macros.h"
#include "common/torch_status.h"
#include "data/splits.h"

namespace slimfit {
namespace {

bool Exists(const std::string& path) {
  struct stat st;
  return ::stat(path.c_str(), &st) == 0 && S_ISREG(st.st_mode);
}

// Reads all of a (possibly gzip-compressed) file.
absl::StatusOr<std::string> ReadMaybeGzip(const std::string& path) {
  if (!Exists(path)) return absl::NotFoundError(absl::StrCat("\"", path, "\" does not exist"));
  gzFile f = gzopen(path.c_str(), "rb");
  if (f == nullptr) return absl::PermissionDeniedError(absl::StrCat("cannot open \"", path, "\""));
  std::string out;
  char buf[1 << 16];
  int n;
  while ((n = gzread(f, buf, sizeof(buf))) > 0) out.append(buf, static_cast<size_t>(n));
  int err = Z_OK;
  const char* msg = gzerror(f, &err);
  std::string message = msg == nullptr ? "" : msg;
  gzclose(f);
  if (n < 0 || (err != Z_OK && err != Z_STREAM_END)) {
    return absl::DataLossError(absl::StrCat(
        "\"", path, "\": corrupt or truncated gzip stream (", message, ")"));
  }
  return out;
}

uint32_t BigEndian32(const unsigned char* p) {
  return (uint32_t{p[0]} << 24) | (uint32_t{p[1]} << 16) | (uint32_t{p[2]} << 8) | uint32_t{p[3]};
}

absl::StatusOr<Splits> LoadMnist(const DataConfig& config) {
  const auto& c = config.mnist();
  const std::string dir = c.directory().empty() ? kDefaultFashionMnistDir : c.directory();
  const int num_classes = c.num_classes() == 0 ? 10 : c.num_classes();
  if (num_classes < 1 || num_classes > 256) {
    return FieldError("num_classes", "out of range", num_classes, "[1, 256] (0 = 10)");
  }
  Splits splits;
  for (const bool train : {true, false}) {
    const std::string prefix = train ? "train" : "t10k";
    ASSIGN_OR_RETURN(std::string images_path, FindIdxFile(dir, prefix + "-images-idx3-ubyte"));
    ASSIGN_OR_RETURN(std::string labels_path, FindIdxFile(dir, prefix + "-labels-idx1-ubyte"));
    ASSIGN_OR_RETURN(at::Tensor images, ReadIdxFile(images_path));
    ASSIGN_OR_RETURN(at::Tensor labels, ReadIdxFile(labels_path));
    if (images.dim() != 3) {
      return absl::InvalidArgumentError(absl::StrCat(
          "\"", images_path, "\": expected 3 dimensions (N, H, W), got ", images.dim()));
    }
    if (labels.dim() != 1) {
      return absl::InvalidArgumentError(absl::StrCat(
          "\"", labels_path, "\": expected 1 dimension (N), got ", labels.dim()));
    }
    if (images.size(0) != labels.size(0)) {
      return absl::InvalidArgumentError(absl::StrCat(
          "\"", images_path, "\" has ", images.size(0), " images but \"", labels_path,
          "\" has ", labels.size(0), " labels"));
    }
    if (labels.numel() > 0) {
      at::Tensor bad = (labels >= num_classes).nonzero();
      if (bad.numel() > 0) {
        const int64_t i = bad[0][0].item<int64_t>();
        return absl::InvalidArgumentError(absl::StrCat(
            "\"", labels_path, "\": label ", labels[i].item<int64_t>(), " at record ", i,
            " is out of range [0, ", num_classes, ")"));
      }
    }
    ASSIGN_OR_RETURN(auto ds, TensorDataset::Create(
                                  {images.unsqueeze(1), labels.to(at::kLong)},
                                  absl::StrCat(dir, "/", train ? "train" : "test")));
    (train ? splits.train : splits.test) = std::move(ds);
  }
  return splits;
}

const Registration<DatasetSource> kRegistration(DatasetRegistry(), "mnist", &LoadMnist);

}  // namespace

absl::StatusOr<std::string> FindIdxFile(const std::string& dir, const std::string& stem) {
  const std::string gz = absl::StrCat(dir, "/", stem, ".gz");
  if (Exists(gz)) return gz;
  const std::string raw = absl::StrCat(dir, "/", stem);
  if (Exists(raw)) return raw;
  return absl::NotFoundError(absl::StrCat(
      "neither \"", gz, "\" nor \"", raw, "\" exists",
      dir == kDefaultFashionMnistDir ? " (install Debian's dataset-fashion-mnist: ./bootstrap.sh)"
                                     : ""));
}

absl::StatusOr<at::Tensor> ReadIdxFile(const std::string& path) {
  ASSIGN_OR_RETURN(std::string bytes, ReadMaybeGzip(path));
  const auto* p = reinterpret_cast<const unsigned char*>(bytes.data());
  if (bytes.size() < 4 || p[0] != 0 || p[1] != 0) {
    return absl::InvalidArgumentError(absl::StrCat(
        "\"", path, "\": wrong magic number (not an IDX file: the first two bytes must be 0)"));
  }
  if (p[2] != 0x08) {
    return absl::UnimplementedError(absl::StrCat(
        "\"", path, "\": IDX element type 0x", absl::Hex(p[2]),
        " is not supported (only 0x08, unsigned byte)"));
  }
  const int ndim = p[3];
  if (ndim < 1 || ndim > 4) {
    return absl::InvalidArgumentError(
        absl::StrCat("\"", path, "\": IDX header declares ", ndim, " dimensions (valid: 1 to 4)"));
  }
  const size_t header = 4 + 4 * static_cast<size_t>(ndim);
  if (bytes.size() < header) {
    return absl::DataLossError(absl::StrCat("\"", path, "\": short read in the IDX header"));
  }
  std::vector<int64_t> shape;
  uint64_t total = 1;
  for (int d = 0; d < ndim; ++d) {
    const uint32_t n = BigEndian32(p + 4 + 4 * d);
    shape.push_back(n);
    // Checked before multiplying: 2^34 * 2^32 would wrap to a small number.
    if (n != 0 && total > (uint64_t{1} << 34) / n) {
      return absl::InvalidArgumentError(absl::StrCat("\"", path, "\": absurd IDX dimensions"));
    }
    total *= n;
  }
  if (bytes.size() - header < total) {
    return absl::DataLossError(absl::StrCat(
        "\"", path, "\": short read: the header declares ", total, " bytes of data but ",
        bytes.size() - header, " follow (file truncated?)"));
  }
  return TorchCallOr(path, [&] {
    at::Tensor t = at::empty(shape, at::kByte);
    // (a 0-item file gives an empty tensor; the dataset reports an empty split)
    if (total > 0) std::memcpy(t.data_ptr(), bytes.data() + header, total);
    return t;
  });
}

}  // namespace slimfit
