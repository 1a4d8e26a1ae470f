// File: data/prefetch_loader.h
//
// PrefetchLoader: another loader's batches, prepared `depth` batches ahead
// by one background thread while the caller trains on the current one: the
// streaming half of an image folder (its decode threads are the other half,
// data/readers/image_folder.h).
//
//   ASSIGN_OR_RETURN(auto inner, BatchLoader::Create(images, options, transforms));
//   auto loader = PrefetchLoader::Create(std::move(inner), /*depth=*/2);
//
// Contract: the same batches in the same order as the inner loader (one
// producer calls its Next in turn); an error is returned by the Next that
// reaches it; memory is bounded by depth + 1 batches (the queue, and the
// one being made) whatever the dataset's size. Reset stops the thread,
// drops what was prefetched and restarts at the new pass's first Next.
#ifndef SLIMFIT_DATA_PREFETCH_LOADER_H_
#define SLIMFIT_DATA_PREFETCH_LOADER_H_

#include <condition_variable>
#include <cstdint>
#include <deque>
#include <memory>
#include <mutex>
#include <thread>

#include "data/data_loader.h"

namespace slimfit {

class PrefetchLoader : public DataLoader {
 public:
  // depth >= 1.
  static std::unique_ptr<PrefetchLoader> Create(std::unique_ptr<DataLoader> inner, int depth);
  ~PrefetchLoader() override;

  absl::Status Reset(int64_t epoch) override;
  absl::StatusOr<bool> Next(Batch* batch) override;
  int64_t num_batches() const override { return inner_->num_batches(); }
  int64_t num_samples() const override { return inner_->num_samples(); }
  int64_t batch_size() const override { return inner_->batch_size(); }
  int depth() const { return depth_; }

 private:
  PrefetchLoader(std::unique_ptr<DataLoader> inner, int depth) : inner_(std::move(inner)), depth_(depth) {}
  void Produce();
  void Stop();

  std::unique_ptr<DataLoader> inner_;
  const int depth_;
  std::thread producer_;
  std::mutex mu_;
  std::condition_variable changed_;
  std::deque<absl::StatusOr<Batch>> queue_;  // guarded by mu_
  bool done_ = false;                        // the producer has queued its last item
  bool stop_ = false;
  bool started_ = false;
};

}  // namespace slimfit

#endif  // SLIMFIT_DATA_PREFETCH_LOADER_H_
