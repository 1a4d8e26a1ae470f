#include "data/sharded_loader.h"

#include <ATen/ATen.h>

#include "common/status_matchers.h"
#include "data/dataset.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace slimfit {
namespace {

using ::slimfit::testing::StatusIs;
using ::testing::HasSubstr;

std::unique_ptr<DataLoader> Numbers(int64_t n, int64_t batch) {
  at::Tensor x = at::arange(n, at::kFloat).view({n, 1});
  at::Tensor y = at::arange(n, at::kLong);
  auto ds = TensorDataset::Create({x, y}, "numbers").value();
  return BatchLoader::Create(ds, {.batch_size = batch, .shuffle = true, .seed = 7}).value();
}

// The shards of every batch, concatenated in rank order, are the batch one
// process would see; every rank sees the same number of batches.
TEST(ShardedLoaderTest, ShardsAreDisjointAndCoverEveryBatch) {
  for (int world : {1, 2, 3, 5}) {
    auto whole = Numbers(23, 8);
    std::vector<std::unique_ptr<ShardedLoader>> ranks;
    for (int r = 0; r < world; ++r) ranks.push_back(ShardedLoader::Create(Numbers(23, 8), r, world).value());
    for (int epoch : {0, 1}) {
      ASSERT_OK(whole->Reset(epoch));
      for (auto& l : ranks) ASSERT_OK(l->Reset(epoch));
      Batch expected;
      int batches = 0;
      int64_t samples = 0;
      while (whole->Next(&expected).value()) {
        ++batches;
        std::vector<at::Tensor> xs, ys;
        for (auto& l : ranks) {
          Batch mine;
          ASSERT_TRUE(l->Next(&mine).value()) << "world " << world << " batch " << batches;
          xs.push_back(mine[0].toTensor());
          ys.push_back(mine[1].toTensor());
          EXPECT_EQ(l->last_global_rows(), expected[0].toTensor().size(0));
          EXPECT_EQ(l->last_local_rows(), mine[0].toTensor().size(0));
          samples += l->last_local_rows();
        }
        EXPECT_TRUE(at::cat(xs).equal(expected[0].toTensor())) << "world " << world;
        EXPECT_TRUE(at::cat(ys).equal(expected[1].toTensor())) << "world " << world;
      }
      EXPECT_EQ(samples, 23);
      for (auto& l : ranks) {
        Batch none;
        EXPECT_FALSE(l->Next(&none).value());
        EXPECT_EQ(l->num_batches(), batches);
      }
    }
    int64_t total = 0;
    for (auto& l : ranks) total += l->num_samples();
    EXPECT_EQ(total, 23) << "world " << world;
  }
}

TEST(ShardedLoaderTest, BatchSmallerThanTheWorldLeavesEmptySlices) {
  // 23 = 11 + 11 + 1: the last batch has one row, rank 0 gets none of it.
  auto l = ShardedLoader::Create(Numbers(23, 11), 0, 2).value();
  Batch b;
  int64_t rows = -1;
  while (l->Next(&b).value()) rows = l->last_local_rows();
  EXPECT_EQ(l->last_global_rows(), 1);
  EXPECT_EQ(rows, 0);
  EXPECT_EQ(b[0].toTensor().size(0), 0);
}

TEST(ShardedLoaderTest, RejectsBadRanks) {
  EXPECT_THAT(ShardedLoader::Create(Numbers(4, 2), 2, 2),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("rank 2 of world_size 2")));
  EXPECT_THAT(ShardedLoader::Create(Numbers(4, 2), -1, 2),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("rank -1")));
  EXPECT_THAT(ShardedLoader::Create(nullptr, 0, 1),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("no loader")));
}

}  // namespace
}  // namespace slimfit
