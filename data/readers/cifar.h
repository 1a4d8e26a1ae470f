// File: data/readers/cifar.h
//
// CIFAR-10 / CIFAR-100 binary files (the "binary version" archives: one
// record per image, label byte(s) then 3x32x32 uint8 pixels). Registers the
// "cifar" dataset source (DataConfig.cifar: a directory with data_batch_1..5
// + test_batch, or train.bin + test.bin for CIFAR-100).
//
// Errors name the file and what is wrong: a size that is not a whole number
// of records (truncated, or the other CIFAR variant), a label out of range.
#ifndef SLIMFIT_DATA_READERS_CIFAR_H_
#define SLIMFIT_DATA_READERS_CIFAR_H_

#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "data/dataset.h"

namespace slimfit {

// The records of `paths`, concatenated, as (uint8 images [N, 3, 32, 32],
// int64 labels [N]). num_classes: 10 or 100; `coarse`: CIFAR-100's 20
// superclass labels instead of the 100 fine ones.
absl::StatusOr<std::shared_ptr<TensorDataset>> ReadCifarFiles(const std::vector<std::string>& paths,
                                                              int num_classes, bool coarse,
                                                              const std::string& name);

}  // namespace slimfit

#endif  // SLIMFIT_DATA_READERS_CIFAR_H_
