// The image_folder source on folders written by the test: layout, labels,
// order, the carve, the index cache, determinism across workers and
// prefetching, and every kind of bad input.
#include "data/readers/image_folder.h"

#include <ATen/ATen.h>

#include <filesystem>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "common/files.h"
#include "common/status_matchers.h"
#include "common/text_proto.h"
#include "data/image_codec.h"
#include "data/image_folder_index.h"
#include "data/image_transforms.h"
#include "data/sharded_loader.h"
#include "data/splits.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace slimfit {
namespace {

namespace fs = std::filesystem;
using ::slimfit::testing::StatusIs;
using ::slimfit::testing::TempPath;
using ::testing::ElementsAre;
using ::testing::HasSubstr;

// A seeded random RGB image of h x w.
at::Tensor RandomImage(int64_t h, int64_t w, int64_t seed) {
  at::Generator gen = at::detail::createCPUGenerator(seed);
  return at::randint(0, 256, {3, h, w}, gen, at::kByte);
}

void WriteImage(const std::string& path, const at::Tensor& chw, bool jpeg = false) {
  fs::create_directories(fs::path(path).parent_path());
  Image img = TensorToImage(chw);
  std::string bytes = jpeg ? EncodeJpeg(img, 90).value() : EncodePng(img).value();
  ASSERT_OK(WriteFileAtomically(path, bytes));
}

std::string FreshDir(const std::string& name) {
  const std::string dir = TempPath(name);
  fs::remove_all(dir);
  fs::create_directories(dir);
  return dir;
}

DataConfig Config(const std::string& root, const std::string& extra = "") {
  DataConfig c;
  EXPECT_OK(ParseTextProto(
      absl::StrCat("image_folder { root: '", root, "' index_cache_dir: '", TempPath("cache"), "' ", extra, " }"),
      "test", &c));
  return c;
}

std::vector<std::string> Files(const Dataset& ds) {
  std::vector<std::string> out;
  const auto& f = dynamic_cast<const ImageFolderDataset&>(ds);
  for (int64_t i = 0; i < f.size(); ++i) out.push_back(fs::relative(f.file(i), TempPath("")).string());
  return out;
}

// A one-folder layout: 3 classes, nested files, a hidden file, 8x8 PNGs.
std::string OneFolder() {
  const std::string root = FreshDir("pets");
  int seed = 0;
  for (const char* f : {"dog/b.png", "dog/a.png", "cat/z.png", "cat/sub/y.png", "cat/sub/x.jpg", "cat/a.png",
                        "emu/1.png", "emu/2.PNG", "emu/3.jpeg"}) {
    WriteImage(root + "/" + f, RandomImage(8, 8, ++seed), absl::EndsWith(f, "jpg") || absl::EndsWith(f, "jpeg"));
  }
  EXPECT_OK(WriteFileAtomically(root + "/dog/.DS_Store", "junk"));
  return root;
}

TEST(ImageFolderTest, ClassesSortedFilesInTorchvisionOrderValCarved) {
  const std::string root = OneFolder();
  DataConfig c = Config(root, "");
  c.set_val_fraction(0.0);  // default 0.1 of 9 files: 1 carved
  ASSERT_OK_AND_ASSIGN(Splits s, LoadSplits(c));
  EXPECT_EQ(s.test, nullptr);
  EXPECT_EQ(s.train->size() + s.val->size(), 9);
  EXPECT_EQ(s.val->size(), 1);
  // The whole listing, in order: classes by name; in a class, its own files,
  // then subfolders' (os.walk's sorted roots); names sorted bytewise.
  ASSERT_OK_AND_ASSIGN(ImageFolderListing l, ListImageFolder(root, ""));
  ASSERT_EQ(l.splits.size(), 1u);
  std::vector<std::string> all;
  for (const auto& cls : l.splits[0].classes) {
    for (const auto& f : cls.files) all.push_back(cls.name + "/" + f);
  }
  EXPECT_THAT(all, ElementsAre("cat/a.png", "cat/z.png", "cat/sub/x.jpg", "cat/sub/y.png", "dog/a.png", "dog/b.png",
                               "emu/1.png", "emu/2.PNG", "emu/3.jpeg"));
  // Labels are the class positions.
  std::optional<at::Tensor> labels = s.train->Labels();
  ASSERT_TRUE(labels.has_value());
  std::vector<std::string> files = Files(*s.train);
  for (int64_t i = 0; i < s.train->size(); ++i) {
    const std::string cls = files[i].substr(files[i].find('/') + 1, 3);
    EXPECT_EQ((*labels)[i].item<int64_t>(), cls == "cat" ? 0 : cls == "dog" ? 1 : 2) << files[i];
  }
  // A batch decodes the files: PNG rows are exactly the written pixels.
  ASSERT_OK_AND_ASSIGN(Batch b, s.train->GetBatch(at::arange(s.train->size(), at::kLong)));
  EXPECT_EQ(b[0].toTensor().sizes(), at::IntArrayRef({s.train->size(), 3, 8, 8}));
  EXPECT_TRUE(at::equal(b[1].toTensor(), *labels));
}

TEST(ImageFolderTest, ASliceOfAFolderHoldsEveryClass) {
  const std::string root = FreshDir("slice");
  for (int cls = 0; cls < 4; ++cls) {
    for (int i = 0; i < 10; ++i) WriteImage(absl::StrCat(root, "/train/", cls, "/", i, ".png"), RandomImage(2, 2, 10 * cls + i));
  }
  DataConfig c = Config(root);
  c.set_max_train_samples(12);  // the first 12 in listing order would be classes 0 and 1 only
  ASSERT_OK_AND_ASSIGN(Splits s, LoadSplits(c));
  EXPECT_EQ(s.train->size(), 12);
  const at::Tensor labels = *s.train->Labels();
  EXPECT_EQ(std::get<0>(at::_unique(labels)).numel(), 4);
  // Kept in listing order, and the same for the same seed.
  EXPECT_TRUE(at::equal(labels, std::get<0>(labels.sort())));
  ASSERT_OK_AND_ASSIGN(Splits again, LoadSplits(c));
  ASSERT_OK_AND_ASSIGN(Batch a, s.train->GetBatch(at::arange(12, at::kLong)));
  ASSERT_OK_AND_ASSIGN(Batch b, again.train->GetBatch(at::arange(12, at::kLong)));
  EXPECT_TRUE(at::equal(a[0].toTensor(), b[0].toTensor()));
}

TEST(ImageFolderTest, DecodedRowsAreTheFilesPixels) {
  const std::string root = FreshDir("exact");
  const at::Tensor a = RandomImage(5, 7, 1), b = RandomImage(5, 7, 2);
  WriteImage(root + "/train/x/a.png", a);
  WriteImage(root + "/train/y/b.png", b);
  WriteImage(root + "/val/x/a.png", a);
  WriteImage(root + "/val/y/b.png", b);
  ASSERT_OK_AND_ASSIGN(Splits s, LoadSplits(Config(root)));
  ASSERT_OK_AND_ASSIGN(Batch batch, s.val->GetBatch(at::tensor({1, 0}, at::kLong)));
  EXPECT_TRUE(at::equal(batch[0].toTensor()[0], b));
  EXPECT_TRUE(at::equal(batch[0].toTensor()[1], a));
  EXPECT_EQ(batch[1].toTensor()[0].item<int64_t>(), 1);
}

TEST(ImageFolderTest, SplitFoldersAndTheirTransforms) {
  const std::string root = FreshDir("splits");
  int seed = 0;
  for (const char* split : {"train", "val", "test"}) {
    for (const char* cls : {"a", "b"}) {
      for (int i = 0; i < 3; ++i) {
        WriteImage(absl::StrCat(root, "/", split, "/", cls, "/", i, ".png"), RandomImage(20 + i, 30 - i, ++seed));
      }
    }
  }
  DataConfig c = Config(root, R"(train_sample_transforms { random_resized_crop { size: 12 } }
                                 eval_sample_transforms { resize { size: 16 } }
                                 eval_sample_transforms { center_crop { size: 14 } })");
  ASSERT_OK_AND_ASSIGN(Splits s, LoadSplits(c));
  ASSERT_NE(s.test, nullptr);
  EXPECT_EQ(s.train->size(), 6);
  EXPECT_EQ(s.val->size(), 6);
  EXPECT_EQ(s.test->size(), 6);
  ASSERT_OK_AND_ASSIGN(Batch train, s.train->GetSeededBatch(at::arange(6, at::kLong), 1));
  EXPECT_EQ(train[0].toTensor().sizes(), at::IntArrayRef({6, 3, 12, 12}));
  ASSERT_OK_AND_ASSIGN(Batch test, s.test->GetBatch(at::arange(6, at::kLong)));
  EXPECT_EQ(test[0].toTensor().sizes(), at::IntArrayRef({6, 3, 14, 14}));
  // Eval rows are the transforms of the file's pixels.
  const at::Tensor first = RandomImage(20, 30, 13);  // test/a/0.png
  EXPECT_TRUE(at::equal(test[0].toTensor()[0], CenterCropImage(ResizeShorterSide(first, 16), 14, 14)));
  // A different seed draws different windows; the same seed the same ones.
  ASSERT_OK_AND_ASSIGN(Batch again, s.train->GetSeededBatch(at::arange(6, at::kLong), 1));
  ASSERT_OK_AND_ASSIGN(Batch other, s.train->GetSeededBatch(at::arange(6, at::kLong), 2));
  EXPECT_TRUE(at::equal(train[0].toTensor(), again[0].toTensor()));
  EXPECT_FALSE(at::equal(train[0].toTensor(), other[0].toTensor()));
}

TEST(ImageFolderTest, TheSameBatchesForAnyNumberOfWorkersWithOrWithoutPrefetch) {
  const std::string root = OneFolder();
  std::vector<at::Tensor> reference;
  for (int workers : {-1, 1, 4, 3}) {
    DataConfig c = Config(root, "train_sample_transforms { random_resized_crop { size: 6 } }");
    c.set_train_batch_size(4);
    c.set_workers(workers);  // -1: no threads, batches made by Next itself
    c.set_prefetch_batches(workers == 3 ? 5 : 0);
    const std::string extra = absl::StrCat("workers ", workers);
    ASSERT_OK_AND_ASSIGN(Splits s, LoadSplits(c));
    ASSERT_OK_AND_ASSIGN(auto loader, MakeLoader(c, s, "train"));
    std::vector<at::Tensor> seen;
    for (int epoch : {0, 1}) {
      ASSERT_OK(loader->Reset(epoch));
      Batch b;
      while (true) {
        ASSERT_OK_AND_ASSIGN(bool got, loader->Next(&b));
        if (!got) break;
        seen.push_back(b[0].toTensor());
      }
    }
    ASSERT_EQ(seen.size(), 4u);  // 8 train files (1 of 9 carved into val) in batches of 4, two epochs
    if (reference.empty()) {
      reference = seen;
      continue;
    }
    for (size_t i = 0; i < seen.size(); ++i) EXPECT_TRUE(at::equal(seen[i], reference[i])) << extra << " batch " << i;
  }
  // Epochs differ (reshuffled, other windows).
  EXPECT_FALSE(at::equal(reference[0], reference[2]));
}

TEST(ImageFolderTest, DataParallelRanksShareTheSameStreamedBatches) {
  const std::string root = OneFolder();
  DataConfig c = Config(root, "train_sample_transforms { random_resized_crop { size: 6 } }");
  c.set_train_batch_size(3);
  ASSERT_OK_AND_ASSIGN(Splits s, LoadSplits(c));
  ASSERT_OK_AND_ASSIGN(auto whole, MakeLoader(c, s, "train"));
  std::vector<std::unique_ptr<ShardedLoader>> ranks;
  for (int r = 0; r < 2; ++r) {
    ASSERT_OK_AND_ASSIGN(auto mine, MakeLoader(c, s, "train"));
    ASSERT_OK_AND_ASSIGN(auto shard, ShardedLoader::Create(std::move(mine), r, 2));
    ranks.push_back(std::move(shard));
  }
  ASSERT_OK(whole->Reset(1));
  for (auto& r : ranks) ASSERT_OK(r->Reset(1));
  int batches = 0;
  Batch all, part0, part1;
  while (true) {
    ASSERT_OK_AND_ASSIGN(bool got, whole->Next(&all));
    ASSERT_OK_AND_ASSIGN(bool got0, ranks[0]->Next(&part0));
    ASSERT_OK_AND_ASSIGN(bool got1, ranks[1]->Next(&part1));
    ASSERT_EQ(got0, got);
    ASSERT_EQ(got1, got);
    if (!got) break;
    ++batches;
    EXPECT_TRUE(at::equal(at::cat({part0[0].toTensor(), part1[0].toTensor()}), all[0].toTensor()));
    EXPECT_TRUE(at::equal(at::cat({part0[1].toTensor(), part1[1].toTensor()}), all[1].toTensor()));
  }
  EXPECT_EQ(batches, 3);  // 8 train files in batches of 3
}

TEST(ImageFolderTest, TheIndexIsCachedUntilAFolderChanges) {
  const std::string root = OneFolder();
  const std::string cache = FreshDir("index_cache");
  ASSERT_OK_AND_ASSIGN(ImageFolderListing first, ListImageFolder(root, cache));
  EXPECT_FALSE(first.from_cache);
  ASSERT_OK_AND_ASSIGN(ImageFolderListing second, ListImageFolder(root, cache));
  EXPECT_TRUE(second.from_cache);
  ASSERT_EQ(second.splits.size(), 1u);
  ASSERT_EQ(second.splits[0].classes.size(), 3u);
  EXPECT_EQ(second.splits[0].classes[0].files, first.splits[0].classes[0].files);
  // A new file deep inside a class: its folder's time changes.
  WriteImage(root + "/cat/sub/w.png", RandomImage(8, 8, 99));
  ASSERT_OK_AND_ASSIGN(ImageFolderListing third, ListImageFolder(root, cache));
  EXPECT_FALSE(third.from_cache);
  EXPECT_THAT(third.splits[0].classes[0].files, ElementsAre("a.png", "z.png", "sub/w.png", "sub/x.jpg", "sub/y.png"));
  // A torn cache file is rebuilt, not trusted.
  for (const auto& e : fs::directory_iterator(cache)) ASSERT_OK(WriteFileAtomically(e.path().string(), "garbage"));
  ASSERT_OK_AND_ASSIGN(ImageFolderListing fourth, ListImageFolder(root, cache));
  EXPECT_FALSE(fourth.from_cache);
  EXPECT_EQ(fourth.splits[0].classes[0].files.size(), 5u);
}

TEST(ImageFolderTest, SamplesOfDifferentSizesNeedTransforms) {
  const std::string root = FreshDir("sizes");
  WriteImage(root + "/a/1.png", RandomImage(8, 8, 1));
  WriteImage(root + "/a/2.png", RandomImage(9, 8, 2));
  WriteImage(root + "/b/1.png", RandomImage(8, 8, 3));
  const std::vector<std::string> files = {root + "/a/1.png", root + "/a/2.png", root + "/b/1.png"};
  ImageFolderDataset plain(files, {0, 0, 1}, {}, "sizes/train");
  EXPECT_THAT(plain.GetBatch(at::arange(3, at::kLong)),
              StatusIs(absl::StatusCode::kFailedPrecondition, HasSubstr("samples end different sizes (3x8x8")));
  ImageFolderDataset::Options cropped;
  cropped.transforms =
      MakeSampleTransforms(
          Config(root, "eval_sample_transforms { center_crop { size: 8 } }").image_folder().eval_sample_transforms(),
          "eval")
          .value();
  ImageFolderDataset fixed(files, {0, 0, 1}, cropped, "sizes/train");
  ASSERT_OK_AND_ASSIGN(Batch b, fixed.GetBatch(at::arange(3, at::kLong)));
  EXPECT_EQ(b[0].toTensor().sizes(), at::IntArrayRef({3, 3, 8, 8}));
}

// ---- bad input ---------------------------------------------------------------

TEST(ImageFolderBadInputTest, ARootThatIsNotAFolder) {
  EXPECT_THAT(LoadSplits(Config(TempPath("no_such_folder"))),
              StatusIs(absl::StatusCode::kNotFound, HasSubstr("no_such_folder\" is not a directory")));
  DataConfig c;
  c.mutable_image_folder();
  EXPECT_THAT(LoadSplits(c), StatusIs(absl::StatusCode::kInvalidArgument,
                                      "image_folder.root: required, got \"\"; valid: a folder of class folders"));
  c.mutable_image_folder()->set_root(TempPath(""));
  c.set_workers(100);
  EXPECT_THAT(LoadSplits(c), StatusIs(absl::StatusCode::kInvalidArgument,
                                      "workers: out of range, got 100; valid: [-1, 64] (-1 = none, 0 = default)"));
  // Page-locked batches without CUDA (this test never loads it).
  c.set_workers(0);
  c.set_pin_memory(true);
  EXPECT_THAT(LoadSplits(c), StatusIs(absl::StatusCode::kFailedPrecondition,
                                      "pin_memory: needs a CUDA device (page-locked batches are for copies to one); "
                                      "this process has none, got true; valid: false"));
}

TEST(ImageFolderBadInputTest, DifferentClassSetsInTrainAndTest) {
  const std::string root = FreshDir("classes");
  WriteImage(root + "/train/a/1.png", RandomImage(4, 4, 1));
  WriteImage(root + "/train/b/1.png", RandomImage(4, 4, 2));
  WriteImage(root + "/test/a/1.png", RandomImage(4, 4, 3));
  WriteImage(root + "/test/c/1.png", RandomImage(4, 4, 4));
  EXPECT_THAT(LoadSplits(Config(root)),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("has classes {a, c} but")));
}

TEST(ImageFolderBadInputTest, ANonImageFileIsAnErrorOrACountedSkip) {
  const std::string root = OneFolder();
  ASSERT_OK(WriteFileAtomically(root + "/dog/notes.txt", "not an image"));
  EXPECT_THAT(LoadSplits(Config(root)),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("notes.txt\" is not a .jpg, .jpeg or .png file")));
  DataConfig skip = Config(root, "on_bad_file: SKIP");
  skip.set_val_fraction(0.0);
  ASSERT_OK_AND_ASSIGN(Splits s, LoadSplits(skip));
  EXPECT_EQ(s.train->size() + s.val->size(), 9);
}

TEST(ImageFolderBadInputTest, AnEmptyClassFolder) {
  const std::string root = OneFolder();
  fs::create_directories(root + "/ant");
  EXPECT_THAT(LoadSplits(Config(root)),
              StatusIs(absl::StatusCode::kFailedPrecondition, HasSubstr("ant\" has no .jpg, .jpeg or .png files")));
  // SKIP keeps its label (0: ant < cat < dog < emu) with no samples, so the
  // other labels stay what torchvision gives them (allow_empty=True).
  ASSERT_OK_AND_ASSIGN(Splits s, LoadSplits(Config(root, "on_bad_file: SKIP")));
  const at::Tensor labels = at::cat({*s.train->Labels(), *s.val->Labels()});
  EXPECT_EQ(labels.min().item<int64_t>(), 1);
  EXPECT_EQ(labels.max().item<int64_t>(), 3);
}

TEST(ImageFolderBadInputTest, UndecodableFilesAreErrorsNamingThemOrCountedSkips) {
  const std::string root = FreshDir("broken");
  WriteImage(root + "/a/good.png", RandomImage(6, 6, 1));
  WriteImage(root + "/a/good2.jpg", RandomImage(6, 6, 2), true);
  ASSERT_OK(WriteFileAtomically(root + "/a/text.png", "this is text"));
  ASSERT_OK_AND_ASSIGN(std::string jpg, ReadFileToString(root + "/a/good2.jpg"));
  fs::create_directories(root + "/b");
  ASSERT_OK(WriteFileAtomically(root + "/b/truncated.jpg", jpg.substr(0, jpg.size() / 2)));
  ASSERT_OK_AND_ASSIGN(std::string png16, ReadFileToString("data/testdata/images/gray16.png"));
  ASSERT_OK(WriteFileAtomically(root + "/b/deep.png", png16));
  WriteImage(root + "/b/good.png", RandomImage(6, 6, 3));
  DataConfig c = Config(root, "");
  c.set_val_fraction(0.0);  // default 0.1 of 6 → 1 carved
  // Listing does not decode: the bad files surface when a batch needs them.
  ASSERT_OK_AND_ASSIGN(Splits s, LoadSplits(c));
  EXPECT_EQ(s.train->size() + s.val->size(), 6);
  // Every file, in order: a/good.png a/good2.jpg a/text.png b/deep.png b/good.png b/truncated.jpg.
  ImageFolderDataset::Options o;
  std::vector<std::string> files;
  for (const char* f : {"a/good.png", "a/good2.jpg", "a/text.png", "b/deep.png", "b/good.png", "b/truncated.jpg"}) {
    files.push_back(root + "/" + f);
  }
  ImageFolderDataset strict(files, {0, 0, 0, 1, 1, 1}, o, "broken/train");
  EXPECT_THAT(strict.GetBatch(at::tensor({0, 2}, at::kLong)),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("text.png\": neither JPEG nor PNG")));
  EXPECT_THAT(strict.GetBatch(at::tensor({5}, at::kLong)),
              StatusIs(absl::StatusCode::kDataLoss, HasSubstr("truncated.jpg\": corrupt or truncated JPEG")));
  EXPECT_THAT(strict.GetBatch(at::tensor({3}, at::kLong)),
              StatusIs(absl::StatusCode::kUnimplemented, HasSubstr("deep.png\": 16-bit PNG")));
  EXPECT_THAT(strict.GetBatch(at::tensor({6}, at::kLong)), StatusIs(absl::StatusCode::kOutOfRange, HasSubstr("6")));
  o.skip_bad = true;
  ImageFolderDataset lenient(files, {0, 0, 0, 1, 1, 1}, o, "broken/train");
  ASSERT_OK_AND_ASSIGN(Batch b, lenient.GetBatch(at::arange(6, at::kLong)));
  EXPECT_EQ(b[0].toTensor().size(0), 3);
  EXPECT_TRUE(at::equal(b[1].toTensor(), at::tensor({0, 0, 1}, at::kLong)));
  EXPECT_EQ(lenient.skipped(), 3);
  ASSERT_OK_AND_ASSIGN(b, lenient.GetBatch(at::arange(6, at::kLong)));
  EXPECT_EQ(lenient.skipped(), 3);  // distinct files
  EXPECT_THAT(lenient.GetBatch(at::tensor({2, 3}, at::kLong)),
              StatusIs(absl::StatusCode::kFailedPrecondition, HasSubstr("every one of the batch's 2 files was bad")));
}

}  // namespace
}  // namespace slimfit
