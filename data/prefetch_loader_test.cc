#include "data/prefetch_loader.h"

#include <ATen/ATen.h>

#include <atomic>
#include <memory>
#include <string>
#include <vector>

#include "common/status_matchers.h"
#include "data/transforms.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace slimfit {
namespace {

using ::slimfit::testing::IsOkAndHolds;
using ::slimfit::testing::StatusIs;
using ::testing::HasSubstr;

// Shuffled numbers with a random batch transform (a flip of a 1 x 1 x n
// "image" per sample), so both the order and the draws are checked.
std::unique_ptr<BatchLoader> Shuffled(int64_t n, int64_t batch) {
  auto ds =
      TensorDataset::Create({at::arange(n * 4, at::kFloat).reshape({n, 1, 1, 4}), at::arange(n, at::kLong)}, "numbers")
          .value();
  TransformConfig flip;
  flip.mutable_random_horizontal_flip();
  std::vector<std::shared_ptr<const Transform>> transforms{MakeTransform(flip).value()};
  return BatchLoader::Create(ds, {.batch_size = batch, .shuffle = true, .seed = 4}, transforms).value();
}

std::vector<at::Tensor> Pass(DataLoader& loader, int64_t epoch, int max_batches = 1 << 30) {
  EXPECT_OK(loader.Reset(epoch));
  std::vector<at::Tensor> out;
  Batch b;
  while (static_cast<int>(out.size()) < max_batches) {
    absl::StatusOr<bool> got = loader.Next(&b);
    EXPECT_OK(got.status());
    if (!got.ok() || !*got) break;
    out.push_back(b[0].toTensor());
  }
  return out;
}

TEST(PrefetchLoaderTest, TheBatchLoadersBatchesInOrderForAnyThreadCount) {
  auto plain = Shuffled(103, 10);
  for (PrefetchOptions o :
       {PrefetchOptions{1, 1}, PrefetchOptions{2, 2}, PrefetchOptions{3, 8}, PrefetchOptions{4, 1}}) {
    auto prefetched = PrefetchLoader::Create(Shuffled(103, 10), o);
    EXPECT_GE(prefetched->options().depth, o.threads);
    EXPECT_EQ(prefetched->num_batches(), 11);
    EXPECT_EQ(prefetched->num_samples(), 103);
    for (int64_t epoch : {0, 1, 0}) {
      std::vector<at::Tensor> want = Pass(*plain, epoch), got = Pass(*prefetched, epoch);
      ASSERT_EQ(got.size(), want.size());
      for (size_t i = 0; i < got.size(); ++i) {
        EXPECT_TRUE(at::equal(got[i], want[i])) << o.threads << " threads, epoch " << epoch << ", batch " << i;
      }
    }
  }
  // The flips happened (some rows reversed), so the draws were compared too.
  std::vector<at::Tensor> batches = Pass(*plain, 0);
  const at::Tensor x = at::cat(batches);
  EXPECT_TRUE(at::any(x.select(3, 0) > x.select(3, 3)).item<bool>());
  EXPECT_TRUE(at::any(x.select(3, 0) < x.select(3, 3)).item<bool>());
}

TEST(PrefetchLoaderTest, AResetMidPassStartsTheNewPassCleanly) {
  auto plain = Shuffled(50, 7);
  auto prefetched = PrefetchLoader::Create(Shuffled(50, 7), {.threads = 2, .depth = 3});
  Pass(*prefetched, 0, /*max_batches=*/2);  // leaves batches made ahead behind
  std::vector<at::Tensor> want = Pass(*plain, 1), got = Pass(*prefetched, 1);
  ASSERT_EQ(got.size(), want.size());
  for (size_t i = 0; i < got.size(); ++i) EXPECT_TRUE(at::equal(got[i], want[i]));
  // Destroyed mid-pass: the threads are stopped and joined (no hang, no crash).
  auto abandoned = PrefetchLoader::Create(Shuffled(50, 7), {.threads = 3, .depth = 3});
  Pass(*abandoned, 0, 1);
}

// A dataset whose sample 2 cannot be read.
class Broken : public Dataset {
 public:
  int64_t size() const override { return 6; }
  int64_t num_fields() const override { return 1; }
  absl::StatusOr<Batch> GetBatch(const at::Tensor& indices) const override {
    if ((indices == 2).any().item<bool>()) return absl::DataLossError("sample 2 is broken");
    return Batch{indices.clone()};
  }
  const std::string& name() const override { return name_; }

 private:
  std::string name_ = "broken";
};

TEST(PrefetchLoaderTest, AnErrorArrivesAtTheBatchThatHadIt) {
  auto inner = BatchLoader::Create(std::make_shared<Broken>(), {.batch_size = 1}).value();
  auto loader = PrefetchLoader::Create(std::move(inner), {.threads = 3, .depth = 4});
  ASSERT_OK(loader->Reset(0));
  Batch b;
  EXPECT_THAT(loader->Next(&b), IsOkAndHolds(true));
  EXPECT_THAT(loader->Next(&b), IsOkAndHolds(true));
  EXPECT_EQ(b[0].toTensor().item<int64_t>(), 1);
  EXPECT_THAT(loader->Next(&b), StatusIs(absl::StatusCode::kDataLoss, HasSubstr("sample 2 is broken")));
  for (int64_t i = 3; i < 6; ++i) {
    EXPECT_THAT(loader->Next(&b), IsOkAndHolds(true));
    EXPECT_EQ(b[0].toTensor().item<int64_t>(), i);
  }
  EXPECT_THAT(loader->Next(&b), IsOkAndHolds(false));
}

// Counts the batches it makes.
class CountingDataset : public Dataset {
 public:
  explicit CountingDataset(int64_t n)
      : inner_(TensorDataset::Create({at::arange(n, at::kFloat), at::arange(n, at::kLong)}, "counted").value()) {}
  int64_t size() const override { return inner_->size(); }
  int64_t num_fields() const override { return inner_->num_fields(); }
  absl::StatusOr<Batch> GetBatch(const at::Tensor& indices) const override {
    ++made_;
    return inner_->GetBatch(indices);
  }
  const std::string& name() const override { return inner_->name(); }
  int made() const { return made_.load(); }

 private:
  std::shared_ptr<TensorDataset> inner_;
  mutable std::atomic<int> made_{0};
};

TEST(PrefetchLoaderTest, ForBatchesMakesNoBatchPastThoseItReads) {
  auto counted = std::make_shared<CountingDataset>(100);
  auto loader = PrefetchLoader::Create(BatchLoader::Create(counted, {.batch_size = 10}).value(), PrefetchOptions{2, 8});
  int rows = 0;
  ASSERT_OK_AND_ASSIGN(int seen, ForBatches(*loader, 3, [&](const Batch& b) {
                         rows += static_cast<int>(b[0].toTensor().size(0));
                         return absl::OkStatus();
                       }));
  EXPECT_EQ(seen, 3);
  EXPECT_EQ(rows, 30);
  EXPECT_EQ(counted->made(), 3) << "a depth of 8 would have made up to 8 ahead";
  // A plain Reset lifts the limit: the next pass is whole.
  EXPECT_EQ(Pass(*loader, 0).size(), 10u);
  EXPECT_EQ(counted->made(), 13);
}

}  // namespace
}  // namespace slimfit
