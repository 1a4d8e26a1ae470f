#include "data/prefetch_loader.h"

#include <exception>

#include "absl/strings/str_cat.h"

namespace slimfit {

std::unique_ptr<PrefetchLoader> PrefetchLoader::Create(std::unique_ptr<DataLoader> inner, int depth) {
  return std::unique_ptr<PrefetchLoader>(new PrefetchLoader(std::move(inner), depth < 1 ? 1 : depth));
}

PrefetchLoader::~PrefetchLoader() { Stop(); }

void PrefetchLoader::Stop() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stop_ = true;
  }
  changed_.notify_all();
  if (producer_.joinable()) producer_.join();
  std::lock_guard<std::mutex> lock(mu_);
  queue_.clear();
  stop_ = false;
  done_ = false;
  started_ = false;
}

absl::Status PrefetchLoader::Reset(int64_t epoch) {
  Stop();
  return inner_->Reset(epoch);
}

void PrefetchLoader::Produce() {
  while (true) {
    {
      std::unique_lock<std::mutex> lock(mu_);
      changed_.wait(lock, [&] { return stop_ || static_cast<int>(queue_.size()) < depth_; });
      if (stop_) return;
    }
    Batch batch;
    absl::StatusOr<bool> got;
    try {
      got = inner_->Next(&batch);
    } catch (const std::exception& e) {
      got = absl::InternalError(absl::StrCat("prefetching a batch: ", e.what()));
    }
    std::lock_guard<std::mutex> lock(mu_);
    if (!got.ok()) {
      queue_.push_back(got.status());
    } else if (*got) {
      queue_.push_back(std::move(batch));
    }
    if (!got.ok() || !*got) done_ = true;
    changed_.notify_all();
    if (done_) return;
  }
}

absl::StatusOr<bool> PrefetchLoader::Next(Batch* batch) {
  std::unique_lock<std::mutex> lock(mu_);
  if (!started_) {
    started_ = true;
    producer_ = std::thread([this] { Produce(); });
  }
  changed_.wait(lock, [&] { return !queue_.empty() || done_; });
  if (queue_.empty()) return false;
  absl::StatusOr<Batch> item = std::move(queue_.front());
  queue_.pop_front();
  changed_.notify_all();
  if (!item.ok()) return item.status();
  *batch = *std::move(item);
  return true;
}

}  // namespace slimfit
