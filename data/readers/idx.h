// File: data/readers/idx.h
//
// IDX files (the MNIST family's format), read from `.gz` directly through
// zlib (an uncompressed file is read as is). Registers the "mnist" dataset
// source: train (60k) and test (10k) from a directory, by default Debian's
// Fashion-MNIST at /usr/share/datasets/fashion-mnist.
//
// Errors name the file and what is wrong: wrong magic, unsupported element
// type, short read (truncated), image/label count mismatch, a label outside
// [0, num_classes).
#ifndef SLIMFIT_DATA_READERS_IDX_H_
#define SLIMFIT_DATA_READERS_IDX_H_

#include <ATen/core/Tensor.h>

#include <string>

#include "absl/status/statusor.h"

namespace slimfit {

inline constexpr char kDefaultFashionMnistDir[] = "/usr/share/datasets/fashion-mnist";

// An unsigned-byte IDX file as a uint8 tensor of its declared shape.
absl::StatusOr<at::Tensor> ReadIdxFile(const std::string& path);

// `dir/stem.gz` if it exists, else `dir/stem`; NotFound naming both.
absl::StatusOr<std::string> FindIdxFile(const std::string& dir, const std::string& stem);

}  // namespace slimfit

#endif  // SLIMFIT_DATA_READERS_IDX_H_
