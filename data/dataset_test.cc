#include "data/dataset.h"

#include <ATen/ATen.h>

#include <set>

#include "common/status_matchers.h"
#include "data/data_loader.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace slimfit {
namespace {

using ::slimfit::testing::StatusIs;
using ::testing::ElementsAre;
using ::testing::HasSubstr;

std::shared_ptr<TensorDataset> Numbers(int64_t n) {
  at::Tensor x = at::arange(n, at::kFloat).view({n, 1});
  at::Tensor y = at::arange(n, at::kLong);
  return TensorDataset::Create({x, y}, "numbers").value();
}

TEST(TensorDatasetTest, GetBatchStacksSelectedSamples) {
  auto ds = Numbers(10);
  ASSERT_OK_AND_ASSIGN(Batch b, ds->GetBatch(at::tensor(std::vector<int64_t>{3, 7, 1})));
  ASSERT_EQ(b.size(), 2u);
  EXPECT_THAT(b[0].toTensor().sizes().vec(), ElementsAre(3, 1));
  EXPECT_TRUE(b[1].toTensor().equal(at::tensor(std::vector<int64_t>{3, 7, 1})));
}

TEST(TensorDatasetTest, RejectsMismatchedFields) {
  EXPECT_THAT(TensorDataset::Create({at::zeros({4, 2}), at::zeros({5})}, "bad"),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("bad: field 1 has 5 samples but field 0 has 4")));
  EXPECT_THAT(TensorDataset::Create({}, "none"),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("at least one tensor")));
  EXPECT_THAT(TensorDataset::Create({at::scalar_tensor(1.0)}, "scalar"),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("sample dimension")));
}

TEST(TensorDatasetTest, OutOfRangeIndexIsAnError) {
  EXPECT_THAT(Numbers(4)->GetBatch(at::tensor(std::vector<int64_t>{0, 4})),
              StatusIs(absl::StatusCode::kOutOfRange, HasSubstr("index 4 out of range [0, 4)")));
  EXPECT_THAT(Numbers(4)->GetBatch(at::zeros({2}, at::kFloat)),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("1-D int64")));
}

TEST(SubsetDatasetTest, MapsIndicesThroughTheBase) {
  ASSERT_OK_AND_ASSIGN(auto sub, SubsetDataset::Create(
                                     Numbers(10), at::tensor(std::vector<int64_t>{9, 5}), "sub"));
  EXPECT_EQ(sub->size(), 2);
  ASSERT_OK_AND_ASSIGN(Batch b, sub->GetBatch(at::tensor(std::vector<int64_t>{1, 0})));
  EXPECT_TRUE(b[1].toTensor().equal(at::tensor(std::vector<int64_t>{5, 9})));
}

std::vector<int64_t> Pass(DataLoader& loader, int64_t epoch, std::vector<int64_t>* sizes = nullptr) {
  EXPECT_OK(loader.Reset(epoch));
  std::vector<int64_t> seen;
  Batch b;
  while (loader.Next(&b).value()) {
    at::Tensor y = b[1].toTensor();
    if (sizes != nullptr) sizes->push_back(y.size(0));
    for (int64_t i = 0; i < y.size(0); ++i) seen.push_back(y[i].item<int64_t>());
  }
  return seen;
}

TEST(BatchLoaderTest, EveryPassVisitsEverySampleOnce) {
  ASSERT_OK_AND_ASSIGN(auto loader, BatchLoader::Create(Numbers(10), {.batch_size = 4, .shuffle = true}));
  std::vector<int64_t> sizes;
  auto seen = Pass(*loader, 0, &sizes);
  EXPECT_THAT(sizes, ElementsAre(4, 4, 2));
  EXPECT_EQ(std::set<int64_t>(seen.begin(), seen.end()).size(), 10u);
  EXPECT_EQ(loader->num_batches(), 3);
}

TEST(BatchLoaderTest, ShuffleDependsOnlyOnSeedAndEpoch) {
  LoaderOptions o{.batch_size = 3, .shuffle = true, .seed = 5};
  ASSERT_OK_AND_ASSIGN(auto a, BatchLoader::Create(Numbers(20), o));
  ASSERT_OK_AND_ASSIGN(auto b, BatchLoader::Create(Numbers(20), o));
  EXPECT_EQ(Pass(*a, 3), Pass(*b, 3));
  EXPECT_NE(Pass(*a, 1), Pass(*a, 2));
  o.shuffle = false;
  ASSERT_OK_AND_ASSIGN(auto c, BatchLoader::Create(Numbers(5), o));
  EXPECT_THAT(Pass(*c, 7), ElementsAre(0, 1, 2, 3, 4));
}

TEST(BatchLoaderTest, DropLastDropsThePartialBatch) {
  ASSERT_OK_AND_ASSIGN(auto loader,
                       BatchLoader::Create(Numbers(10), {.batch_size = 4, .drop_last = true}));
  std::vector<int64_t> sizes;
  Pass(*loader, 0, &sizes);
  EXPECT_THAT(sizes, ElementsAre(4, 4));
  EXPECT_EQ(loader->num_samples(), 8);
}

TEST(BatchLoaderTest, ImpossibleConfigurationsAreClearErrors) {
  EXPECT_THAT(BatchLoader::Create(Numbers(10), {.batch_size = 16, .drop_last = true}),
              StatusIs(absl::StatusCode::kFailedPrecondition,
                       HasSubstr("batch_size 16 is larger than the 10 samples")));
  EXPECT_THAT(BatchLoader::Create(Numbers(10), {.batch_size = 0}),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("batch_size must be >= 1")));
  auto empty = TensorDataset::Create({at::zeros({0, 3})}, "empty").value();
  EXPECT_THAT(BatchLoader::Create(empty, {}),
              StatusIs(absl::StatusCode::kFailedPrecondition, HasSubstr("empty: the split is empty")));
}

TEST(BatchLoaderTest, BatchLargerThanSplitWithoutDropLastGivesOneBatch) {
  ASSERT_OK_AND_ASSIGN(auto loader, BatchLoader::Create(Numbers(3), {.batch_size = 100}));
  std::vector<int64_t> sizes;
  Pass(*loader, 0, &sizes);
  EXPECT_THAT(sizes, ElementsAre(3));
}

TEST(DatasetTest, LabelsAndTheShapeProbeWithoutReadingEverySample) {
  at::Tensor images = at::rand({10, 1, 4, 4});
  at::Tensor labels = at::arange(10, at::kLong) % 3;
  auto ds = TensorDataset::Create({images, labels}, "t").value();
  ASSERT_TRUE(ds->Labels().has_value());
  EXPECT_TRUE(at::equal(*ds->Labels(), labels));
  auto sub = SubsetDataset::Create(ds, at::tensor({9, 2, 4}, at::kLong), "s").value();
  EXPECT_TRUE(at::equal(*sub->Labels(), at::tensor({0, 2, 1}, at::kLong)));
  ASSERT_OK_AND_ASSIGN(Batch probe, ShapeProbe(*sub));
  EXPECT_EQ(probe[0].toTensor().sizes(), at::IntArrayRef({1, 1, 4, 4}));
  EXPECT_TRUE(at::equal(probe[0].toTensor()[0], images[9]));
  EXPECT_TRUE(at::equal(probe[1].toTensor(), at::tensor({0, 2, 1}, at::kLong)));
  // A subset forwards the seed: same rows for any seed here (no random transforms).
  ASSERT_OK_AND_ASSIGN(Batch seeded, sub->GetSeededBatch(at::tensor({1}, at::kLong), 77));
  EXPECT_TRUE(at::equal(seeded[0].toTensor()[0], images[2]));
  // Without labels (one field): every sample.
  auto one = TensorDataset::Create({images}, "one").value();
  EXPECT_FALSE(one->Labels().has_value());
  ASSERT_OK_AND_ASSIGN(Batch all, ShapeProbe(*one));
  EXPECT_EQ(all[0].toTensor().size(0), 10);
}

}  // namespace
}  // namespace slimfit
