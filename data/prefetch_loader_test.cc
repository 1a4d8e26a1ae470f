#include "data/prefetch_loader.h"

#include <ATen/ATen.h>

#include <vector>

#include "common/status_matchers.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace slimfit {
namespace {

using ::slimfit::testing::StatusIs;
using ::testing::HasSubstr;

std::unique_ptr<DataLoader> Shuffled(int64_t n, int64_t batch) {
  auto ds = TensorDataset::Create({at::arange(n, at::kFloat), at::arange(n, at::kLong)}, "numbers").value();
  return BatchLoader::Create(ds, {.batch_size = batch, .shuffle = true, .seed = 4}).value();
}

std::vector<at::Tensor> Pass(DataLoader& loader, int64_t epoch, int max_batches = 1 << 30) {
  EXPECT_OK(loader.Reset(epoch));
  std::vector<at::Tensor> out;
  Batch b;
  while (static_cast<int>(out.size()) < max_batches) {
    absl::StatusOr<bool> got = loader.Next(&b);
    EXPECT_OK(got.status());
    if (!got.ok() || !*got) break;
    out.push_back(b[1].toTensor());
  }
  return out;
}

TEST(PrefetchLoaderTest, TheInnerLoadersBatchesInOrder) {
  auto plain = Shuffled(103, 10);
  for (int depth : {1, 2, 5}) {
    auto prefetched = PrefetchLoader::Create(Shuffled(103, 10), depth);
    EXPECT_EQ(prefetched->num_batches(), 11);
    EXPECT_EQ(prefetched->num_samples(), 103);
    for (int64_t epoch : {0, 1, 0}) {
      std::vector<at::Tensor> want = Pass(*plain, epoch), got = Pass(*prefetched, epoch);
      ASSERT_EQ(got.size(), want.size());
      for (size_t i = 0; i < got.size(); ++i) EXPECT_TRUE(at::equal(got[i], want[i])) << "depth " << depth;
    }
  }
}

TEST(PrefetchLoaderTest, AResetMidPassStartsTheNewPassCleanly) {
  auto plain = Shuffled(50, 7);
  auto prefetched = PrefetchLoader::Create(Shuffled(50, 7), 3);
  Pass(*prefetched, 0, /*max_batches=*/2);  // leaves prefetched batches behind
  std::vector<at::Tensor> want = Pass(*plain, 1), got = Pass(*prefetched, 1);
  ASSERT_EQ(got.size(), want.size());
  for (size_t i = 0; i < got.size(); ++i) EXPECT_TRUE(at::equal(got[i], want[i]));
  // Destroyed mid-pass: the thread is stopped and joined (no hang, no crash).
  auto abandoned = PrefetchLoader::Create(Shuffled(50, 7), 2);
  Pass(*abandoned, 0, 1);
}

// Fails at batch `fail_at`.
class Failing : public DataLoader {
 public:
  explicit Failing(int fail_at) : fail_at_(fail_at) {}
  absl::Status Reset(int64_t) override {
    next_ = 0;
    return absl::OkStatus();
  }
  absl::StatusOr<bool> Next(Batch* batch) override {
    if (next_ == fail_at_) return absl::DataLossError("batch 2 is broken");
    *batch = Batch{at::full({1}, next_++)};
    return true;
  }
  int64_t num_batches() const override { return 10; }
  int64_t num_samples() const override { return 10; }
  int64_t batch_size() const override { return 1; }

 private:
  int fail_at_;
  int next_ = 0;
};

TEST(PrefetchLoaderTest, AnErrorArrivesAtTheBatchThatHadIt) {
  auto loader = PrefetchLoader::Create(std::make_unique<Failing>(2), 4);
  ASSERT_OK(loader->Reset(0));
  Batch b;
  EXPECT_THAT(loader->Next(&b), ::slimfit::testing::IsOkAndHolds(true));
  EXPECT_THAT(loader->Next(&b), ::slimfit::testing::IsOkAndHolds(true));
  EXPECT_EQ(b[0].toTensor().item<int64_t>(), 1);
  EXPECT_THAT(loader->Next(&b), StatusIs(absl::StatusCode::kDataLoss, HasSubstr("batch 2 is broken")));
  EXPECT_THAT(loader->Next(&b), ::slimfit::testing::IsOkAndHolds(false));
}

}  // namespace
}  // namespace slimfit
