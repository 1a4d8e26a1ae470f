// File: data/image_folder_index.h
//
// The file list of an image folder (torchvision's ImageFolder layout, see
// data.proto's ImageFolderDatasetConfig), built once and cached.
//
//   ASSIGN_OR_RETURN(ImageFolderListing l, ListImageFolder("/data/pets", cache_dir));
//
// Layout: a directory named "train" directly under the root makes it a split
// layout (root/train, and root/val, root/test when they exist); otherwise the
// root itself is the one split "train". In each split, every immediate
// subdirectory is a class (sorted by name); its files are found recursively,
// following symlinks, in torchvision's order (directories by path, then files
// by name). Names starting with "." are ignored; files directly in a split
// folder belong to no class and are ignored, as torchvision does.
//
// The cache: `cache_dir`/<hash of the root's path>.index holds the listing
// and the modification time of every directory it read. A later call stats
// those directories (not the files) and reuses the listing when none
// changed: adding, removing or renaming a file or folder changes its parent's
// time. An empty cache_dir does not cache; a cache that cannot be written is
// a warning on stderr, not an error.
#ifndef SLIMFIT_DATA_IMAGE_FOLDER_INDEX_H_
#define SLIMFIT_DATA_IMAGE_FOLDER_INDEX_H_

#include <string>
#include <vector>

#include "absl/status/statusor.h"

namespace slimfit {

struct ImageFolderListing {
  struct Class {
    std::string name;
    std::vector<std::string> files;  // relative to the split's folder
  };
  struct Split {
    std::string name;    // "train", "val" or "test"
    std::string folder;  // absolute
    std::vector<Class> classes;
  };
  std::string root;  // absolute
  std::vector<Split> splits;
  bool from_cache = false;
};

// NotFound if `root` is not a directory; errors name the path.
absl::StatusOr<ImageFolderListing> ListImageFolder(const std::string& root, const std::string& cache_dir);

// $XDG_CACHE_HOME/slimfit/image_index, or ~/.cache/slimfit/image_index.
std::string DefaultImageIndexCacheDir();

}  // namespace slimfit

#endif  // SLIMFIT_DATA_IMAGE_FOLDER_INDEX_H_
