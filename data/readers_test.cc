// Tests for the dataset readers: IDX (.gz and raw), CIFAR binary, tensor
// files, and Debian's real Fashion-MNIST when installed.
#include <ATen/ATen.h>
#include <torch/csrc/jit/serialization/pickle.h>
#include <zlib.h>

#include <string>

#include "common/files.h"
#include "common/status_matchers.h"
#include "common/text_proto.h"
#include "data/readers/idx.h"
#include "data/readers/tensor_file.h"
#include "data/splits.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace slimfit {
namespace {

using ::slimfit::testing::StatusIs;
using ::slimfit::testing::TempPath;
using ::testing::ElementsAre;
using ::testing::HasSubstr;

std::string Idx(const std::vector<uint32_t>& dims, const std::string& data) {
  std::string s = {0, 0, 0x08, static_cast<char>(dims.size())};
  for (uint32_t d : dims) {
    for (int shift = 24; shift >= 0; shift -= 8) s.push_back(static_cast<char>((d >> shift) & 0xFF));
  }
  return s + data;
}

void WriteGzip(const std::string& path, const std::string& bytes) {
  gzFile f = gzopen(path.c_str(), "wb");
  ASSERT_NE(f, nullptr);
  ASSERT_EQ(gzwrite(f, bytes.data(), bytes.size()), static_cast<int>(bytes.size()));
  gzclose(f);
}

// A tiny MNIST-format directory: `n` 2x3 images, labels 0..n-1 (mod classes).
std::string MakeMnistDir(const std::string& name, int n, int max_label, bool gz) {
  const std::string dir = TempPath(name);
  EXPECT_OK(CreateDirectories(dir));
  std::string pixels, labels;
  for (int i = 0; i < n * 6; ++i) pixels.push_back(static_cast<char>(i % 256));
  for (int i = 0; i < n; ++i) labels.push_back(static_cast<char>(i % (max_label + 1)));
  for (const std::string prefix : {"train", "t10k"}) {
    const std::string img = Idx({static_cast<uint32_t>(n), 2, 3}, pixels);
    const std::string lab = Idx({static_cast<uint32_t>(n)}, labels);
    if (gz) {
      WriteGzip(dir + "/" + prefix + "-images-idx3-ubyte.gz", img);
      WriteGzip(dir + "/" + prefix + "-labels-idx1-ubyte.gz", lab);
    } else {
      EXPECT_OK(WriteFileAtomically(dir + "/" + prefix + "-images-idx3-ubyte", img));
      EXPECT_OK(WriteFileAtomically(dir + "/" + prefix + "-labels-idx1-ubyte", lab));
    }
  }
  return dir;
}

absl::StatusOr<Splits> LoadMnistDir(const std::string& dir, int num_classes = 10) {
  DataConfig c;
  c.mutable_mnist()->set_directory(dir);
  c.mutable_mnist()->set_num_classes(num_classes);
  return LoadSplits(c);
}

TEST(IdxTest, ReadsGzipAndRawFiles) {
  for (bool gz : {true, false}) {
    const std::string dir = MakeMnistDir(gz ? "gz" : "raw", 20, 9, gz);
    ASSERT_OK_AND_ASSIGN(Splits s, LoadMnistDir(dir));
    EXPECT_EQ(s.test->size(), 20);
    EXPECT_EQ(s.train->size() + s.val->size(), 20);
    ASSERT_OK_AND_ASSIGN(Batch b, s.test->GetBatch(at::tensor(std::vector<int64_t>{1})));
    EXPECT_THAT(b[0].toTensor().sizes().vec(), ElementsAre(1, 1, 2, 3));
    EXPECT_EQ(b[0].toTensor().flatten()[0].item<int>(), 6);
    EXPECT_EQ(b[1].toTensor()[0].item<int64_t>(), 1);
  }
}

TEST(IdxTest, WrongMagicIsReported) {
  const std::string path = TempPath("bad-magic");
  ASSERT_OK(WriteFileAtomically(path, "\x12\x34\x08\x01\x00\x00\x00\x01x"));
  EXPECT_THAT(ReadIdxFile(path), StatusIs(absl::StatusCode::kInvalidArgument,
                                          HasSubstr("wrong magic number")));
}

TEST(IdxTest, TruncatedDataIsAShortRead) {
  const std::string path = TempPath("short.gz");
  WriteGzip(path, Idx({10, 28, 28}, std::string(100, 'x')));
  EXPECT_THAT(ReadIdxFile(path), StatusIs(absl::StatusCode::kDataLoss,
                                          HasSubstr("declares 7840 bytes of data but 100 follow")));
}

// Found by //data:idx_fuzz_test_fuzzer: 2^32-1 x 2^32-1 x ... wrapped the
// byte count to a small number; a 0 in the shape memcpy'd from nullptr.
TEST(IdxTest, DimensionsThatOverflowAreAbsurdAndZeroIsEmpty) {
  const std::string big = TempPath("overflow");
  ASSERT_OK(WriteFileAtomically(big, Idx({1u << 17, 1u << 17, 1u << 30}, "x")));
  EXPECT_THAT(ReadIdxFile(big), StatusIs(absl::StatusCode::kInvalidArgument,
                                         HasSubstr("absurd IDX dimensions")));
  const std::string empty = TempPath("zero");
  ASSERT_OK(WriteFileAtomically(empty, Idx({0, 28, 28}, "")));
  ASSERT_OK_AND_ASSIGN(at::Tensor t, ReadIdxFile(empty));
  EXPECT_THAT(t.sizes().vec(), ElementsAre(0, 28, 28));
}

TEST(IdxTest, TruncatedGzipStreamIsReported) {
  const std::string full = TempPath("full.gz");
  WriteGzip(full, Idx({100, 28, 28}, std::string(78400, 'x')) );
  std::string bytes = ReadFileToString(full).value();
  const std::string cut = TempPath("cut.gz");
  ASSERT_OK(WriteFileAtomically(cut, bytes.substr(0, bytes.size() / 2)));
  EXPECT_FALSE(ReadIdxFile(cut).ok());
}

TEST(IdxTest, LabelOutOfRangeNamesFileRecordAndRange) {
  const std::string dir = MakeMnistDir("labels", 12, 11, true);
  EXPECT_THAT(LoadMnistDir(dir, 10),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("label 10 at record 10 is out of range [0, 10)")));
}

TEST(IdxTest, MissingDirectoryIsNotFound) {
  EXPECT_THAT(LoadMnistDir(TempPath("nowhere")),
              StatusIs(absl::StatusCode::kNotFound, HasSubstr("train-images-idx3-ubyte.gz")));
}

TEST(IdxTest, LoadsDebiansFashionMnist) {
  // bootstrap.sh installs the data set: its absence fails here.
  ASSERT_OK(RegularFileSize(std::string(kDefaultFashionMnistDir) + "/train-labels-idx1-ubyte.gz"))
      << "dataset-fashion-mnist is not installed: run ./bootstrap.sh";
  DataConfig c;
  c.mutable_mnist();
  ASSERT_OK_AND_ASSIGN(Splits s, LoadSplits(c));
  EXPECT_EQ(s.train->size(), 54000);
  EXPECT_EQ(s.val->size(), 6000);
  EXPECT_EQ(s.test->size(), 10000);
  ASSERT_OK_AND_ASSIGN(Batch b, s.test->GetBatch(at::tensor(std::vector<int64_t>{0})));
  EXPECT_THAT(b[0].toTensor().sizes().vec(), ElementsAre(1, 1, 28, 28));
  EXPECT_EQ(b[1].toTensor()[0].item<int64_t>(), 9);  // the first test image is an ankle boot
}

std::string CifarRecord(int label_bytes, uint8_t label, uint8_t fill) {
  std::string r;
  if (label_bytes == 2) r.push_back(static_cast<char>(label / 5));  // coarse
  r.push_back(static_cast<char>(label));
  r += std::string(3072, static_cast<char>(fill));
  return r;
}

TEST(CifarTest, ReadsCifar10Batches) {
  const std::string dir = TempPath("cifar10");
  ASSERT_OK(CreateDirectories(dir));
  for (int b = 1; b <= 5; ++b) {
    ASSERT_OK(WriteFileAtomically(absl::StrCat(dir, "/data_batch_", b, ".bin"),
                                  CifarRecord(1, b, b) + CifarRecord(1, 9, 7)));
  }
  ASSERT_OK(WriteFileAtomically(dir + "/test_batch.bin", CifarRecord(1, 3, 200)));
  DataConfig c;
  ASSERT_OK(ParseTextProto("cifar { directory: '" + dir + "' num_classes: 10 } val_fraction: 0.2", "t", &c));
  ASSERT_OK_AND_ASSIGN(Splits s, LoadSplits(c));
  EXPECT_EQ(s.train->size(), 8);
  EXPECT_EQ(s.val->size(), 2);
  ASSERT_OK_AND_ASSIGN(Batch b, s.test->GetBatch(at::zeros({1}, at::kLong)));
  EXPECT_THAT(b[0].toTensor().sizes().vec(), ElementsAre(1, 3, 32, 32));
  EXPECT_EQ(b[0].toTensor().max().item<int>(), 200);
  EXPECT_EQ(b[1].toTensor()[0].item<int64_t>(), 3);
}

TEST(CifarTest, Cifar100FineAndCoarseLabels) {
  const std::string dir = TempPath("cifar100");
  ASSERT_OK(CreateDirectories(dir));
  ASSERT_OK(WriteFileAtomically(dir + "/train.bin", CifarRecord(2, 99, 1) + CifarRecord(2, 42, 1)));
  ASSERT_OK(WriteFileAtomically(dir + "/test.bin", CifarRecord(2, 57, 1)));
  DataConfig c;
  ASSERT_OK(ParseTextProto("cifar { directory: '" + dir + "' num_classes: 100 } val_fraction: 0.5",
                           "t", &c));
  ASSERT_OK_AND_ASSIGN(Splits s, LoadSplits(c));
  ASSERT_OK_AND_ASSIGN(Batch fine, s.test->GetBatch(at::zeros({1}, at::kLong)));
  EXPECT_EQ(fine[1].toTensor()[0].item<int64_t>(), 57);
  c.mutable_cifar()->set_coarse_labels(true);
  ASSERT_OK_AND_ASSIGN(s, LoadSplits(c));
  ASSERT_OK_AND_ASSIGN(Batch coarse, s.test->GetBatch(at::zeros({1}, at::kLong)));
  EXPECT_EQ(coarse[1].toTensor()[0].item<int64_t>(), 11);
}

TEST(CifarTest, TruncatedFileAndBadLabelsAreReported) {
  const std::string dir = TempPath("cifar_bad");
  ASSERT_OK(CreateDirectories(dir));
  ASSERT_OK(WriteFileAtomically(dir + "/train.bin", CifarRecord(2, 1, 1) + "xyz"));
  ASSERT_OK(WriteFileAtomically(dir + "/test.bin", CifarRecord(2, 1, 1)));
  DataConfig c;
  ASSERT_OK(ParseTextProto("cifar { directory: '" + dir + "' num_classes: 100 }", "t", &c));
  EXPECT_THAT(LoadSplits(c), StatusIs(absl::StatusCode::kDataLoss,
                                      HasSubstr("not a whole number of 3074-byte CIFAR-100 records")));
  ASSERT_OK(WriteFileAtomically(dir + "/train.bin", CifarRecord(2, 1, 1) + CifarRecord(2, 100, 1)));
  EXPECT_THAT(LoadSplits(c), StatusIs(absl::StatusCode::kInvalidArgument,
                                      HasSubstr("label 100 at record 1 is out of range [0, 100)")));
  c.mutable_cifar()->set_num_classes(7);
  EXPECT_THAT(LoadSplits(c), StatusIs(absl::StatusCode::kInvalidArgument,
                                      "cifar.num_classes: not a CIFAR variant, got 7; valid: 10, 100"));
}

TEST(TensorFileTest, ReadsPickledTensorLists) {
  const std::string path = TempPath("pickled.pt");
  at::Tensor x = at::randn({6, 3}), y = at::arange(6, at::kLong);
  std::vector<char> bytes = torch::jit::pickle_save(c10::List<at::Tensor>({x, y}));
  ASSERT_OK(WriteFileAtomically(path, std::string(bytes.begin(), bytes.end())));
  ASSERT_OK_AND_ASSIGN(auto tensors, ReadTensorFile(path));
  ASSERT_EQ(tensors.size(), 2u);
  EXPECT_TRUE(tensors[0].equal(x));
  EXPECT_TRUE(tensors[1].equal(y));
  DataConfig c;
  c.mutable_tensor_file()->set_train_path(path);
  c.set_val_fraction(0.34);
  ASSERT_OK_AND_ASSIGN(Splits s, LoadSplits(c));
  EXPECT_EQ(s.train->size() + s.val->size() + s.test->size(), 6);
}

TEST(TensorFileTest, GarbageIsAClearError) {
  const std::string path = TempPath("garbage.pt");
  ASSERT_OK(WriteFileAtomically(path, "definitely not tensors"));
  EXPECT_THAT(ReadTensorFile(path), StatusIs(absl::StatusCode::kInvalidArgument,
                                             HasSubstr("is not a list of tensors")));
  ASSERT_OK(WriteFileAtomically(path, ""));
  EXPECT_THAT(ReadTensorFile(path), StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("empty")));
}

TEST(TensorFileTest, MismatchedSampleCountsNameTheFile) {
  const std::string path = TempPath("mismatch.pt");
  std::vector<char> bytes = torch::jit::pickle_save(
      c10::List<at::Tensor>({at::zeros({4, 2}), at::zeros({3}, at::kLong)}));
  ASSERT_OK(WriteFileAtomically(path, std::string(bytes.begin(), bytes.end())));
  DataConfig c;
  c.mutable_tensor_file()->set_train_path(path);
  EXPECT_THAT(LoadSplits(c), StatusIs(absl::StatusCode::kInvalidArgument,
                                      HasSubstr("field 1 has 3 samples but field 0 has 4")));
}

}  // namespace
}  // namespace slimfit
