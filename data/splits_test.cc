#include "data/splits.h"

#include <ATen/ATen.h>
#include <google/protobuf/descriptor.h>

#include <algorithm>
#include <set>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/field_error.h"
#include "common/status_matchers.h"
#include "common/text_proto.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace slimfit {
namespace {

using ::slimfit::testing::StatusIs;
using ::testing::HasSubstr;

DataConfig Parse(const std::string& text) {
  DataConfig c;
  EXPECT_OK(ParseTextProto(text, "test", &c));
  return c;
}

std::set<int64_t> Labels(const Dataset& ds) {
  Batch b = ds.GetBatch(at::arange(ds.size(), at::kLong)).value();
  at::Tensor first = b[0].toTensor().flatten(1).select(1, 0);
  std::set<int64_t> out;
  // Identify samples by a hash of their first pixel (synthetic data is continuous).
  for (int64_t i = 0; i < first.size(0); ++i) {
    out.insert(static_cast<int64_t>(first[i].item<double>() * 1e6));
  }
  return out;
}

TEST(SplitsTest, EveryDatasetChoiceIsRegistered) {
  const auto* oneof = DataConfig::descriptor()->FindOneofByName("dataset");
  ASSERT_NE(oneof, nullptr);
  for (int i = 0; i < oneof->field_count(); ++i) {
    EXPECT_TRUE(DatasetRegistry().Contains(oneof->field(i)->name()))
        << "DataConfig.dataset choice \"" << oneof->field(i)->name() << "\" has no registered source";
  }
}

TEST(SplitsTest, ValIsCarvedDisjointAndSeeded) {
  DataConfig c = Parse("synthetic { train_samples: 200 shape: [4] } val_fraction: 0.25 seed: 3");
  ASSERT_OK_AND_ASSIGN(Splits a, LoadSplits(c));
  EXPECT_EQ(a.train->size(), 150);
  EXPECT_EQ(a.val->size(), 50);
  std::set<int64_t> train = Labels(*a.train), val = Labels(*a.val);
  for (int64_t v : val) EXPECT_EQ(train.count(v), 0u);
  ASSERT_OK_AND_ASSIGN(Splits b, LoadSplits(c));
  EXPECT_EQ(Labels(*b.val), val);
  c.set_seed(4);
  ASSERT_OK_AND_ASSIGN(Splits d, LoadSplits(c));
  EXPECT_NE(Labels(*d.val), val);
}

TEST(SplitsTest, SlicesLimitSamples) {
  ASSERT_OK_AND_ASSIGN(Splits s, LoadSplits(Parse(
      "synthetic { train_samples: 100 test_samples: 50 } max_train_samples: 10 max_eval_samples: 5")));
  EXPECT_EQ(s.train->size(), 10);
  EXPECT_EQ(s.val->size(), 5);
  EXPECT_EQ(s.test->size(), 5);
}

TEST(SplitsTest, GetNamesValidSplits) {
  ASSERT_OK_AND_ASSIGN(Splits s, LoadSplits(Parse("synthetic {}")));
  EXPECT_OK(s.Get("val"));
  EXPECT_THAT(s.Get("validation"), StatusIs(absl::StatusCode::kNotFound,
                                            HasSubstr("valid: train, val, test")));
}

TEST(SplitsTest, ConfigErrorsNameTheField) {
  EXPECT_THAT(LoadSplits(Parse("")),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       absl::StrCat("no dataset set; valid: ", absl::StrJoin(DatasetRegistry().Names(), ", "))));
  // Rooted as BuildComponents roots them (trainer/components.cc).
  EXPECT_THAT(WithContext(LoadSplits(Parse("synthetic {} val_fraction: 1.5")).status(), AtField("data")),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       "data.val_fraction: out of range, got 1.5; valid: [0, 1) (0 = 0.1)"));
  EXPECT_THAT(
      WithContext(LoadSplits(Parse("synthetic { num_classes: 1 }")).status(), AtField("data")),
      StatusIs(absl::StatusCode::kInvalidArgument, "data.synthetic.num_classes: below 2, got 1; valid: >= 2 (0 = 10)"));

  EXPECT_THAT(LoadSplits(Parse("synthetic { train_samples: 3 } val_fraction: 0.1")),
              StatusIs(absl::StatusCode::kFailedPrecondition, HasSubstr("leaves an empty split")));
}

TEST(SplitsTest, MakeLoaderUsesBatchSizesAndScalesBytes) {
  DataConfig c = Parse("synthetic { train_samples: 100 } train_batch_size: 16 eval_batch_size: 7");
  ASSERT_OK_AND_ASSIGN(Splits s, LoadSplits(c));
  ASSERT_OK_AND_ASSIGN(auto train, MakeLoader(c, s, "train"));
  EXPECT_EQ(train->batch_size(), 16);
  ASSERT_OK_AND_ASSIGN(auto test, MakeLoader(c, s, "test"));
  EXPECT_EQ(test->batch_size(), 7);

  auto bytes = TensorDataset::Create({at::full({4, 1, 2, 2}, 255, at::kByte),
                                      at::zeros({4}, at::kLong)}, "bytes").value();
  Splits byte_splits{bytes, bytes, nullptr};
  ASSERT_OK_AND_ASSIGN(auto loader, MakeLoader(c, byte_splits, "val"));
  Batch b;
  ASSERT_TRUE(loader->Next(&b).value());
  EXPECT_EQ(b[0].toTensor().scalar_type(), at::kFloat);
  EXPECT_FLOAT_EQ(b[0].toTensor().max().item<float>(), 1.0f);
  EXPECT_THAT(MakeLoader(c, byte_splits, "test"),
              StatusIs(absl::StatusCode::kNotFound, HasSubstr("no \"test\" split")));
}

// Every value field 0 holds in one pass of `loader` (samples are their row numbers).
std::vector<int64_t> Rows(DataLoader& loader) {
  std::vector<int64_t> out;
  EXPECT_OK(loader.Reset(0));
  Batch b;
  while (loader.Next(&b).value()) {
    at::Tensor x = b[0].toTensor().flatten();
    for (int64_t i = 0; i < x.size(0); ++i) out.push_back(static_cast<int64_t>(x[i].item<float>()));
  }
  return out;
}

TEST(SplitsTest, MakeSampleLoaderTakesASeededSampleOfTheSplit) {
  DataConfig c = Parse("synthetic { train_samples: 10 } eval_batch_size: 16");
  auto rows =
      TensorDataset::Create({at::arange(100, at::kFloat).view({100, 1}), at::zeros({100}, at::kLong)}, "rows").value();
  Splits s{rows, rows, nullptr};
  ASSERT_OK_AND_ASSIGN(auto a, MakeSampleLoader(c, s, "val", 30, 7));
  EXPECT_EQ(a->num_samples(), 30);
  const std::vector<int64_t> picked = Rows(*a);
  ASSERT_EQ(picked.size(), 30u);
  EXPECT_TRUE(std::is_sorted(picked.begin(), picked.end()));
  EXPECT_EQ(std::set<int64_t>(picked.begin(), picked.end()).size(), 30u);  // distinct rows
  EXPECT_GE(picked.front(), 0);
  EXPECT_LT(picked.back(), 100);
  EXPECT_GT(picked.back() - picked.front(), 30);  // spread over the split, not its head
  ASSERT_OK_AND_ASSIGN(auto again, MakeSampleLoader(c, s, "val", 30, 7));
  EXPECT_EQ(Rows(*again), picked);
  ASSERT_OK_AND_ASSIGN(auto other, MakeSampleLoader(c, s, "val", 30, 8));
  EXPECT_NE(Rows(*other), picked);
  ASSERT_OK_AND_ASSIGN(auto all, MakeSampleLoader(c, s, "val", 500, 7));
  std::vector<int64_t> every(100);
  for (int64_t i = 0; i < 100; ++i) every[i] = i;
  EXPECT_EQ(Rows(*all), every);
  EXPECT_THAT(MakeSampleLoader(c, s, "val", 0, 7),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("must be >= 1 samples, got 0")));
  EXPECT_THAT(MakeSampleLoader(c, s, "test", 5, 7),
              StatusIs(absl::StatusCode::kNotFound, HasSubstr("no \"test\" split")));
}

}  // namespace
}  // namespace slimfit
