// The "image_folder" dataset source and ImageFolderDataset.
#include "data/readers/image_folder.h"

#include <ATen/ATen.h>

#include <algorithm>
#include <cstdio>
#include <filesystem>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/field_error.h"
#include "common/files.h"
#include "common/status_macros.h"
#include "common/torch_status.h"
#include "data/image_folder_index.h"
#include "data/splits.h"

namespace slimfit {

ImageFolderDataset::ImageFolderDataset(std::vector<std::string> files, std::vector<int64_t> labels, Options options,
                                       std::string name)
    : files_(std::move(files)), options_(std::move(options)), name_(std::move(name)) {
  labels_ = at::tensor(labels, at::kLong);
}

int64_t ImageFolderDataset::skipped() const {
  std::lock_guard<std::mutex> lock(skipped_mu_);
  return static_cast<int64_t>(skipped_.size());
}

absl::StatusOr<at::Tensor> ImageFolderDataset::LoadSample(int64_t index, uint64_t seed) const {
  ASSIGN_OR_RETURN(std::string bytes, ReadFileToString(files_[index]));
  ASSIGN_OR_RETURN(Image image, DecodeImage(bytes, options_.mode));
  ASSIGN_OR_RETURN(at::Tensor x, TorchCallOr("", [&] { return ImageToTensor(image); }));
  std::mt19937_64 rng(seed);
  for (const auto& t : options_.transforms) {
    ASSIGN_OR_RETURN(x, t->Apply(x, rng), t->name());
  }
  return x;
}

absl::StatusOr<Batch> ImageFolderDataset::GetSeededBatch(const at::Tensor& indices, uint64_t seed) const {
  RETURN_IF_ERROR(CheckIndices(indices, size(), name_));
  const at::Tensor idx = indices.contiguous();
  const int64_t n = idx.size(0);
  const int64_t* p = idx.data_ptr<int64_t>();
  std::vector<at::Tensor> images;
  std::vector<int64_t> kept;
  for (int64_t r = 0; r < n; ++r) {
    absl::StatusOr<at::Tensor> x = LoadSample(p[r], MixSeeds(seed, static_cast<uint64_t>(r)));
    if (x.ok()) {
      images.push_back(*std::move(x));
      kept.push_back(p[r]);
      continue;
    }
    const std::string& path = files_[p[r]];
    if (!options_.skip_bad) {
      return absl::Status(x.status().code(),
                          absl::StrCat(name_, ": \"", path, "\": ", x.status().message(),
                                       " (data.image_folder.on_bad_file: SKIP leaves bad files out)"));
    }
    std::lock_guard<std::mutex> lock(skipped_mu_);
    if (skipped_.insert(p[r]).second) {
      std::fprintf(stderr, "slimfit: %s: skipping \"%s\": %s\n", name_.c_str(), path.c_str(),
                   std::string(x.status().message()).c_str());
    }
  }
  if (images.empty()) {
    return absl::FailedPreconditionError(
        absl::StrCat(name_, ": every one of the batch's ", n, " files was bad and skipped"));
  }
  for (size_t i = 1; i < images.size(); ++i) {
    if (images[i].sizes() != images[0].sizes()) {
      return absl::FailedPreconditionError(
          absl::StrCat(name_, ": samples end different sizes (", absl::StrJoin(images[0].sizes(), "x"), " for \"",
                       files_[kept[0]], "\", ", absl::StrJoin(images[i].sizes(), "x"), " for \"", files_[kept[i]],
                       "\"): give data.image_folder sample transforms that end one size (resize + center_crop, or "
                       "random_resized_crop)"));
    }
  }
  return TorchCallOr(name_, [&] {
    at::Tensor rows_kept = at::tensor(kept, at::kLong);
    return Batch{at::stack(images), labels_.index_select(0, rows_kept)};
  });
}

namespace {

bool HasImageExtension(const std::string& file) {
  const std::string lower = absl::AsciiStrToLower(file);
  return absl::EndsWith(lower, ".jpg") || absl::EndsWith(lower, ".jpeg") || absl::EndsWith(lower, ".png");
}

std::vector<std::string> ClassNames(const ImageFolderListing::Split& s) {
  std::vector<std::string> out;
  for (const auto& c : s.classes) out.push_back(c.name);
  return out;
}

struct SplitFiles {
  std::vector<std::string> files;
  std::vector<int64_t> labels;
};

// The image files of one split, with the bad-file policy applied to files
// without an image extension and to empty class folders.
absl::StatusOr<SplitFiles> Collect(const ImageFolderListing::Split& split, bool skip_bad) {
  SplitFiles out;
  for (size_t label = 0; label < split.classes.size(); ++label) {
    const auto& cls = split.classes[label];
    int64_t images = 0;
    for (const auto& f : cls.files) {
      const std::string path = absl::StrCat(split.folder, "/", cls.name, "/", f);
      if (!HasImageExtension(f)) {
        if (!skip_bad) {
          return absl::InvalidArgumentError(absl::StrCat(
              "\"", path, "\" is not a .jpg, .jpeg or .png file (move it out, or on_bad_file: SKIP leaves it out)"));
        }
        std::fprintf(stderr, "slimfit: skipping \"%s\": not a .jpg, .jpeg or .png file\n", path.c_str());
        continue;
      }
      out.files.push_back(path);
      out.labels.push_back(static_cast<int64_t>(label));
      ++images;
    }
    if (images == 0) {
      const std::string folder = absl::StrCat(split.folder, "/", cls.name);
      if (!skip_bad) {
        return absl::FailedPreconditionError(
            absl::StrCat("class folder \"", folder, "\" has no .jpg, .jpeg or .png files (on_bad_file: SKIP keeps ",
                         "its label with no samples)"));
      }
      std::fprintf(stderr, "slimfit: class folder \"%s\" has no images; its label %zu has no samples\n", folder.c_str(),
                   label);
    }
  }
  if (out.files.empty()) {
    return absl::FailedPreconditionError(absl::StrCat("\"", split.folder, "\" has no images in class folders (",
                                                      split.classes.empty() ? "no class folders" : "all empty", ")"));
  }
  return out;
}

absl::StatusOr<Splits> LoadImageFolder(const DataConfig& config) {
  const ImageFolderDatasetConfig& c = config.image_folder();
  if (c.root().empty()) return FieldError("root", "required", "\"\"", "a folder of class folders");
  const std::string cache_dir = c.index_cache_dir() == "none" ? ""
                                : c.index_cache_dir().empty() ? DefaultImageIndexCacheDir()
                                                              : c.index_cache_dir();
  ASSIGN_OR_RETURN(ImageFolderListing listing, ListImageFolder(c.root(), cache_dir), AtField("root"));
  const ImageFolderListing::Split& train_split = listing.splits.front();
  const std::vector<std::string> classes = ClassNames(train_split);
  for (const auto& split : listing.splits) {
    if (ClassNames(split) != classes) {
      return FieldError("root",
                        absl::StrCat("\"", split.folder, "\" has classes {", absl::StrJoin(ClassNames(split), ", "),
                                     "} but \"", train_split.folder, "\" has {", absl::StrJoin(classes, ", "), "}"),
                        Quoted(c.root()), "a root whose split folders have the same class folders");
    }
  }
  const bool skip = c.on_bad_file() == ImageFolderDatasetConfig::SKIP;
  ImageFolderDataset::Options base;
  base.mode = c.mode() == ImageFolderDatasetConfig::GRAY ? ColorMode::kGray : ColorMode::kRgb;
  base.skip_bad = skip;
  ASSIGN_OR_RETURN(auto train_transforms, MakeSampleTransforms(c.train_sample_transforms(), "train_sample_transforms"));
  ASSIGN_OR_RETURN(auto eval_transforms, MakeSampleTransforms(c.eval_sample_transforms(), "eval_sample_transforms"));
  const std::string stem = std::filesystem::path(listing.root).filename().string();

  auto make = [&](SplitFiles files, bool train, const std::string& name) {
    ImageFolderDataset::Options o = base;
    o.transforms = train ? train_transforms : eval_transforms;
    return std::make_shared<const ImageFolderDataset>(std::move(files.files), std::move(files.labels), std::move(o),
                                                      absl::StrCat(stem, "/", name));
  };
  Splits s;
  SplitFiles train_files;
  for (const auto& split : listing.splits) {
    ASSIGN_OR_RETURN(SplitFiles files, Collect(split, skip), "root");
    if (split.name == "train") {
      train_files = std::move(files);
    } else {
      (split.name == "val" ? s.val : s.test) = make(std::move(files), false, split.name);
    }
  }
  if (s.val != nullptr) {
    s.train = make(std::move(train_files), true, "train");
    return s;
  }
  // Carve val from train's file list, so that val gets the eval transforms.
  ASSIGN_OR_RETURN(auto parts,
                   CarveIndices(static_cast<int64_t>(train_files.files.size()), ValFraction(config), config.seed(),
                                absl::StrCat(stem, "/train into val")),
                   "val_fraction");
  auto pick = [&](const at::Tensor& rows) {
    SplitFiles out;
    const int64_t* r = rows.data_ptr<int64_t>();
    for (int64_t i = 0; i < rows.size(0); ++i) {
      out.files.push_back(train_files.files[r[i]]);
      out.labels.push_back(train_files.labels[r[i]]);
    }
    return out;
  };
  s.train = make(pick(parts.first), true, "train");
  s.val = make(pick(parts.second), false, "train[val]");
  return s;
}

const Registration<DatasetSource> kRegistration(DatasetRegistry(), "image_folder", &LoadImageFolder);

}  // namespace
}  // namespace slimfit
