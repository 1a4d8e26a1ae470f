// File: data/prefetch_loader.h
//
// PrefetchLoader: a BatchLoader's batches made ahead by `threads` background
// threads while the caller trains on the current one: the streaming loader
// for datasets that decode files (data/readers/image_folder.h), PyTorch's
// DataLoader workers as threads.
//
//   ASSIGN_OR_RETURN(auto inner, BatchLoader::Create(images, options, transforms));
//   auto loader = PrefetchLoader::Create(std::move(inner), {.threads = 2, .depth = 4});
//
// Each thread claims the next batch of the pass (its rows and seed,
// BatchLoader::Claim), makes it whole (decode, per-sample and batch
// transforms, BatchLoader::Materialize), and hands it over; Next returns
// them in the pass's order. Contract:
//   - the same batches, in the same order, as the BatchLoader's own Next,
//     for any number of threads (every random draw hangs on the batch's seed);
//   - an error is returned by the Next that reaches that batch;
//   - at most `depth` batches are claimed and not yet returned, so memory is
//     bounded by depth + 1 batches (those, and the caller's) whatever the
//     dataset's size; depth >= threads.
// Reset stops the threads, drops what was made ahead and starts the new pass
// at its first Next.
#ifndef SLIMFIT_DATA_PREFETCH_LOADER_H_
#define SLIMFIT_DATA_PREFETCH_LOADER_H_

#include <condition_variable>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

#include "data/data_loader.h"

namespace slimfit {

struct PrefetchOptions {
  int threads = 1;  // >= 1
  int depth = 2;    // raised to threads when smaller
};

class PrefetchLoader : public DataLoader {
 public:
  static std::unique_ptr<PrefetchLoader> Create(std::unique_ptr<BatchLoader> inner, PrefetchOptions options);
  ~PrefetchLoader() override;

  absl::Status Reset(int64_t epoch) override;
  // The pass ends after `max_batches`: no batch past them is made.
  absl::Status ResetForBatches(int64_t epoch, int64_t max_batches) override;
  absl::StatusOr<bool> Next(Batch* batch) override;
  int64_t num_batches() const override { return inner_->num_batches(); }
  int64_t num_samples() const override { return inner_->num_samples(); }
  int64_t batch_size() const override { return inner_->batch_size(); }
  const PrefetchOptions& options() const { return options_; }

 private:
  PrefetchLoader(std::unique_ptr<BatchLoader> inner, PrefetchOptions options)
      : inner_(std::move(inner)), options_(options) {}
  void Work();
  void Stop();

  std::unique_ptr<BatchLoader> inner_;
  const PrefetchOptions options_;
  std::vector<std::thread> threads_;
  std::mutex mu_;
  std::condition_variable changed_;
  // Guarded by mu_:
  std::map<int64_t, absl::StatusOr<Batch>> ready_;  // by position in the pass
  int64_t claimed_ = 0;                             // batches claimed so far
  int64_t limit_ = INT64_MAX;                       // batches this pass may claim
  int64_t delivered_ = 0;                           // batches Next has returned
  bool exhausted_ = false;                          // Claim said the pass is over
  bool stop_ = false;
  bool started_ = false;
};

}  // namespace slimfit

#endif  // SLIMFIT_DATA_PREFETCH_LOADER_H_
