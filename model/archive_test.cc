#include "model/archive.h"

#include <string>

#include "common/files.h"
#include "common/status_matchers.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "model/test_zip.h"

namespace slimfit {
namespace {

using ::slimfit::testing::MakeZip;
using ::slimfit::testing::StatusIs;
using ::testing::AllOf;
using ::testing::HasSubstr;

std::string Write(const std::string& name, const std::string& bytes) {
  const std::string path = testing::TempPath(name);
  EXPECT_OK(WriteFileAtomically(path, bytes));
  return path;
}

const std::vector<testing::ZipEntry> kMinimalModel = {
    {"m/data.pkl", "x"},
    {"m/constants.pkl", "x"},
    {"m/code/__torch__/m.py", "def forward(self): pass"},
    {"m/data/0", std::string(16, '\0')},
    {"m/version", "3"},
};

TEST(ArchiveTest, SummarisesAPlausibleArchive) {
  auto summary = InspectTorchScriptArchive(Write("ok.pt", MakeZip(kMinimalModel)));
  ASSERT_OK(summary);
  EXPECT_EQ(summary->entries.size(), 5u);
  EXPECT_EQ(summary->num_code_files, 1);
  EXPECT_EQ(summary->num_tensor_blobs, 1);
  EXPECT_EQ(summary->tensor_bytes, 16u);
}

TEST(ArchiveTest, ListsTheOperatorsTheCodeCallsAndFlagsFileReadsAndCustomOps) {
  std::vector<testing::ZipEntry> entries = kMinimalModel;
  entries[2].data =
      "def forward(self, x):\n"
      "  y = torch.conv2d(x, self.w)\n"
      "  z = torch.relu(torch.conv2d(y, self.w))\n"
      "  f = torch.from_file(\"/etc/passwd\", False, 4)\n"
      "  q = ops.quantized.linear(z, self.p)\n"
      "  return ops.my_plugin.secret(q)  # mytorch.fake( is not a call of torch\n";
  ASSERT_OK_AND_ASSIGN(ArchiveSummary s, InspectTorchScriptArchive(Write("ops.pt", MakeZip(entries))));
  EXPECT_THAT(s.declared_ops, ::testing::ElementsAre(
                                  ::testing::Pair("ops.my_plugin.secret", 1), ::testing::Pair("ops.quantized.linear", 1),
                                  ::testing::Pair("torch.conv2d", 2), ::testing::Pair("torch.from_file", 1),
                                  ::testing::Pair("torch.relu", 1)));
  EXPECT_THAT(s.notable_ops, ::testing::ElementsAre(
                                 ::testing::Pair("ops.my_plugin.secret", HasSubstr("custom operator")),
                                 ::testing::Pair("torch.from_file", HasSubstr("reads a file"))));
  EXPECT_EQ(s.num_unscanned_code_files, 0);
}

// A file written by PyTorch (torch.jit.trace(nn.Linear(2, 2)).save): its
// code entries are deflated.
TEST(ArchiveTest, ReadsTheDeflatedCodeOfARealPyTorchFile) {
  ASSERT_OK_AND_ASSIGN(ArchiveSummary s, InspectTorchScriptArchive(
                                             "model/testdata/fuzz/archive_fuzz_test/linear_2x2.pt"));
  EXPECT_EQ(s.num_code_files, 1);
  EXPECT_EQ(s.num_unscanned_code_files, 0);
  EXPECT_THAT(s.declared_ops, ::testing::ElementsAre(::testing::Pair("torch.linear", 1)));
  EXPECT_TRUE(s.notable_ops.empty());
}

TEST(ArchiveTest, EmptyFile) {
  EXPECT_THAT(InspectTorchScriptArchive(Write("empty.pt", "")),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("the file is empty")));
}

TEST(ArchiveTest, NotAZip) {
  EXPECT_THAT(InspectTorchScriptArchive(Write("text.pt", "hello, I am a text file")),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("not a zip archive")));
}

TEST(ArchiveTest, TruncatedZip) {
  const std::string zip = MakeZip(kMinimalModel);
  EXPECT_THAT(InspectTorchScriptArchive(Write("cut.pt", zip.substr(0, zip.size() / 2))),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("truncated")));
}

TEST(ArchiveTest, MissingFileIsNotFound) {
  EXPECT_THAT(InspectTorchScriptArchive("/no/such/model.pt"),
              StatusIs(absl::StatusCode::kNotFound, HasSubstr("/no/such/model.pt")));
}

TEST(ArchiveTest, StateDictIsToldApartFromAModel) {
  const std::string path = Write(
      "sd.pt", MakeZip({{"sd/data.pkl", "x"}, {"sd/data/0", "abcd"}, {"sd/version", "3"}}));
  EXPECT_THAT(InspectTorchScriptArchive(path),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("looks like a torch.save() file")));
}

// A real torch.export .pt2 from torch 2.x (testdata/make_pt2.py): refused with
// what to do instead, not a crash inside torch::jit::load.
TEST(ArchiveTest, ExportedProgramIsRefusedWithWhatToDoInstead) {
  EXPECT_THAT(InspectTorchScriptArchive("model/testdata/export_linear.pt2"),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       AllOf(HasSubstr("model/testdata/export_linear.pt2"), HasSubstr("torch.export"),
                             HasSubstr("torch.jit.trace(model, example).save(path)"))));
}

TEST(ArchiveTest, RefusesUnsafeEntryNames) {
  for (const std::string bad : {"../evil.py", "/etc/passwd", "m/code/../../x", "m\\..\\x"}) {
    auto entries = kMinimalModel;
    entries.push_back({bad, "x"});
    EXPECT_THAT(InspectTorchScriptArchive(Write("unsafe.pt", MakeZip(entries))),
                StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("unsafe entry name")))
        << bad;
  }
}

TEST(ArchiveTest, RefusesAbsurdSizes) {
  auto entries = kMinimalModel;
  entries.push_back({"m/data/1", "x", /*claimed_size=*/4000000000u});
  EXPECT_THAT(InspectTorchScriptArchive(Write("huge.pt", MakeZip(entries)),
                                        /*max_entry_bytes=*/1 << 30),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("over the limit")));
}

}  // namespace
}  // namespace slimfit
