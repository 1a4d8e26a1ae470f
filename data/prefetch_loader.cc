#include "data/prefetch_loader.h"

#include <algorithm>
#include <exception>

#include "absl/strings/str_cat.h"

namespace slimfit {

std::unique_ptr<PrefetchLoader> PrefetchLoader::Create(std::unique_ptr<BatchLoader> inner, PrefetchOptions options) {
  options.threads = std::max(1, options.threads);
  options.depth = std::max(options.depth, options.threads);
  return std::unique_ptr<PrefetchLoader>(new PrefetchLoader(std::move(inner), options));
}

PrefetchLoader::~PrefetchLoader() { Stop(); }

void PrefetchLoader::Stop() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stop_ = true;
  }
  changed_.notify_all();
  for (auto& t : threads_) t.join();
  threads_.clear();
  std::lock_guard<std::mutex> lock(mu_);
  ready_.clear();
  claimed_ = delivered_ = 0;
  exhausted_ = stop_ = started_ = false;
}

absl::Status PrefetchLoader::Reset(int64_t epoch) { return ResetForBatches(epoch, INT64_MAX); }

absl::Status PrefetchLoader::ResetForBatches(int64_t epoch, int64_t max_batches) {
  Stop();
  {
    std::lock_guard<std::mutex> lock(mu_);
    limit_ = std::max<int64_t>(0, max_batches);
  }
  return inner_->Reset(epoch);
}

void PrefetchLoader::Work() {
  while (true) {
    BatchTicket ticket;
    int64_t position = 0;
    {
      std::unique_lock<std::mutex> lock(mu_);
      changed_.wait(lock, [&] { return stop_ || exhausted_ || claimed_ - delivered_ < options_.depth; });
      if (stop_ || exhausted_) return;
      if (claimed_ >= limit_ || !inner_->Claim(&ticket)) {
        exhausted_ = true;
        changed_.notify_all();
        return;
      }
      position = claimed_++;
    }
    absl::StatusOr<Batch> batch;
    try {
      batch = inner_->Materialize(ticket);
    } catch (const std::exception& e) {
      batch = absl::InternalError(absl::StrCat("making batch ", position, ": ", e.what()));
    }
    std::lock_guard<std::mutex> lock(mu_);
    ready_.emplace(position, std::move(batch));
    changed_.notify_all();
  }
}

absl::StatusOr<bool> PrefetchLoader::Next(Batch* batch) {
  std::unique_lock<std::mutex> lock(mu_);
  if (!started_) {
    started_ = true;
    for (int i = 0; i < options_.threads; ++i) threads_.emplace_back([this] { Work(); });
  }
  changed_.wait(lock, [&] { return ready_.count(delivered_) > 0 || (exhausted_ && delivered_ == claimed_); });
  auto it = ready_.find(delivered_);
  if (it == ready_.end()) return false;
  absl::StatusOr<Batch> item = std::move(it->second);
  ready_.erase(it);
  ++delivered_;
  changed_.notify_all();
  if (!item.ok()) return item.status();
  *batch = *std::move(item);
  return true;
}

}  // namespace slimfit
