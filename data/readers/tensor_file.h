// File: data/readers/tensor_file.h
//
// Tensor files: a list of tensors sharing their first dimension, written by
//   Python: torch.save([images, labels], "train.pt")
//   C++:    torch::save(std::vector<torch::Tensor>{images, labels}, "train.pt")
//           (or torch::pickle_save of a tensor list)
// Registers the "tensor_file" dataset source (train, and optional val/test).
#ifndef SLIMFIT_DATA_READERS_TENSOR_FILE_H_
#define SLIMFIT_DATA_READERS_TENSOR_FILE_H_

#include <ATen/core/Tensor.h>

#include <string>
#include <vector>

#include "absl/status/statusor.h"

namespace slimfit {

// The tensors in the file, in list order. Errors name the file and say which
// formats were tried.
absl::StatusOr<std::vector<at::Tensor>> ReadTensorFile(const std::string& path);

}  // namespace slimfit

#endif  // SLIMFIT_DATA_READERS_TENSOR_FILE_H_
